"""Fixtures for the gateway simulators: keys in settings, HTTP helpers, captured webhooks."""

import json
from types import SimpleNamespace

import pytest

from payments.gateways.simulator import webhooks, wire

CULQI_SK = "sk_test_simulatorSecret01"
CULQI_PK = "pk_test_simulatorPublic01"
MP_TOKEN = "TEST-4242424242-010101-0123456789abcdef0123456789abcdef-1234567890"
MP_PUBLIC = "TEST-9b2c1e4f-0000-4000-8000-000000000001"
MP_SECRET = "simulator-webhook-secret"


@pytest.fixture(autouse=True)
def sim_settings(settings):
    settings.GATEWAY_MODE = "sandbox"
    settings.CULQI_SECRET_KEY = CULQI_SK
    settings.CULQI_PUBLIC_KEY = CULQI_PK
    settings.CULQI_WEBHOOK_USERNAME = ""
    settings.CULQI_WEBHOOK_PASSWORD = ""
    settings.MERCADOPAGO_ACCESS_TOKEN = MP_TOKEN
    settings.MERCADOPAGO_PUBLIC_KEY = MP_PUBLIC
    settings.MERCADOPAGO_WEBHOOK_SECRET = MP_SECRET
    settings.PUBLIC_BASE_URL = "http://smartpay.test"
    settings.SIMULATOR_DELIVER_WEBHOOKS = False  # the `sent` fixture turns delivery on
    return settings


@pytest.fixture
def sent(monkeypatch, settings):
    """Webhook deliveries, captured instead of sent, delivered synchronously once a transaction commits.

    Wrap the request in `django_capture_on_commit_callbacks(execute=True)` to run the on-commit step.
    """
    settings.SIMULATOR_DELIVER_WEBHOOKS = True
    calls = []

    def fake_post(url, *, data, headers, timeout):
        calls.append(SimpleNamespace(url=url, body=data, headers=headers, timeout=timeout))
        return SimpleNamespace(status_code=200)

    monkeypatch.setattr(webhooks, "http_post", fake_post)
    monkeypatch.setattr(webhooks, "start", webhooks.deliver)
    return calls


class Culqi:
    """Calls /sandbox/culqi/… with a Bearer key through Django's test client."""

    def __init__(self, client):
        self.client = client

    def call(self, method, path, body=None, key=CULQI_SK, **extra):
        if key:
            extra["HTTP_AUTHORIZATION"] = f"Bearer {key}"
        data = json.dumps(body) if body is not None else None
        kwargs = {"data": data, "content_type": "application/json"} if data is not None else {}
        return getattr(self.client, method)(f"/sandbox/culqi{path}", **kwargs, **extra)

    def token(self, number="4111111111111111", cvv="123", email="comprador@example.pe", **fields):
        body = {
            "card_number": number,
            "cvv": cvv,
            "expiration_month": "09",
            "expiration_year": "2031",
            "email": email,
            **fields,
        }
        response = self.call("post", "/v2/tokens", body, key=CULQI_PK)
        assert response.status_code == 201, response.content
        return response.json()["id"]

    def charge(self, source_id=None, *, number="4111111111111111", amount=1000, email="comprador@example.pe", **fields):
        body = {
            "amount": amount,
            "currency_code": "PEN",
            "email": email,
            "source_id": source_id or self.token(number),
            **fields,
        }
        return self.call("post", "/v2/charges", body)


class MercadoPago:
    """Calls /sandbox/mercadopago/… with the access token; bodies written with exact decimals."""

    def __init__(self, client):
        self.client = client
        self.keys = 0

    def call(self, method, path, body=None, key=MP_TOKEN, idempotency_key=None, **extra):
        if key:
            extra["HTTP_AUTHORIZATION"] = f"Bearer {key}"
        if idempotency_key:
            extra["HTTP_X_IDEMPOTENCY_KEY"] = idempotency_key
        kwargs = {"data": wire.dumps(body), "content_type": "application/json"} if body is not None else {}
        return getattr(self.client, method)(f"/sandbox/mercadopago{path}", **kwargs, **extra)

    def next_key(self) -> str:
        self.keys += 1
        return f"test-key-{self.keys}"

    def token(self, name="APRO", number="4009175332806176", code="123"):
        body = {
            "card_number": number,
            "security_code": code,
            "expiration_month": 11,
            "expiration_year": 2031,
            "cardholder": {"name": name, "identification": {"type": "DNI", "number": "12345678"}},
        }
        response = self.call("post", "/v1/card_tokens", body)
        assert response.status_code == 201, response.content
        return response.json()["id"]

    def pay(self, name="APRO", *, amount="58.80", key=None, token=None, method="visa", **fields):
        from decimal import Decimal

        body = {
            "transaction_amount": Decimal(amount),
            "token": token or self.token(name),
            "installments": 1,
            "payment_method_id": method,
            "payer": {"email": "comprador@example.pe"},
            **fields,
        }
        return self.call("post", "/v1/payments", body, idempotency_key=key or self.next_key())


@pytest.fixture
def culqi(client):
    return Culqi(client)


@pytest.fixture
def mp(client):
    return MercadoPago(client)
