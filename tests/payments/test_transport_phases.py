"""End to end through the API, against real TCP servers on 127.0.0.1: a request that may have reached the
gateway is never sent again as a new charge, never failed over, and never answered "nothing was charged";
one that provably never left is retried and failed over.

Culqi is pointed at a `FaultyServer` (tests/transport_faults.py); Mercado Pago is either mocked with
`responses` (the `gateways` fixture; calls to 127.0.0.1 pass through to the real servers) or a real server.
"""

import json
from datetime import timedelta
from pathlib import Path

import pytest
import responses
from django.utils import timezone

from payments import breaker
from payments.gateways import registry
from payments.models import Customer, GatewayCard, Payment, PaymentMethod, Refund, RoutingRule
from payments.services.settlement import settle_due_payments
from tests.payments.conftest import MP_BASE
from tests.transport_faults import closed_port_url, connection_dropped, connection_refused

pytestmark = pytest.mark.django_db

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
NOTHING_CHARGED = "nothing was charged"


@pytest.fixture(autouse=True)
def clean_breakers(gateways):
    for name in ("culqi", "mercadopago"):
        breaker.reset(name)
    gateways.add_passthru("http://127.0.0.1")
    gateways.add_passthru("https://127.0.0.1")
    yield
    for name in ("culqi", "mercadopago"):
        breaker.reset(name)


def point(settings, gateway: str, base: str) -> None:
    setattr(settings, "CULQI_API_BASE" if gateway == "culqi" else "MERCADOPAGO_API_BASE", base)
    registry._cache.clear()


def pay(api, key="k1", **body):
    body = {"amount": 2500, "currency": "PEN", "email": "p@example.com", **body}
    body.setdefault("source", {"gateway": "culqi", "token": "tkn_test_x"})
    if "payment_method" in body:
        del body["source"]
    return api.post("/api/v1/payments", body, format="json", HTTP_IDEMPOTENCY_KEY=key)


@pytest.fixture
def saved_card(client_app):
    """A card saved at both gateways; routing tries `first` before the other."""

    def make(first: str) -> PaymentMethod:
        second = "mercadopago" if first == "culqi" else "culqi"
        RoutingRule.objects.create(currency="PEN", gateway=first, priority=1)
        RoutingRule.objects.create(currency="PEN", gateway=second, priority=2)
        customer = Customer.objects.create(client_app=client_app, email="ana@example.pe", name="Ana Quispe")
        method = PaymentMethod.objects.create(
            client_app=client_app, customer=customer, brand="visa", last4="6176", exp_month=11, exp_year=2030
        )
        GatewayCard.objects.create(
            payment_method=method, gateway="culqi", gateway_customer_id="cus_test_1", gateway_card_id="crd_test_1"
        )
        GatewayCard.objects.create(
            payment_method=method, gateway="mercadopago", gateway_customer_id="1234-cust", gateway_card_id="9876543210"
        )
        return method

    return make


def mp_approved(amount: float, reference: str = "") -> dict:
    body = json.loads((FIXTURES / "mercadopago" / "payment_approved.json").read_text())
    body.update(transaction_amount=amount, external_reference=reference, metadata={"smartpay_payment_id": reference})
    return body


MP_CARD_TOKEN = {"id": "tok_from_saved_card", "first_six_digits": "400917"}
MP_METHODS = {"results": [{"id": "visa", "issuer": {"id": 1040}}], "paging": {"total": 1}}


def mock_mercadopago_saved_card_charge(gateways) -> None:
    """Mercado Pago answering a saved-card charge (card token, payment method, payment), all recorded."""
    gateways.post(f"{MP_BASE}/v1/card_tokens", json=MP_CARD_TOKEN, status=201)
    gateways.get(f"{MP_BASE}/v1/payment_methods/search", json=MP_METHODS)

    def reply(request):
        sent = json.loads(request.body)
        return 201, {}, json.dumps(mp_approved(float(sent["transaction_amount"]), sent["external_reference"]))

    gateways.add_callback(responses.POST, f"{MP_BASE}/v1/payments", callback=reply)


def mercadopago_calls(gateways, path: str = "") -> list:
    return [c for c in gateways.calls if c.request.url.startswith(f"{MP_BASE}{path}")]


# --- The request left: outcome unknown ------------------------------------------------------------------


def test_a_culqi_charge_dropped_after_it_was_read_stays_processing_and_was_sent_once(api, settings, servers):
    server = servers("drop_after_request")
    point(settings, "culqi", server.url)

    response = pay(api)

    assert response.status_code == 201
    body = response.json()
    assert body["status"] == "processing" and body["gateway"] == "culqi"
    assert body["failure"] is None
    assert NOTHING_CHARGED not in response.content.decode()
    assert [(a["gateway"], a["outcome"]) for a in body["attempts"]] == [("culqi", "unknown")]
    (received,) = server.received  # exactly one charge request, never resent
    assert (received.method, received.path) == ("POST", "/v2/charges")
    assert json.loads(received.body)["metadata"]["smartpay_payment_id"] == body["id"]
    assert Payment.objects.get(pk=body["id"]).settle_after is not None

    # Settling asks the gateway (a read: the dropped GET is only "try later") and never charges again.
    assert settle_due_payments(now=timezone.now() + timedelta(minutes=10)) == {"error": 1}
    assert server.paths("POST") == ["/v2/charges"]
    assert server.paths("GET")[0].startswith("/v2/charges?")
    assert Payment.objects.get(pk=body["id"]).status == "processing"


def test_a_saved_card_dropped_at_culqi_is_never_failed_over_to_mercadopago(
    api, settings, servers, gateways, saved_card
):
    method = saved_card(first="culqi")
    mock_mercadopago_saved_card_charge(gateways)  # would charge, were it asked
    server = servers("drop_after_request")
    point(settings, "culqi", server.url)

    body = pay(api, payment_method=method.pk).json()

    assert body["status"] == "processing" and body["gateway"] == "culqi"
    assert [(a["gateway"], a["outcome"]) for a in body["attempts"]] == [("culqi", "unknown")]
    assert server.paths() == ["/v2/charges"]
    assert server.received[0].headers["x-charge-channel"] == "recurrent"
    assert mercadopago_calls(gateways) == []  # Mercado Pago received nothing, let alone a charge


def test_a_refund_dropped_after_it_was_read_stays_pending_and_reserves_its_amount(api, client_app, settings, servers):
    payment = Payment.objects.create(
        client_app=client_app,
        amount=5000,
        amount_captured=5000,
        currency="PEN",
        email="p@example.com",
        status="succeeded",
        gateway="culqi",
        gateway_payment_id="chr_test_refund01",
    )
    server = servers("drop_after_request")
    point(settings, "culqi", server.url)
    path = f"/api/v1/payments/{payment.pk}/refunds"

    first = api.post(path, {"reason": "customer asked"}, format="json", HTTP_IDEMPOTENCY_KEY="r1")

    assert first.status_code == 201
    assert first.json()["status"] == "pending" and first.json()["amount"] == 5000
    (received,) = server.received
    assert (received.method, received.path) == ("POST", "/v2/refunds")
    assert json.loads(received.body)["charge_id"] == "chr_test_refund01"

    # The merchant, not knowing, asks again for the whole amount: the pending refund still reserves it.
    again = api.post(path, {"amount": 5000}, format="json", HTTP_IDEMPOTENCY_KEY="r2")
    assert again.status_code == 422
    assert again.json()["code"] == "refund_exceeds_payment"
    assert api.post(path, {"amount": 1}, format="json", HTTP_IDEMPOTENCY_KEY="r3").status_code == 422
    assert len(server.received) == 1
    assert list(Refund.objects.values_list("status", flat=True)) == ["pending"]
    payment.refresh_from_db()
    assert (payment.status, payment.amount_refunded) == ("succeeded", 0)


def test_a_mercadopago_charge_dropped_is_resent_with_the_same_key_and_body(api, settings, servers):
    server = servers("answer", drop_first=1, status=201, body=json.dumps(mp_approved(19.99)).encode())
    point(settings, "mercadopago", server.url)

    body = pay(api, amount=1999, source={"gateway": "mercadopago", "token": "tok", "payment_method_id": "visa"}).json()

    assert body["status"] == "succeeded"
    assert [a["outcome"] for a in body["attempts"]] == ["unknown", "succeeded"]
    first, second = server.received  # one dropped, one answered: Mercado Pago replays, never charges twice
    assert first.path == second.path == "/v1/payments"
    assert first.headers["x-idempotency-key"] == second.headers["x-idempotency-key"] == f"{body['id']}:charge:1"
    assert first.body == second.body


def test_a_mercadopago_charge_unknown_on_every_try_stays_processing_and_is_never_failed_over(
    api, settings, servers, gateways, saved_card
):
    method = saved_card(first="mercadopago")
    gateways.add_callback(responses.POST, "https://api.culqi.test/v2/charges", callback=lambda r: (201, {}, "{}"))
    server = servers(
        "route",
        replies={
            "POST /v1/card_tokens": (201, json.dumps(MP_CARD_TOKEN).encode()),
            "GET /v1/payment_methods/search": (200, json.dumps(MP_METHODS).encode()),
        },  # POST /v1/payments: read, then dropped
    )
    point(settings, "mercadopago", server.url)

    body = pay(api, payment_method=method.pk).json()

    assert body["status"] == "processing" and body["gateway"] == "mercadopago"
    assert [(a["gateway"], a["outcome"]) for a in body["attempts"]] == [("mercadopago", "unknown")] * 3
    payments = [r for r in server.received if r.path == "/v1/payments"]
    assert len(payments) == settings.GATEWAY_RETRY_MAX_TRIES == 3
    assert {r.headers["x-idempotency-key"] for r in payments} == {f"{body['id']}:charge:1"}
    assert [c for c in gateways.calls if "culqi" in c.request.url] == []  # never failed over


def test_an_unknown_outcome_stays_unknown_when_a_resend_then_finds_no_connection(api, gateways, saved_card):
    """The first try may have charged: a later "refused" proves nothing about it, so no failover."""
    method = saved_card(first="mercadopago")
    gateways.post(f"{MP_BASE}/v1/card_tokens", json=MP_CARD_TOKEN, status=201)
    gateways.get(f"{MP_BASE}/v1/payment_methods/search", json=MP_METHODS)
    gateways.post(f"{MP_BASE}/v1/payments", body=connection_dropped())
    gateways.post(f"{MP_BASE}/v1/payments", body=connection_refused())
    gateways.add_callback(responses.POST, "https://api.culqi.test/v2/charges", callback=lambda r: (201, {}, "{}"))

    response = pay(api, payment_method=method.pk)

    assert response.status_code == 201
    body = response.json()
    assert body["status"] == "processing" and body["gateway"] == "mercadopago"
    assert [a["outcome"] for a in body["attempts"]] == ["unknown", "unavailable", "unknown"]
    assert len(mercadopago_calls(gateways, "/v1/payments")) == 3
    assert [c for c in gateways.calls if "culqi" in c.request.url] == []


# --- The request never left: nothing happened --------------------------------------------------------


def test_a_refused_connection_is_retried_then_503_and_nothing_was_charged(api, settings):
    point(settings, "culqi", closed_port_url())

    response = pay(api)

    assert response.status_code == 503
    body = response.json()
    assert body["code"] == "gateway_unavailable" and NOTHING_CHARGED in body["detail"]
    assert body["alternatives"] == ["mercadopago"]
    payment = Payment.objects.get(pk=body["payment"])
    assert (payment.status, payment.failure_code) == ("failed", "gateway_unavailable")
    assert list(payment.attempts.values_list("outcome", flat=True)) == ["unavailable"] * 3


def test_a_refused_connection_fails_a_saved_card_over_to_mercadopago(api, settings, gateways, saved_card):
    method = saved_card(first="culqi")
    mock_mercadopago_saved_card_charge(gateways)
    point(settings, "culqi", closed_port_url())

    body = pay(api, payment_method=method.pk).json()

    assert body["status"] == "succeeded" and body["gateway"] == "mercadopago"
    assert [(a["gateway"], a["outcome"]) for a in body["attempts"]] == [("culqi", "unavailable")] * 3 + [
        ("mercadopago", "succeeded")
    ]
    assert len(mercadopago_calls(gateways, "/v1/payments")) == 1


def test_a_server_closing_before_the_tls_handshake_is_retried_and_failed_over(
    api, settings, servers, gateways, saved_card
):
    method = saved_card(first="culqi")
    mock_mercadopago_saved_card_charge(gateways)
    server = servers("close_on_accept", tls=True)
    point(settings, "culqi", server.url)

    body = pay(api, payment_method=method.pk).json()

    assert body["status"] == "succeeded" and body["gateway"] == "mercadopago"
    assert server.accepted == 3 and server.received == []  # three connections, not one request read
    assert len(mercadopago_calls(gateways, "/v1/payments")) == 1
