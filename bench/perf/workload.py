"""The requests of each measured path, built before the timed part (same bodies for both sides)."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid

from bench.perf.load import Request

WEBHOOK_SECRET = "bench-webhook-secret"
CULQI_PUBLIC_KEY = "pk_test_sandbox"  # the sandbox defaults of smartpay/settings.py
CULQI_SECRET_KEY = "sk_test_sandbox"
APPROVED_CARD = "4111111111111111"
AMOUNT = 2500  # S/ 25.00 in céntimos
JSON = "application/json"


def token_request() -> Request:
    body = {
        "card_number": APPROVED_CARD,
        "cvv": "123",
        "expiration_month": "12",
        "expiration_year": "2030",
        "email": "ana@example.com",
    }
    headers = {"Authorization": f"Bearer {CULQI_PUBLIC_KEY}", "Content-Type": JSON}
    return Request("POST", "/sandbox/culqi/v2/tokens", json.dumps(body).encode(), headers)


def payment_request(side: str, api_key: str, token: str, serial: int) -> Request:
    """POST /api/v1/payments with a fresh token and a fresh Idempotency-Key (same body on both sides)."""
    body = {
        "amount": AMOUNT,
        "currency": "PEN",
        "email": "ana@example.com",
        "capture": True,
        "source": {"gateway": "culqi", "token": token},
    }
    headers = {
        "Authorization": f"Bearer {api_key}",
        "Idempotency-Key": f"bench-{side}-{serial}-{uuid.uuid4().hex}",
        "Content-Type": JSON,
    }
    return Request("POST", "/api/v1/payments", json.dumps(body).encode(), headers)


def payment_succeeded(body: bytes) -> bool:
    try:
        return json.loads(body).get("status") == "succeeded"
    except ValueError:
        return False


def charge_request(token: str, serial: int) -> Request:
    """The charge SmartPay's Culqi adapter sends, straight to the simulator: the gateway's own time."""
    reference = f"gw_{serial}"
    body = {
        "amount": AMOUNT,
        "currency_code": "PEN",
        "email": "ana@example.com",
        "source_id": token,
        "capture": True,
        "description": f"Pago {reference}",
        "metadata": {"smartpay_payment_id": reference},
    }
    headers = {"Authorization": f"Bearer {CULQI_SECRET_KEY}", "Content-Type": JSON, "Accept": JSON}
    return Request("POST", "/sandbox/culqi/v2/charges", json.dumps(body).encode(), headers)


def sign_mercadopago(data_id: str, request_id: str, ts: str, secret: str = WEBHOOK_SECRET) -> str:
    """`x-signature` as Mercado Pago computes it: HMAC-SHA256 of `id:<data.id>;request-id:<x-request-id>;ts:<ts>;`."""
    manifest = f"id:{data_id};request-id:{request_id};ts:{ts};"
    return f"ts={ts},v1={hmac.new(secret.encode(), manifest.encode(), hashlib.sha256).hexdigest()}"


def webhook_request(serial: int, ts: str | None = None) -> Request:
    """A signed `payment.updated` notification for a payment id nobody knows (acknowledged, processed later)."""
    data_id, request_id = str(900_000_000 + serial), f"bench-{uuid.uuid4()}"
    ts = ts or str(int(time.time()))
    body = {
        "id": 700_000_000 + serial,
        "live_mode": False,
        "type": "payment",
        "action": "payment.updated",
        "api_version": "v1",
        "date_created": "2026-01-15T10:00:00Z",
        "user_id": 1620846522,
        "data": {"id": data_id},
    }
    headers = {
        "Content-Type": JSON,
        "X-Request-Id": request_id,
        "X-Signature": sign_mercadopago(data_id, request_id, ts),
    }
    return Request("POST", f"/webhooks/mercadopago?data.id={data_id}&type=payment", json.dumps(body).encode(), headers)


def credit_request(api_key: str, customer_id: str, serial: int) -> Request:
    headers = {
        "Authorization": f"Bearer {api_key}",
        "Idempotency-Key": f"bench-credit-{serial}-{uuid.uuid4().hex}",
        "Content-Type": JSON,
    }
    body = json.dumps({"amount": 1}).encode()
    return Request("POST", f"/api/v1/customers/{customer_id}/credit-consumptions", body, headers)
