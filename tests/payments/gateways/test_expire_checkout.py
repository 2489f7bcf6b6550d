"""`expire_checkout`: close a hosted checkout session (Culqi order, Mercado Pago preference) at the gateway.

Mocked with `responses`, shapes as in test_culqi.py / test_mercadopago.py: success when it closes or was
closed already, `CheckoutAlreadyPaid` when the payer paid first, the usual errors otherwise.
"""

import json
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import responses

from payments.gateways.base import (
    ChargeStatus,
    CheckoutAlreadyPaid,
    GatewayConfig,
    GatewayInvalidRequest,
    GatewayOutcomeUnknown,
    GatewayUnavailable,
)
from payments.gateways.culqi import CulqiAdapter
from payments.gateways.mercadopago import MercadoPagoAdapter

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"


def fixture(gateway: str, name: str, **overrides: Any) -> dict[str, Any]:
    data = json.loads((FIXTURES / gateway / f"{name}.json").read_text(encoding="utf-8"), parse_float=Decimal)
    data.update(overrides)
    return data


# --- Culqi: DELETE /v2/orders/{id} ------------------------------------------------------------------------

CULQI_API = "https://api.culqi.com"
ORDER_ID = "ord_test_OKFVlnS9ALXbO6LV"
ORDER_URL = f"{CULQI_API}/v2/orders/{ORDER_ID}"
FUTURE = int(time.time()) + 3600
PAST = int(time.time()) - 60


def culqi_error(status: int, error_type: str, message: str, **extra) -> dict[str, Any]:
    return {"object": "error", "type": error_type, **extra, "merchant_message": message, "user_message": message}


def order(**overrides) -> dict[str, Any]:
    return fixture("culqi", "order", **{"expiration_date": FUTURE, **overrides})


REFUSED = culqi_error(400, "parameter_error", "La orden no puede ser eliminada.", param="order_id")


@pytest.fixture
def culqi():
    return CulqiAdapter(
        GatewayConfig(api_base=CULQI_API, secure_base="https://secure.culqi.com", secret_key="sk_test_x")
    )


@pytest.fixture
def rsps():
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        yield mock


def test_culqi_deletes_an_open_order(culqi, rsps):
    rsps.delete(ORDER_URL, status=204)

    assert culqi.expire_checkout(ORDER_ID) is None

    (call,) = rsps.calls
    assert call.request.method == "DELETE"
    assert call.request.headers["Authorization"] == "Bearer sk_test_x"


def test_culqi_order_id_is_one_path_segment(culqi, rsps):
    rsps.delete(f"{CULQI_API}/v2/orders/ord%2F..%2Fcharges", status=204)

    culqi.expire_checkout("ord/../charges")


def test_culqi_a_paid_order_raises_checkout_already_paid(culqi, rsps):
    rsps.delete(ORDER_URL, json=REFUSED, status=400)
    rsps.get(ORDER_URL, json=order(state="paid", paid_at=1715000100))

    with pytest.raises(CheckoutAlreadyPaid) as caught:
        culqi.expire_checkout(ORDER_ID)

    error = caught.value
    assert isinstance(error, GatewayInvalidRequest)  # callers that only know the base class still refuse
    assert error.code == "checkout_already_paid"
    assert error.gateway == "culqi" and error.http_status == 400 and error.param == "order_id"
    assert error.charge is None  # a Culqi order does not name its charge: find_by_reference does
    assert error.raw["state"] == "paid"


def test_culqi_a_paid_order_refused_with_a_resource_error_is_also_recognised(culqi, rsps):
    # §11: resource_error/404 also means "wrong state".
    rsps.delete(ORDER_URL, json=culqi_error(404, "resource_error", "No se puede eliminar la orden."), status=404)
    rsps.get(ORDER_URL, json=order(state="paid"))

    with pytest.raises(CheckoutAlreadyPaid):
        culqi.expire_checkout(ORDER_ID)


@pytest.mark.parametrize(
    "state_fields",
    [{"state": "expired"}, {"state": "deleted"}, {"state": "pending", "expiration_date": PAST}],
    ids=["expired", "deleted", "pending-past-its-expiration"],
)
def test_culqi_an_order_already_closed_is_success(culqi, rsps, state_fields):
    rsps.delete(ORDER_URL, json=REFUSED, status=400)
    rsps.get(ORDER_URL, json=order(**state_fields))

    assert culqi.expire_checkout(ORDER_ID) is None


def test_culqi_an_order_culqi_does_not_know_is_success(culqi, rsps):
    missing = culqi_error(404, "resource_error", f"No se encontró la orden con el id {ORDER_ID}.")
    rsps.delete(ORDER_URL, json=missing, status=404)
    rsps.get(ORDER_URL, json=missing, status=404)

    assert culqi.expire_checkout(ORDER_ID) is None


def test_culqi_an_open_order_that_cannot_be_deleted_raises_the_refusal(culqi, rsps):
    rsps.delete(ORDER_URL, json=REFUSED, status=400)
    rsps.get(ORDER_URL, json=order(state="created"))

    with pytest.raises(GatewayInvalidRequest) as caught:
        culqi.expire_checkout(ORDER_ID)

    assert not isinstance(caught.value, CheckoutAlreadyPaid)
    assert caught.value.param == "order_id"


# Which of the two a failure is follows the adapter's shared error mapping; either way it is not
# success, not `CheckoutAlreadyPaid`, and the order is not read.
NOT_CLOSED = (GatewayUnavailable, GatewayOutcomeUnknown)


@pytest.mark.parametrize(
    "answer",
    [
        {"body": "Service Unavailable", "status": 503},
        {"body": requests.ReadTimeout("read timed out")},
        {"body": "<html>502 Bad Gateway</html>", "status": 502},
    ],
    ids=["503", "read-timeout", "502"],
)
def test_culqi_transport_failures_are_raised_without_reading_the_order(culqi, rsps, answer):
    rsps.delete(ORDER_URL, **answer)

    with pytest.raises(NOT_CLOSED):
        culqi.expire_checkout(ORDER_ID)

    assert len(rsps.calls) == 1


def test_culqi_an_unreadable_order_after_a_refusal_is_unavailable(culqi, rsps):
    rsps.delete(ORDER_URL, json=REFUSED, status=400)
    rsps.get(ORDER_URL, body="<html>oops</html>", status=200)

    with pytest.raises(GatewayUnavailable):
        culqi.expire_checkout(ORDER_ID)


# --- Mercado Pago: PUT /checkout/preferences/{id} ---------------------------------------------------------

MP_API = "https://api.mercadopago.com"
PREFERENCE_ID = "1620846522-4f3d2c1b-9a8e-4d7c-b6a5-0f1e2d3c4b5a"
PREFERENCE_URL = f"{MP_API}/checkout/preferences/{PREFERENCE_ID}"
SEARCH_URL = f"{MP_API}/v1/payments/search"
REF = "pay_01HQ7ZP3K9"


def mp_json(value: Any) -> str:
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)}: {mp_json(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(mp_json(v) for v in value) + "]"
    return json.dumps(value)


def reply(mocked, method, url, payload, *, status=200):
    mocked.add(method, url, body=mp_json(payload), status=status, content_type="application/json")


def expired_preference(**overrides) -> dict[str, Any]:
    now = datetime.now(UTC).isoformat(timespec="milliseconds")
    return fixture("mercadopago", "preference", expires=True, expiration_date_to=now, **overrides)


def payment(status: str, status_detail: str, payment_id: int = 1319840012, **overrides) -> dict[str, Any]:
    return fixture(
        "mercadopago", "payment_approved", id=payment_id, status=status, status_detail=status_detail, **overrides
    )


def search(*payments, total: int | None = None) -> dict[str, Any]:
    return {
        "paging": {"total": len(payments) if total is None else total, "limit": 100, "offset": 0},
        "results": list(payments),
    }


REJECTED = ("rejected", "cc_rejected_insufficient_amount")


@pytest.fixture
def mp():
    return MercadoPagoAdapter(GatewayConfig(api_base=MP_API, public_key="TEST-pk", secret_key="TEST-token"))


def test_mp_expires_the_preference_now_and_finds_no_payment(mp, rsps):
    reply(rsps, "PUT", PREFERENCE_URL, expired_preference())
    reply(rsps, "GET", SEARCH_URL, search())
    before = datetime.now(UTC)

    assert mp.expire_checkout(PREFERENCE_ID) is None

    put, found = rsps.calls
    body = json.loads(put.request.body)
    assert body["expires"] is True
    expires_to = datetime.fromisoformat(body["expiration_date_to"])
    assert before - timedelta(seconds=1) <= expires_to <= datetime.now(UTC)
    assert put.request.headers["Authorization"] == "Bearer TEST-token"
    assert put.request.headers["X-Idempotency-Key"].startswith(f"{PREFERENCE_ID}:expire:")
    params = {key: values[0] for key, values in parse_qs(urlsplit(found.request.url).query).items()}
    assert params["external_reference"] == REF
    assert params["range"] == "date_created" and params["end_date"] == "NOW"


def test_mp_each_call_has_its_own_idempotency_key(mp, rsps):
    for _ in range(2):
        reply(rsps, "PUT", PREFERENCE_URL, expired_preference())
        reply(rsps, "GET", SEARCH_URL, search())

    mp.expire_checkout(PREFERENCE_ID)
    mp.expire_checkout(PREFERENCE_ID)

    keys = [call.request.headers["X-Idempotency-Key"] for call in rsps.calls if call.request.method == "PUT"]
    assert len(set(keys)) == 2  # the body differs (its time): a reused key would be a 409


def test_mp_rejected_tries_are_not_a_payment(mp, rsps):
    reply(rsps, "PUT", PREFERENCE_URL, expired_preference())
    reply(rsps, "GET", SEARCH_URL, search(payment(*REJECTED), payment("cancelled", "expired", 1319840013)))

    assert mp.expire_checkout(PREFERENCE_ID) is None


def test_mp_an_approved_payment_raises_checkout_already_paid_with_the_charge(mp, rsps):
    reply(rsps, "PUT", PREFERENCE_URL, expired_preference())
    reply(
        rsps,
        "GET",
        SEARCH_URL,
        search(payment(*REJECTED, 1319840099), payment("approved", "accredited"), payment(*REJECTED, 1319840001)),
    )

    with pytest.raises(CheckoutAlreadyPaid) as caught:
        mp.expire_checkout(PREFERENCE_ID)

    error = caught.value
    assert isinstance(error, GatewayInvalidRequest) and error.gateway == "mercadopago"
    assert error.charge.status == ChargeStatus.SUCCEEDED
    assert error.charge.gateway_payment_id == "1319840012"
    assert error.charge.amount == 1999 and error.charge.reference == REF


def test_mp_a_payment_in_process_is_reported_too(mp, rsps):
    reply(rsps, "PUT", PREFERENCE_URL, expired_preference())
    reply(rsps, "GET", SEARCH_URL, search(payment("in_process", "pending_contingency"), payment(*REJECTED, 1)))

    with pytest.raises(CheckoutAlreadyPaid) as caught:
        mp.expire_checkout(PREFERENCE_ID)

    assert caught.value.charge.status == ChargeStatus.PENDING


def test_mp_money_taken_wins_over_money_that_may_come(mp, rsps):
    reply(rsps, "PUT", PREFERENCE_URL, expired_preference())
    reply(
        rsps,
        "GET",
        SEARCH_URL,
        search(payment("in_process", "pending_contingency", 2), payment("approved", "accredited", 1)),
    )

    with pytest.raises(CheckoutAlreadyPaid) as caught:
        mp.expire_checkout(PREFERENCE_ID)

    assert caught.value.charge.gateway_payment_id == "1"


def test_mp_payments_for_another_reference_are_ignored(mp, rsps):
    reply(rsps, "PUT", PREFERENCE_URL, expired_preference())
    reply(rsps, "GET", SEARCH_URL, search(payment("approved", "accredited", external_reference="pay_other")))

    assert mp.expire_checkout(PREFERENCE_ID) is None


def test_mp_an_unknown_preference_is_closed_already(mp, rsps):
    not_found = {"message": "Preference not found", "error": "not_found", "status": 404, "cause": []}
    reply(rsps, "PUT", PREFERENCE_URL, not_found, status=404)

    assert mp.expire_checkout(PREFERENCE_ID) is None
    assert len(rsps.calls) == 1


def test_mp_more_payments_than_one_page_without_a_paid_one_cannot_prove_absence(mp, rsps):
    reply(rsps, "PUT", PREFERENCE_URL, expired_preference())
    reply(rsps, "GET", SEARCH_URL, search(payment(*REJECTED), total=250))

    with pytest.raises(GatewayUnavailable):
        mp.expire_checkout(PREFERENCE_ID)


def test_mp_a_preference_answer_without_external_reference_is_not_success(mp, rsps):
    # Without the reference its payments cannot be searched: never conclude "not paid".
    reply(rsps, "PUT", PREFERENCE_URL, expired_preference(external_reference=""))

    with pytest.raises(NOT_CLOSED):
        mp.expire_checkout(PREFERENCE_ID)


@pytest.mark.parametrize("status", [503, 500])
def test_mp_put_failures_are_raised_without_searching(mp, rsps, status):
    reply(rsps, "PUT", PREFERENCE_URL, {"message": "boom", "error": "internal_error", "status": status}, status=status)

    with pytest.raises(NOT_CLOSED):
        mp.expire_checkout(PREFERENCE_ID)

    assert len(rsps.calls) == 1


def test_mp_search_failure_after_expiring_is_unavailable(mp, rsps):
    reply(rsps, "PUT", PREFERENCE_URL, expired_preference())
    rsps.add("GET", SEARCH_URL, body="<html>502</html>", status=502, content_type="text/html")

    with pytest.raises(GatewayUnavailable):
        mp.expire_checkout(PREFERENCE_ID)
