"""Webhooks out of the simulators: Culqi's event envelope and Mercado Pago's signed notification."""

import base64
import hashlib
import hmac
import json
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from payments.gateways.simulator import webhooks
from tests.simulator.conftest import MP_SECRET

pytestmark = pytest.mark.django_db


def test_culqi_charge_event_envelope_carries_data_as_a_json_string(culqi, sent, django_capture_on_commit_callbacks):
    token_id = culqi.token()
    with django_capture_on_commit_callbacks(execute=True):
        charge = culqi.charge(token_id, metadata={"smartpay_payment_id": "pay_1"}).json()
    (delivery,) = sent
    assert delivery.url == "http://smartpay.test/webhooks/culqi"
    assert delivery.headers["Content-Type"] == "application/json"
    assert "Authorization" not in delivery.headers
    envelope = json.loads(delivery.body)
    assert set(envelope) == {"object", "id", "type", "creation_date", "data"}
    assert envelope["object"] == "event"
    assert envelope["id"].startswith("evt_test_")
    assert envelope["type"] == "charge.creation.succeeded"
    assert isinstance(envelope["creation_date"], int)
    assert isinstance(envelope["data"], str)
    data = json.loads(envelope["data"])
    assert data["object"] == "charge"
    assert data["id"] == charge["id"]
    assert (data["originalAmount"], data["actualAmount"], data["refundedAmount"]) == (1000, 1000, 0)
    assert data["currency"] == "PEN"
    assert data["outcome"]["type"] == "venta_exitosa"
    assert data["source"]["id"] == token_id
    assert data["source"]["lastFourDigits"] == "1111"
    assert data["metadata"] == {"smartpay_payment_id": "pay_1"}


def test_culqi_decline_refund_and_order_events(culqi, sent, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        declined = culqi.charge(number="4000040000000008").json()
    assert json.loads(sent[-1].body)["type"] == "charge.creation.failed"
    assert json.loads(json.loads(sent[-1].body)["data"])["outcome"]["declineCode"] == "insufficient_funds"
    assert json.loads(json.loads(sent[-1].body)["data"])["id"] == declined["charge_id"]

    charge_id = culqi.charge().json()["id"]
    with django_capture_on_commit_callbacks(execute=True):
        culqi.call("post", "/v2/refunds", {"amount": 100, "charge_id": charge_id, "reason": "duplicado"})
    refund_event = json.loads(sent[-1].body)
    assert refund_event["type"] == "refund.creation.succeeded"
    assert json.loads(refund_event["data"])["chargeId"] == charge_id


def test_culqi_basic_auth_when_configured(culqi, sent, settings, django_capture_on_commit_callbacks):
    settings.CULQI_WEBHOOK_USERNAME = "culqi"
    settings.CULQI_WEBHOOK_PASSWORD = "s3cret:pass"
    with django_capture_on_commit_callbacks(execute=True):
        culqi.charge()
    scheme, _, token = sent[-1].headers["Authorization"].partition(" ")
    assert scheme == "Basic"
    assert base64.b64decode(token).decode() == "culqi:s3cret:pass"


def test_hosted_checkout_sends_order_paid_event(culqi, client, sent, django_capture_on_commit_callbacks):
    import time

    order = culqi.call(
        "post",
        "/v2/orders",
        {
            "amount": 1500,
            "currency_code": "PEN",
            "description": "Pedido de prueba",
            "order_number": "pay_evt",
            "expiration_date": int(time.time()) + 600,
            "client_details": {"first_name": "A", "last_name": "B", "email": "a@example.pe", "phone_number": "999999"},
            "metadata": {"smartpay_payment_id": "pay_evt"},
        },
    ).json()
    with django_capture_on_commit_callbacks(execute=True):
        client.post(f"/sandbox/culqi/checkout/{order['id']}", {"card": "approve", "return_url": "https://s.example/r"})
    types = [json.loads(d.body)["type"] for d in sent]
    assert types[-2:] == ["charge.creation.succeeded", "order.status.changed"]
    order_data = json.loads(json.loads(sent[-1].body)["data"])
    assert (order_data["id"], order_data["state"]) == (order["id"], "paid")
    assert order_data["metadata"] == {"smartpay_payment_id": "pay_evt"}


def _expected_signature(data_id: str, request_id: str, ts: str) -> str:
    manifest = f"id:{data_id};request-id:{request_id};ts:{ts};"
    return hmac.new(MP_SECRET.encode(), manifest.encode(), hashlib.sha256).hexdigest()


def test_mercadopago_payment_notification_is_signed(mp, sent, django_capture_on_commit_callbacks):
    token = mp.token()
    with django_capture_on_commit_callbacks(execute=True):
        payment = mp.pay(token=token).json()
    (delivery,) = sent
    url = urlsplit(delivery.url)
    assert f"{url.scheme}://{url.netloc}{url.path}" == "http://smartpay.test/webhooks/mercadopago"
    assert parse_qs(url.query) == {"data.id": [str(payment["id"])], "type": ["payment"]}
    body = json.loads(delivery.body)
    assert body["type"] == "payment"
    assert body["action"] == "payment.created"
    assert body["api_version"] == "v1"
    assert body["live_mode"] is False
    assert isinstance(body["id"], int) and isinstance(body["user_id"], int)
    assert body["data"] == {"id": str(payment["id"])}
    request_id = delivery.headers["x-request-id"]
    parts = dict(part.split("=", 1) for part in delivery.headers["x-signature"].split(","))
    assert set(parts) == {"ts", "v1"}
    assert len(parts["ts"]) == 13  # milliseconds, as Mercado Pago's docs say
    assert hmac.compare_digest(parts["v1"], _expected_signature(str(payment["id"]), request_id, parts["ts"]))


def test_mercadopago_update_and_notification_url(mp, sent, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        payment = mp.pay(capture=False, notification_url="https://hooks.example/mp?source_news=webhooks").json()
        mp.call("put", f"/v1/payments/{payment['id']}", {"capture": True})
    assert [json.loads(d.body)["action"] for d in sent] == ["payment.created", "payment.updated"]
    url = urlsplit(sent[-1].url)
    assert url.netloc == "hooks.example"
    assert parse_qs(url.query) == {"source_news": ["webhooks"], "data.id": [str(payment["id"])], "type": ["payment"]}


def test_nothing_is_sent_before_commit_or_when_disabled(culqi, sent, settings, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        culqi.charge()
    assert len(callbacks) == 1
    assert sent == []
    settings.SIMULATOR_DELIVER_WEBHOOKS = False
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        culqi.charge()
    assert callbacks == [] and sent == []


def test_delivery_failures_are_logged_and_ignored(monkeypatch, caplog):
    def refuse(url, *, data, headers, timeout):
        raise requests.ConnectionError("connection refused")

    monkeypatch.setattr(webhooks, "http_post", refuse)
    delivery = webhooks.Delivery("culqi", "http://127.0.0.1:9/webhooks/culqi", b"{}", {})
    assert webhooks.deliver(delivery) is None
    assert any("not delivered" in record.getMessage() for record in caplog.records)
    monkeypatch.setattr(webhooks, "http_post", lambda url, **kw: type("R", (), {"status_code": 404})())
    assert webhooks.deliver(delivery) == 404


def test_background_thread_delivers(monkeypatch, settings):
    settings.SIMULATOR_DELIVER_WEBHOOKS = True
    import threading

    done = threading.Event()
    seen = []

    def fake_post(url, *, data, headers, timeout):
        seen.append(url)
        done.set()
        return type("R", (), {"status_code": 200})()

    monkeypatch.setattr(webhooks, "http_post", fake_post)
    webhooks.start(webhooks.Delivery("mercadopago", "http://smartpay.test/webhooks/mercadopago", b"{}", {}))
    assert done.wait(5)
    assert seen == ["http://smartpay.test/webhooks/mercadopago"]
