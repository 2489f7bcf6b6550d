"""Webhooks in: authenticity, storage once, processing by re-fetch, ordering. Gateways mocked on the wire."""

import base64
import hashlib
import hmac
import json
import time
from pathlib import Path

import pytest
from django.test import Client as DjangoClient
from django.test import TestCase

from payments import hooks
from payments.enums import PaymentStatus
from payments.models import Payment, StrayCharge, WebhookEvent
from tests.payments.conftest import CULQI_BASE, MP_BASE, SECRET

pytestmark = pytest.mark.django_db

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


@pytest.fixture(autouse=True)
def _mocked(gateways):
    return gateways


class Client(DjangoClient):
    """Runs on-commit work (the worker's job, eager in tests) before returning, as a real commit would."""

    def post(self, *args, **kwargs):
        with TestCase.captureOnCommitCallbacks(execute=True):
            return super().post(*args, **kwargs)


def make_payment(client_app, *, gateway="mercadopago", gateway_id="1319840012", status=PaymentStatus.PROCESSING):
    return Payment.objects.create(
        client_app=client_app,
        amount=1999,
        currency="PEN",
        email="ana@example.pe",
        gateway=gateway,
        gateway_payment_id=gateway_id,
        status=status,
    )


def mp_payment(payment_id: str, *, status="approved", detail="accredited", mp_id=1319840012, amount=19.99):
    body = json.loads((FIXTURES / "mercadopago" / "payment_approved.json").read_text())
    body.update(
        id=mp_id,
        status=status,
        status_detail=detail,
        external_reference=payment_id,
        transaction_amount=amount,
        metadata={"smartpay_payment_id": payment_id},
    )
    return body


def sign(data_id: str, request_id: str | None, ts: str, secret: str = SECRET) -> str:
    """Computed here from Mercado Pago's documented manifest, independently of the code under test."""
    manifest = f"id:{data_id};" + (f"request-id:{request_id};" if request_id else "") + f"ts:{ts};"
    return f"ts={ts},v1={hmac.new(secret.encode(), manifest.encode(), hashlib.sha256).hexdigest()}"


def deliver_mp(
    data_id="1319840012",
    *,
    signature=None,
    request_id="2066ca19-c6f1-498a-be75-1923005edd06",
    notification_id=123456,
    action="payment.updated",
    query_id=None,
    ts=None,
):
    ts = ts or str(int(time.time()))
    headers = {"HTTP_X_REQUEST_ID": request_id} if request_id else {}
    if signature is not False:
        headers["HTTP_X_SIGNATURE"] = signature or sign(data_id, request_id, ts)
    body = {
        "id": notification_id,
        "live_mode": False,
        "type": "payment",
        "action": action,
        "api_version": "v1",
        "date_created": "2026-11-26T10:00:00Z",
        "user_id": 1620846522,
        "data": {"id": data_id},
    }
    return Client().post(
        f"/webhooks/mercadopago?data.id={query_id or data_id}&type=payment",
        json.dumps(body),
        content_type="application/json",
        **headers,
    )


def test_signed_delivery_is_stored_then_applied_by_re_fetching(client_app, gateways):
    payment = make_payment(client_app)
    gateways.get(f"{MP_BASE}/v1/payments/1319840012", json=mp_payment(payment.id))
    response = deliver_mp()
    assert response.status_code == 200
    assert response.json()["duplicate"] is False
    event = WebhookEvent.objects.get()
    assert (event.gateway, event.event_id, event.resource_id) == ("mercadopago", "123456", "1319840012")
    assert event.status == WebhookEvent.PROCESSED and event.payment_id == payment.id
    payment.refresh_from_db()
    assert payment.status == "succeeded" and payment.amount_captured == 1999
    assert "x-signature" in event.headers and event.raw_body.startswith("{")


def test_timestamp_in_milliseconds_and_no_request_id_are_accepted(client_app, gateways):
    payment = make_payment(client_app)
    gateways.get(f"{MP_BASE}/v1/payments/1319840012", json=mp_payment(payment.id))
    response = deliver_mp(request_id=None, ts=str(int(time.time() * 1000)))
    assert response.status_code == 200


@pytest.mark.parametrize(
    "tamper",
    [
        {"signature": sign("1319840012", "2066ca19-c6f1-498a-be75-1923005edd06", str(int(time.time())), "wrong")},
        {"query_id": "999"},  # data.id in the query differs from what was signed
        {"ts": str(int(time.time()) - 3600)},  # stale: signed an hour ago
        {"signature": False},  # no header at all
        {"signature": "ts=123"},  # no v1
    ],
)
def test_bad_signatures_are_401_and_nothing_is_stored(client_app, gateways, tamper):
    make_payment(client_app)
    if "ts" in tamper:
        ts = tamper["ts"]
        tamper = {"ts": ts, "signature": sign("1319840012", "2066ca19-c6f1-498a-be75-1923005edd06", ts)}
    response = deliver_mp(**tamper)
    assert response.status_code == 401
    assert response["Content-Type"] == "application/problem+json"
    assert WebhookEvent.objects.count() == 0
    assert len(gateways.calls) == 0


def test_duplicate_delivery_is_acknowledged_without_a_second_effect(client_app, gateways, monkeypatch):
    payment = make_payment(client_app)
    gateways.get(f"{MP_BASE}/v1/payments/1319840012", json=mp_payment(payment.id))
    effects = []
    monkeypatch.setitem(hooks._on_success, "generic", [effects.append])
    assert deliver_mp().json()["duplicate"] is False
    again = deliver_mp()
    assert again.status_code == 200 and again.json()["duplicate"] is True
    assert WebhookEvent.objects.count() == 1
    assert len(gateways.calls) == 1
    assert [p.id for p in effects] == [payment.id]


def test_late_pending_after_approved_is_ignored(client_app, gateways):
    payment = make_payment(client_app, status=PaymentStatus.SUCCEEDED)
    Payment.objects.filter(pk=payment.pk).update(amount_captured=1999)
    gateways.get(
        f"{MP_BASE}/v1/payments/1319840012",
        json=mp_payment(payment.id, status="in_process", detail="pending_contingency"),
    )
    assert deliver_mp(notification_id=777).status_code == 200
    payment.refresh_from_db()
    assert payment.status == "succeeded"
    assert WebhookEvent.objects.get().status == WebhookEvent.PROCESSED


def test_webhook_for_an_unknown_payment_is_kept_unmatched(client_app, gateways):
    gateways.get(f"{MP_BASE}/v1/payments/555", json=mp_payment("pay_not_ours", mp_id=555))
    assert deliver_mp("555").status_code == 200
    event = WebhookEvent.objects.get()
    assert event.status == WebhookEvent.UNMATCHED and event.payment is None


def test_amount_mismatch_is_never_applied(client_app, gateways):
    payment = make_payment(client_app)
    gateways.get(f"{MP_BASE}/v1/payments/1319840012", json=mp_payment(payment.id, amount=1.00))
    deliver_mp()
    payment.refresh_from_db()
    assert payment.status == "processing"
    assert WebhookEvent.objects.get().last_error == "amount or currency differs"


def test_gateway_down_while_processing_marks_the_event_failed_for_retry(client_app, gateways):
    make_payment(client_app)
    gateways.get(f"{MP_BASE}/v1/payments/1319840012", status=503, body="Service Unavailable")
    assert deliver_mp().status_code == 200  # acknowledged anyway: the delivery is safely stored
    event = WebhookEvent.objects.get()
    assert event.status == WebhookEvent.FAILED  # eager mode: no broker to retry later
    assert event.attempts >= 1


def test_legacy_ipn_is_accepted_and_trusted_only_through_the_re_fetch(client_app, gateways, settings):
    settings.MERCADOPAGO_IPN_ENABLED = True
    payment = make_payment(client_app)
    gateways.get(f"{MP_BASE}/v1/payments/1319840012", json=mp_payment(payment.id))
    response = Client().post("/webhooks/mercadopago?topic=payment&id=1319840012", "", content_type="application/json")
    assert response.status_code == 200
    payment.refresh_from_db()
    assert payment.status == "succeeded"


def post_ipn(resource_id="1319840012", topic="payment", request_id="r1", remote_addr="203.0.113.9"):
    return Client().post(
        f"/webhooks/mercadopago?topic={topic}&id={resource_id}",
        "",
        content_type="application/json",
        HTTP_X_REQUEST_ID=request_id,
        REMOTE_ADDR=remote_addr,
    )


def test_ipn_is_refused_unless_enabled_and_nothing_is_stored_or_fetched(client_app, gateways, settings):
    settings.MERCADOPAGO_IPN_ENABLED = False
    response = post_ipn()
    assert response.status_code == 404 and response.json()["code"] == "ipn_disabled"
    assert WebhookEvent.objects.count() == 0
    assert len(gateways.calls) == 0


def test_repeated_ipn_for_one_payment_is_one_delivery_and_one_re_fetch(client_app, gateways, settings):
    settings.MERCADOPAGO_IPN_ENABLED = True
    settings.MERCADOPAGO_IPN_DEDUPE_SECONDS = 3600  # the 25 posts fall in one window
    payment = make_payment(client_app)
    gateways.get(f"{MP_BASE}/v1/payments/1319840012", json=mp_payment(payment.id))
    # a new request id each time
    answers = [post_ipn(request_id=f"r{n}", remote_addr="203.0.113.10") for n in range(25)]
    assert all(answer.status_code == 200 for answer in answers)
    assert [answer.json()["duplicate"] for answer in answers].count(False) == 1
    assert WebhookEvent.objects.count() == 1
    assert len([call for call in gateways.calls if "/v1/payments/1319840012" in call.request.url]) == 1


@pytest.mark.parametrize(("topic", "resource_id"), [("payment", "abc"), ("payment", "1" * 30), ("chargebacks", "123")])
def test_ipn_with_an_unknown_topic_or_a_malformed_id_is_a_400(client_app, gateways, settings, topic, resource_id):
    settings.MERCADOPAGO_IPN_ENABLED = True
    response = post_ipn(resource_id=resource_id, topic=topic)
    assert response.status_code == 400
    assert WebhookEvent.objects.count() == 0


def test_ipn_is_rate_limited_per_source_address(client_app, gateways, settings):
    settings.MERCADOPAGO_IPN_ENABLED = True
    settings.MERCADOPAGO_IPN_RATE_PER_MINUTE = 5
    gateways.get(f"{MP_BASE}/v1/payments/1", status=404, json={"message": "not found"})
    statuses = [post_ipn(resource_id="1", remote_addr="198.51.100.7").status_code for _ in range(8)]
    assert statuses[:5] == [200] * 5 and statuses[5:] == [429] * 3
    limited = post_ipn(resource_id="1", remote_addr="198.51.100.7")
    assert limited["Retry-After"] == "60" and limited.json()["code"] == "rate_limited"
    assert post_ipn(resource_id="1", remote_addr="198.51.100.8").status_code == 200  # another source
    assert WebhookEvent.objects.count() == 1


# --- Culqi -------------------------------------------------------------------------------------


def culqi_charge(payment_id: str, charge_id="chr_test_abc", **extra):
    body = json.loads((FIXTURES / "culqi" / "charge_captured.json").read_text())
    body.update(id=charge_id, amount=1999, currency_code="PEN", metadata={"smartpay_payment_id": payment_id}, **extra)
    return body


def culqi_event(data, event_type="charge.creation.succeeded", event_id="evt_test_1", as_string=True):
    payload = {
        "object": "event",
        "id": event_id,
        "type": event_type,
        "creation_date": 1715000000000,
        "data": json.dumps(data) if as_string else data,
    }
    return json.dumps(payload)


@pytest.mark.parametrize("as_string", [True, False])
def test_culqi_event_with_data_as_string_or_object(client_app, gateways, as_string):
    payment = make_payment(client_app, gateway="culqi", gateway_id="chr_test_abc")
    gateways.get(f"{CULQI_BASE}/v2/charges/chr_test_abc", json=culqi_charge(payment.id))
    body = culqi_event({"id": "chr_test_abc", "creationDate": 1715000000000, "actualAmount": 1999}, as_string=as_string)
    response = Client().post("/webhooks/culqi", body, content_type="application/json")
    assert response.status_code == 200
    payment.refresh_from_db()
    assert payment.status == "succeeded"


def test_culqi_refund_event_with_camel_case_charge_id(client_app, gateways):
    payment = make_payment(client_app, gateway="culqi", gateway_id="chr_test_abc", status=PaymentStatus.SUCCEEDED)
    Payment.objects.filter(pk=payment.pk).update(amount_captured=1999)
    gateways.get(f"{CULQI_BASE}/v2/charges/chr_test_abc", json=culqi_charge(payment.id, amount_refunded=500))
    body = culqi_event(
        {"id": "ref_test_1", "chargeId": "chr_test_abc", "amount": 500},
        event_type="refund.creation.succeeded",
        event_id="evt_test_2",
    )
    assert Client().post("/webhooks/culqi", body, content_type="application/json").status_code == 200
    payment.refresh_from_db()
    assert payment.status == "partially_refunded" and payment.amount_refunded == 500


def test_culqi_basic_auth_right_and_wrong(client_app, gateways, settings):
    settings.CULQI_WEBHOOK_USERNAME, settings.CULQI_WEBHOOK_PASSWORD = "culqi", "s3cret"
    payment = make_payment(client_app, gateway="culqi", gateway_id="chr_test_abc")
    gateways.get(f"{CULQI_BASE}/v2/charges/chr_test_abc", json=culqi_charge(payment.id))
    body = culqi_event({"id": "chr_test_abc"})

    def auth(user, password):
        return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

    wrong = Client().post(
        "/webhooks/culqi", body, content_type="application/json", HTTP_AUTHORIZATION=auth("culqi", "nope")
    )
    missing = Client().post("/webhooks/culqi", body, content_type="application/json")
    assert wrong.status_code == missing.status_code == 401
    assert WebhookEvent.objects.count() == 0
    right = Client().post(
        "/webhooks/culqi", body, content_type="application/json", HTTP_AUTHORIZATION=auth("culqi", "s3cret")
    )
    assert right.status_code == 200
    payment.refresh_from_db()
    assert payment.status == "succeeded"


def test_malformed_deliveries_are_400(db):
    assert Client().post("/webhooks/culqi", "not json", content_type="application/json").status_code == 400
    assert Client().post("/webhooks/culqi", "{}", content_type="application/json").status_code == 400
    assert Client().get("/webhooks/culqi").status_code == 405
    assert WebhookEvent.objects.count() == 0


def test_money_taken_for_a_canceled_payment_is_kept_visible_not_applied(client_app, gateways, caplog):
    payment = make_payment(client_app, status=PaymentStatus.CANCELED)
    gateways.get(f"{MP_BASE}/v1/payments/1319840012", json=mp_payment(payment.id))
    with caplog.at_level("ERROR", logger="smartpay.alerts"):
        assert deliver_mp().status_code == 200
    payment.refresh_from_db()
    assert payment.status == "canceled"
    event = WebhookEvent.objects.get()
    assert event.status == WebhookEvent.UNMATCHED and event.payment_id == payment.id
    assert event.last_error.startswith("charged at the gateway but not this payment's charge (canceled here)")
    assert "a gateway holds money for a payment that does not own it" in caplog.text
    stray = StrayCharge.objects.get()  # raised for staff, who refund it from the admin (never automatic)
    assert (stray.payment_id, stray.reason, stray.status) == (payment.id, StrayCharge.FINAL_PAYMENT, "open")
    assert (stray.gateway_payment_id, stray.amount) == ("1319840012", payment.amount)


def test_a_cache_outage_never_turns_an_ipn_into_a_500(client_app, gateways, settings, monkeypatch):
    settings.MERCADOPAGO_IPN_ENABLED = True

    def down(*args, **kwargs):
        raise ConnectionError("cache down")

    monkeypatch.setattr("payments.services.webhooks.shared_counter", down)
    gateways.get(f"{MP_BASE}/v1/payments/1", status=404, json={"message": "not found"})
    assert post_ipn(resource_id="1", remote_addr="198.51.100.9").status_code == 200
    assert WebhookEvent.objects.count() == 1
