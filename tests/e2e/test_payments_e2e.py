"""The payments API end to end: adapters over real HTTP against the gateway simulators."""

import itertools

import pytest

from payments.models import Payment, PaymentAttempt, Refund

pytestmark = pytest.mark.django_db(transaction=True)

_keys = itertools.count()


def pay(api, **body):
    body.setdefault("currency", "PEN")
    body.setdefault("email", "payer@example.com")
    return api.post("/api/v1/payments", body, format="json", HTTP_IDEMPOTENCY_KEY=f"k-{next(_keys)}")


def act(api, path, body=None):
    return api.post(path, body or {}, format="json", HTTP_IDEMPOTENCY_KEY=f"k-{next(_keys)}")


def test_culqi_card_payment_succeeds(api, tokenize):
    response = pay(api, amount=2500, source={"gateway": "culqi", "token": tokenize.culqi()}, description="Order 1")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["object"] == "payment"
    assert body["status"] == "succeeded"
    assert body["gateway"] == "culqi"
    assert body["gateway_payment_id"].startswith("chr_")
    assert body["amount"] == 2500 and body["amount_refunded"] == 0 and body["currency"] == "PEN"
    assert body["failure"] is None and body["next_action"] is None
    [attempt] = body["attempts"]
    assert attempt["gateway"] == "culqi" and attempt["outcome"] == "succeeded"
    assert isinstance(attempt["duration_ms"], int)
    assert api.get(f"/api/v1/payments/{body['id']}").json()["status"] == "succeeded"
    # our id travelled to the gateway, as metadata
    assert (
        PaymentAttempt.objects.get(payment_id=body["id"]).raw_response["metadata"]["smartpay_payment_id"] == body["id"]
    )


@pytest.mark.parametrize(
    ("card", "decline_code"),
    [
        ("4000040000000008", "insufficient_funds"),
        ("4000020000000000", "lost_or_stolen_card"),
    ],
)
def test_culqi_decline_is_a_failed_payment_not_an_error(api, tokenize, card, decline_code):
    response = pay(api, amount=2500, source={"gateway": "culqi", "token": tokenize.culqi(card)})
    assert response.status_code == 201
    body = response.json()
    assert body["status"] == "failed"
    assert body["failure"]["code"] == "card_declined"
    assert body["failure"]["decline_code"] == decline_code
    assert body["gateway_payment_id"].startswith("chr_")  # Culqi keeps declined charges
    assert body["attempts"][0]["outcome"] == "declined"


def test_culqi_3d_secure_requires_action(api, tokenize):
    token = tokenize.culqi("4456530000001096", cvv="111", email="review@culqi.com")
    response = pay(api, amount=2500, email="review@culqi.com", source={"gateway": "culqi", "token": token})
    body = response.json()
    assert body["status"] == "requires_action"
    assert body["next_action"]["type"] == "three_d_secure"
    assert body["gateway_payment_id"] is None  # Culqi made no charge yet
    canceled = act(api, f"/api/v1/payments/{body['id']}/cancel")
    assert canceled.json()["status"] == "canceled"


@pytest.mark.parametrize("gateway", ["culqi", "mercadopago"])
def test_authorize_then_capture(api, tokenize, gateway):
    token = tokenize.culqi() if gateway == "culqi" else tokenize.mercadopago("APRO")
    body = pay(api, amount=4000, capture=False, source={"gateway": gateway, "token": token}).json()
    assert body["status"] == "authorized"
    captured = act(api, f"/api/v1/payments/{body['id']}/capture")
    assert captured.status_code == 200, captured.json()
    assert captured.json()["status"] == "succeeded"
    again = act(api, f"/api/v1/payments/{body['id']}/capture")
    assert again.status_code == 409
    assert again.json()["code"] == "invalid_payment_state"


@pytest.mark.parametrize("gateway", ["culqi", "mercadopago"])
def test_cancel_an_authorization(api, tokenize, gateway):
    token = tokenize.culqi() if gateway == "culqi" else tokenize.mercadopago("APRO")
    body = pay(api, amount=4000, capture=False, source={"gateway": gateway, "token": token}).json()
    canceled = act(api, f"/api/v1/payments/{body['id']}/cancel")
    assert canceled.status_code == 200, canceled.json()
    assert canceled.json()["status"] == "canceled"
    assert act(api, f"/api/v1/payments/{body['id']}/capture").status_code == 409


@pytest.mark.parametrize("gateway", ["culqi", "mercadopago"])
def test_partial_then_full_refund_and_over_refund(api, tokenize, gateway):
    token = tokenize.culqi() if gateway == "culqi" else tokenize.mercadopago("APRO")
    payment = pay(api, amount=10000, source={"gateway": gateway, "token": token}).json()
    assert payment["status"] == "succeeded"
    path = f"/api/v1/payments/{payment['id']}/refunds"

    first = act(api, path, {"amount": 3000, "reason": "customer asked"})
    assert first.status_code == 201, first.json()
    assert first.json()["object"] == "refund" and first.json()["status"] == "succeeded"
    assert first.json()["amount"] == 3000 and first.json()["id"].startswith("re_")
    after = api.get(f"/api/v1/payments/{payment['id']}").json()
    assert after["status"] == "partially_refunded" and after["amount_refunded"] == 3000

    too_much = act(api, path, {"amount": 7001})
    assert too_much.status_code == 422
    assert too_much.json()["code"] == "refund_exceeds_payment"
    assert Refund.objects.filter(payment_id=payment["id"]).count() == 1

    rest = act(api, path)  # no amount: the rest
    assert rest.json()["amount"] == 7000
    final = api.get(f"/api/v1/payments/{payment['id']}").json()
    assert final["status"] == "refunded" and final["amount_refunded"] == 10000
    listed = api.get(path).json()
    assert [r["amount"] for r in listed["data"]] == [7000, 3000]
    assert act(api, path, {"amount": 1}).status_code == 409  # a refunded payment is final


@pytest.mark.parametrize(
    ("name", "status", "decline_code"),
    [
        ("APRO", "succeeded", None),
        ("FUND", "failed", "insufficient_funds"),
        ("SECU", "failed", "incorrect_cvc"),
        ("CALL", "failed", "call_issuer"),
        ("CONT", "processing", None),
    ],
)
def test_mercadopago_outcomes_by_cardholder_name(api, tokenize, name, status, decline_code):
    response = pay(api, amount=1999, source={"gateway": "mercadopago", "token": tokenize.mercadopago(name)})
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["status"] == status
    assert body["gateway"] == "mercadopago"
    assert (body["failure"] or {}).get("decline_code") == decline_code
    assert body["gateway_payment_id"]


def test_mercadopago_refuses_usd_before_calling(api, tokenize):
    response = pay(api, amount=1000, currency="USD", source={"gateway": "mercadopago", "token": "tok"})
    assert response.status_code == 422
    assert response.json()["code"] == "currency_not_supported"
    assert Payment.objects.count() == 0


@pytest.mark.parametrize("gateway", ["culqi", "mercadopago"])
def test_saved_card_charge_and_delete(api, tokenize, gateway):
    customer = api.post("/api/v1/customers", {"email": "ana@example.com", "name": "Ana Pérez"}, format="json").json()
    token = tokenize.culqi() if gateway == "culqi" else tokenize.mercadopago("APRO")
    saved = api.post(
        f"/api/v1/customers/{customer['id']}/payment-methods",
        {"source": {"gateway": gateway, "token": token}},
        format="json",
    )
    assert saved.status_code == 201, saved.json()
    method = saved.json()
    assert method["id"].startswith("pm_") and method["gateways"] == [gateway]
    assert len(method["last4"]) == 4 and method["brand"]

    charged = pay(api, amount=1500, customer=customer["id"], payment_method=method["id"]).json()
    assert charged["status"] == "succeeded", charged
    assert charged["payment_method"] == method["id"] and charged["gateway"] == gateway

    listed = api.get(f"/api/v1/customers/{customer['id']}/payment-methods").json()["data"]
    assert [m["id"] for m in listed] == [method["id"]]
    assert api.delete(f"/api/v1/customers/{customer['id']}/payment-methods/{method['id']}").status_code == 204
    assert api.get(f"/api/v1/customers/{customer['id']}/payment-methods").json()["data"] == []
    reuse = pay(api, amount=1500, customer=customer["id"], payment_method=method["id"])
    assert reuse.status_code == 400
    history = api.get(f"/api/v1/customers/{customer['id']}/payments").json()["data"]
    assert [p["id"] for p in history] == [charged["id"]]
