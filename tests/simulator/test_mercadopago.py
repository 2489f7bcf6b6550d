"""The Mercado Pago simulator speaks api.mercadopago.com (docs/reference/mercadopago.md)."""

import json
import re
from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

import pytest

from payments.gateways.simulator.models import SimCharge, SimIdempotencyKey, SimToken
from tests.simulator.conftest import MP_PUBLIC

pytestmark = pytest.mark.django_db


def _decimal_json(response):
    return json.loads(response.content, parse_float=Decimal)


# --- Auth, card tokens and payment methods ------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "message"),
    [(None, "Must provide your access_token to proceed"), ("Bearer TEST-wrong", "invalid access token")],
)
def test_missing_or_wrong_access_token_is_401(mp, header, message):
    extra = {"HTTP_AUTHORIZATION": header} if header else {}
    response = mp.call("get", "/v1/payments/123", key=None, **extra)
    assert response.status_code == 401
    assert response.json() == {"message": message, "error": "unauthorized", "status": 401, "cause": []}


def test_card_token_shape_and_no_card_number_kept(mp):
    response = mp.call(
        "post",
        "/v1/card_tokens",
        {
            "card_number": "5031755734530604",
            "security_code": "123",
            "expiration_month": "11",
            "expiration_year": "2031",
            "cardholder": {"name": "APRO", "identification": {"type": "DNI", "number": "12345678"}},
        },
    )
    assert response.status_code == 201
    token = response.json()
    assert re.fullmatch(r"[0-9a-f]{32}", token["id"])
    assert token["first_six_digits"] == "503175"
    assert token["last_four_digits"] == "0604"
    assert (token["expiration_month"], token["expiration_year"]) == (11, 2031)
    assert token["status"] == "active"
    assert token["luhn_validation"] is True
    assert token["live_mode"] is False
    assert token["card_id"] is None
    assert token["cardholder"] == {"identification": {"number": "12345678", "type": "DNI"}, "name": "APRO"}
    assert token["date_due"] > token["date_created"]
    assert mp.call("get", f"/v1/card_tokens/{token['id']}").json()["id"] == token["id"]
    stored = " ".join(str(value) for value in SimToken.objects.values().get())
    assert "5031755734530604" not in stored


def test_card_token_with_the_public_key_query_param(mp):
    body = {
        "card_number": "4009175332806176",
        "security_code": "123",
        "expiration_month": 11,
        "expiration_year": 2031,
        "cardholder": {"name": "APRO"},
    }
    response = mp.call("post", f"/v1/card_tokens?public_key={MP_PUBLIC}", body, key=None)
    assert response.status_code == 201
    assert mp.call("post", "/v1/card_tokens?public_key=TEST-wrong", body, key=None).status_code == 401
    # The public key does not open the payments API.
    assert mp.call("get", f"/v1/payments/search?public_key={MP_PUBLIC}", key=None).status_code == 401


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"card_number": ""}, "205"),
        ({"card_number": "40091753"}, "E301"),
        ({"security_code": "1"}, "E302"),
        ({"expiration_month": 13}, "325"),
        ({"expiration_year": 2020}, "326"),
        ({"cardholder": {}}, "221"),
    ],
)
def test_card_token_validation(mp, change, code):
    body = {
        "card_number": "4009175332806176",
        "security_code": "123",
        "expiration_month": 11,
        "expiration_year": 2031,
        "cardholder": {"name": "APRO"},
        **change,
    }
    response = mp.call("post", "/v1/card_tokens", body)
    assert response.status_code == 400
    assert response.json()["cause"][0]["code"] == code
    assert response.json()["error"] == "bad_request"


@pytest.mark.parametrize(
    ("bins", "method_id", "payment_type_id"),
    [
        ("400917", "visa", "credit_card"),
        ("503175", "master", "credit_card"),
        ("371180", "amex", "credit_card"),
        ("494133", "debvisa", "debit_card"),
        ("516003", "debmaster", "debit_card"),
    ],
)
def test_payment_methods_search_by_bin(mp, bins, method_id, payment_type_id):
    response = mp.call("get", f"/v1/payment_methods/search?bins={bins}&status=active&public_key={MP_PUBLIC}", key=None)
    assert response.status_code == 200
    found = response.json()
    assert found["paging"] == {"total": 1, "limit": 30, "offset": 0}
    (method,) = found["results"]
    assert (method["id"], method["payment_type_id"], method["status"]) == (method_id, payment_type_id, "active")
    assert method["name"]
    assert set(method["issuer"]) == {"id", "name"}


def test_payment_methods_search_unknown_bin_is_empty(mp):
    found = mp.call("get", "/v1/payment_methods/search?bins=999999").json()
    assert found == {"paging": {"total": 0, "limit": 30, "offset": 0}, "results": []}


# --- Payments -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "status", "detail"),
    [
        ("APRO", "approved", "accredited"),
        ("OTHE", "rejected", "cc_rejected_other_reason"),
        ("CONT", "in_process", "pending_contingency"),
        ("CALL", "rejected", "cc_rejected_call_for_authorize"),
        ("FUND", "rejected", "cc_rejected_insufficient_amount"),
        ("SECU", "rejected", "cc_rejected_bad_filled_security_code"),
        ("EXPI", "rejected", "cc_rejected_bad_filled_date"),
        ("FORM", "rejected", "cc_rejected_bad_filled_other"),
    ],
)
def test_outcome_follows_the_cardholder_name(mp, name, status, detail):
    response = mp.pay(name)
    assert response.status_code == 201  # a rejection is a payment, not an HTTP error
    payment = response.json()
    assert (payment["status"], payment["status_detail"]) == (status, detail)
    assert mp.call("get", f"/v1/payments/{payment['id']}").json()["status"] == status


def test_approved_payment_shape_and_exact_decimals(mp):
    response = mp.pay(
        amount="58.80",
        external_reference="pay_abc",
        metadata={"smartpay_payment_id": "pay_abc"},
        description="Point Mini",
        capture=True,
    )
    assert response.status_code == 201
    assert b'"transaction_amount":58.80,' in response.content
    assert b'"transaction_amount_refunded":0.00,' in response.content
    payment = _decimal_json(response)
    assert isinstance(payment["id"], int) and payment["id"] > 10**9
    assert payment["transaction_amount"] == Decimal("58.80")
    assert payment["currency_id"] == "PEN"
    assert payment["external_reference"] == "pay_abc"
    assert payment["metadata"] == {"smartpay_payment_id": "pay_abc"}
    assert payment["payment_method_id"] == "visa"
    assert payment["payment_type_id"] == "credit_card"
    assert payment["captured"] is True
    assert payment["live_mode"] is False
    assert payment["date_approved"] is not None
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}-04:00", payment["date_created"])
    assert payment["payer"]["email"] == "comprador@example.pe"
    assert payment["card"]["first_six_digits"] == "400917"
    assert payment["card"]["last_four_digits"] == "6176"
    assert payment["card"]["cardholder"]["name"] == "APRO"
    assert payment["transaction_details"]["total_paid_amount"] == Decimal("58.80")
    assert payment["transaction_details"]["net_received_amount"] < Decimal("58.80")
    assert payment["fee_details"][0]["type"] == "mercadopago_fee"
    assert payment["refunds"] == []
    stored = SimCharge.objects.get()
    assert (stored.amount, stored.currency) == (5880, "PEN")


def test_rejected_payment_hides_the_payer_email(mp):
    payment = mp.pay("FUND").json()
    assert payment["payer"]["email"] is None
    assert payment["captured"] is False
    assert payment["fee_details"] == []


@pytest.mark.parametrize(
    ("change", "status", "code"),
    [
        ({"transaction_amount": None}, 400, 4002),
        ({"transaction_amount": "58.80"}, 400, 4003),
        ({"transaction_amount": Decimal("10.005")}, 400, 4037),
        ({"transaction_amount": Decimal("-1")}, 400, 4037),
        ({"installments": None}, 400, 4004),
        ({"installments": "1"}, 400, 4005),
        ({"payment_method_id": None}, 400, 4001),
        ({"payment_method_id": "master"}, 400, 3028),
        ({"payer": {"email": "no"}}, 400, 4050),
        ({"token": None}, 400, 4000),
        ({"token": "f" * 32}, 400, 2006),
        ({"notification_url": "ftp://x"}, 400, 4020),
        ({"payer": {"email": "a@b.pe", "type": "customer", "id": "nope"}}, 400, 2002),
    ],
)
def test_payment_validation_errors(mp, change, status, code):
    body = {
        "transaction_amount": Decimal("10.00"),
        "token": mp.token(),
        "installments": 1,
        "payment_method_id": "visa",
        "payer": {"email": "comprador@example.pe"},
    }
    body.update(change)
    body = {key: value for key, value in body.items() if value is not None}
    response = mp.call("post", "/v1/payments", body, idempotency_key="validation")
    assert response.status_code == status
    error = response.json()
    assert error["status"] == status
    assert error["cause"][0]["code"] == code
    assert set(error) == {"message", "error", "status", "cause"}
    assert SimCharge.objects.count() == 0
    assert SimIdempotencyKey.objects.count() == 0  # a refused request leaves its key free


def test_payment_needs_an_idempotency_key(mp):
    body = {
        "transaction_amount": Decimal("10.00"),
        "token": mp.token(),
        "installments": 1,
        "payment_method_id": "visa",
        "payer": {"email": "a@b.pe"},
    }
    response = mp.call("post", "/v1/payments", body)
    assert response.status_code == 400
    assert response.json()["cause"][0] == {
        "code": 4292,
        "description": "Header X-Idempotency-Key can't be null",
        "data": None,
    }


def test_a_card_token_is_single_use(mp):
    token = mp.token()
    assert mp.pay(token=token).status_code == 201
    again = mp.pay(token=token)
    assert again.status_code == 400
    assert again.json()["cause"][0]["code"] == 3003
    assert SimCharge.objects.count() == 1


def test_idempotency_key_replays_the_same_payment(mp):
    token = mp.token()
    first = mp.pay(token=token, key="attempt-1", external_reference="pay_1")
    again = mp.pay(token=token, key="attempt-1", external_reference="pay_1")
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json()["id"] == first.json()["id"]
    assert again.content == first.content
    assert SimCharge.objects.count() == 1
    different = mp.pay(token=token, key="attempt-1", external_reference="pay_2")
    assert different.status_code == 409
    assert different.json()["error"] == "conflict"
    assert SimCharge.objects.count() == 1


def test_unknown_payment_is_404_2000(mp):
    response = mp.call("get", "/v1/payments/123456789")
    assert response.status_code == 404
    assert response.json() == {
        "message": "Payment not found",
        "error": "not_found",
        "status": 404,
        "cause": [{"code": 2000, "description": "Payment not found", "data": None}],
    }


# --- Capture and cancel -------------------------------------------------------------------------


def test_authorize_then_capture_in_full(mp):
    payment = mp.pay(capture=False, amount="100.00").json()
    assert (payment["status"], payment["status_detail"], payment["captured"]) == (
        "authorized",
        "pending_capture",
        False,
    )
    captured = mp.call("put", f"/v1/payments/{payment['id']}", {"capture": True}, idempotency_key="cap-1")
    assert captured.status_code == 200
    body = captured.json()
    assert (body["status"], body["status_detail"], body["captured"]) == ("approved", "accredited", True)
    assert body["date_approved"] is not None
    again = mp.call("put", f"/v1/payments/{payment['id']}", {"capture": True}, idempotency_key="cap-1")
    assert again.status_code == 200 and again.content == captured.content  # replayed
    refused = mp.call("put", f"/v1/payments/{payment['id']}", {"capture": True})
    assert refused.status_code == 400
    assert refused.json()["cause"][0]["code"] == 2018


def test_partial_capture_captures_that_amount_and_releases_the_rest(mp):
    payment = mp.pay(capture=False, amount="100.00").json()
    response = mp.call(
        "put", f"/v1/payments/{payment['id']}", {"capture": True, "transaction_amount": Decimal("60.00")}
    )
    assert response.status_code == 200
    body = _decimal_json(response)
    assert (body["status"], body["status_detail"], body["captured"]) == ("approved", "accredited", True)
    assert body["transaction_amount"] == Decimal("60.00")
    assert body["transaction_amount_refunded"] == 0
    assert body["refunds"] == []
    over = mp.pay(capture=False, amount="10.00").json()
    too_much = mp.call("put", f"/v1/payments/{over['id']}", {"capture": True, "transaction_amount": Decimal("10.01")})
    assert too_much.status_code == 400


def test_cancel_an_authorization_but_not_an_approved_payment(mp):
    authorized = mp.pay(capture=False).json()
    cancelled = mp.call("put", f"/v1/payments/{authorized['id']}", {"status": "cancelled"})
    assert cancelled.status_code == 200
    assert (cancelled.json()["status"], cancelled.json()["status_detail"]) == ("cancelled", "by_collector")
    pending = mp.pay("CONT").json()
    assert mp.call("put", f"/v1/payments/{pending['id']}", {"status": "cancelled"}).json()["status"] == "cancelled"
    approved = mp.pay().json()
    refused = mp.call("put", f"/v1/payments/{approved['id']}", {"status": "cancelled"})
    assert refused.status_code == 400
    assert refused.json()["cause"][0]["code"] == 2018


# --- Refunds ------------------------------------------------------------------------------------


def test_partial_then_full_refund_and_limits(mp):
    payment_id = mp.pay(amount="100.00").json()["id"]
    partial = mp.call("post", f"/v1/payments/{payment_id}/refunds", {"amount": Decimal("30.00")}, idempotency_key="r1")
    assert partial.status_code == 201
    assert b'"amount":30.00' in partial.content
    refund = partial.json()
    assert isinstance(refund["id"], int)
    assert refund["payment_id"] == payment_id
    assert refund["status"] == "approved"
    assert refund["refund_mode"] == "standard"
    replay = mp.call("post", f"/v1/payments/{payment_id}/refunds", {"amount": Decimal("30.00")}, idempotency_key="r1")
    assert replay.json()["id"] == refund["id"]
    payment = mp.call("get", f"/v1/payments/{payment_id}").json()
    assert (payment["status"], payment["status_detail"]) == ("approved", "partially_refunded")
    assert payment["transaction_amount_refunded"] == 30.0

    over = mp.call("post", f"/v1/payments/{payment_id}/refunds", {"amount": Decimal("70.01")}, idempotency_key="r2")
    assert over.status_code == 400
    assert over.json()["error"] == "bad_request"
    rest = mp.call("post", f"/v1/payments/{payment_id}/refunds", {}, idempotency_key="r3")
    assert rest.status_code == 201
    assert _decimal_json(rest)["amount"] == Decimal("70.00")
    payment = mp.call("get", f"/v1/payments/{payment_id}").json()
    assert (payment["status"], payment["status_detail"]) == ("refunded", "refunded")
    assert len(payment["refunds"]) == 2
    listed = mp.call("get", f"/v1/payments/{payment_id}/refunds").json()
    assert [r["id"] for r in listed] == [r["id"] for r in payment["refunds"]]
    again = mp.call("post", f"/v1/payments/{payment_id}/refunds", {}, idempotency_key="r4")
    assert again.status_code == 400
    assert again.json()["cause"][0]["code"] == 2063


def test_refund_needs_a_key_and_a_positive_amount(mp):
    payment_id = mp.pay().json()["id"]
    assert mp.call("post", f"/v1/payments/{payment_id}/refunds", {}).json()["cause"][0]["code"] == 4292
    negative = mp.call("post", f"/v1/payments/{payment_id}/refunds", {"amount": Decimal("-1")}, idempotency_key="k")
    assert negative.json()["cause"][0]["code"] == 4040
    rejected_id = mp.pay("FUND").json()["id"]
    assert mp.call("post", f"/v1/payments/{rejected_id}/refunds", {}, idempotency_key="k2").status_code == 400


# --- Search -------------------------------------------------------------------------------------


def test_search_by_external_reference(mp):
    first = mp.pay(external_reference="pay_A").json()
    mp.pay(external_reference="pay_B")
    second = mp.pay("FUND", external_reference="pay_A").json()
    response = mp.call(
        "get",
        "/v1/payments/search?external_reference=pay_A&sort=date_created&criteria=desc"
        "&range=date_created&begin_date=NOW-1DAYS&end_date=NOW",
    )
    assert response.status_code == 200
    found = response.json()
    assert found["paging"] == {"total": 2, "limit": 30, "offset": 0}
    assert [p["id"] for p in found["results"]] == [second["id"], first["id"]]
    ascending = mp.call("get", "/v1/payments/search?external_reference=pay_A&criteria=asc&limit=1&offset=1").json()
    assert ascending["paging"] == {"total": 2, "limit": 1, "offset": 1}
    assert [p["id"] for p in ascending["results"]] == [second["id"]]
    iso = mp.call("get", "/v1/payments/search?external_reference=pay_A&begin_date=2099-01-01T00:00:00.000-04:00").json()
    assert iso["results"] == []
    assert mp.call("get", "/v1/payments/search?external_reference=nope").json()["results"] == []


# --- Customers and saved cards ------------------------------------------------------------------


def test_customer_saved_card_and_payment_with_it(mp):
    response = mp.call("post", "/v1/customers", {"email": "ana@example.pe", "first_name": "Ana"}, idempotency_key="c1")
    assert response.status_code == 201
    customer = response.json()
    assert re.fullmatch(r"\d+-[A-Za-z0-9]{14}", customer["id"])
    duplicate = mp.call("post", "/v1/customers", {"email": "ana@example.pe"})
    assert duplicate.status_code == 400
    assert duplicate.json()["cause"][0]["code"] == 101
    found = mp.call("get", "/v1/customers/search?email=ana@example.pe").json()
    assert found["paging"]["total"] == 1 and found["results"][0]["id"] == customer["id"]

    saved = mp.call("post", f"/v1/customers/{customer['id']}/cards", {"token": mp.token()}, idempotency_key="card-1")
    assert saved.status_code == 201
    card = saved.json()
    assert card["customer_id"] == customer["id"]
    assert (card["first_six_digits"], card["last_four_digits"]) == ("400917", "6176")
    assert card["payment_method"]["id"] == "visa"
    assert card["cardholder"]["name"] == "APRO"
    assert mp.call("get", f"/v1/customers/{customer['id']}/cards/{card['id']}").json()["id"] == card["id"]
    assert [c["id"] for c in mp.call("get", f"/v1/customers/{customer['id']}/cards").json()] == [card["id"]]

    token = mp.call("post", "/v1/card_tokens", {"card_id": card["id"], "customer_id": customer["id"]}).json()
    assert token["card_id"] == card["id"] and token["first_six_digits"] == "400917"
    payment = mp.pay(token=token["id"], payer={"type": "customer", "id": customer["id"], "email": "ana@example.pe"})
    assert payment.status_code == 201
    assert payment.json()["status"] == "approved"
    assert payment.json()["card"]["id"] == card["id"]
    assert payment.json()["payer"]["id"] == customer["id"]

    deleted = mp.call("delete", f"/v1/customers/{customer['id']}/cards/{card['id']}")
    assert deleted.status_code == 200 and deleted.json()["id"] == card["id"]
    assert mp.call("get", f"/v1/customers/{customer['id']}/cards/{card['id']}").status_code == 404
    assert mp.call("post", "/v1/card_tokens", {"card_id": card["id"], "customer_id": customer["id"]}).status_code == 404


def test_saved_card_of_another_customer_cannot_be_tokenized(mp):
    owner = mp.call("post", "/v1/customers", {"email": "owner@example.pe"}).json()
    other = mp.call("post", "/v1/customers", {"email": "other@example.pe"}).json()
    card = mp.call("post", f"/v1/customers/{owner['id']}/cards", {"token": mp.token()}).json()
    response = mp.call("post", "/v1/card_tokens", {"card_id": card["id"], "customer_id": other["id"]})
    assert response.status_code == 404


# --- Checkout Pro -------------------------------------------------------------------------------

BACK_URLS = {
    "success": "https://shop.example/return?r=ok",
    "failure": "https://shop.example/return?r=ko",
    "pending": "https://shop.example/return?r=wait",
}


def _preference(mp, **change):
    body = {
        "items": [
            {
                "id": "pay_xyz",
                "title": "Plan anual",
                "quantity": 2,
                "currency_id": "PEN",
                "unit_price": Decimal("29.90"),
            }
        ],
        "payer": {"email": "ana@example.pe"},
        "back_urls": BACK_URLS,
        "auto_return": "approved",
        "external_reference": "pay_xyz",
        "metadata": {"smartpay_payment_id": "pay_xyz"},
        **change,
    }
    return mp.call("post", "/checkout/preferences", body, idempotency_key="pref-1")


def test_preference_create_and_get(mp):
    response = _preference(mp)
    assert response.status_code == 201
    assert b'"unit_price":29.90' in response.content
    preference = response.json()
    assert re.fullmatch(r"\d+-[0-9a-f-]{36}", preference["id"])
    assert preference["init_point"] == f"http://testserver/sandbox/mercadopago/checkout/{preference['id']}"
    assert preference["external_reference"] == "pay_xyz"
    assert preference["back_urls"] == BACK_URLS
    assert _decimal_json(response)["total_amount"] == Decimal("59.80")
    fetched = mp.call("get", f"/checkout/preferences/{preference['id']}")
    assert fetched.status_code == 200 and fetched.json()["id"] == preference["id"]
    bad = mp.call("post", "/checkout/preferences", {"items": [], "back_urls": BACK_URLS})
    assert bad.status_code == 400
    no_success = mp.call(
        "post",
        "/checkout/preferences",
        {"items": [{"title": "x", "quantity": 1, "unit_price": Decimal("1.00")}], "auto_return": "approved"},
    )
    assert no_success.json()["message"] == "auto_return invalid. back_url.success must be defined"


@pytest.mark.parametrize(
    ("outcome", "status", "back"),
    [("APRO", "approved", "ok"), ("FUND", "rejected", "ko"), ("CONT", "in_process", "wait")],
)
def test_hosted_checkout_pays_and_redirects_with_the_real_params(mp, client, outcome, status, back):
    preference = _preference(mp).json()
    page = client.get(f"/sandbox/mercadopago/checkout/{preference['id']}")
    assert page.status_code == 200
    assert b"59.80" in page.content and b'name="outcome"' in page.content
    response = client.post(f"/sandbox/mercadopago/checkout/{preference['id']}", {"outcome": outcome})
    assert response.status_code == 302
    location = urlsplit(response["Location"])
    assert (location.scheme, location.netloc, location.path) == ("https", "shop.example", "/return")
    params = {key: values[0] for key, values in parse_qs(location.query).items()}
    charge = SimCharge.objects.get()
    assert params["r"] == back
    assert params["collection_id"] == params["payment_id"] == charge.public_id
    assert params["collection_status"] == params["status"] == status
    assert params["external_reference"] == "pay_xyz"
    assert params["preference_id"] == preference["id"]
    assert params["merchant_order_id"].isdigit()
    assert params["site_id"] == "MPE"
    payment = mp.call("get", f"/v1/payments/{charge.public_id}").json()
    assert payment["external_reference"] == "pay_xyz"
    assert payment["metadata"] == {"smartpay_payment_id": "pay_xyz"}
    assert payment["transaction_amount"] == 59.8
    assert payment["status"] == status


def test_hosted_checkout_does_not_charge_an_approved_preference_twice(mp, client):
    preference_id = _preference(mp).json()["id"]
    client.post(f"/sandbox/mercadopago/checkout/{preference_id}", {"outcome": "FUND"})
    client.post(f"/sandbox/mercadopago/checkout/{preference_id}", {"outcome": "APRO"})
    client.post(f"/sandbox/mercadopago/checkout/{preference_id}", {"outcome": "APRO"})
    assert sorted(SimCharge.objects.values_list("status", flat=True)) == ["approved", "rejected"]
    assert client.get("/sandbox/mercadopago/checkout/nope").status_code == 404
