"""Webhooks out of the simulators, the way the real gateways send them.

Deliveries are built inside the transaction that changed the object (so they describe that state),
and sent after it commits, from a background thread with a short timeout. Failures are logged and
forgotten: the receiving endpoint may not exist yet (404) or the service may be down, exactly the
situations the real gateways leave to their retry schedules.

Tests monkeypatch `http_post` (to capture) and `start` (to deliver synchronously).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import requests
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from payments.gateways.simulator import wire

logger = logging.getLogger("smartpay.simulator")

TIMEOUT = (3.05, 5.0)


@dataclass(frozen=True)
class Delivery:
    gateway: str
    url: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


def http_post(url: str, *, data: bytes, headers: dict[str, str], timeout) -> requests.Response:
    return requests.post(url, data=data, headers=headers, timeout=timeout)


def deliver(delivery: Delivery) -> int | None:
    """Send one delivery now. Returns the HTTP status, or None when nothing answered."""
    try:
        response = http_post(delivery.url, data=delivery.body, headers=delivery.headers, timeout=TIMEOUT)
    except requests.RequestException as exc:
        logger.warning(
            "simulator webhook not delivered",
            extra={"gateway": delivery.gateway, "url": delivery.url, "problem": type(exc).__name__},
        )
        return None
    level = logging.INFO if 200 <= response.status_code < 300 else logging.WARNING
    logger.log(
        level,
        "simulator webhook answered",
        extra={"gateway": delivery.gateway, "url": delivery.url, "http_status": response.status_code},
    )
    return response.status_code


def start(delivery: Delivery) -> None:
    threading.Thread(target=deliver, args=(delivery,), name="simulator-webhook", daemon=True).start()


def enqueue(delivery: Delivery) -> None:
    """Send after the current transaction commits (immediately when there is none)."""
    if not settings.SIMULATOR_DELIVER_WEBHOOKS:
        return
    transaction.on_commit(lambda: start(delivery))


# --- Culqi --------------------------------------------------------------------------------------


def culqi_event(event_type: str, data: dict) -> Delivery:
    """`{"object":"event","id":"evt_test_…","type":…,"creation_date":<ms>,"data":"<JSON text>"}` (culqi.md §12).

    `data` is a JSON-encoded string, as Culqi sends it. HTTP Basic auth when configured.
    """
    envelope = {
        "object": "event",
        "id": wire.culqi_id("evt"),
        "type": event_type,
        "creation_date": wire.epoch_ms(timezone.now()),
        "data": wire.dumps(data),
    }
    headers = {"Content-Type": "application/json"}
    username, password = settings.CULQI_WEBHOOK_USERNAME, settings.CULQI_WEBHOOK_PASSWORD
    if username or password:
        token = base64.b64encode(f"{username}:{password}".encode()).decode()
        headers["Authorization"] = f"Basic {token}"
    delivery = Delivery("culqi", f"{settings.PUBLIC_BASE_URL}/webhooks/culqi", wire.dumps(envelope).encode(), headers)
    enqueue(delivery)
    return delivery


# --- Mercado Pago -------------------------------------------------------------------------------


def mercadopago_signature(*, data_id: str, request_id: str, ts: str, secret: str) -> str:
    """`ts=<ts>,v1=<hex HMAC-SHA256 of "id:<data.id>;request-id:<x-request-id>;ts:<ts>;">` (mercadopago.md §9)."""
    manifest = f"id:{data_id};request-id:{request_id};ts:{ts};"
    digest = hmac.new(secret.encode(), manifest.encode(), hashlib.sha256).hexdigest()
    return f"ts={ts},v1={digest}"


def _with_query(url: str, params: dict[str, str]) -> str:
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in params]
    query += list(params.items())
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), parts.fragment))


def mercadopago_payment_event(
    *, payment_id: str, action: str, user_id: int, notification_url: str | None = None
) -> Delivery:
    """A `payment` webhook: `?data.id=<id>&type=payment`, signed with MERCADOPAGO_WEBHOOK_SECRET.

    Sent to the payment's `notification_url` when it has one (it takes precedence, §9), else to
    `{PUBLIC_BASE_URL}/webhooks/mercadopago`. `ts` is in milliseconds, as MP's docs state.
    """
    now = timezone.now()
    body = {
        "id": wire.numeric_id(11),
        "live_mode": False,
        "type": "payment",
        "date_created": wire.mp_datetime(now),
        "user_id": user_id,
        "api_version": "v1",
        "action": action,
        "data": {"id": str(payment_id)},
    }
    request_id = str(uuid.uuid4())
    ts = str(time.time_ns() // 1_000_000)
    headers = {
        "Content-Type": "application/json",
        "x-request-id": request_id,
        "x-signature": mercadopago_signature(
            data_id=str(payment_id), request_id=request_id, ts=ts, secret=settings.MERCADOPAGO_WEBHOOK_SECRET
        ),
        "x-retry": "0",
        "x-socket-timeout": "22000",
    }
    base = notification_url or f"{settings.PUBLIC_BASE_URL}/webhooks/mercadopago"
    url = _with_query(base, {"data.id": str(payment_id), "type": "payment"})
    delivery = Delivery("mercadopago", url, wire.dumps(body).encode(), headers)
    enqueue(delivery)
    return delivery
