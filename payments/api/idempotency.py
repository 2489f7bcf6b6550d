"""`@idempotent` for API view methods: replays, conflicts and storage of the first response."""

import json
from functools import wraps

from django.http import JsonResponse
from drf_spectacular.utils import OpenApiParameter
from rest_framework.response import Response

from payments import idempotency
from smartpay.api.errors import PROBLEM_CONTENT_TYPE, is_expected, problem_body, problem_exception_handler

IDEMPOTENCY_KEY_SCHEMA = {
    "type": "string",
    "minLength": 1,
    "maxLength": idempotency.MAX_KEY_LENGTH,
    "pattern": "^[\\x20-\\x7E]+$",
}


def idempotency_parameter(required: bool) -> OpenApiParameter:
    return OpenApiParameter(
        "Idempotency-Key",
        IDEMPOTENCY_KEY_SCHEMA,
        OpenApiParameter.HEADER,
        required=required,
        description="Repeats with the same key and body replay the first response (kept at least 24 h). "
        "Same key with another body: 422 `idempotency_key_reused`; while the first is running: 409.",
    )


def _replay(replay: idempotency.Replay):
    if replay.status >= 400:
        response = JsonResponse(replay.body, status=replay.status, content_type=PROBLEM_CONTENT_TYPE)
    else:
        response = Response(replay.body, status=replay.status)
    response["Idempotent-Replayed"] = "true"
    return response


def idempotent(*, required: bool):
    def decorator(handler):
        @wraps(handler)
        def wrapper(view, request, *args, **kwargs):
            key = request.headers.get("Idempotency-Key")
            if key is None:
                if required:
                    raise idempotency.IdempotencyKeyRequired("Send an Idempotency-Key header (e.g. a UUID).")
                return handler(view, request, *args, **kwargs)
            claimed = idempotency.begin(
                client_app=request.user,
                key=key,
                request_fingerprint=idempotency.fingerprint(request.method, request.path, request.data),
            )
            if isinstance(claimed, idempotency.Replay):
                return _replay(claimed)
            try:
                response = handler(view, request, *args, **kwargs)
            except Exception as exc:
                if is_expected(exc):
                    # Store exactly what the client is about to receive (4xx answers release the key).
                    rendered = problem_exception_handler(exc, {"view": view, "request": request})
                    body = json.loads(rendered.content)
                    idempotency.finish(record=claimed, status=rendered.status_code, body=body)
                else:
                    # A bug, after which state may have changed: keep the key taken so a retry cannot
                    # charge again; the payment is brought up to date by the settle job.
                    body = problem_body(status=500, code="internal_error", title="Internal server error")
                    idempotency.finish(record=claimed, status=500, body=body)
                raise
            idempotency.finish(record=claimed, status=response.status_code, body=response.data)
            return response

        return wrapper

    return decorator
