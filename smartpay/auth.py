"""API key authentication for client apps: `Authorization: Bearer <key>`.

Keys are high-entropy random strings, so a single SHA-256 is the right hash: the lookup is one
indexed query, not a deliberately slow password hash on every request.
"""

import logging
import time
from datetime import timedelta

from django.conf import settings
from django.core.cache import cache
from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions, permissions, throttling

from smartpay.cache import count as shared_counter

LAST_USED_RESOLUTION = timedelta(minutes=1)
logger = logging.getLogger("smartpay.api")


def _fail(code: str, detail: str) -> exceptions.AuthenticationFailed:
    exc = exceptions.AuthenticationFailed(detail)
    exc.smartpay_code = code
    return exc


class ApiKeyAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request):
        from payments.models import ApiKey, hash_api_key

        header = request.headers.get("Authorization")
        if not header:
            return None
        parts = header.split()
        if len(parts) != 2 or parts[0].lower() != self.keyword.lower():
            raise _fail("invalid_api_key", "Use 'Authorization: Bearer <api key>'.")
        api_key = ApiKey.objects.select_related("client_app").filter(key_hash=hash_api_key(parts[1])).first()
        if api_key is None or api_key.revoked_at is not None:
            raise _fail("invalid_api_key", "The API key is unknown or has been revoked.")
        if not api_key.client_app.is_active:
            raise _fail("client_app_inactive", "The client app for this key is deactivated.")
        now = timezone.now()
        if api_key.last_used_at is None or now - api_key.last_used_at > LAST_USED_RESOLUTION:
            ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
        request.api_key = api_key
        return api_key.client_app, api_key

    def authenticate_header(self, request):
        return f'{self.keyword} realm="api"'


class IsClientApp(permissions.BasePermission):
    def has_permission(self, request, view):
        from payments.models import ClientApp

        return isinstance(request.user, ClientApp)


class ClientAppRateThrottle(throttling.BaseThrottle):
    """Per client app, per minute, reads and writes counted apart, in the shared cache (Redis).

    Writes (POST, PUT, PATCH, DELETE: the calls that move money or change state) and reads each
    have a budget per one-minute window: the app's own (`ClientApp.rate_limit_*_per_minute`, set by
    staff in the admin) or the defaults API_RATE_LIMIT_WRITE_PER_MINUTE / _READ_PER_MINUTE. One
    atomic increment per request; over the budget is a 429 problem with `Retry-After` (the seconds
    left in the window). If the cache cannot be reached the request is let through (logged): a
    cache outage must not stop payments.
    """

    WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

    def allow_request(self, request, view):
        from payments.models import ClientApp

        app = request.user
        if not isinstance(app, ClientApp):
            return True  # unauthenticated calls are refused before they do anything
        kind, limit = self.budget(app, request.method)
        now = time.time()
        window = int(now // 60)
        self._wait = 60 - (now - window * 60)
        key = f"ratelimit:{app.pk}:{kind}:{window}"
        try:
            count = shared_counter(key, 120, cache=cache)  # one round trip on Redis (smartpay/cache.py)
        except Exception:  # any cache failure: let the request through
            logger.warning("rate limit not counted: the cache is unreachable", exc_info=True)
            return True
        return count <= limit

    @classmethod
    def budget(cls, app, method: str) -> tuple[str, int]:
        if method in cls.WRITE_METHODS:
            return "write", app.rate_limit_write_per_minute or settings.API_RATE_LIMIT_WRITE_PER_MINUTE
        return "read", app.rate_limit_read_per_minute or settings.API_RATE_LIMIT_READ_PER_MINUTE

    def wait(self):
        return getattr(self, "_wait", None)


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    """Describes the API key scheme in the OpenAPI document."""

    target_class = "smartpay.auth.ApiKeyAuthentication"
    name = "ApiKeyAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "API key",
            "description": "A client app's key: `Authorization: Bearer sk_live_…`.",
        }
