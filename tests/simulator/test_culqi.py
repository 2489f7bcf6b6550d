"""The Culqi simulator speaks Culqi API v2 (docs/reference/culqi.md): tokens, charges, refunds, cards, orders."""

import re
import time

import pytest

from payments.gateways.simulator.models import SimCharge, SimCheckout, SimRefund, SimToken
from tests.simulator.conftest import CULQI_PK

pytestmark = pytest.mark.django_db

TOKEN_ID = re.compile(r"^tkn_test_[A-Za-z0-9]{16}$")
CHARGE_ID = re.compile(r"^chr_test_[A-Za-z0-9]{16}$")


# --- Tokens -------------------------------------------------------------------------------------


def test_token_is_the_recorded_shape_and_keeps_no_card_number(culqi):
    response = culqi.call(
        "post",
        "/v2/tokens",
        {
            "card_number": "4111111111111111",
            "cvv": "123",
            "expiration_month": "09",
            "expiration_year": "2031",
            "email": "richard@piedpiper.com",
            "metadata": {"order": "42"},
        },
        key=CULQI_PK,
    )
    assert response.status_code == 201
    assert response["Content-Type"] == "application/json;charset=UTF-8"
    assert response["x-culqi-environment"] == "test"
    token = response.json()
    assert TOKEN_ID.match(token["id"])
    assert token["object"] == "token"
    assert token["type"] == "card"
    assert token["card_number"] == "411111******1111"
    assert token["last_four"] == "1111"
    assert token["active"] is True
    assert token["email"] == "richard@piedpiper.com"
    assert token["metadata"] == {"order": "42"}
    assert token["creation_date"] % 1000 == 0 and token["creation_date"] > 1_600_000_000_000
    assert token["iin"]["object"] == "iin"
    assert token["iin"]["bin"] == "411111"
    assert token["iin"]["card_brand"] == "Visa"
    assert token["iin"]["card_type"] == "credito"
    assert set(token["client"]) == {
        "ip",
        "ip_country",
        "ip_country_code",
        "browser",
        "device_fingerprint",
        "device_type",
    }
    stored = " ".join(str(value) for value in SimToken.objects.values().get())
    assert "4111111111111111" not in stored
    assert "'123'" not in stored  # the CVV is not kept either


@pytest.mark.parametrize(
    ("number", "brand"),
    [("5111111111111118", "MasterCard"), ("371212121212122", "Amex"), ("36001212121210", "Diners")],
)
def test_token_brand_comes_from_the_bin(culqi, number, brand):
    token_id = culqi.token(number, cvv="2841" if brand == "Amex" else "123")
    assert culqi.call("get", f"/v2/tokens/{token_id}").json()["iin"]["card_brand"] == brand


@pytest.mark.parametrize(
    ("field", "value", "param"),
    [
        ("card_number", "4111111111111112", "card_number"),  # fails Luhn
        ("card_number", "41111111", "card_number"),
        ("cvv", "12", "cvv"),
        ("cvv", "12a", "cvv"),
        ("expiration_month", "13", "expiration_month"),
        ("expiration_year", "2020", "expiration_year"),  # in the past
        ("email", "nope", "email"),
    ],
)
def test_token_validation_is_a_400_parameter_error(culqi, field, value, param):
    body = {
        "card_number": "4111111111111111",
        "cvv": "123",
        "expiration_month": "09",
        "expiration_year": "2031",
        "email": "a@example.pe",
    }
    body[field] = value
    response = culqi.call("post", "/v2/tokens", body, key=CULQI_PK)
    assert response.status_code == 400
    error = response.json()
    assert error["object"] == "error"
    assert error["type"] == "parameter_error"
    assert error["param"] == param
    assert error["merchant_message"]
    assert SimToken.objects.count() == 0


@pytest.mark.parametrize("header", [None, "Bearer", "Bearer sk_test_wrong", "Basic abc", "Bearer pk_test_wrong"])
def test_missing_or_wrong_key_is_401_authentication_error(culqi, header):
    extra = {"HTTP_AUTHORIZATION": header} if header else {}
    response = culqi.call("post", "/v2/charges", {"amount": 1000}, key=None, **extra)
    assert response.status_code == 401
    body = response.json()
    assert body["object"] == "error"
    assert body["type"] == "authentication_error"
    assert body["merchant_message"]


def test_public_key_tokenizes_but_cannot_charge(culqi):
    token_id = culqi.token()
    response = culqi.call(
        "post",
        "/v2/charges",
        {"amount": 1000, "currency_code": "PEN", "email": "a@b.pe", "source_id": token_id},
        key=CULQI_PK,
    )
    assert response.status_code == 401
    assert SimCharge.objects.count() == 0


# --- Charges ------------------------------------------------------------------------------------


def test_approved_charge_is_the_recorded_shape(culqi):
    response = culqi.charge(
        amount=1000, capture=True, description="Venta de prueba", metadata={"smartpay_payment_id": "pay_123"}
    )
    assert response.status_code == 201
    charge = response.json()
    assert CHARGE_ID.match(charge["id"])
    assert charge["object"] == "charge"
    assert charge["duplicated"] is False
    assert charge["amount"] == 1000
    assert charge["amount_refunded"] == 0
    assert charge["current_amount"] == 1000
    assert charge["currency_code"] == "PEN"
    assert charge["installments"] == 1
    assert charge["installments_amount"] == 1000
    assert charge["outcome"] == {
        "type": "venta_exitosa",
        "code": "AUT0000",
        "merchant_message": "La operación de venta ha sido autorizada exitosamente",
        "user_message": "Su compra ha sido exitosa.",
    }
    assert charge["capture"] is True
    assert charge["capture_date"] is None  # filled asynchronously at Culqi
    assert charge["metadata"] == {"smartpay_payment_id": "pay_123"}
    assert charge["source"]["object"] == "token"
    assert charge["source"]["card_number"] == "411111******1111"
    assert re.fullmatch(r"[A-Za-z0-9]{10}", charge["reference_code"])
    assert re.fullmatch(r"[A-Za-z0-9]{6}", charge["authorization_code"])
    assert charge["total_fee"] == 47  # 3.99 % + IGV of 1000 (§15)
    assert charge["total_fee_taxes"] == 7
    assert charge["transfer_amount"] == 953
    assert charge["fee_details"]["variable_fee"]["total"] == 40
    assert b'"commision":0.0399' in response.content
    assert charge["paid"] is False
    assert isinstance(charge["creation_date"], int) and charge["creation_date"] % 1000 == 0
    assert abs(charge["creation_date"] / 1000 - time.time()) < 60
    fetched = culqi.call("get", f"/v2/charges/{charge['id']}").json()
    assert fetched["capture_date"] is not None
    assert {k: v for k, v in fetched.items() if k != "capture_date"} == {
        k: v for k, v in charge.items() if k != "capture_date"
    }


def test_amount_may_be_a_numeric_string(culqi):
    response = culqi.charge(amount="10000")
    assert response.status_code == 201
    assert response.json()["amount"] == 10000


@pytest.mark.parametrize(
    ("number", "decline_code"),
    [
        ("4000040000000008", "insufficient_funds"),
        ("4000020000000000", "stolen_card"),
        ("4000030000000009", "lost_card"),
        ("5400000000000005", "contact_issuer"),
        ("5400020000000003", "incorrect_cvv"),
        ("370001000000000", "issuer_not_available"),
        ("370002000000008", "issuer_decline_operation"),
        ("36000000000008", "invalid_card"),
        ("36000100000007", "processing_error"),
        ("36000200000006", "fraudulent"),
    ],
)
def test_decline_cards_answer_402_with_a_stored_charge(culqi, number, decline_code):
    response = culqi.charge(number=number)
    assert response.status_code == 402
    error = response.json()
    assert error["object"] == "error"
    assert error["type"] == "card_error"
    assert error["code"] == "card_declined"
    assert error["decline_code"] == decline_code
    assert error["merchant_message"] and error["user_message"]
    assert CHARGE_ID.match(error["charge_id"])
    stored = culqi.call("get", f"/v2/charges/{error['charge_id']}")
    assert stored.status_code == 200
    charge = stored.json()
    assert charge["outcome"]["type"] == "card_error"
    assert charge["outcome"]["decline_code"] == decline_code
    assert charge["capture"] is None
    assert charge["installments"] == 0


def test_insufficient_funds_message_is_culqis(culqi):
    error = culqi.charge(number="4000040000000008").json()
    assert error["merchant_message"] == (
        "Fondos insuficientes. La tarjeta no tiene fondos suficientes para realizar la compra."
    )


def test_a_token_is_single_use(culqi):
    token_id = culqi.token()
    assert culqi.charge(token_id).status_code == 201
    again = culqi.charge(token_id)
    assert again.status_code == 400
    error = again.json()
    assert error["type"] == "parameter_error"
    assert error["param"] == "source_id"
    assert "5 minutos" in error["merchant_message"]
    assert SimCharge.objects.count() == 1


def test_a_declined_charge_also_spends_the_token(culqi):
    token_id = culqi.token("4000040000000008")
    assert culqi.charge(token_id).status_code == 402
    assert culqi.charge(token_id).status_code == 400


def test_an_expired_token_is_refused(culqi):
    token_id = culqi.token()
    SimToken.objects.filter(public_id=token_id).update(expires_at=SimToken.objects.get().created_at)
    response = culqi.charge(token_id)
    assert response.status_code == 400
    assert response.json()["param"] == "source_id"


@pytest.mark.parametrize("number", ["4456530000001096", "4456530000001005", "5200000000001013"])
def test_3ds_card_answers_review_then_succeeds_with_authentication(culqi, number):
    token_id = culqi.token(number, cvv="111", email="review@culqi.com")
    review = culqi.charge(token_id, email="review@culqi.com")
    assert review.status_code == 200
    body = review.json()
    assert body["action_code"] == "REVIEW"
    assert body["user_message"]
    assert "id" not in body and "object" not in body
    assert SimCharge.objects.count() == 0
    authenticated = culqi.charge(
        token_id,
        email="review@culqi.com",
        authentication_3DS={
            "eci": "05",
            "xid": "Y2FyZGluYWxjb21tZXJjZWF1dGg=",
            "cavv": "AAABAWFlmQAAAABjRWWZEEFgFz+=",
            "protocolVersion": "2.1.0",
            "directoryServerTransactionId": "88debec7-a798-46d1-bcfb-db3075fedb82",
        },
    )
    assert authenticated.status_code == 201
    assert authenticated.json()["outcome"]["type"] == "venta_exitosa"


@pytest.mark.parametrize(
    ("change", "param"),
    [
        ({"amount": "diez"}, "amount"),
        ({"amount": 299}, "amount"),
        ({"amount": 1_000_000}, "amount"),
        ({"amount": 10.5}, "amount"),
        ({"amount": True}, "amount"),
        ({"currency_code": "EUR"}, "currency_code"),
        ({"email": "x"}, "email"),
        ({"source_id": ""}, "source_id"),
        ({"source_id": "tkn_test_doesnotexist0001"}, "source_id"),
        ({"capture": "yes"}, "capture"),
        ({"description": "abc"}, "description"),
        ({"metadata": {"k" * 31: "v"}}, "metadata"),
    ],
)
def test_charge_validation_names_the_param(culqi, change, param):
    body = {"amount": 1000, "currency_code": "PEN", "email": "a@example.pe", "source_id": culqi.token(), **change}
    response = culqi.call("post", "/v2/charges", body)
    assert response.status_code == 400
    assert response.json()["type"] == "parameter_error"
    assert response.json()["param"] == param
    assert SimCharge.objects.count() == 0


def test_body_that_is_not_json_is_invalid_request_error(culqi):
    response = culqi.client.post(
        "/sandbox/culqi/v2/charges",
        data="{nope",
        content_type="application/json",
        HTTP_AUTHORIZATION="Bearer sk_test_simulatorSecret01",
    )
    assert response.status_code == 400
    assert response.json()["type"] == "invalid_request_error"


def test_unknown_charge_is_404_resource_error(culqi):
    response = culqi.call("get", "/v2/charges/chr_test_0000000000000000")
    assert response.status_code == 404
    assert response.json()["type"] == "resource_error"


# --- Capture ------------------------------------------------------------------------------------


def test_capture_of_an_authorization(culqi):
    charge = culqi.charge(capture=False).json()
    assert charge["capture"] is False
    captured = culqi.call("post", f"/v2/charges/{charge['id']}/capture")
    assert captured.status_code == 201
    assert captured.json()["capture"] is True
    assert captured.json()["id"] == charge["id"]
    again = culqi.call("post", f"/v2/charges/{charge['id']}/capture")
    assert again.status_code == 400
    assert again.json()["type"] == "parameter_error"


def test_capture_of_a_captured_or_declined_charge_is_refused(culqi):
    captured = culqi.charge(capture=True).json()
    assert culqi.call("post", f"/v2/charges/{captured['id']}/capture").status_code == 400
    declined = culqi.charge(number="4000040000000008").json()
    assert culqi.call("post", f"/v2/charges/{declined['charge_id']}/capture").status_code == 400


# --- Refunds ------------------------------------------------------------------------------------


def test_refunds_up_to_the_remaining_amount(culqi):
    charge_id = culqi.charge(amount=1000).json()["id"]
    first = culqi.call("post", "/v2/refunds", {"amount": 400, "charge_id": charge_id, "reason": "solicitud_comprador"})
    assert first.status_code == 201
    refund = first.json()
    assert refund["object"] == "refund"
    assert refund["id"].startswith("ref_test_")
    assert refund["charge_id"] == charge_id
    assert refund["amount"] == 400
    assert refund["reason"] == "Devolución solicitada por el comercio"
    assert refund["metadata"] == {}
    charge = culqi.call("get", f"/v2/charges/{charge_id}").json()
    assert charge["amount_refunded"] == 400
    assert charge["current_amount"] == 600
    assert charge["operations"][0]["type"] == "devolución"
    assert charge["operations"][0]["id"] == refund["id"]
    assert charge["operations"][0]["amount"] == 400

    over = culqi.call("post", "/v2/refunds", {"amount": 601, "charge_id": charge_id, "reason": "duplicado"})
    assert over.status_code == 400
    assert over.json()["type"] == "parameter_error"
    assert over.json()["param"] == "amount"
    rest = culqi.call("post", "/v2/refunds", {"amount": 600, "charge_id": charge_id, "reason": "fraudulento"})
    assert rest.status_code == 201
    assert rest.json()["reason"] == "Fraudulento"
    charge = culqi.call("get", f"/v2/charges/{charge_id}").json()
    assert (charge["amount_refunded"], charge["current_amount"]) == (1000, 0)
    assert (
        culqi.call("post", "/v2/refunds", {"amount": 1, "charge_id": charge_id, "reason": "duplicado"}).status_code
        == 400
    )
    assert SimRefund.objects.count() == 2


@pytest.mark.parametrize(
    ("change", "param"),
    [
        ({"reason": "porque_si"}, "reason"),
        ({"amount": 0}, "amount"),
        ({"charge_id": "chr_test_nope000000000000"}, "charge_id"),
    ],
)
def test_refund_validation(culqi, change, param):
    charge_id = culqi.charge().json()["id"]
    body = {"amount": 100, "charge_id": charge_id, "reason": "duplicado", **change}
    response = culqi.call("post", "/v2/refunds", body)
    assert response.status_code == 400
    assert response.json()["param"] == param


def test_declined_charge_cannot_be_refunded(culqi):
    charge_id = culqi.charge(number="4000040000000008").json()["charge_id"]
    response = culqi.call("post", "/v2/refunds", {"amount": 100, "charge_id": charge_id, "reason": "duplicado"})
    assert response.status_code == 400
    assert response.json()["param"] == "charge_id"


def test_full_refund_of_an_uncaptured_charge_voids_it(culqi):
    charge_id = culqi.charge(capture=False, amount=1000).json()["id"]
    partial = culqi.call(
        "post", "/v2/refunds", {"amount": 100, "charge_id": charge_id, "reason": "solicitud_comprador"}
    )
    assert partial.status_code == 201  # observed at Culqi on an uncaptured charge (§6)
    assert (
        culqi.call(
            "post", "/v2/refunds", {"amount": 900, "charge_id": charge_id, "reason": "solicitud_comprador"}
        ).status_code
        == 201
    )
    charge = culqi.call("get", f"/v2/charges/{charge_id}").json()
    assert (charge["capture"], charge["current_amount"], charge["amount_refunded"]) == (False, 0, 1000)
    assert culqi.call("post", f"/v2/charges/{charge_id}/capture").status_code == 400
    assert SimCharge.objects.get(public_id=charge_id).status == "voided"


# --- Listing ------------------------------------------------------------------------------------


def test_list_filters_and_cursor_paging_newest_first(culqi):
    ids = [culqi.charge(email="lista@example.pe", amount=1000 + i).json()["id"] for i in range(3)]
    culqi.charge(email="otra@example.pe")
    first = culqi.call("get", "/v2/charges?email=lista@example.pe&limit=2").json()
    assert [c["id"] for c in first["data"]] == [ids[2], ids[1]]
    assert first["paging"]["cursors"] == {"before": ids[2], "after": ids[1]}
    assert first["paging"]["remaining_items"] == 1
    assert first["paging"]["next"].endswith(f"after={ids[1]}")
    assert "limit=2" in first["paging"]["next"] and "email=lista%40example.pe" in first["paging"]["next"]
    second = culqi.call("get", f"/v2/charges?email=lista@example.pe&limit=2&after={ids[1]}").json()
    assert [c["id"] for c in second["data"]] == [ids[0]]
    assert second["paging"]["remaining_items"] == 0
    back = culqi.call("get", f"/v2/charges?email=lista@example.pe&limit=2&before={ids[0]}").json()
    assert [c["id"] for c in back["data"]] == [ids[2], ids[1]]
    both = culqi.call("get", f"/v2/charges?email=lista@example.pe&before={ids[0]}&after={ids[2]}").json()
    assert [c["id"] for c in both["data"]] == [ids[2], ids[1]]  # `before` wins
    assert [c["id"] for c in culqi.call("get", "/v2/charges?amount=1001").json()["data"]] == [ids[1]]
    assert culqi.call("get", "/v2/charges?currency_code=USD").json()["data"] == []
    empty = culqi.call("get", "/v2/charges?email=nadie@example.pe").json()
    assert empty == {
        "data": [],
        "paging": {"previous": None, "next": None, "cursors": {"before": None, "after": None}, "remaining_items": 0},
    }


def test_list_date_filters_take_seconds_or_milliseconds(culqi):
    charge_id = culqi.charge().json()["id"]
    now = int(time.time())
    for value in (now - 60, (now - 60) * 1000):
        found = culqi.call("get", f"/v2/charges?creation_date_from={value}").json()["data"]
        assert [c["id"] for c in found] == [charge_id]
    assert culqi.call("get", f"/v2/charges?creation_date_from={now + 60}").json()["data"] == []
    assert culqi.call("get", f"/v2/charges?creation_date_to={now - 60}").json()["data"] == []


def test_bad_limit_is_a_parameter_error(culqi):
    assert culqi.call("get", "/v2/charges?limit=0").json()["param"] == "limit"
    assert culqi.call("get", "/v2/charges?limit=101").status_code == 400


# --- Customers and saved cards ------------------------------------------------------------------

CUSTOMER = {
    "first_name": "Richard",
    "last_name": "Piedpiper",
    "email": "richard@piedpiper.com",
    "address": "Avenida Lima 123213",
    "address_city": "LIMA",
    "country_code": "PE",
    "phone_number": "+51998989789",
}


def test_customer_card_and_a_charge_on_the_saved_card(culqi):
    response = culqi.call("post", "/v2/customers", CUSTOMER)
    assert response.status_code == 201
    customer = response.json()
    assert customer["object"] == "customer"
    assert customer["id"].startswith("cus_test_")
    assert customer["antifraud_details"] == {
        "first_name": "Richard",
        "last_name": "Piedpiper",
        "address": "Avenida Lima 123213",
        "address_city": "LIMA",
        "country_code": "PE",
        "phone": "+51998989789",
        "object": "client",
    }
    created = culqi.call(
        "post", "/v2/cards", {"customer_id": customer["id"], "token_id": culqi.token(), "validate": True}
    )
    assert created.status_code == 201
    card = created.json()
    assert card["object"] == "card"
    assert card["id"].startswith("crd_test_")
    assert card["active"] is True
    assert card["customer_id"] == customer["id"]
    assert card["source"]["object"] == "token"
    assert card["source"]["last_four"] == "1111"
    assert culqi.call("get", f"/v2/cards/{card['id']}").json() == card
    assert [c["id"] for c in culqi.call("get", f"/v2/customers/{customer['id']}").json()["cards"]] == [card["id"]]

    charge = culqi.charge(card["id"], HTTP_X_CHARGE_CHANNEL="recurrent")
    assert charge.status_code == 201
    assert charge.json()["source"]["object"] == "card"
    assert charge.json()["source"]["id"] == card["id"]
    assert culqi.charge(card["id"]).status_code == 201  # a saved card is not single use

    deleted = culqi.call("delete", f"/v2/cards/{card['id']}")
    assert deleted.status_code == 200
    assert deleted.json() == {
        "id": card["id"],
        "deleted": True,
        "merchant_message": f"Se eliminó la tarjeta con ID {card['id']} exitosamente.",
    }
    assert culqi.call("get", f"/v2/cards/{card['id']}").status_code == 404
    assert culqi.charge(card["id"]).status_code == 400


def test_saved_decline_card_declines_its_charges(culqi):
    customer_id = culqi.call("post", "/v2/customers", CUSTOMER).json()["id"]
    token_id = culqi.token("4000040000000008")
    card_id = culqi.call(
        "post", "/v2/cards", {"customer_id": customer_id, "token_id": token_id, "validate": False}
    ).json()["id"]
    response = culqi.charge(card_id)
    assert response.status_code == 402
    assert response.json()["decline_code"] == "insufficient_funds"


def test_card_whose_validation_is_declined_is_a_400_card_error(culqi):
    customer_id = culqi.call("post", "/v2/customers", CUSTOMER).json()["id"]
    response = culqi.call(
        "post", "/v2/cards", {"customer_id": customer_id, "token_id": culqi.token("4000020000000000")}
    )
    assert response.status_code == 400
    error = response.json()
    assert (error["type"], error["code"], error["decline_code"]) == ("card_error", "card_declined", "stolen_card")
    validation = culqi.call("get", f"/v2/charges/{error['charge_id']}").json()
    assert validation["amount"] == 100
    assert validation["description"] == "Validacion de tarjeta"


def test_3ds_card_save_answers_review(culqi):
    customer_id = culqi.call("post", "/v2/customers", CUSTOMER).json()["id"]
    response = culqi.call(
        "post", "/v2/cards", {"customer_id": customer_id, "token_id": culqi.token("4456530000001096", cvv="111")}
    )
    assert response.status_code == 200
    assert response.json()["action_code"] == "REVIEW"


def test_customer_delete_and_validation(culqi):
    missing = culqi.call("post", "/v2/customers", {**CUSTOMER, "country_code": "Peru"})
    assert missing.status_code == 400 and missing.json()["param"] == "country_code"
    customer_id = culqi.call("post", "/v2/customers", CUSTOMER).json()["id"]
    deleted = culqi.call("delete", f"/v2/customers/{customer_id}").json()
    assert deleted["deleted"] is True and deleted["id"] == customer_id
    assert culqi.call("get", f"/v2/customers/{customer_id}").status_code == 404


# --- Orders and the hosted checkout page --------------------------------------------------------


def _order(culqi, **change):
    body = {
        "amount": 1500,
        "currency_code": "PEN",
        "description": "Pedido de prueba",
        "order_number": "pay_abc123",
        "expiration_date": int(time.time()) + 3600,
        "client_details": {
            "first_name": "Ana",
            "last_name": "Quispe",
            "email": "ana@example.pe",
            "phone_number": "999999999",
        },
        "confirm": False,
        "metadata": {"smartpay_payment_id": "pay_abc123"},
        **change,
    }
    return culqi.call("post", "/v2/orders", body)


def test_order_create_and_get(culqi):
    response = _order(culqi)
    assert response.status_code == 201
    order = response.json()
    assert order["object"] == "order"
    assert order["id"].startswith("ord_test_")
    assert order["state"] == "created"
    assert order["payment_code"] is None
    assert order["amount"] == 1500
    assert order["order_number"] == "pay_abc123"
    assert abs(order["creation_date"] - time.time()) < 60  # seconds, not milliseconds
    assert order["expiration_date"] > order["creation_date"]
    assert order["metadata"] == {"smartpay_payment_id": "pay_abc123"}
    assert culqi.call("get", f"/v2/orders/{order['id']}").json() == order
    duplicate = _order(culqi)
    assert duplicate.status_code == 400
    assert duplicate.json()["param"] == "order_number"
    confirmed = culqi.call("post", f"/v2/orders/{order['id']}/confirm").json()
    assert confirmed["state"] == "pending" and confirmed["payment_code"]


@pytest.mark.parametrize(
    ("change", "param"),
    [
        ({"amount": 599}, "amount"),
        ({"expiration_date": int(time.time()) - 10}, "expiration_date"),
        ({"client_details": {"first_name": "Ana"}}, "client_details.last_name"),
        ({"description": "abc"}, "description"),
    ],
)
def test_order_validation(culqi, change, param):
    response = _order(culqi, **change)
    assert response.status_code == 400
    assert response.json()["param"] == param


def test_checkout_page_pays_the_order_and_redirects(culqi, client):
    order_id = _order(culqi).json()["id"]
    page = client.get(f"/sandbox/culqi/checkout/{order_id}?return_url=https://shop.example/back?x=1")
    assert page.status_code == 200
    assert b"Pedido de prueba" in page.content and b"15.00" in page.content
    assert b'name="card"' in page.content
    response = client.post(
        f"/sandbox/culqi/checkout/{order_id}", {"card": "approve", "return_url": "https://shop.example/back?x=1"}
    )
    assert response.status_code == 302
    charge = SimCharge.objects.get()
    assert response["Location"] == f"https://shop.example/back?x=1&order_id={order_id}&charge_id={charge.public_id}"
    assert charge.metadata == {"smartpay_payment_id": "pay_abc123"}
    assert (charge.amount, charge.currency, charge.email, charge.status) == (1500, "PEN", "ana@example.pe", "captured")
    order = culqi.call("get", f"/v2/orders/{order_id}").json()
    assert order["state"] == "paid"
    assert order["paid_at"] is not None
    # Submitting again does not charge twice.
    again = client.post(
        f"/sandbox/culqi/checkout/{order_id}", {"card": "approve", "return_url": "https://shop.example/r"}
    )
    assert again.status_code == 302 and charge.public_id in again["Location"]
    assert SimCharge.objects.count() == 1


def test_checkout_page_decline_leaves_the_order_unpaid(culqi, client):
    order_id = _order(culqi).json()["id"]
    response = client.post(
        f"/sandbox/culqi/checkout/{order_id}?return_url=https://shop.example/back", {"card": "insufficient_funds"}
    )
    assert response.status_code == 302
    charge = SimCharge.objects.get()
    assert charge.status_detail == "insufficient_funds"
    assert f"charge_id={charge.public_id}" in response["Location"]
    assert SimCheckout.objects.get().state == "created"
    assert (
        culqi.call("get", f"/v2/charges/{charge.public_id}").json()["outcome"]["decline_code"] == "insufficient_funds"
    )


def test_checkout_page_unknown_order_and_bad_choice(culqi, client):
    assert client.get("/sandbox/culqi/checkout/ord_test_nope000000000000").status_code == 404
    order_id = _order(culqi).json()["id"]
    assert client.post(f"/sandbox/culqi/checkout/{order_id}", {"card": "bogus"}).status_code == 400
    assert SimCharge.objects.count() == 0
