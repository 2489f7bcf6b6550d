"""`@idempotent` for API view methods: replays, conflicts and storage of the first response.

Endpoints that create a payment or a refund are listed in `LINKED_ANSWERS`: while they run, the
service links their idempotency record to the object it creates, and a repeat of a request that
failed (5xx) or died after that is answered with the object's current state, rendered by the
view's own serializer with the status its success has (see `payments.idempotency`).
"""

import json
from collections.abc import Callable
from dataclasses import dataclass
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
        "Same key with another body: 422 `idempotency_key_reused`; while the first is running: 409. "
        "When the first failed (5xx) or died after creating its payment or refund, a repeat answers "
        "that object's current state.",
    )


@dataclass(frozen=True)
class LinkedAnswer:
    """What an endpoint creates (`resource_type`, a key of `payments.idempotency.RESOURCE_MODELS`)
    and how its success answers: `status`, and the view's serializer rendering `instance(obj)`."""

    resource_type: str
    status: int
    instance: Callable[[object], object | None] = lambda obj: obj


def _credit_purchase_of(payment):
    """A credit purchase's record is linked to its payment (created by `payment_create`); the
    endpoint answers the purchase, which the payment names in its metadata."""
    from credits.models import CreditPurchase
    from credits.services import METADATA_KEY

    purchase_id = (payment.metadata or {}).get(METADATA_KEY)
    return CreditPurchase.objects.filter(pk=purchase_id, client_app_id=payment.client_app_id).first()


# View class (module.qualname) → what its idempotent POST creates. Views not listed never link
# (a payment made by a task inside a credit consumption is not that consumption's object).
LINKED_ANSWERS: dict[str, LinkedAnswer] = {
    "payments.api.payment_views.PaymentListCreateView": LinkedAnswer("payment", 201),
    "payments.api.payment_views.PaymentRefundsView": LinkedAnswer("refund", 201),
    "credits.api.views.CreditPurchaseCreateView": LinkedAnswer("payment", 201, _credit_purchase_of),
}


def _linked_answer(view) -> LinkedAnswer | None:
    cls = type(view)
    return LINKED_ANSWERS.get(f"{cls.__module__}.{cls.__qualname__}")


def _replay(replay: idempotency.Replay):
    if replay.status >= 400:
        response = JsonResponse(replay.body, status=replay.status, content_type=PROBLEM_CONTENT_TYPE)
    else:
        response = Response(replay.body, status=replay.status)
    response["Idempotent-Replayed"] = "true"
    return response


def _replay_linked(view, linked: idempotency.Linked):
    """The linked object's current state, as the endpoint's success would render it."""
    answer = _linked_answer(view)
    obj = linked.get_object() if answer and answer.resource_type == linked.resource_type else None
    instance = answer.instance(obj) if obj is not None else None
    if instance is None:  # not renderable here (should not happen): fall back to what was stored
        if linked.stored is None:
            raise idempotency.IdempotencyKeyInUse(
                "Retry after the first request finishes.", headers={"Retry-After": "1"}
            )
        return _replay(linked.stored)
    response = Response(view.get_serializer_class()(instance).data, status=answer.status)
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
            if isinstance(claimed, idempotency.Linked):
                return _replay_linked(view, claimed)
            answer = _linked_answer(view)
            # A process killed in here (or a BaseException) leaves the record in progress, linked if
            # the object was created: a repeat after the lease answers the object or takes over.
            with idempotency.active(claimed, resource_type=answer.resource_type if answer else None):
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
                        # charge again; a repeat answers the linked payment's state (settled by the settle job).
                        body = problem_body(status=500, code="internal_error", title="Internal server error")
                        idempotency.finish(record=claimed, status=500, body=body)
                    raise
                idempotency.finish(record=claimed, status=response.status_code, body=response.data)
            return response

        return wrapper

    return decorator
