"""What a client app receives: the body of an event, its signature, and how to check it.

Body: `{"id", "type", "created_at", "data"}` as compact UTF-8 JSON (`created_at` in UTC, `…Z`).
Headers: `SmartPay-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>`
with one `v1=` per secret that is valid when the event is sent (the app's current secret, plus the
previous one while its rotation grace period lasts), `SmartPay-Event-Id`, `Content-Type`,
`User-Agent`. The HMAC key is the secret exactly as shown to the app (`whsec_…`, UTF-8).

`verify_signature` is what a client app runs; it only uses the standard library so it can be copied.
Signatures and secrets are never logged.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from datetime import UTC, datetime

from django.utils import timezone

SIGNATURE_HEADER = "SmartPay-Signature"
EVENT_ID_HEADER = "SmartPay-Event-Id"
USER_AGENT = "SmartPay-Webhooks/1.0 (+https://smartpay.pe/docs/events)"
DEFAULT_TOLERANCE_SECONDS = 300


def signing_secrets(client_app, *, now: datetime | None = None) -> list[str]:
    """The app's secrets that sign right now: the current one, then the previous one while it is
    still in its grace period (`previous_webhook_secret_expires_at` in the future)."""
    now = now or timezone.now()
    secrets = [client_app.webhook_secret]
    previous, expires_at = client_app.previous_webhook_secret, client_app.previous_webhook_secret_expires_at
    if previous and expires_at is not None and expires_at > now and previous != client_app.webhook_secret:
        secrets.append(previous)
    return secrets


def utc_timestamp(value: datetime) -> str:
    """ISO 8601 in UTC with a `Z`, as the API renders timestamps."""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def event_body(event) -> bytes:
    """The exact bytes POSTed for `event` (the same on every try: only the signature changes)."""
    payload = {
        "id": event.id,
        "type": event.type,
        "created_at": utc_timestamp(event.created_at),
        "data": event.data,
    }
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


def compute_signature(secret: str, timestamp: int, raw_body: bytes) -> str:
    """Hex HMAC-SHA256 of `"<timestamp>.<raw body>"` keyed with `secret`."""
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + raw_body, hashlib.sha256).hexdigest()


def signature_header(raw_body: bytes, secrets: list[str], *, timestamp: int | None = None) -> str:
    """`t=<timestamp>,v1=<sig>[,v1=<sig>…]`, one `v1` per secret."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    return ",".join([f"t={timestamp}", *(f"v1={compute_signature(s, timestamp, raw_body)}" for s in secrets)])


def delivery_headers(event, raw_body: bytes, secrets: list[str], *, timestamp: int | None = None) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        EVENT_ID_HEADER: event.id,
        SIGNATURE_HEADER: signature_header(raw_body, secrets, timestamp=timestamp),
    }


def verify_signature(
    raw_body: bytes, header: str, secrets: list[str], tolerance: int = DEFAULT_TOLERANCE_SECONDS, now=None
) -> bool:
    """True when `header` (SmartPay-Signature) signs `raw_body` with one of `secrets`, within
    `tolerance` seconds of `now` (unix seconds; default: the current time). What a client app runs."""
    parts = [item.split("=", 1) for item in (header or "").split(",") if "=" in item]
    timestamps = [value.strip() for key, value in parts if key.strip() == "t"]
    signatures = [value.strip() for key, value in parts if key.strip() == "v1"]
    if len(timestamps) != 1 or not (timestamps[0].isascii() and timestamps[0].isdigit()) or not signatures:
        return False
    if abs((time.time() if now is None else now) - int(timestamps[0])) > tolerance:
        return False
    signed = timestamps[0].encode() + b"." + raw_body
    expected = [hmac.new(s.encode(), signed, hashlib.sha256).hexdigest() for s in secrets]
    return any(hmac.compare_digest(e, sig) for e in expected for sig in signatures)
