"""API key authentication for client apps: `Authorization: Bearer <key>`.

Keys are high-entropy random strings, so a single SHA-256 is the right hash: the lookup is one
indexed query, not a deliberately slow password hash on every request.
"""

from datetime import timedelta

from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions, permissions, throttling

LAST_USED_RESOLUTION = timedelta(minutes=1)


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


class ClientAppRateThrottle(throttling.SimpleRateThrottle):
    scope = "client_app"

    def get_cache_key(self, request, view):
        user = request.user
        ident = getattr(user, "pk", None) or self.get_ident(request)
        return self.cache_format % {"scope": self.scope, "ident": ident}


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
