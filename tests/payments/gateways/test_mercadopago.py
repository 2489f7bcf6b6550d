"""MercadoPagoAdapter against a mocked wire (`responses`). Payload shapes follow
docs/reference/mercadopago.md; the larger ones are in tests/fixtures/mercadopago/.

Request bodies are asserted as raw bytes where the exact decimal text matters.
"""

import json
import logging
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import requests
import responses
from responses import matchers

from payments.gateways.base import (
    CardInfo,
    ChargeRequest,
    ChargeResult,
    ChargeStatus,
    CheckoutRequest,
    CheckoutSession,
    GatewayConfig,
    GatewayConfigurationError,
    GatewayInvalidRequest,
    GatewayNotFound,
    GatewayOutcomeUnknown,
    GatewayUnavailable,
    RefundRequest,
    RefundResult,
    SaveCardRequest,
    SavedCard,
    SavedCardRef,
)
from payments.gateways.mercadopago import MercadoPagoAdapter, to_decimal_amount, to_minor_units
from tests.transport_faults import connection_dropped, connection_refused

API = "https://api.mercadopago.com"
FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "mercadopago"
TOKEN = "ff8080814c11e237014c1ff593b57b4d"
KEY = "pay_01HQ7ZP3K9:attempt:1"
REF = "pay_01HQ7ZP3K9"
PAYMENT_URL = f"{API}/v1/payments/1319840012"
HTML_502 = "<html><head><title>502 Bad Gateway</title></head><body><center>nginx</center></body></html>"
HTML_504 = "<html><body><h1>504 Gateway Time-out</h1>The server didn't respond in time.</body></html>"


def load(name: str, **overrides: Any) -> dict[str, Any]:
    """A fixture with amounts as Decimal (never float), then overrides."""
    data = json.loads((FIXTURES / f"{name}.json").read_text(), parse_float=Decimal)
    data.update(overrides)
    return data


def mp_json(value: Any) -> str:
    """JSON as Mercado Pago writes it: a Decimal is a bare number with its exact text."""
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)}: {mp_json(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(mp_json(v) for v in value) + "]"
    return json.dumps(value)


def reply(mocked, method, url, payload, *, status=200, **kwargs):
    return mocked.add(method, url, body=mp_json(payload), status=status, content_type="application/json", **kwargs)


def sent(call) -> dict[str, Any]:
    return json.loads(call.request.body, parse_float=Decimal)


def without_raw(result):
    return replace(result, raw={})


def mp_error(status: int, message: str, error: str, cause: Any) -> dict[str, Any]:
    return {"message": message, "error": error, "status": status, "cause": cause}


@pytest.fixture
def adapter():
    return MercadoPagoAdapter(GatewayConfig(api_base=API, public_key="TEST-pk", secret_key="TEST-token"))


@pytest.fixture
def mocked():
    with responses.RequestsMock(assert_all_requests_are_fired=True) as rsps:
        yield rsps


def charge_request(**overrides: Any) -> ChargeRequest:
    fields: dict[str, Any] = {
        "reference": REF,
        "idempotency_key": KEY,
        "amount": 1999,
        "currency": "PEN",
        "email": "ana@example.pe",
        "description": "Plan mensual",
        "token": TOKEN,
        "payment_method_id": "visa",
        "issuer_id": "1040",
        "metadata": {"order": "A-17"},
        "notification_url": "https://smartpay.example/webhooks/mercadopago",
    }
    fields.update(overrides)
    return ChargeRequest(**fields)


APPROVED_RESULT = ChargeResult(
    status=ChargeStatus.SUCCEEDED,
    gateway_payment_id="1319840012",
    amount=1999,
    currency="PEN",
    amount_refunded=0,
    decline_code=None,
    gateway_code="accredited",
    gateway_status="approved",
    next_action=None,
    card=CardInfo(brand="visa", last4="6176", exp_month=11, exp_year=2030),
    reference=REF,
    created_at=datetime(2025, 3, 14, 10, 21, 7, tzinfo=UTC) + timedelta(hours=4),
    refunds=(),
)


# --- Money ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("minor", "text"), [(1999, "19.99"), (100001, "1000.01"), (5, "0.05"), (100, "1.00"), (1, "0.01"), (10, "0.10")]
)
def test_amounts_convert_exactly_both_ways(minor, text):
    assert str(to_decimal_amount(minor)) == text
    assert to_minor_units(Decimal(text)) == minor


@pytest.mark.parametrize(("value", "minor"), [(19, 1900), ("19.99", 1999), (Decimal("58.8"), 5880), (0, 0)])
def test_response_amounts_in_every_json_shape_become_minor_units(value, minor):
    assert to_minor_units(value) == minor


def test_to_decimal_amount_refuses_anything_but_int():
    with pytest.raises(TypeError):
        to_decimal_amount(19.99)
    with pytest.raises(TypeError):
        to_decimal_amount(True)


# --- Charge ---------------------------------------------------------------------------------------


def test_charge_approved_sends_the_documented_body_and_headers(adapter, mocked):
    reply(mocked, "POST", f"{API}/v1/payments", load("payment_approved"), status=201)

    result = adapter.charge(charge_request())

    (call,) = mocked.calls
    assert call.request.body == (
        b'{"transaction_amount":19.99,"token":"ff8080814c11e237014c1ff593b57b4d","description":"Plan mensual",'
        b'"installments":1,"payment_method_id":"visa","issuer_id":"1040","capture":true,'
        b'"external_reference":"pay_01HQ7ZP3K9",'
        b'"metadata":{"order":"A-17","smartpay_payment_id":"pay_01HQ7ZP3K9"},'
        b'"notification_url":"https://smartpay.example/webhooks/mercadopago","payer":{"email":"ana@example.pe"}}'
    )
    assert call.request.headers["Authorization"] == "Bearer TEST-token"
    assert call.request.headers["X-Idempotency-Key"] == KEY
    assert call.request.headers["Content-Type"] == "application/json"
    assert without_raw(result) == APPROVED_RESULT
    assert result.raw["id"] == 1319840012
    json.dumps(dict(result.raw))  # raw stays storable in a plain JSONField


@pytest.mark.parametrize(("minor", "text"), [(1999, b"19.99"), (100001, b"1000.01"), (5, b"0.05"), (100, b"1.00")])
def test_transaction_amount_is_the_exact_decimal_text_on_the_wire(adapter, mocked, minor, text):
    payment = load("payment_approved", transaction_amount=Decimal(text.decode()))
    reply(mocked, "POST", f"{API}/v1/payments", payment, status=201)

    result = adapter.charge(charge_request(amount=minor))

    assert mocked.calls[0].request.body.startswith(b'{"transaction_amount":' + text + b',"token"')
    assert result.amount == minor


def test_client_metadata_cannot_overwrite_smartpay_payment_id(adapter, mocked):
    reply(mocked, "POST", f"{API}/v1/payments", load("payment_approved"), status=201)

    adapter.charge(charge_request(metadata={"smartpay_payment_id": "evil", "order": "A-17"}))

    assert sent(mocked.calls[0])["metadata"] == {"smartpay_payment_id": REF, "order": "A-17"}


def test_charge_authorized_when_capture_is_false(adapter, mocked):
    payment = load("payment_approved", status="authorized", status_detail="pending_capture", captured=False)
    reply(mocked, "POST", f"{API}/v1/payments", payment, status=201)

    result = adapter.charge(charge_request(capture=False))

    assert sent(mocked.calls[0])["capture"] is False
    assert without_raw(result) == replace(
        APPROVED_RESULT, status=ChargeStatus.AUTHORIZED, gateway_code="pending_capture", gateway_status="authorized"
    )


@pytest.mark.parametrize(
    ("status_detail", "decline_code"),
    [
        ("cc_rejected_insufficient_amount", "insufficient_funds"),
        ("cc_rejected_bad_filled_security_code", "incorrect_cvc"),
        ("cc_rejected_bad_filled_date", "expired_card"),
        ("cc_rejected_bad_filled_card_number", "invalid_card_data"),
        ("cc_rejected_bad_filled_other", "invalid_card_data"),
        ("cc_rejected_form_error", "invalid_card_data"),
        ("cc_rejected_call_for_authorize", "call_issuer"),
        ("cc_rejected_high_risk", "fraud_suspected"),
        ("cc_rejected_blacklist", "fraud_suspected"),
        ("cc_rejected_fraud", "fraud_suspected"),
        ("cc_rejected_card_disabled", "card_declined"),
        ("cc_amount_rate_limit_exceeded", "amount_limit_exceeded"),
        ("cc_rejected_max_attempts", "card_declined"),
        ("cc_rejected_duplicated_payment", "card_declined"),
        ("cc_rejected_other_reason", "card_declined"),
        ("cc_rejected_time_out", "processing_error"),
        ("cc_rejected_3ds_mandatory", "card_declined"),
        ("cc_something_new_next_year", "card_declined"),
    ],
)
def test_rejections_are_failed_results_with_a_normalised_decline_code(adapter, mocked, status_detail, decline_code):
    payment = load("payment_approved", status="rejected", status_detail=status_detail, date_approved=None)
    reply(mocked, "POST", f"{API}/v1/payments", payment, status=201)

    result = adapter.charge(charge_request())

    assert without_raw(result) == replace(
        APPROVED_RESULT,
        status=ChargeStatus.FAILED,
        decline_code=decline_code,
        gateway_code=status_detail,
        gateway_status="rejected",
    )


def test_rejection_without_status_detail_is_card_declined(adapter, mocked):
    reply(mocked, "POST", f"{API}/v1/payments", load("payment_approved", status="rejected", status_detail=None))

    result = adapter.charge(charge_request())

    assert (result.status, result.decline_code, result.gateway_code) == (ChargeStatus.FAILED, "card_declined", None)


@pytest.mark.parametrize(
    ("status", "status_detail"),
    [
        ("in_process", "pending_review_manual"),
        ("in_process", "pending_contingency"),
        ("pending", "pending_waiting_payment"),
    ],
)
def test_review_and_contingency_are_pending(adapter, mocked, status, status_detail):
    reply(mocked, "POST", f"{API}/v1/payments", load("payment_approved", status=status, status_detail=status_detail))

    result = adapter.charge(charge_request())

    assert without_raw(result) == replace(
        APPROVED_RESULT, status=ChargeStatus.PENDING, gateway_code=status_detail, gateway_status=status
    )


def test_pending_challenge_requires_3ds_action(adapter, mocked):
    payment = load(
        "payment_approved",
        status="pending",
        status_detail="pending_challenge",
        three_ds_info={
            "external_resource_url": "https://acs-public.tp.mastercard.com/api/v1/browser_challenges",
            "creq": "eyJ0aHJlZURTU2VydmVyVHJhbnNJRCI6IjE0ZTJjZDc0In0",
        },
    )
    reply(mocked, "POST", f"{API}/v1/payments", payment, status=201)

    result = adapter.charge(charge_request())

    assert result.status is ChargeStatus.REQUIRES_ACTION
    assert result.next_action == {
        "type": "three_d_secure",
        "url": "https://acs-public.tp.mastercard.com/api/v1/browser_challenges",
        "creq": "eyJ0aHJlZURTU2VydmVyVHJhbnNJRCI6IjE0ZTJjZDc0In0",
    }
    assert (result.gateway_status, result.gateway_code) == ("pending", "pending_challenge")


def test_in_process_challenge_without_3ds_info_still_requires_action(adapter, mocked):
    payment = load("payment_approved", status="in_process", status_detail="pending_challenge")
    reply(mocked, "POST", f"{API}/v1/payments", payment, status=201)

    result = adapter.charge(charge_request())

    assert (result.status, result.next_action) == (ChargeStatus.REQUIRES_ACTION, {"type": "three_d_secure"})


def test_charge_refuses_usd_without_calling_mercado_pago(adapter, mocked):
    with pytest.raises(GatewayInvalidRequest) as excinfo:
        adapter.charge(charge_request(currency="USD"))

    assert excinfo.value.param == "currency"
    assert len(mocked.calls) == 0


# --- payment_method_id from the token ------------------------------------------------------------


def test_payment_method_is_worked_out_from_the_card_token(adapter, mocked):
    reply(mocked, "GET", f"{API}/v1/card_tokens/{TOKEN}", load("card_token"))
    reply(
        mocked,
        "GET",
        f"{API}/v1/payment_methods/search",
        load("payment_methods_search"),
        match=[matchers.query_param_matcher({"bins": "400917", "status": "active", "public_key": "TEST-pk"})],
    )
    reply(mocked, "POST", f"{API}/v1/payments", load("payment_approved"), status=201)

    result = adapter.charge(charge_request(payment_method_id=None, issuer_id=None))

    token_call, search_call, payment_call = mocked.calls
    assert token_call.request.headers["Authorization"] == "Bearer TEST-token"
    assert "X-Idempotency-Key" not in search_call.request.headers
    body = sent(payment_call)
    assert (body["payment_method_id"], body["issuer_id"]) == ("visa", "1040")
    assert result.status is ChargeStatus.SUCCEEDED


def test_payment_method_search_omits_public_key_when_not_configured(mocked):
    adapter = MercadoPagoAdapter(GatewayConfig(api_base=API, secret_key="TEST-token"))
    reply(mocked, "GET", f"{API}/v1/card_tokens/{TOKEN}", load("card_token"))
    search = load("payment_methods_search")
    del search["results"][0]["issuer"]
    reply(
        mocked,
        "GET",
        f"{API}/v1/payment_methods/search",
        search,
        match=[matchers.query_param_matcher({"bins": "400917", "status": "active"})],
    )
    reply(mocked, "POST", f"{API}/v1/payments", load("payment_approved"), status=201)

    adapter.charge(charge_request(payment_method_id=None, issuer_id=None))

    body = sent(mocked.calls[2])
    assert body["payment_method_id"] == "visa"
    assert "issuer_id" not in body


def test_an_explicit_issuer_wins_over_the_one_found(adapter, mocked):
    reply(mocked, "GET", f"{API}/v1/card_tokens/{TOKEN}", load("card_token"))
    reply(mocked, "GET", f"{API}/v1/payment_methods/search", load("payment_methods_search"))
    reply(mocked, "POST", f"{API}/v1/payments", load("payment_approved"), status=201)

    adapter.charge(charge_request(payment_method_id=None, issuer_id="310"))

    assert sent(mocked.calls[2])["issuer_id"] == "310"


def test_unknown_bin_is_an_invalid_request_and_nothing_is_charged(adapter, mocked):
    reply(mocked, "GET", f"{API}/v1/card_tokens/{TOKEN}", load("card_token"))
    reply(mocked, "GET", f"{API}/v1/payment_methods/search", {"paging": {"total": 0}, "results": []})

    with pytest.raises(GatewayInvalidRequest) as excinfo:
        adapter.charge(charge_request(payment_method_id=None))

    assert excinfo.value.param == "payment_method_id"
    assert [c.request.method for c in mocked.calls] == ["GET", "GET"]


def test_unknown_card_token_is_not_found(adapter, mocked):
    error = mp_error(404, "Card token not found", "not_found", [{"code": 2006, "description": "Card Token not found"}])
    reply(mocked, "GET", f"{API}/v1/card_tokens/{TOKEN}", error, status=404)

    with pytest.raises(GatewayNotFound) as excinfo:
        adapter.charge(charge_request(payment_method_id=None))

    assert excinfo.value.gateway_code == "2006"
    assert TOKEN not in str(excinfo.value)


def test_card_token_lookup_failure_is_unavailable_not_unknown(adapter, mocked):
    mocked.add("GET", f"{API}/v1/card_tokens/{TOKEN}", body=HTML_502, status=502, content_type="text/html")

    with pytest.raises(GatewayUnavailable):
        adapter.charge(charge_request(payment_method_id=None))


def test_card_tokens_never_reach_the_logs(adapter, mocked, caplog):
    reply(mocked, "GET", f"{API}/v1/card_tokens/{TOKEN}", load("card_token"))
    reply(mocked, "GET", f"{API}/v1/payment_methods/search", load("payment_methods_search"))
    reply(mocked, "POST", f"{API}/v1/payments", load("payment_approved"), status=201)

    with caplog.at_level(logging.DEBUG, logger="smartpay.gateways"):
        adapter.charge(charge_request(payment_method_id=None))

    paths = [record.path for record in caplog.records if hasattr(record, "path")]
    assert paths == ["/v1/card_tokens/{token}", "/v1/payment_methods/search", "/v1/payments"]
    for record in caplog.records:
        assert TOKEN not in str(record.__dict__)
        assert "TEST-token" not in str(record.__dict__)


# --- Saved cards in a charge ----------------------------------------------------------------------


def test_charge_with_a_saved_card_makes_a_token_from_the_card_first(adapter, mocked):
    saved_token = load(
        "card_token", id="a1b2c3d4e5f60718293a4b5c6d7e8f90", card_id="9876543210", first_six_digits="503175"
    )
    reply(mocked, "POST", f"{API}/v1/card_tokens", saved_token, status=201)
    reply(
        mocked,
        "GET",
        f"{API}/v1/payment_methods/search",
        load("payment_methods_search"),
        match=[matchers.query_param_matcher({"bins": "503175", "status": "active", "public_key": "TEST-pk"})],
    )
    reply(mocked, "POST", f"{API}/v1/payments", load("payment_approved"), status=201)
    saved = SavedCardRef(gateway_customer_id="1620851234-pXRewrKqlP6pnn", gateway_card_id="9876543210")

    adapter.charge(charge_request(token=None, saved_card=saved, payment_method_id=None, issuer_id=None))

    token_call, _, payment_call = mocked.calls
    assert token_call.request.body == b'{"card_id":"9876543210","customer_id":"1620851234-pXRewrKqlP6pnn"}'
    assert token_call.request.headers["X-Idempotency-Key"] == f"{KEY}:card_token"
    body = sent(payment_call)
    assert body["token"] == "a1b2c3d4e5f60718293a4b5c6d7e8f90"
    assert body["payer"] == {"type": "customer", "id": "1620851234-pXRewrKqlP6pnn", "email": "ana@example.pe"}
    assert payment_call.request.headers["X-Idempotency-Key"] == KEY


# --- HTTP errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cause", "gateway_code", "param"),
    [
        ([{"code": 4037, "description": "Invalid transaction_amount", "data": None}], "4037", "transaction_amount"),
        ([{"code": "3001", "description": "Card issuer_id is required"}], "3001", "issuer_id"),
        ({"code": 4020, "description": "notification_url attribute must be url valid"}, "4020", "notification_url"),
        ([{"code": 9999, "description": "installments must be a number"}], "9999", "installments"),
        (None, "bad_request", None),
    ],
)
def test_400_is_an_invalid_request_with_the_param_from_the_cause(adapter, mocked, cause, gateway_code, param):
    reply(mocked, "POST", f"{API}/v1/payments", mp_error(400, "Invalid request", "bad_request", cause), status=400)

    with pytest.raises(GatewayInvalidRequest) as excinfo:
        adapter.charge(charge_request())

    error = excinfo.value
    assert type(error) is GatewayInvalidRequest
    assert (error.http_status, error.gateway_code, error.param, error.gateway) == (
        400,
        gateway_code,
        param,
        "mercadopago",
    )


@pytest.mark.parametrize("status", [401, 403])
def test_auth_failures_are_configuration_errors(adapter, mocked, status):
    error = mp_error(status, "invalid access token", "unauthorized", [{"code": 5, "description": "Must provide token"}])
    reply(mocked, "POST", f"{API}/v1/payments", error, status=status)

    with pytest.raises(GatewayConfigurationError) as excinfo:
        adapter.charge(charge_request())

    assert (excinfo.value.http_status, excinfo.value.gateway_code) == (status, "5")
    assert "TEST-token" not in str(excinfo.value)


def test_429_is_unavailable_with_retry_after(adapter, mocked):
    error = mp_error(429, "Too many requests", "too_many_requests", [])
    reply(mocked, "POST", f"{API}/v1/payments", error, status=429, headers={"Retry-After": "7"})

    with pytest.raises(GatewayUnavailable) as excinfo:
        adapter.charge(charge_request())

    assert (excinfo.value.retry_after, excinfo.value.http_status) == (7.0, 429)


@pytest.mark.parametrize("status", [503, 424])
def test_503_and_424_on_post_are_outcome_unknown(adapter, mocked, status):
    """Not documented as "not processed": the caller resends with the same key, never elsewhere."""
    mocked.add(
        "POST",
        f"{API}/v1/payments",
        body="Service Unavailable",
        status=status,
        content_type="text/plain",
        headers={"Retry-After": "2"},
    )

    with pytest.raises(GatewayOutcomeUnknown) as excinfo:
        adapter.charge(charge_request())

    assert excinfo.value.http_status == status
    assert excinfo.value.retry_after == 2.0


def test_503_on_get_is_unavailable(adapter, mocked):
    mocked.add("GET", PAYMENT_URL, body="Service Unavailable", status=503, content_type="text/plain")

    with pytest.raises(GatewayUnavailable) as excinfo:
        adapter.retrieve("1319840012")

    assert type(excinfo.value) is GatewayUnavailable
    assert excinfo.value.http_status == 503


@pytest.mark.parametrize(
    ("status", "html"), [(500, "<html><body>Internal Server Error</body></html>"), (502, HTML_502), (504, HTML_504)]
)
def test_5xx_html_on_post_is_outcome_unknown(adapter, mocked, status, html):
    mocked.add("POST", f"{API}/v1/payments", body=html, status=status, content_type="text/html")

    with pytest.raises(GatewayOutcomeUnknown) as excinfo:
        adapter.charge(charge_request())

    assert excinfo.value.http_status == status


@pytest.mark.parametrize(
    ("status", "html"), [(500, "<html><body>Internal Server Error</body></html>"), (504, HTML_504)]
)
def test_5xx_html_on_get_is_unavailable(adapter, mocked, status, html):
    mocked.add("GET", PAYMENT_URL, body=html, status=status, content_type="text/html")

    with pytest.raises(GatewayUnavailable) as excinfo:
        adapter.retrieve("1319840012")

    assert excinfo.value.http_status == status


@pytest.mark.parametrize("status", [500, 504])
def test_5xx_on_capture_put_is_outcome_unknown(adapter, mocked, status):
    mocked.add("PUT", PAYMENT_URL, body=HTML_504, status=status, content_type="text/html")

    with pytest.raises(GatewayOutcomeUnknown):
        adapter.capture("1319840012", amount=None, idempotency_key=f"{KEY}:capture")


@pytest.mark.parametrize(
    "body",
    [
        b'{"id": 1319840012, "status": "approved", "transaction_amount": 19.9',  # cut off
        b"",
        b"[1, 2, 3]",
        b'{"id": 1319840012, "transaction_amount": 19.99}',  # no status
        b'{"id": 1319840012, "status": "approved", "transaction_amount": "a lot"}',
        b'{"id": 1319840012, "status": "approved", "transaction_amount": NaN}',
        b'{"status": "approved", "transaction_amount": 19.99}',  # no id
    ],
)
def test_malformed_2xx_on_post_is_outcome_unknown(adapter, mocked, body):
    mocked.add("POST", f"{API}/v1/payments", body=body, status=201, content_type="application/json")

    with pytest.raises(GatewayOutcomeUnknown):
        adapter.charge(charge_request())


def test_malformed_2xx_on_get_is_unavailable(adapter, mocked):
    mocked.add("GET", PAYMENT_URL, body=b"<html>maintenance</html>", status=200, content_type="text/html")

    with pytest.raises(GatewayUnavailable):
        adapter.retrieve("1319840012")


def test_connection_refused_is_unavailable(adapter, mocked):
    mocked.add("POST", f"{API}/v1/payments", body=connection_refused())

    with pytest.raises(GatewayUnavailable) as excinfo:
        adapter.charge(charge_request())

    assert type(excinfo.value) is GatewayUnavailable


def test_connection_dropped_after_a_post_is_outcome_unknown(adapter, mocked):
    mocked.add("POST", f"{API}/v1/payments", body=connection_dropped())

    with pytest.raises(GatewayOutcomeUnknown):
        adapter.charge(charge_request())


def test_read_timeout_on_post_is_outcome_unknown(adapter, mocked):
    mocked.add("POST", f"{API}/v1/payments", body=requests.ReadTimeout("read timed out"))

    with pytest.raises(GatewayOutcomeUnknown):
        adapter.charge(charge_request())


def test_read_timeout_on_get_is_unavailable(adapter, mocked):
    mocked.add("GET", PAYMENT_URL, body=requests.ReadTimeout("read timed out"))

    with pytest.raises(GatewayUnavailable):
        adapter.retrieve("1319840012")


def test_retry_of_the_same_request_sends_the_same_key_and_bytes(adapter, mocked):
    mocked.add("POST", f"{API}/v1/payments", body=HTML_504, status=504, content_type="text/html")
    reply(mocked, "POST", f"{API}/v1/payments", load("payment_approved"), status=201)
    request = charge_request()

    with pytest.raises(GatewayOutcomeUnknown):
        adapter.charge(request)
    result = adapter.charge(request)

    first, second = mocked.calls
    assert first.request.headers["X-Idempotency-Key"] == second.request.headers["X-Idempotency-Key"] == KEY
    assert first.request.body == second.request.body
    assert result.status is ChargeStatus.SUCCEEDED


def test_missing_access_token_is_a_configuration_error(mocked):
    adapter = MercadoPagoAdapter(GatewayConfig(api_base=API, secret_key=""))

    with pytest.raises(GatewayConfigurationError):
        adapter.retrieve("1319840012")

    assert len(mocked.calls) == 0


# --- Capture, cancel, retrieve ---------------------------------------------------------------------


def test_capture_full(adapter, mocked):
    reply(mocked, "PUT", PAYMENT_URL, load("payment_approved"))

    result = adapter.capture("1319840012", amount=None, idempotency_key=f"{KEY}:capture")

    (call,) = mocked.calls
    assert call.request.body == b'{"capture":true}'
    assert call.request.headers["X-Idempotency-Key"] == f"{KEY}:capture"
    assert without_raw(result) == APPROVED_RESULT


def test_capture_partial_sends_the_lower_amount(adapter, mocked):
    reply(mocked, "PUT", PAYMENT_URL, load("payment_approved", transaction_amount=Decimal("10.00")))

    result = adapter.capture("1319840012", amount=1000, idempotency_key=f"{KEY}:capture")

    assert mocked.calls[0].request.body == b'{"capture":true,"transaction_amount":10.00}'
    assert (result.status, result.amount) == (ChargeStatus.SUCCEEDED, 1000)


def test_capture_in_a_wrong_state_is_an_invalid_request(adapter, mocked):
    error = mp_error(400, "Action not allowed", "bad_request", [{"code": 2018, "description": "action not valid"}])
    reply(mocked, "PUT", PAYMENT_URL, error, status=400)

    with pytest.raises(GatewayInvalidRequest) as excinfo:
        adapter.capture("1319840012", amount=None, idempotency_key=f"{KEY}:capture")

    assert excinfo.value.gateway_code == "2018"


def test_cancel(adapter, mocked):
    payment = load("payment_approved", status="cancelled", status_detail="by_collector", captured=False)
    reply(mocked, "PUT", PAYMENT_URL, payment)

    result = adapter.cancel("1319840012", idempotency_key=f"{KEY}:cancel")

    (call,) = mocked.calls
    assert call.request.body == b'{"status":"cancelled"}'
    assert call.request.headers["X-Idempotency-Key"] == f"{KEY}:cancel"
    assert without_raw(result) == replace(
        APPROVED_RESULT, status=ChargeStatus.CANCELED, gateway_code="by_collector", gateway_status="cancelled"
    )


@pytest.mark.parametrize(
    ("overrides", "status", "refunded"),
    [
        (
            {"status": "refunded", "status_detail": "refunded", "transaction_amount_refunded": Decimal("19.99")},
            "refunded",
            1999,
        ),
        (
            {
                "status": "approved",
                "status_detail": "partially_refunded",
                "transaction_amount_refunded": Decimal("5.50"),
            },
            "partially_refunded",
            550,
        ),
        ({"status": "charged_back", "status_detail": "settled"}, "succeeded", 0),
        ({"status": "in_mediation", "status_detail": "in_process"}, "succeeded", 0),
        ({"status": "cancelled", "status_detail": "expired"}, "canceled", 0),
        ({"status": "something_new"}, "pending", 0),
    ],
)
def test_retrieve_maps_post_payment_states(adapter, mocked, overrides, status, refunded):
    reply(mocked, "GET", PAYMENT_URL, load("payment_approved", **overrides))

    result = adapter.retrieve("1319840012")

    assert (result.status, result.amount, result.amount_refunded) == (status, 1999, refunded)
    assert result.gateway_status == overrides["status"]
    assert "X-Idempotency-Key" not in mocked.calls[0].request.headers


def test_retrieve_unknown_payment_is_not_found(adapter, mocked):
    error = mp_error(404, "Payment not found", "not_found", [{"code": 2000, "description": "Payment not found"}])
    reply(mocked, "GET", f"{API}/v1/payments/42", error, status=404)

    with pytest.raises(GatewayNotFound) as excinfo:
        adapter.retrieve("42")

    assert excinfo.value.gateway_code == "2000"


# --- Refunds ----------------------------------------------------------------------------------------


def test_partial_refund(adapter, mocked):
    reply(mocked, "POST", f"{PAYMENT_URL}/refunds", load("refund"), status=201)
    request = RefundRequest(
        gateway_payment_id="1319840012", amount=550, currency="PEN", idempotency_key="re_01HQ9:1", reference="re_01HQ9"
    )

    result = adapter.refund(request)

    (call,) = mocked.calls
    assert call.request.body == b'{"amount":5.50}'
    assert call.request.headers["X-Idempotency-Key"] == "re_01HQ9:1"
    assert without_raw(result) == RefundResult(gateway_refund_id="1245678901", status="succeeded", amount=550)
    assert result.raw["payment_id"] == 1319840012


@pytest.mark.parametrize(
    ("mp_status", "status"),
    [("in_process", "pending"), ("pending", "pending"), ("rejected", "failed"), ("cancelled", "failed")],
)
def test_refund_statuses(adapter, mocked, mp_status, status):
    reply(mocked, "POST", f"{PAYMENT_URL}/refunds", load("refund", status=mp_status), status=201)

    result = adapter.refund(RefundRequest("1319840012", amount=550, currency="PEN", idempotency_key="re_1:1"))

    assert result.status == status


def test_full_refund_still_sends_the_amount(adapter, mocked):
    reply(mocked, "POST", f"{PAYMENT_URL}/refunds", load("refund", amount=Decimal("19.99")), status=201)

    result = adapter.refund(RefundRequest("1319840012", amount=1999, currency="PEN", idempotency_key="re_2:1"))

    assert mocked.calls[0].request.body == b'{"amount":19.99}'
    assert result.amount == 1999


def test_refund_amount_error_reported_under_401_is_an_invalid_request(adapter, mocked):
    error = mp_error(
        401, "amount must be positive", "bad_request", [{"code": 4040, "description": "amount must be positive"}]
    )
    reply(mocked, "POST", f"{PAYMENT_URL}/refunds", error, status=401)

    with pytest.raises(GatewayInvalidRequest) as excinfo:
        adapter.refund(RefundRequest("1319840012", amount=550, currency="PEN", idempotency_key="re_3:1"))

    assert excinfo.value.param == "amount"


# --- find_by_reference -------------------------------------------------------------------------------


def search_params(created_after: datetime) -> dict[str, str]:
    return {
        "external_reference": REF,
        "sort": "date_created",
        "criteria": "desc",
        "range": "date_created",
        "begin_date": (created_after - timedelta(minutes=10)).isoformat(timespec="milliseconds"),
        "end_date": "NOW",
    }


def test_find_by_reference_returns_the_newest_payment(adapter, mocked):
    created_after = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    older = load("payment_approved", id=1319830000, status="rejected", status_detail="cc_rejected_other_reason")
    older["date_created"] = "2025-03-14T10:01:00.000-04:00"
    newest = load("payment_approved")
    search = {"paging": {"total": 2, "limit": 30, "offset": 0}, "results": [newest, older]}
    reply(
        mocked,
        "GET",
        f"{API}/v1/payments/search",
        search,
        match=[matchers.query_param_matcher(search_params(created_after))],
    )

    result = adapter.find_by_reference(
        REF, amount=1999, currency="PEN", email="ana@example.pe", created_after=created_after
    )

    assert without_raw(result) == APPROVED_RESULT
    assert result.raw["id"] == 1319840012


def test_find_by_reference_picks_the_newest_even_if_the_answer_is_unsorted(adapter, mocked):
    older = load("payment_approved", id=1319830000, status="rejected", status_detail="cc_rejected_other_reason")
    older["date_created"] = "2025-03-14T10:01:00.000-04:00"
    search = {"paging": {"total": 2}, "results": [older, load("payment_approved")]}
    reply(mocked, "GET", f"{API}/v1/payments/search", search)

    result = adapter.find_by_reference(
        REF, amount=1999, currency="PEN", email="ana@example.pe", created_after=datetime.now(UTC)
    )

    assert result.gateway_payment_id == "1319840012"


def test_find_by_reference_absent_is_none(adapter, mocked):
    created_after = datetime.now(UTC).replace(microsecond=0)
    search = {"paging": {"total": 0, "limit": 30, "offset": 0}, "results": []}
    reply(
        mocked,
        "GET",
        f"{API}/v1/payments/search",
        search,
        match=[matchers.query_param_matcher(search_params(created_after))],
    )

    assert (
        adapter.find_by_reference(REF, amount=1999, currency="PEN", email="ana@example.pe", created_after=created_after)
        is None
    )


def test_find_by_reference_ignores_other_references(adapter, mocked):
    search = {"paging": {"total": 1}, "results": [load("payment_approved", external_reference="pay_OTHER")]}
    reply(mocked, "GET", f"{API}/v1/payments/search", search)

    assert (
        adapter.find_by_reference(REF, amount=1999, currency="PEN", email="a@b.pe", created_after=datetime.now(UTC))
        is None
    )


def test_find_by_reference_when_search_is_down_is_unavailable_not_none(adapter, mocked):
    mocked.add("GET", f"{API}/v1/payments/search", body=HTML_502, status=502, content_type="text/html")

    with pytest.raises(GatewayUnavailable):
        adapter.find_by_reference(REF, amount=1999, currency="PEN", email="a@b.pe", created_after=datetime.now(UTC))


# --- save_card / delete_card ---------------------------------------------------------------------------

SAVE = SaveCardRequest(token=TOKEN, email="ana@example.pe", reference="cus_01HQ80A1B2", name="Ana Quispe Mamani")
CUSTOMER_ID = "1620851234-pXRewrKqlP6pnn"
SAVED = SavedCard(
    gateway_customer_id=CUSTOMER_ID,
    gateway_card_id="9876543210",
    card=CardInfo(brand="master", last4="0604", exp_month=11, exp_year=2030),
)


def test_save_card_reuses_the_customer_found_by_email(adapter, mocked):
    search = {"paging": {"limit": 10, "offset": 0, "total": 1}, "results": [load("customer")]}
    reply(
        mocked,
        "GET",
        f"{API}/v1/customers/search",
        search,
        match=[matchers.query_param_matcher({"email": "ana@example.pe"})],
    )
    reply(mocked, "POST", f"{API}/v1/customers/{CUSTOMER_ID}/cards", load("customer_card"), status=201)

    result = adapter.save_card(SAVE)

    card_call = mocked.calls[1]
    assert card_call.request.body == b'{"token":"ff8080814c11e237014c1ff593b57b4d"}'
    assert card_call.request.headers["X-Idempotency-Key"].startswith("cus_01HQ80A1B2:card:")
    assert TOKEN not in card_call.request.headers["X-Idempotency-Key"]
    assert without_raw(result) == SAVED


def test_save_card_creates_the_customer_when_none_exists(adapter, mocked):
    reply(mocked, "GET", f"{API}/v1/customers/search", {"paging": {"total": 0}, "results": []})
    reply(mocked, "POST", f"{API}/v1/customers", load("customer"), status=201)
    reply(mocked, "POST", f"{API}/v1/customers/{CUSTOMER_ID}/cards", load("customer_card"), status=201)

    result = adapter.save_card(SAVE)

    customer_call = mocked.calls[1]
    assert customer_call.request.body == (
        b'{"email":"ana@example.pe","first_name":"Ana","last_name":"Quispe Mamani","description":"cus_01HQ80A1B2"}'
    )
    assert customer_call.request.headers["X-Idempotency-Key"] == "cus_01HQ80A1B2:customer"
    assert without_raw(result) == SAVED


def test_save_card_uses_the_known_customer_without_searching(adapter, mocked):
    reply(mocked, "POST", f"{API}/v1/customers/{CUSTOMER_ID}/cards", load("customer_card"), status=201)

    result = adapter.save_card(replace(SAVE, gateway_customer_id=CUSTOMER_ID))

    assert len(mocked.calls) == 1
    assert without_raw(result) == SAVED


def test_save_card_when_the_customer_appeared_meanwhile(adapter, mocked):
    reply(mocked, "GET", f"{API}/v1/customers/search", {"paging": {"total": 0}, "results": []})
    exists = mp_error(400, "the customer already exist", "bad_request", [{"code": "101", "description": "exists"}])
    reply(mocked, "POST", f"{API}/v1/customers", exists, status=400)
    reply(mocked, "GET", f"{API}/v1/customers/search", {"paging": {"total": 1}, "results": [load("customer")]})
    reply(mocked, "POST", f"{API}/v1/customers/{CUSTOMER_ID}/cards", load("customer_card"), status=201)

    assert without_raw(adapter.save_card(SAVE)) == SAVED


def test_save_card_with_a_bad_token_is_an_invalid_request(adapter, mocked):
    error = mp_error(400, "invalid card", "bad_request", [{"code": 121, "description": "invalid card data"}])
    reply(mocked, "POST", f"{API}/v1/customers/{CUSTOMER_ID}/cards", error, status=400)

    with pytest.raises(GatewayInvalidRequest) as excinfo:
        adapter.save_card(replace(SAVE, gateway_customer_id=CUSTOMER_ID))

    assert excinfo.value.gateway_code == "121"


@pytest.mark.parametrize("status", [200, 404])
def test_delete_card_done_or_already_gone(adapter, mocked, status):
    body = load("customer_card") if status == 200 else mp_error(404, "card not found", "not_found", [{"code": 120}])
    reply(mocked, "DELETE", f"{API}/v1/customers/{CUSTOMER_ID}/cards/9876543210", body, status=status)

    assert adapter.delete_card(SavedCardRef(gateway_customer_id=CUSTOMER_ID, gateway_card_id="9876543210")) is None
    assert mocked.calls[0].request.headers["Authorization"] == "Bearer TEST-token"


def test_delete_card_server_error_is_reported_as_try_again(adapter, mocked):
    """Deleting twice is harmless (the second is a 404, done), so a lost answer is just "unavailable"."""
    mocked.add("DELETE", f"{API}/v1/customers/{CUSTOMER_ID}/cards/9876543210", body=HTML_502, status=502)

    with pytest.raises(GatewayUnavailable) as excinfo:
        adapter.delete_card(SavedCardRef(gateway_customer_id=CUSTOMER_ID, gateway_card_id="9876543210"))

    assert type(excinfo.value) is GatewayUnavailable
    assert excinfo.value.http_status == 502


# --- Checkout Pro ----------------------------------------------------------------------------------------


def test_create_checkout(adapter, mocked):
    reply(mocked, "POST", f"{API}/checkout/preferences", load("preference"), status=201)
    request = CheckoutRequest(
        reference=REF,
        idempotency_key=f"{KEY}:checkout",
        amount=1999,
        currency="PEN",
        email="ana@example.pe",
        description="Plan mensual",
        return_url="https://shop.example/return",
        notification_url="https://smartpay.example/webhooks/mercadopago",
        expires_at=datetime(2025, 3, 15, 15, 0, tzinfo=UTC),
    )

    result = adapter.create_checkout(request)

    (call,) = mocked.calls
    assert call.request.body == (
        b'{"items":[{"id":"pay_01HQ7ZP3K9","title":"Plan mensual","quantity":1,"currency_id":"PEN",'
        b'"unit_price":19.99}],'
        b'"payer":{"email":"ana@example.pe"},'
        b'"back_urls":{"success":"https://shop.example/return","failure":"https://shop.example/return",'
        b'"pending":"https://shop.example/return"},'
        b'"auto_return":"approved","external_reference":"pay_01HQ7ZP3K9",'
        b'"metadata":{"smartpay_payment_id":"pay_01HQ7ZP3K9"},'
        b'"notification_url":"https://smartpay.example/webhooks/mercadopago",'
        b'"expires":true,"expiration_date_to":"2025-03-15T15:00:00.000+00:00"}'
    )
    assert call.request.headers["X-Idempotency-Key"] == f"{KEY}:checkout"
    assert without_raw(result) == CheckoutSession(
        gateway_checkout_id="1620846522-4f3d2c1b-9a8e-4d7c-b6a5-0f1e2d3c4b5a",
        redirect_url="https://www.mercadopago.com.pe/checkout/v1/redirect?pref_id=1620846522-4f3d2c1b-9a8e-4d7c-b6a5-0f1e2d3c4b5a",
    )


def test_create_checkout_without_init_point_is_unavailable(adapter, mocked):
    """A preference takes no money and its URL never reached the payer: safe to retry or fail over."""
    reply(mocked, "POST", f"{API}/checkout/preferences", load("preference", init_point=None), status=201)
    request = CheckoutRequest(
        reference=REF,
        idempotency_key=f"{KEY}:checkout",
        amount=1999,
        currency="PEN",
        email="ana@example.pe",
        description="Plan mensual",
        return_url="https://shop.example/return",
    )

    with pytest.raises(GatewayUnavailable) as excinfo:
        adapter.create_checkout(request)

    assert type(excinfo.value) is GatewayUnavailable
