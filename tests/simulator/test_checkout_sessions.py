"""Hosted checkout sessions in both simulators: a declined try leaves the session payable on the same
page; a session deleted (Culqi `DELETE /v2/orders/{id}`) or expired (Mercado Pago `PUT
/checkout/preferences/{id}` with `expires` + `expiration_date_to`) is refused by its page."""

import json
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from payments.gateways.simulator.models import SimCharge, SimCheckout
from tests.simulator.conftest import CULQI_PK

pytestmark = pytest.mark.django_db


# --- Culqi: orders ----------------------------------------------------------------------------------------


def _order(culqi, number="pay_sess01"):
    body = {
        "amount": 1500,
        "currency_code": "PEN",
        "description": "Pedido de prueba",
        "order_number": number,
        "expiration_date": int(time.time()) + 3600,
        "client_details": {
            "first_name": "Ana",
            "last_name": "Quispe",
            "email": "ana@example.pe",
            "phone_number": "999999999",
        },
        "confirm": False,
        "metadata": {"smartpay_payment_id": number},
    }
    response = culqi.call("post", "/v2/orders", body)
    assert response.status_code == 201, response.content
    return response.json()["id"]


def _culqi_page(order_id):
    return f"/sandbox/culqi/checkout/{order_id}"


def test_delete_an_open_order(culqi, client):
    order_id = _order(culqi)

    response = culqi.call("delete", f"/v2/orders/{order_id}")

    assert response.status_code == 204
    assert response.content == b""
    assert response["x-culqi-environment"] == "test"
    assert culqi.call("get", f"/v2/orders/{order_id}").json()["state"] == "deleted"


def test_delete_a_confirmed_order(culqi):
    order_id = _order(culqi)
    culqi.call("post", f"/v2/orders/{order_id}/confirm")

    assert culqi.call("delete", f"/v2/orders/{order_id}").status_code == 204
    assert culqi.call("get", f"/v2/orders/{order_id}").json()["state"] == "deleted"


def test_a_paid_order_cannot_be_deleted(culqi, client):
    order_id = _order(culqi)
    client.post(_culqi_page(order_id), {"card": "approve"})

    response = culqi.call("delete", f"/v2/orders/{order_id}")

    assert response.status_code == 400
    error = response.json()
    assert (error["object"], error["type"], error["param"]) == ("error", "parameter_error", "order_id")
    assert "paid" in error["merchant_message"]
    assert culqi.call("get", f"/v2/orders/{order_id}").json()["state"] == "paid"


def test_only_an_open_order_can_be_deleted(culqi):
    deleted = _order(culqi, "pay_sess02")
    culqi.call("delete", f"/v2/orders/{deleted}")
    expired = _order(culqi, "pay_sess03")
    SimCheckout.objects.filter(public_id=expired).update(expires_at=timezone.now() - timedelta(seconds=1))

    for order_id, state in ((deleted, "deleted"), (expired, "expired")):
        again = culqi.call("delete", f"/v2/orders/{order_id}")
        assert again.status_code == 400 and again.json()["param"] == "order_id"
        assert culqi.call("get", f"/v2/orders/{order_id}").json()["state"] == state
    missing = culqi.call("delete", "/v2/orders/ord_test_nope000000000000")
    assert missing.status_code == 404 and missing.json()["type"] == "resource_error"


def test_deleting_needs_the_secret_key(culqi):
    order_id = _order(culqi)
    assert culqi.call("delete", f"/v2/orders/{order_id}", key=CULQI_PK).status_code == 401
    assert culqi.call("get", f"/v2/orders/{order_id}").json()["state"] == "created"


def test_deleting_sends_order_status_changed(culqi, sent, django_capture_on_commit_callbacks):
    order_id = _order(culqi)
    with django_capture_on_commit_callbacks(execute=True):
        culqi.call("delete", f"/v2/orders/{order_id}")
    event = json.loads(sent[-1].body)
    assert event["type"] == "order.status.changed"
    assert json.loads(event["data"])["state"] == "deleted"


@pytest.mark.parametrize("how", ["deleted", "expired"])
def test_the_page_of_a_closed_order_refuses_to_pay(culqi, client, how):
    order_id = _order(culqi)
    if how == "deleted":
        culqi.call("delete", f"/v2/orders/{order_id}")
    else:
        SimCheckout.objects.filter(public_id=order_id).update(expires_at=timezone.now() - timedelta(seconds=1))

    page = client.get(_culqi_page(order_id) + "?return_url=https://shop.example/back")
    assert page.status_code == 410
    assert b"<form" not in page.content
    assert "ya no puede pagarse" in page.content.decode()
    paid = client.post(_culqi_page(order_id), {"card": "approve", "return_url": "https://shop.example/back"})
    assert paid.status_code == 410
    assert b"<form" not in paid.content
    assert SimCharge.objects.count() == 0


def test_a_declined_try_leaves_the_form_for_another_try(culqi, client):
    order_id = _order(culqi)

    declined = client.post(_culqi_page(order_id), {"card": "insufficient_funds"})
    assert declined.status_code == 200
    text = declined.content.decode()
    assert "Pago denegado (insufficient_funds)" in text and 'name="card"' in text
    assert client.get(_culqi_page(order_id)).status_code == 200

    approved = client.post(_culqi_page(order_id), {"card": "approve"})
    assert approved.status_code == 200 and "Pago aprobado" in approved.content.decode()
    assert b'name="card"' not in approved.content
    assert sorted(SimCharge.objects.values_list("status", flat=True)) == ["captured", "declined"]
    assert culqi.call("get", f"/v2/orders/{order_id}").json()["state"] == "paid"


def test_declined_then_paid_through_the_return_url(culqi, client):
    order_id = _order(culqi)
    back = "https://shop.example/back"

    first = client.post(_culqi_page(order_id), {"card": "stolen_card", "return_url": back})
    second = client.post(_culqi_page(order_id), {"card": "approve", "return_url": back})

    assert first.status_code == second.status_code == 302
    declined, captured = SimCharge.objects.order_by("pk")
    assert (declined.status, captured.status) == ("declined", "captured")
    assert f"charge_id={declined.public_id}" in first["Location"]
    assert f"charge_id={captured.public_id}" in second["Location"]


# --- Mercado Pago: preferences ----------------------------------------------------------------------------


def _preference(mp, *, back_urls=None, **change):
    body = {
        "items": [{"id": "pay_pref01", "title": "Plan anual", "quantity": 1, "unit_price": Decimal("59.80")}],
        "payer": {"email": "ana@example.pe"},
        "external_reference": "pay_pref01",
        "metadata": {"smartpay_payment_id": "pay_pref01"},
        **({"back_urls": back_urls} if back_urls else {}),
        **change,
    }
    response = mp.call("post", "/checkout/preferences", body, idempotency_key=mp.next_key())
    assert response.status_code == 201, response.content
    return response.json()["id"]


def _mp_page(preference_id):
    return f"/sandbox/mercadopago/checkout/{preference_id}"


def _now_text(delta=timedelta(0)):
    return (datetime.now(UTC) + delta).isoformat(timespec="milliseconds")


def test_put_preference_expires_it_now(mp, client):
    preference_id = _preference(mp)
    expires_to = _now_text()

    response = mp.call(
        "put",
        f"/checkout/preferences/{preference_id}",
        {"expires": True, "expiration_date_to": expires_to},
        idempotency_key="expire-1",
    )

    assert response.status_code == 200
    body = response.json()
    assert (body["id"], body["expires"], body["expiration_date_to"]) == (preference_id, True, expires_to)
    assert body["external_reference"] == "pay_pref01"
    assert mp.call("get", f"/checkout/preferences/{preference_id}").json()["expires"] is True
    page = client.get(_mp_page(preference_id))
    assert page.status_code == 410
    assert b"<form" not in page.content and "ya no puede pagarse" in page.content.decode()
    paid = client.post(_mp_page(preference_id), {"outcome": "APRO"})
    assert paid.status_code == 410
    assert SimCharge.objects.count() == 0


def test_put_preference_with_a_later_expiry_keeps_it_payable_and_expires_false_reopens(mp, client):
    preference_id = _preference(mp)
    path = f"/checkout/preferences/{preference_id}"
    later = mp.call("put", path, {"expires": True, "expiration_date_to": _now_text(timedelta(hours=1))})
    assert later.status_code == 200
    assert client.get(_mp_page(preference_id)).status_code == 200

    mp.call("put", path, {"expires": True, "expiration_date_to": _now_text()})
    assert client.get(_mp_page(preference_id)).status_code == 410
    mp.call("put", path, {"expires": False})
    assert client.get(_mp_page(preference_id)).status_code == 200


def test_put_preference_keeps_items_and_checks_its_fields(mp):
    preference_id = _preference(mp)
    path = f"/checkout/preferences/{preference_id}"
    bad_date = mp.call("put", path, {"expires": True, "expiration_date_to": "tomorrow"})
    assert bad_date.status_code == 400 and bad_date.json()["error"] == "bad_request"
    bad_flag = mp.call("put", path, {"expires": "yes"})
    assert bad_flag.status_code == 400
    changed = mp.call("put", path, {"items": [{"title": "x", "quantity": 1, "unit_price": Decimal("1.00")}]})
    assert changed.status_code == 200 and changed.json()["total_amount"] == 59.8
    missing = mp.call("put", "/checkout/preferences/123-nope", {"expires": True, "expiration_date_to": _now_text()})
    assert missing.status_code == 404


def test_put_preference_honours_the_idempotency_key(mp):
    preference_id = _preference(mp)
    path = f"/checkout/preferences/{preference_id}"
    body = {"expires": True, "expiration_date_to": _now_text()}
    first = mp.call("put", path, body, idempotency_key="same")
    again = mp.call("put", path, body, idempotency_key="same")
    other = mp.call("put", path, {"expires": True, "expiration_date_to": _now_text()}, idempotency_key="same")
    assert first.status_code == again.status_code == 200 and first.content == again.content
    assert other.status_code == 409


def test_a_rejected_try_leaves_the_form_for_another_try(mp, client):
    preference_id = _preference(mp)

    rejected = client.post(_mp_page(preference_id), {"outcome": "FUND"})
    assert rejected.status_code == 200
    text = rejected.content.decode()
    assert "rejected (cc_rejected_insufficient_amount)" in text and 'name="outcome"' in text

    approved = client.post(_mp_page(preference_id), {"outcome": "APRO"})
    assert approved.status_code == 200
    assert "approved" in approved.content.decode() and b'name="outcome"' not in approved.content
    assert sorted(SimCharge.objects.values_list("status", flat=True)) == ["approved", "rejected"]


def test_rejected_then_paid_through_the_back_urls(mp, client):
    back_urls = {"success": "https://shop.example/ok", "failure": "https://shop.example/ko", "pending": ""}
    preference_id = _preference(mp, back_urls=back_urls)

    first = client.post(_mp_page(preference_id), {"outcome": "OTHE"})
    second = client.post(_mp_page(preference_id), {"outcome": "APRO"})

    assert first.status_code == second.status_code == 302
    assert first["Location"].startswith("https://shop.example/ko?") and "status=rejected" in first["Location"]
    assert second["Location"].startswith("https://shop.example/ok?") and "status=approved" in second["Location"]
