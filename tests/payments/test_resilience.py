"""Retries, circuit breakers, failover and settlement of unknown outcomes, with the wire mocked."""

import json
from datetime import timedelta
from pathlib import Path

import pytest
import requests
import responses
from django.utils import timezone

from payments import breaker
from payments.models import Payment, PaymentAttempt, RoutingRule
from payments.services import payments as payment_services
from payments.services.settlement import settle_due_payments
from tests.payments.conftest import CULQI_BASE, MP_BASE
from tests.transport_faults import connection_refused

pytestmark = pytest.mark.django_db

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
CHARGES = f"{CULQI_BASE}/v2/charges"


@pytest.fixture(autouse=True)
def clean_breakers(gateways):
    for name in ("culqi", "mercadopago"):
        breaker.reset(name)
    yield
    for name in ("culqi", "mercadopago"):
        breaker.reset(name)


def culqi_charge_reply(request):
    sent = json.loads(request.body)
    body = json.loads((FIXTURES / "culqi" / "charge_captured.json").read_text())
    body.update(
        id="chr_test_resilience01",
        amount=sent["amount"],
        currency_code=sent["currency_code"],
        metadata=sent["metadata"],
        email=sent["email"],
    )
    return 201, {}, json.dumps(body)


def pay(api, key="k1", **body):
    body = {
        "amount": 2500,
        "currency": "PEN",
        "email": "p@example.com",
        "source": {"gateway": "culqi", "token": "tkn_test_x"},
        **body,
    }
    return api.post("/api/v1/payments", body, format="json", HTTP_IDEMPOTENCY_KEY=key)


# --- Circuit breaker ------------------------------------------------------------------------------


def test_breaker_opens_after_consecutive_failures_then_half_opens_and_closes(monkeypatch, settings):
    settings.CIRCUIT_FAILURE_THRESHOLD = 3
    settings.CIRCUIT_COOL_DOWN_SECONDS = 30
    now = [1_000_000.0]
    monkeypatch.setattr(breaker.time, "time", lambda: now[0])
    for _ in range(2):
        breaker.record("culqi", "unavailable")
    assert breaker.state("culqi").state == "closed"
    breaker.record("culqi", "declined")  # a decline is the gateway working: resets the streak
    for _ in range(3):
        breaker.record("culqi", "unknown")
    current = breaker.state("culqi")
    assert current.state == "open" and current.retry_after == 30
    assert breaker.allow_request("culqi") is False
    now[0] += 31
    assert breaker.state("culqi").state == "half_open"
    assert breaker.allow_request("culqi") is True  # the one probe
    assert breaker.allow_request("culqi") is False
    breaker.record("culqi", "unavailable")  # the probe failed: open again
    assert breaker.state("culqi").state == "open"
    now[0] += 31
    assert breaker.allow_request("culqi") is True
    breaker.record("culqi", "succeeded")
    assert breaker.state("culqi").state == "closed"
    assert breaker.state("mercadopago").state == "closed"  # per gateway


def test_breaker_opens_on_error_rate(settings):
    settings.CIRCUIT_FAILURE_THRESHOLD = 100
    settings.CIRCUIT_MIN_CALLS = 10
    settings.CIRCUIT_ERROR_RATE_PERCENT = 50
    for index in range(10):
        breaker.record("culqi", "unavailable" if index % 2 else "succeeded")
    assert breaker.state("culqi").state == "open"


# --- Retries ---------------------------------------------------------------------------------------


def test_unavailable_is_retried_with_the_same_key_and_then_succeeds(api, gateways):
    replies = iter([connection_refused(CHARGES), (429, {"Retry-After": "0"}, "{}")])

    def reply(request):
        answer = next(replies, None)
        if isinstance(answer, Exception):
            raise answer  # the connection was refused: the charge never left
        return answer or culqi_charge_reply(request)

    gateways.add_callback(responses.POST, CHARGES, callback=reply)
    body = pay(api).json()
    assert body["status"] == "succeeded"
    assert [a["outcome"] for a in body["attempts"]] == ["unavailable", "unavailable", "succeeded"]
    keys = set(PaymentAttempt.objects.values_list("idempotency_key", flat=True))
    assert keys == {f"{body['id']}:charge:1"}
    assert len(gateways.calls) == 3


def test_mercadopago_retries_send_the_same_idempotency_key(api, gateways):
    seen = []
    approved = json.loads((FIXTURES / "mercadopago" / "payment_approved.json").read_text())

    def reply(request):
        seen.append(request.headers["X-Idempotency-Key"])
        if len(seen) == 1:
            raise connection_refused(request.url)
        sent = json.loads(request.body)
        return (
            201,
            {},
            json.dumps(
                {
                    **approved,
                    "external_reference": sent["external_reference"],
                    "transaction_amount": 25.0,
                    "metadata": sent["metadata"],
                }
            ),
        )

    gateways.add_callback(responses.POST, f"{MP_BASE}/v1/payments", callback=reply)
    body = pay(api, source={"gateway": "mercadopago", "token": "tok", "payment_method_id": "visa"}).json()
    assert body["status"] == "succeeded"
    assert len(seen) == 2 and seen[0] == seen[1] == f"{body['id']}:charge:1"


def test_a_decline_is_never_retried(api, gateways):
    declined = json.loads((FIXTURES / "culqi" / "error_card_declined.json").read_text())
    gateways.post(CHARGES, json=declined, status=402)
    body = pay(api).json()
    assert body["status"] == "failed"
    assert len(gateways.calls) == 1


def test_a_mercadopago_503_on_a_charge_is_resent_with_the_same_key_and_charged_once(api, gateways):
    """503 may follow a payment made; Mercado Pago replays the first answer for the same key."""
    seen = []
    approved = json.loads((FIXTURES / "mercadopago" / "payment_approved.json").read_text())

    def reply(request):
        seen.append((request.headers["X-Idempotency-Key"], request.body))
        if len(seen) == 1:
            return 503, {"Retry-After": "0"}, "Service Unavailable"
        sent = json.loads(request.body)
        return (
            201,
            {},
            json.dumps({**approved, "external_reference": sent["external_reference"], "transaction_amount": 25.0}),
        )

    gateways.add_callback(responses.POST, f"{MP_BASE}/v1/payments", callback=reply)
    body = pay(api, source={"gateway": "mercadopago", "token": "tok", "payment_method_id": "visa"}).json()
    assert body["status"] == "succeeded"
    assert [a["outcome"] for a in body["attempts"]] == ["unknown", "succeeded"]
    assert len(seen) == 2 and seen[0] == seen[1]  # same key, same bytes: one payment at Mercado Pago
    assert seen[0][0] == f"{body['id']}:charge:1"


def test_a_culqi_503_on_a_charge_is_neither_retried_nor_failed_over(api, gateways):
    """Culqi has no idempotency key and documents no "not processed" 503: settle by asking, never resend."""
    gateways.post(CHARGES, status=503, body="Service Unavailable")
    body = pay(api).json()
    assert body["status"] == "processing" and body["gateway"] == "culqi"
    assert body["failure"] is None
    assert [a["outcome"] for a in body["attempts"]] == ["unknown"]
    assert len(gateways.calls) == 1

    gateways.add_callback(responses.GET, CHARGES, callback=_culqi_list_reply(found=False))
    assert settle_due_payments(now=timezone.now() + timedelta(minutes=2)) == {"absent": 1}
    assert Payment.objects.get(pk=body["id"]).status == "processing"  # proven absent only after the window
    assert len([c for c in gateways.calls if c.request.method == "POST"]) == 1


def test_an_unknown_outcome_is_neither_retried_nor_failed_over(api, gateways):
    gateways.post(CHARGES, body=requests.ReadTimeout("read timed out"))
    body = pay(api).json()
    assert body["status"] == "processing"
    assert [a["outcome"] for a in body["attempts"]] == ["unknown"]
    assert len(gateways.calls) == 1
    assert Payment.objects.get().settle_after is not None


# --- Failover and the token-bound case ------------------------------------------------------------


def test_token_at_a_down_gateway_is_503_with_alternatives(api, gateways):
    gateways.post(CHARGES, body=connection_refused(CHARGES))
    response = pay(api)
    assert response.status_code == 503
    body = response.json()
    assert body["code"] == "gateway_unavailable"
    assert body["alternatives"] == ["mercadopago"]
    assert int(response["Retry-After"]) >= 1
    payment = Payment.objects.get(pk=body["payment"])
    assert payment.status == "failed" and payment.failure_code == "gateway_unavailable"
    assert len(gateways.calls) == 3  # retried, never more than the bound


def test_open_breaker_refuses_a_token_payment_before_anything_is_created(api, gateways, settings):
    settings.CIRCUIT_FAILURE_THRESHOLD = 1
    breaker.record("culqi", "unavailable")
    response = pay(api)
    assert response.status_code == 503
    assert response.json()["alternatives"] == ["mercadopago"]
    assert Payment.objects.count() == 0
    assert len(gateways.calls) == 0
    gateways_view = {row["name"]: row["healthy"] for row in api.get("/api/v1/gateways").json()}
    assert gateways_view == {"culqi": False, "mercadopago": True}
    assert [row["name"] for row in api.get("/api/v1/gateways").json()] == ["mercadopago", "culqi"]


def test_hosted_checkout_fails_over_when_the_first_gateway_is_down(api, gateways):
    gateways.post(f"{CULQI_BASE}/v2/orders", status=503, body="Service Unavailable")
    preference = json.loads((FIXTURES / "mercadopago" / "preference.json").read_text())
    gateways.post(f"{MP_BASE}/checkout/preferences", json=preference, status=201)
    body = api.post(
        "/api/v1/payments",
        {"amount": 5000, "currency": "PEN", "email": "p@example.com", "checkout": True},
        format="json",
        HTTP_IDEMPOTENCY_KEY="co",
    ).json()
    assert body["status"] == "pending"
    assert body["gateway"] == "mercadopago"
    assert body["next_action"] == {"type": "redirect", "url": preference["init_point"]}
    assert [(a["gateway"], a["outcome"]) for a in body["attempts"]] == [
        ("culqi", "unavailable"),
        ("culqi", "unavailable"),
        ("culqi", "unavailable"),
        ("mercadopago", "pending"),
    ]


def test_routing_rules_order_gateways_and_limit_amounts(api, gateways):
    RoutingRule.objects.create(currency="PEN", gateway="mercadopago", priority=1)
    RoutingRule.objects.create(currency="PEN", gateway="culqi", priority=2, max_amount=100_000)
    assert [row["name"] for row in api.get("/api/v1/gateways?currency=PEN").json()] == ["mercadopago", "culqi"]
    from payments import routing

    assert routing.candidates("PEN", 200_000) == ["mercadopago"]
    RoutingRule.objects.filter(gateway="mercadopago").update(enabled=False)
    assert routing.candidates("PEN", 5_000) == ["culqi"]


# --- Settlement -----------------------------------------------------------------------------------


def _culqi_list_reply(found: bool):
    def reply(request):
        items = []
        if found:
            payment = Payment.objects.get()
            charge = json.loads((FIXTURES / "culqi" / "charge_captured.json").read_text())
            charge.update(
                id="chr_test_resilience01",
                amount=payment.amount,
                currency_code="PEN",
                email=payment.email,
                metadata={"smartpay_payment_id": payment.id},
            )
            items = [charge]
        body = {
            "data": items,
            "paging": {
                "previous": None,
                "next": None,
                "cursors": {"before": None, "after": None},
                "remaining_items": 0,
            },
        }
        return 200, {}, json.dumps(body)

    return reply


def test_unknown_outcome_is_settled_when_the_gateway_knows_the_charge(api, gateways):
    gateways.post(CHARGES, body=requests.ReadTimeout("read timed out"))
    payment_id = pay(api).json()["id"]
    gateways.add_callback(responses.GET, CHARGES, callback=_culqi_list_reply(found=True))
    counts = settle_due_payments(now=timezone.now() + timedelta(minutes=2))
    assert counts == {"settled": 1}
    payment = Payment.objects.get(pk=payment_id)
    assert payment.status == "succeeded" and payment.gateway_payment_id == "chr_test_resilience01"
    assert payment.settle_after is None
    assert len([c for c in gateways.calls if c.request.method == "POST"]) == 1  # never charged again


def test_absent_charge_is_rechecked_on_a_backoff_then_failed_after_the_window(api, gateways):
    gateways.post(CHARGES, body=requests.ReadTimeout("read timed out"))
    payment_id = pay(api).json()["id"]
    gateways.add_callback(responses.GET, CHARGES, callback=_culqi_list_reply(found=False))
    created = Payment.objects.get(pk=payment_id).created_at

    assert settle_due_payments(now=created + timedelta(minutes=3)) == {"absent": 1}
    first = Payment.objects.get(pk=payment_id)
    assert first.status == "processing"
    assert first.settle_after == created + timedelta(minutes=3) + timedelta(minutes=5)
    assert settle_due_payments(now=created + timedelta(minutes=4)) == {}  # not due yet

    assert settle_due_payments(now=created + timedelta(hours=2)) == {"absent": 1}
    assert Payment.objects.get(pk=payment_id).settle_after == created + timedelta(hours=3)  # hourly now

    assert settle_due_payments(now=created + timedelta(hours=24, minutes=1)) == {"failed": 1}
    payment = Payment.objects.get(pk=payment_id)
    assert payment.status == "failed" and payment.failure_code == "gateway_timeout"
    assert len([c for c in gateways.calls if c.request.method == "POST"]) == 1


def test_a_crash_between_the_call_and_the_record_is_recovered_without_charging_twice(api, gateways, monkeypatch):
    gateways.add_callback(responses.POST, CHARGES, callback=culqi_charge_reply)
    real_record = payment_services._record_charge

    def crash(*args, **kwargs):
        raise RuntimeError("process died after the gateway answered")

    monkeypatch.setattr(payment_services, "_record_charge", crash)
    api.raise_request_exception = False
    response = pay(api)
    assert response.status_code == 500
    monkeypatch.setattr(payment_services, "_record_charge", real_record)
    payment = Payment.objects.get()
    assert payment.status == "processing"
    assert payment.attempts.get().outcome == "started"

    replay = pay(api)  # the client retries with the same key: the payment as it stands, not charged again
    assert replay.status_code == 201 and replay["Idempotent-Replayed"] == "true"
    assert (replay.json()["id"], replay.json()["status"]) == (payment.id, "processing")

    gateways.add_callback(responses.GET, CHARGES, callback=_culqi_list_reply(found=True))
    assert settle_due_payments(now=timezone.now() + timedelta(minutes=10)) == {"settled": 1}
    payment.refresh_from_db()
    assert payment.status == "succeeded"
    assert len([c for c in gateways.calls if c.request.method == "POST"]) == 1
