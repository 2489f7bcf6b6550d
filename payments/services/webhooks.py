"""Webhooks from the gateways: verify, store raw (deduplicated), then process in a worker.

Receiving is cheap and fast: check authenticity, insert the raw delivery under a unique
(gateway, event id), answer 2xx. Processing never trusts the body: it re-fetches the object from
the gateway's API, matches it to our payment (gateway id, then our reference) and applies it
through the one status machine with the payment row locked. Out-of-order deliveries therefore
cannot move a payment backwards, and duplicates have no second effect.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import re
import time
from dataclasses import dataclass

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from payments.gateways.base import ChargeResult, GatewayError, GatewayNotFound, GatewayUnavailable
from payments.gateways.registry import get_adapter
from payments.models import Payment, WebhookEvent
from payments.services import recording
from payments.services.operations import payment_sync
from smartpay import jsonsafe
from smartpay.cache import count as shared_counter

logger = logging.getLogger("smartpay.webhooks")

_KEPT_HEADERS = ("x-request-id", "x-signature", "x-retry", "user-agent", "content-type")


class WebhookRejected(Exception):
    """Authenticity could not be established: answer 401 and store nothing."""


class WebhookMalformed(Exception):
    """Not a delivery we understand: answer 400 and store nothing."""


class WebhookIgnored(Exception):
    """A kind of delivery this installation does not take (IPN when off): answer 404, store nothing."""


def is_mercadopago_ipn(query: dict) -> bool:
    return "topic" in query and "id" in query and "data.id" not in query


def ipn_rate_exceeded(source: str) -> bool:
    """Count one IPN from `source` in this minute; True when over MERCADOPAGO_IPN_RATE_PER_MINUTE."""
    key = f"ipn-rate:{source}:{int(time.time() // 60)}"
    try:
        count = shared_counter(key, 120)  # one round trip on Redis (smartpay/cache.py)
    except Exception:  # as for API rate limits: a cache outage lets the delivery through (logged)
        logger.warning("IPN rate not counted: the cache is unreachable", exc_info=True)
        return False
    return count > settings.MERCADOPAGO_IPN_RATE_PER_MINUTE


class TransientWebhookError(Exception):
    """The gateway could not be asked right now; the worker retries with backoff."""


@dataclass(frozen=True)
class Delivery:
    gateway: str
    event_id: str
    event_type: str
    resource_id: str


# --- Authenticity ---------------------------------------------------------------------------------


def parse_mercadopago_signature(header: str) -> tuple[str, str]:
    """`ts=…,v1=…` → (ts, v1). Unknown keys are ignored."""
    parts = {}
    for piece in header.split(","):
        key, _, value = piece.strip().partition("=")
        if key:
            parts[key.strip()] = value.strip()
    if not parts.get("ts") or not parts.get("v1"):
        raise WebhookRejected("x-signature lacks ts or v1")
    return parts["ts"], parts["v1"]


def mercadopago_manifest(*, data_id: str | None, request_id: str | None, ts: str) -> str:
    """`id:<data.id>;request-id:<x-request-id>;ts:<ts>;`, each part omitted when its value is absent."""
    pairs = (("id", data_id), ("request-id", request_id), ("ts", ts))
    return "".join(f"{key}:{value};" for key, value in pairs if value)


def verify_mercadopago_signature(*, header: str | None, data_id: str | None, request_id: str | None, now=None) -> None:
    secret = settings.MERCADOPAGO_WEBHOOK_SECRET
    if not secret:
        raise WebhookRejected("MERCADOPAGO_WEBHOOK_SECRET is not configured")
    if not header:
        raise WebhookRejected("missing x-signature")
    ts, v1 = parse_mercadopago_signature(header)
    tolerance = settings.MERCADOPAGO_WEBHOOK_TOLERANCE_SECONDS
    if tolerance:
        try:
            stamp = int(ts)
        except ValueError:
            raise WebhookRejected("ts is not a number") from None
        seconds = stamp / 1000 if stamp > 10**12 else stamp  # Mercado Pago sends seconds or milliseconds
        if abs((now or time.time()) - seconds) > tolerance:
            raise WebhookRejected("stale or future ts")
    # Payment ids are numeric; alphanumeric ids are checked as received, then lower-cased.
    candidates = {data_id, data_id.lower() if data_id else data_id}
    for candidate in candidates:
        manifest = mercadopago_manifest(data_id=candidate, request_id=request_id, ts=ts)
        expected = hmac.new(secret.encode(), manifest.encode(), hashlib.sha256).hexdigest()
        if hmac.compare_digest(expected, v1.lower()):
            return
    raise WebhookRejected("x-signature does not match")


def verify_culqi_basic_auth(authorization: str | None) -> None:
    username, password = settings.CULQI_WEBHOOK_USERNAME, settings.CULQI_WEBHOOK_PASSWORD
    if not username and not password:
        return  # Basic auth is optional at Culqi; authenticity then rests on the re-fetch
    if not authorization or not authorization.lower().startswith("basic "):
        raise WebhookRejected("missing Basic credentials")
    try:
        decoded = base64.b64decode(authorization.split(" ", 1)[1].strip(), validate=True).decode()
    except (ValueError, UnicodeDecodeError):
        raise WebhookRejected("malformed Basic credentials") from None
    given_user, _, given_password = decoded.partition(":")
    user_ok = hmac.compare_digest(given_user.encode(), username.encode())
    password_ok = hmac.compare_digest(given_password.encode(), password.encode())
    if not (user_ok and password_ok):
        raise WebhookRejected("wrong Basic credentials")


# --- Parsing ----------------------------------------------------------------------------------------


def parse_mercadopago(*, query: dict, body: bytes, headers: dict) -> Delivery:
    """Webhooks (`type` + `data.id`, signed) or the older IPN (`topic` + `id`, trusted via re-fetch)."""
    if is_mercadopago_ipn(query):
        topic, resource_id = query["topic"], query["id"]
        if not settings.MERCADOPAGO_IPN_ENABLED:
            raise WebhookIgnored("IPN notifications are off (MERCADOPAGO_IPN_ENABLED)")
        if topic not in _PAYMENT_TOPICS or not re.fullmatch(r"[0-9]{1,20}", resource_id or ""):
            raise WebhookMalformed("IPN for an unknown topic or a malformed id")
        # Unsigned, so anyone can send one: repeats within the window are one delivery (one re-fetch).
        window = int(time.time() // max(1, settings.MERCADOPAGO_IPN_DEDUPE_SECONDS))
        return Delivery("mercadopago", f"ipn:{topic}:{resource_id}:{window}", topic, resource_id)
    try:
        payload = jsonsafe.loads(body or b"{}")
    except ValueError:
        raise WebhookMalformed("body is not JSON") from None
    if not isinstance(payload, dict):
        raise WebhookMalformed("body is not a JSON object")
    data_id = query.get("data.id") or str((payload.get("data") or {}).get("id") or "")
    event_type = query.get("type") or payload.get("type") or payload.get("topic") or ""
    if not data_id:
        raise WebhookMalformed("no data.id")
    notification_id = str(payload.get("id") or "")
    action = str(payload.get("action") or "")
    event_id = notification_id or f"{event_type}:{data_id}:{action}:{headers.get('x-request-id', '')}"
    return Delivery("mercadopago", event_id, event_type, data_id)


def _culqi_data(payload: dict) -> dict:
    data = payload.get("data")
    if isinstance(data, str):  # Culqi sends `data` as a JSON-encoded string
        try:
            data = jsonsafe.loads(data)
        except ValueError:
            raise WebhookMalformed("data is not JSON") from None
    if not isinstance(data, dict):
        raise WebhookMalformed("data is not an object")
    return data


def parse_culqi(*, body: bytes) -> Delivery:
    try:
        payload = jsonsafe.loads(body or b"{}")
    except ValueError:
        raise WebhookMalformed("body is not JSON") from None
    if not isinstance(payload, dict) or not payload.get("id") or not payload.get("type"):
        raise WebhookMalformed("not a Culqi event")
    data = _culqi_data(payload)
    event_type = str(payload["type"])
    if event_type.startswith("refund."):
        resource_id = data.get("chargeId") or data.get("charge_id") or ""
    else:
        resource_id = data.get("id") or ""
    return Delivery("culqi", str(payload["id"]), event_type, str(resource_id))


# --- Receive ----------------------------------------------------------------------------------------


def webhook_receive(*, delivery: Delivery, raw_body: bytes, query: dict, headers: dict) -> tuple[WebhookEvent, bool]:
    """Store a verified delivery once. Returns (event, created); a duplicate is (existing, False)."""
    kept = {key: value for key, value in headers.items() if key.lower() in _KEPT_HEADERS}
    try:
        with transaction.atomic():
            event = WebhookEvent.objects.create(
                gateway=delivery.gateway,
                event_id=delivery.event_id[:200],
                event_type=delivery.event_type[:80],
                resource_id=delivery.resource_id[:120],
                raw_body=raw_body.decode("utf-8", errors="replace"),
                query=query,
                headers=kept,
            )
            _enqueue(event.pk)
            return event, True
    except IntegrityError:
        existing = WebhookEvent.objects.get(gateway=delivery.gateway, event_id=delivery.event_id[:200])
        return existing, False


def _enqueue(event_pk: str) -> None:
    """Process it after commit. A broker outage leaves it `received`; `webhook_sweep` queues it."""
    from payments.tasks import process_webhook_event
    from smartpay.queueing import enqueue_after_commit

    enqueue_after_commit(process_webhook_event, event_pk)


# --- Process ----------------------------------------------------------------------------------------

_PAYMENT_TOPICS = {"payment", "payment.created", "payment.updated"}


def webhook_process(*, event_id: str) -> WebhookEvent:
    """Apply one stored delivery. Idempotent: a processed event is left alone.

    Raises TransientWebhookError when the gateway cannot be asked now (the task retries).
    """
    event = WebhookEvent.objects.get(pk=event_id)
    if event.status in (WebhookEvent.PROCESSED, WebhookEvent.IGNORED):
        return event
    WebhookEvent.objects.filter(pk=event.pk).update(attempts=F("attempts") + 1)  # two workers may race
    try:
        process = _process_mercadopago if event.gateway == "mercadopago" else _process_culqi
        outcome = process(event)
    except GatewayUnavailable as error:
        _note_error(event, error.message)
        raise TransientWebhookError(error.message) from None
    except GatewayError as error:
        if isinstance(error, GatewayNotFound):
            return _finish(event, WebhookEvent.UNMATCHED, error="the gateway does not know this object")
        _note_error(event, error.message)
        raise TransientWebhookError(error.message) from None
    return outcome


def _note_error(event: WebhookEvent, message: str) -> None:
    WebhookEvent.objects.filter(pk=event.pk).update(last_error=message[:300])


def _finish(event: WebhookEvent, status: str, *, payment: Payment | None = None, error: str = "") -> WebhookEvent:
    event.status = status
    event.payment = payment
    event.last_error = error[:300]
    event.processed_at = timezone.now()
    event.save(update_fields=["status", "payment", "last_error", "processed_at"])
    return event


def webhook_mark_failed(*, event_id: str, error: str) -> None:
    WebhookEvent.objects.filter(pk=event_id).exclude(status=WebhookEvent.PROCESSED).update(
        status=WebhookEvent.FAILED, last_error=error[:300]
    )
    logger.error("webhook processing failed for good", extra={"webhook_event": event_id})


def _process_mercadopago(event: WebhookEvent) -> WebhookEvent:
    if event.event_type not in _PAYMENT_TOPICS:
        return _finish(event, WebhookEvent.IGNORED)
    result = get_adapter("mercadopago").retrieve(event.resource_id)
    return _apply(event, result)


def _process_culqi(event: WebhookEvent) -> WebhookEvent:
    kind = event.event_type
    if kind.startswith("order."):
        payment = Payment.objects.filter(gateway="culqi", gateway_checkout_id=event.resource_id).first()
        if payment is None:
            return _finish(event, WebhookEvent.UNMATCHED, error="no payment for this order")
        payment = payment_sync(payment=payment, source=recording.WEBHOOK)
        return _finish(event, WebhookEvent.PROCESSED, payment=payment)
    if not (kind.startswith("charge.") or kind.startswith("refund.")) or not event.resource_id:
        return _finish(event, WebhookEvent.IGNORED)
    result = get_adapter("culqi").retrieve(event.resource_id)
    return _apply(event, result)


def match_payment(gateway: str, result: ChargeResult) -> Payment | None:
    """Our payment for a gateway object: by the gateway's id, else by the reference we sent."""
    if result.gateway_payment_id:
        found = Payment.objects.filter(gateway=gateway, gateway_payment_id=result.gateway_payment_id).first()
        if found:
            return found
    if result.reference and result.reference.startswith("pay_"):
        return Payment.objects.filter(pk=result.reference).first()
    return None


def _apply(event: WebhookEvent, result: ChargeResult) -> WebhookEvent:
    """Record the re-fetched object through the one writer; what it refuses stays visible here."""
    payment = match_payment(event.gateway, result)
    if payment is None:
        return _finish(event, WebhookEvent.UNMATCHED, error="no payment matches this object")
    with transaction.atomic():
        locked = Payment.objects.select_for_update().get(pk=payment.pk)
        outcome = recording.record_charge_view(locked, result, gateway=event.gateway, source=recording.WEBHOOK)
        if outcome == recording.Recorded.MISMATCH:
            return _finish(event, WebhookEvent.UNMATCHED, payment=locked, error="amount or currency differs")
        if outcome == recording.Recorded.STRAY:
            return _finish(
                event,
                WebhookEvent.UNMATCHED,
                payment=locked,
                error=f"charged at the gateway but not this payment's charge ({locked.status} here): "
                "see Stray charges; a duplicate is refunded automatically",
            )
        return _finish(event, WebhookEvent.PROCESSED, payment=locked)


# --- Sweep ------------------------------------------------------------------------------------------

WEBHOOK_SWEEP_AFTER_SECONDS = 300  # how long past its due time a `received` event waits to be queued again
WEBHOOK_SWEEP_BATCH = 500


def webhook_sweep(*, now=None) -> dict:
    """Queue again the events left `received` (scheduled every 2 minutes): stored while the broker
    was down, their message lost, or their retries cut short (a worker killed mid-task, a retry that
    could not be published). `failed` events are left to staff (admin: Retry now).

    An event is due once it has waited WEBHOOK_SWEEP_AFTER_SECONDS longer than its own retries
    could legitimately take: never tried, 5 minutes after it was received; tried n times, 5 minutes
    plus the longest its first n retry countdowns add up to (so a retry waiting on its backoff is
    not doubled). It is queued with its retry count, so a transient failure carries on with the
    task's backoff and ends `failed` after the last retry, rather than starting a new series.
    Processing is idempotent (the object is re-fetched, a processed event is left alone), so an
    event that is also still queued somewhere has one effect. Stops at the first publish failure
    (the broker is still down): everything due is still due at the next sweep.
    """
    from datetime import timedelta

    from django.db.models import Q

    from payments.tasks import process_webhook_event, retry_horizon_seconds
    from smartpay.queueing import enqueue

    now = now or timezone.now()
    last = process_webhook_event.max_retries

    def waited(attempts: int):
        return now - timedelta(seconds=WEBHOOK_SWEEP_AFTER_SECONDS + retry_horizon_seconds(min(attempts, last)))

    due = Q(attempts__gte=last, received_at__lt=waited(last))
    for attempts in range(last):
        due |= Q(attempts=attempts, received_at__lt=waited(attempts))
    events = list(
        WebhookEvent.objects.filter(due, status=WebhookEvent.RECEIVED)
        .order_by("received_at")
        .values_list("pk", "attempts")[:WEBHOOK_SWEEP_BATCH]
    )
    queued = 0
    for event_pk, attempts in events:
        if not enqueue(process_webhook_event, event_pk, retries=min(attempts, last)):
            break
        queued += 1
    if events:
        logger.warning("webhook events left received were queued again", extra={"due": len(events), "queued": queued})
    return {"due": len(events), "queued": queued}
