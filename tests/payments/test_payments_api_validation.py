"""Bad input to the payments API: a clear problem, and nothing created or charged."""

import pytest

from payments.models import IdempotencyRecord, Payment

pytestmark = pytest.mark.django_db

VALID = {
    "amount": 1500,
    "currency": "PEN",
    "email": "payer@example.com",
    "source": {"gateway": "culqi", "token": "tkn_test_0123456789abcdef"},
}


def post(api, body, key="key-1", path="/api/v1/payments"):
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key else {}
    return api.post(path, body, format="json", **headers)


def test_idempotency_key_is_required(api):
    response = post(api, VALID, key=None)
    assert response.status_code == 400
    assert response.json()["code"] == "idempotency_key_required"
    assert Payment.objects.count() == 0


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"amount": "1500"}, "amount"),
        ({"amount": 15.5}, "amount"),
        ({"amount": 0}, "amount"),
        ({"amount": True}, "amount"),
        ({"currency": "EUR"}, "currency"),
        ({"email": "not-an-email"}, "email"),
        ({"surprise": 1}, "surprise"),
        ({"source": {"gateway": "paypal", "token": "x"}}, "source.gateway"),
        ({"source": {"gateway": "culqi", "token": "x", "cvv": "123"}}, "source.cvv"),
        ({"metadata": {"k": 1}}, "metadata.k"),
        ({"checkout": True}, "source"),
        ({"return_url": "https://shop.example/back"}, "return_url"),
        ({"customer": "cus_doesnotexist"}, "customer"),
    ],
)
def test_invalid_fields_answer_400_per_field_and_create_nothing(api, change, field):
    response = post(api, {**VALID, **change})
    assert response.status_code == 400, response.json()
    body = response.json()
    assert response["Content-Type"] == "application/problem+json"
    assert body["code"] == "validation_error"
    assert field in body["errors"], body["errors"]
    assert Payment.objects.count() == 0
    assert IdempotencyRecord.objects.count() == 0  # a rejected request does not hold the key


def test_email_required_without_customer(api):
    response = post(api, {k: v for k, v in VALID.items() if k != "email"})
    assert response.status_code == 400
    assert "email" in response.json()["errors"]


@pytest.mark.parametrize(
    "change",
    [
        {"description": "card 4111 1111 1111 1111 please"},
        {"metadata": {"note": "4111-1111-1111-1111"}},
        {"source": {"gateway": "culqi", "token": "4111111111111111"}},
    ],
)
def test_card_numbers_anywhere_are_refused(api, change):
    response = post(api, {**VALID, **change})
    assert response.status_code == 400
    assert response.json()["code"] == "card_data_not_allowed"
    assert "4111" not in response.content.decode()
    assert Payment.objects.count() == 0


def test_another_apps_customer_cannot_be_charged(api, other_api):
    customer = other_api.post("/api/v1/customers", {"email": "x@example.com"}, format="json").json()
    response = post(api, {**VALID, "customer": customer["id"]})
    assert response.status_code == 400
    assert response.json()["errors"] == {"customer": ["No such customer."]}


def test_unknown_or_foreign_payment_is_404(api):
    assert api.get("/api/v1/payments/pay_nope").status_code == 404
    assert post(api, {}, path="/api/v1/payments/pay_nope/refunds").status_code == 404


def test_list_filters_are_validated(api):
    response = api.get("/api/v1/payments?status=bogus")
    assert response.status_code == 400
    assert "status" in response.json()["errors"]
    assert api.get("/api/v1/payments?created_gte=yesterday").status_code == 400


def test_gateways_lists_tokenization_facts_for_a_currency(api, settings):
    response = api.get("/api/v1/gateways?currency=PEN")
    assert response.status_code == 200
    rows = response.json()
    assert [row["name"] for row in rows] == ["culqi", "mercadopago"]
    culqi = rows[0]
    assert culqi["public_key"] == settings.CULQI_PUBLIC_KEY
    assert culqi["api_base"] == settings.CULQI_SECURE_BASE
    assert culqi["healthy"] is True
    assert api.get("/api/v1/gateways?currency=EUR").status_code == 400
    usd = [row["name"] for row in api.get("/api/v1/gateways?currency=USD").json()]
    assert usd == ["culqi"]  # Mercado Pago Peru charges in soles only


def test_api_timestamps_are_utc(api):
    created = api.post("/api/v1/customers", {"email": "utc@example.com"}, format="json").json()
    assert created["created_at"].endswith("Z")
    assert api.get(f"/api/v1/customers/{created['id']}").json()["created_at"] == created["created_at"]


@pytest.mark.parametrize("path", ["/api/v1/payments", "/api/v1/customers/{customer}", "/api/v1/gateways"])
def test_options_answers_without_introspecting_objects(api, path):
    customer = api.post("/api/v1/customers", {"email": "o@example.com"}, format="json").json()
    response = api.options(path.format(customer=customer["id"]))
    assert response.status_code == 200
    assert response.json()["schema"] == "/api/schema/"
    assert "GET" in response["Allow"]


@pytest.mark.parametrize("value", [0, 1.5, True, ["x"], {"a": "b"}])
def test_text_fields_refuse_other_json_types(api, value):
    response = api.post("/api/v1/customers", {"email": "t@example.com", "name": value}, format="json")
    assert response.status_code == 400
    assert response.json()["errors"] == {"name": ["Must be a string."]}
