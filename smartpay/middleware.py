import re
from datetime import UTC
from urllib.parse import unquote

from django.conf import settings
from django.utils import timezone

from smartpay import request_context
from smartpay.api.errors import problem_response
from smartpay.wsgi_body import is_chunked

# A JSON NUL escape: backslash-u-0000 after an even run of other backslashes (an escaped backslash
# followed by the text "u0000" is no NUL).
NUL_ESCAPE = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")


class RequestIdMiddleware:
    """Gives every request an id (the caller's `X-Request-Id` or a new one) and echoes it back."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request_id = request_context.accept_or_make(request.headers.get("X-Request-Id"))
        request.request_id = request_id
        token = request_context.set_request_id(request_id)
        try:
            response = self.get_response(request)
        finally:
            # Django's own 4xx/5xx log lines come after this; they find the id on `request`.
            request_context.reset_request_id(token)
        response["Request-Id"] = request_id
        return response


class BodySizeLimitMiddleware:
    """Answers 413 for a declared body over MAX_REQUEST_BODY_BYTES before anything reads it, and 411
    for a chunked body the server left undecoded."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if is_chunked(request.META) and not request.META.get("CONTENT_LENGTH"):
            # The server did not de-chunk it (smartpay/wsgi_body.py): its body would read as empty.
            return problem_response(
                status=411,
                code="length_required",
                title="Length required",
                detail="Send the body with a Content-Length header (chunked bodies are not accepted here).",
            )
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > settings.MAX_REQUEST_BODY_BYTES:
            return problem_response(
                status=413,
                code="payload_too_large",
                title="Payload too large",
                detail=f"The request body may be at most {settings.MAX_REQUEST_BODY_BYTES} bytes.",
            )
        return self.get_response(request)


class NulCharacterMiddleware:
    """Answers 400 for a NUL character (`%00`, `\\u0000`) anywhere in a request: path, query string or
    JSON body. PostgreSQL cannot store one in text, so it would otherwise fail deep in a query (500);
    no legitimate id, filter, metadata key or gateway event id contains one."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if self._has_nul(request):
            return problem_response(
                status=400,
                code="malformed_request",
                title="Malformed request",
                detail="NUL characters (%00, \\u0000) are not accepted anywhere in a request.",
            )
        return self.get_response(request)

    @staticmethod
    def _has_nul(request) -> bool:
        if "\x00" in request.path or "\x00" in unquote(request.META.get("QUERY_STRING", "")):
            return True
        if "json" not in (request.content_type or ""):
            return False
        body = request.body  # already bounded by BodySizeLimitMiddleware
        return b"\x00" in body or NUL_ESCAPE.search(body) is not None


class ApiTimezoneMiddleware:
    """API timestamps are UTC (`…Z`), whatever TIME_ZONE the admin and business dates use."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if not request.path.startswith("/api/"):
            return self.get_response(request)
        with timezone.override(UTC):
            return self.get_response(request)
