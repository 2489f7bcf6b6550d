"""RFC 9457 problem details for every error the API returns.

Every error body has `type`, `title`, `status`, `detail`, a stable machine `code` and the
`request_id`; validation errors add `errors` ({field: [messages]}). Domain errors subclass
`ApiError` and carry their own status, code and extra members (e.g. `decline_code`).
"""

import logging

from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.http import Http404, JsonResponse
from rest_framework import exceptions as drf_exceptions

from smartpay import request_context

logger = logging.getLogger("smartpay.api")

PROBLEM_CONTENT_TYPE = "application/problem+json"


def problem_type(code: str) -> str:
    return f"urn:smartpay:problem:{code}"


def problem_body(*, status: int, code: str, title: str, detail: str = "", **extra) -> dict:
    body = {
        "type": problem_type(code),
        "title": title,
        "status": status,
        "detail": detail or title,
        "code": code,
        "request_id": request_context.get_request_id(),
    }
    body.update({key: value for key, value in extra.items() if value is not None})
    return body


def problem_response(*, status: int, code: str, title: str, detail: str = "", headers=None, **extra):
    response = JsonResponse(
        problem_body(status=status, code=code, title=title, detail=detail, **extra),
        status=status,
        content_type=PROBLEM_CONTENT_TYPE,
    )
    for key, value in (headers or {}).items():
        response[key] = value
    return response


class ApiError(drf_exceptions.APIException):
    """A domain error with a stable code. Subclasses set status_code, code and title."""

    status_code = 400
    code = "bad_request"
    title = "Bad request"

    def __init__(self, detail: str | None = None, *, headers: dict | None = None, **extra):
        self.detail_text = detail or self.title
        self.extra = extra
        self.headers = headers or {}
        super().__init__(detail=self.detail_text, code=self.code)


class Conflict(ApiError):
    status_code = 409
    code = "conflict"
    title = "Conflict"


class CardDataNotAllowed(ApiError):
    status_code = 400
    code = "card_data_not_allowed"
    title = "Card data not allowed"


class ServiceUnavailable(ApiError):
    status_code = 503
    code = "service_unavailable"
    title = "Service unavailable"


def _flatten_errors(detail, prefix: str = "") -> dict[str, list[str]]:
    """Turn DRF's nested error detail into {"field.sub": ["message", ...]}."""
    out: dict[str, list[str]] = {}
    if isinstance(detail, dict):
        for key, value in detail.items():
            name = "body" if key in ("non_field_errors", "__all__") and not prefix else key
            child = f"{prefix}.{name}" if prefix else str(name)
            for field, messages in _flatten_errors(value, child).items():
                out.setdefault(field, []).extend(messages)
    elif isinstance(detail, list):
        if all(not isinstance(item, (dict, list)) for item in detail):
            out[prefix or "body"] = [str(item) for item in detail]
        else:
            for index, item in enumerate(detail):
                for field, messages in _flatten_errors(item, f"{prefix}[{index}]").items():
                    out.setdefault(field, []).extend(messages)
    else:
        out[prefix or "body"] = [str(detail)]
    return out


_DRF_MAP = {
    drf_exceptions.ParseError: (400, "malformed_request", "Malformed request"),
    drf_exceptions.NotAuthenticated: (401, "unauthenticated", "Authentication required"),
    drf_exceptions.AuthenticationFailed: (401, "invalid_api_key", "Invalid API key"),
    drf_exceptions.PermissionDenied: (403, "forbidden", "Forbidden"),
    drf_exceptions.NotFound: (404, "not_found", "Not found"),
    drf_exceptions.MethodNotAllowed: (405, "method_not_allowed", "Method not allowed"),
    drf_exceptions.NotAcceptable: (406, "not_acceptable", "Not acceptable"),
    drf_exceptions.UnsupportedMediaType: (415, "unsupported_media_type", "Unsupported media type"),
    drf_exceptions.Throttled: (429, "rate_limited", "Too many requests"),
}


def is_expected(exc: BaseException) -> bool:
    """An error the API answers on purpose (4xx or a domain 5xx), as opposed to a bug."""
    return isinstance(exc, Http404 | PermissionDenied | RequestDataTooBig | drf_exceptions.APIException)


def problem_exception_handler(exc, context):
    """DRF's EXCEPTION_HANDLER: every exception becomes application/problem+json."""
    if isinstance(exc, Http404):
        exc = drf_exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = drf_exceptions.PermissionDenied()
    elif isinstance(exc, RequestDataTooBig):
        return problem_response(status=413, code="payload_too_large", title="Payload too large")

    if isinstance(exc, ApiError):
        return problem_response(
            status=exc.status_code,
            code=exc.code,
            title=exc.title,
            detail=exc.detail_text,
            headers=exc.headers,
            **exc.extra,
        )

    if isinstance(exc, drf_exceptions.ValidationError):
        return problem_response(
            status=400,
            code="validation_error",
            title="Invalid request",
            detail="One or more fields are invalid.",
            errors=_flatten_errors(exc.detail),
        )

    if isinstance(exc, drf_exceptions.APIException):
        # Let DRF compute auth headers (WWW-Authenticate) and Retry-After, then reshape the body.
        from rest_framework.views import exception_handler as drf_default_handler  # DRF settings import us

        base = drf_default_handler(exc, context)
        status, code, title = next(
            (mapping for cls, mapping in _DRF_MAP.items() if isinstance(exc, cls)),
            (exc.status_code, exc.default_code, "Error"),
        )
        if isinstance(exc, drf_exceptions.AuthenticationFailed) and getattr(exc, "smartpay_code", None):
            code = exc.smartpay_code
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        response = problem_response(status=base.status_code if base else status, code=code, title=title, detail=detail)
        if base is not None:
            for header in ("WWW-Authenticate", "Retry-After", "Allow"):
                if header in base:
                    response[header] = base[header]
        return response

    logger.exception("Unhandled error while serving the request")
    return problem_response(
        status=500,
        code="internal_error",
        title="Internal server error",
        detail="Something went wrong on our side. Quote the request_id when reporting it.",
    )
