"""`X-Idempotency-Key` for the Mercado Pago simulator (mercadopago.md §2).

The same key on the same endpoint with the same body replays the first answer (same payment id,
same status code); with a different body it is a 409. The key row is inserted in the same
transaction as the work it guards, under a unique constraint: a concurrent duplicate blocks on the
insert until the first commits, then fails it and replays. Only successful answers are kept, so a
request refused for its parameters can be corrected and sent again with the same key.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from django.db import IntegrityError, transaction
from django.http import HttpResponse

from payments.gateways.simulator import mercadopago_objects as objects
from payments.gateways.simulator import wire
from payments.gateways.simulator.models import Gateway, SimIdempotencyKey

HEADER = "X-Idempotency-Key"


def _fingerprint(request) -> str:
    try:
        text = wire.canonical(wire.parse_json_body(request))
    except wire.BadJson:
        text = request.body.decode("utf-8", errors="replace")
    return hashlib.sha256(text.encode()).hexdigest()


def _replay(row: SimIdempotencyKey) -> HttpResponse:
    return HttpResponse(row.response_body.encode(), status=row.response_status, content_type="application/json")


def idempotent(request, handler: Callable[[], HttpResponse], *, required: bool) -> HttpResponse:
    key = (request.headers.get(HEADER) or "").strip()
    if not key:
        if required:
            raise objects.bad_request(4292, "Header X-Idempotency-Key can't be null")
        return handler()
    if len(key) > 200:
        raise objects.bad_request(1, "X-Idempotency-Key is too long")
    scope = f"{request.method} {request.path}"[:200]
    fingerprint = _fingerprint(request)
    with transaction.atomic():
        try:
            with transaction.atomic():
                row = SimIdempotencyKey.objects.create(
                    gateway=Gateway.MERCADOPAGO, scope=scope, key=key, fingerprint=fingerprint
                )
        except IntegrityError:
            row = SimIdempotencyKey.objects.get(gateway=Gateway.MERCADOPAGO, scope=scope, key=key)
            if row.fingerprint != fingerprint:
                raise objects.error(
                    409,
                    "The X-Idempotency-Key was already used with a different request",
                    "conflict",
                    [("idempotency_key_conflict", "Use a new X-Idempotency-Key for a different request")],
                ) from None
            return _replay(row)
        response = handler()  # a SimulatorError rolls the key back with everything else
        if response.status_code >= 400:
            transaction.set_rollback(True)
            return response
        row.response_status = response.status_code
        row.response_body = response.content.decode()
        row.save(update_fields=["response_status", "response_body"])
        return response
