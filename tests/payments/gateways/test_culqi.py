"""The Culqi adapter against Culqi-shaped HTTP traffic (docs/reference/culqi.md), mocked with `responses`."""

import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import responses
from responses import matchers

from payments.gateways import culqi
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
    RefundSeen,
    SaveCardRequest,
    SavedCard,
    SavedCardRef,
)
from payments.gateways.culqi import CulqiAdapter
from tests.transport_faults import connection_dropped, connection_refused

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "culqi"
API = "https://api.culqi.com"
SECURE = "https://secure.culqi.com"
REFERENCE = "pay_01HZX3K9Q7V2M4N6P8R0T2W4Y6"
TOKEN = "tkn_test_JHAv7ZGConm79OXU"
EMAIL = "ana.quispe@example.pe"
CHARGE_ID = "chr_test_Hj7RxQ1igDSznRiP"
AUTH_ID = "chr_test_DGO3kEym1Cxe9WJh"
CREATED_AT = datetime(2024, 5, 6, 12, 53, 22, tzinfo=UTC)  # 1715000002000 ms
VISA = CardInfo(brand="visa", last4="1111")

HTML_502 = (
    "<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1></center></body></html>"
)
SPRING_500 = {
    "timestamp": "2020-05-13T03:36:51.000+0000",
    "status": 500,
    "error": "Internal Server Error",
    "message": "No message available",
    "path": "/v2/charges",
}
APIGW_504 = {"message": "Endpoint request timed out"}


def load(name: str) -> dict:
    return json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))


def sent_json(call) -> dict:
    return json.loads(call.request.body)


def query(call) -> dict[str, list[str]]:
    return parse_qs(urlsplit(call.request.url).query)


@pytest.fixture
def adapter():
    return CulqiAdapter(GatewayConfig(api_base=API, secure_base=SECURE, public_key="pk_test_x", secret_key="sk_test_x"))


@pytest.fixture
def rsps():
    with responses.RequestsMock() as mock:
        yield mock


def charge_request(**overrides) -> ChargeRequest:
    fields = {
        "reference": REFERENCE,
        "idempotency_key": f"{REFERENCE}:attempt:1",
        "amount": 12550,
        "currency": "PEN",
        "email": EMAIL,
        "description": "Pedido 1042 - Tienda Acme",
        "token": TOKEN,
        "metadata": {"order_id": "1042"},
    }
    fields.update(overrides)
    return ChargeRequest(**fields)


def expected_body(**overrides) -> dict:
    body = {
        "amount": 12550,
        "currency_code": "PEN",
        "email": EMAIL,
        "source_id": TOKEN,
        "capture": True,
        "description": "Pedido 1042 - Tienda Acme",
        "metadata": {"smartpay_payment_id": REFERENCE, "order_id": "1042"},
    }
    body.update(overrides)
    return body


def assert_culqi_headers(call):
    headers = call.request.headers
    assert headers["Authorization"] == "Bearer sk_test_x"
    assert headers["Content-Type"] == "application/json"
    assert headers["Accept"] == "application/json"
    assert not any("idempotency" in name.lower() for name in headers)


# --- charge: successes --------------------------------------------------------------------------


def test_charge_captured(adapter, rsps):
    payload = load("charge_captured")
    rsps.post(f"{API}/v2/charges", json=payload, status=201)

    result = adapter.charge(charge_request())

    assert result == ChargeResult(
        status=ChargeStatus.SUCCEEDED,
        gateway_payment_id=CHARGE_ID,
        amount=12550,
        currency="PEN",
        gateway_status="venta_exitosa",
        card=VISA,
        reference=REFERENCE,
        created_at=CREATED_AT,
        refunds=(),
        raw=payload,
    )
    (call,) = rsps.calls
    assert sent_json(call) == expected_body()
    assert isinstance(sent_json(call)["amount"], int)
    assert_culqi_headers(call)
    assert "X-Charge-Channel" not in call.request.headers


def test_charge_authorize_only(adapter, rsps):
    payload = load("charge_authorized")
    rsps.post(f"{API}/v2/charges", json=payload, status=201)

    result = adapter.charge(charge_request(capture=False))

    assert result.status == ChargeStatus.AUTHORIZED
    assert result.gateway_payment_id == AUTH_ID
    assert result.amount == 12550
    assert result.amount_refunded == 0
    assert result.decline_code is None
    assert sent_json(rsps.calls[0]) == expected_body(capture=False)


def test_charge_saved_card_is_recurrent_and_uses_the_card_id(adapter, rsps):
    payload = load("charge_captured")
    payload["source"] = load("card")  # a crd_ charge embeds the card, which wraps the token (§5.2)
    rsps.post(f"{API}/v2/charges", json=payload, status=201)

    saved = SavedCardRef(gateway_customer_id="cus_test_ek1mJN6njtiknozF", gateway_card_id="crd_test_NcrDeY8rn4cccuMe")
    result = adapter.charge(charge_request(token=None, saved_card=saved, installments=3))

    assert result.status == ChargeStatus.SUCCEEDED
    assert result.card == VISA
    call = rsps.calls[0]
    assert call.request.headers["X-Charge-Channel"] == "recurrent"
    assert sent_json(call) == expected_body(source_id="crd_test_NcrDeY8rn4cccuMe", installments=3)
    assert_culqi_headers(call)


def test_charge_description_and_metadata_respect_culqi_limits(adapter, rsps):
    rsps.post(f"{API}/v2/charges", json=load("charge_captured"), status=201)
    metadata = {"smartpay_payment_id": "spoofed", "k" * 31: "dropped: key too long", "long": "v" * 250}
    metadata.update({f"key{i:02d}": str(i) for i in range(30)})

    adapter.charge(charge_request(description="abc", metadata=metadata, installments=1))

    sent = sent_json(rsps.calls[0])
    assert sent["description"] == f"Pago {REFERENCE}"
    assert "installments" not in sent
    assert len(sent["metadata"]) == 20
    assert sent["metadata"]["smartpay_payment_id"] == REFERENCE
    assert "k" * 31 not in sent["metadata"]
    assert sent["metadata"]["long"] == "v" * 200
    assert list(sent["metadata"])[2:] == [f"key{i:02d}" for i in range(18)]


def test_charge_long_description_is_cut_to_80(adapter, rsps):
    rsps.post(f"{API}/v2/charges", json=load("charge_captured"), status=201)

    adapter.charge(charge_request(description="Suscripción anual " + "x" * 100))

    assert sent_json(rsps.calls[0])["description"] == ("Suscripción anual " + "x" * 100)[:80]


def test_charge_in_an_unsupported_currency_sends_nothing(adapter, rsps):
    with pytest.raises(GatewayInvalidRequest) as excinfo:
        adapter.charge(charge_request(currency="EUR"))

    assert excinfo.value.param == "currency"
    assert len(rsps.calls) == 0


# --- charge: declines ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("culqi_code", "decline_code"),
    [
        ("insufficient_funds", "insufficient_funds"),
        ("stolen_card", "lost_or_stolen_card"),
        ("lost_card", "lost_or_stolen_card"),
        ("expired_card", "expired_card"),
        ("invalid_cvv", "incorrect_cvc"),
        ("incorrect_cvv", "incorrect_cvc"),
        ("too_many_attempts_cvv", "incorrect_cvc"),
        ("fraudulent", "fraud_suspected"),
        ("contact_issuer", "call_issuer"),
        ("invalid_card", "invalid_card_data"),
        ("culqi_card", "invalid_card_data"),
        ("amount_limit_exceeded", "amount_limit_exceeded"),
        ("issuer_not_available", "processing_error"),
        ("processing_error", "processing_error"),
        ("issuer_decline_operation", "card_declined"),
        ("soft_block", "card_declined"),
        ("something_new", "card_declined"),
    ],
)
def test_charge_decline_is_a_failed_result_with_a_normalised_code(adapter, rsps, culqi_code, decline_code):
    error = load("error_card_declined") | {"decline_code": culqi_code}
    rsps.post(f"{API}/v2/charges", json=error, status=402)

    result = adapter.charge(charge_request())

    assert result == ChargeResult(
        status=ChargeStatus.FAILED,
        gateway_payment_id="chr_test_5lV3IV6ssSs9xMi9",
        amount=12550,
        currency="PEN",
        decline_code=decline_code,
        decline_message=error["user_message"],
        gateway_code=culqi_code,
        gateway_status="card_error",
        reference=REFERENCE,
        raw=error,
    )


def test_charge_decline_with_an_outcome_like_type(adapter, rsps):
    rsps.post(f"{API}/v2/charges", json=load("error_contactar_emisor"), status=402)

    result = adapter.charge(charge_request())

    assert result.status == ChargeStatus.FAILED
    assert result.gateway_payment_id == "chr_test_gvPq58RfXvuoxp38"
    assert result.decline_code == "call_issuer"
    assert result.gateway_code == "contactar_emisor"
    assert result.decline_message == "Contáctese con la entidad emisora de su tarjeta."


def test_charge_decline_as_http_400_card_error(adapter, rsps):
    rsps.post(f"{API}/v2/charges", json=load("error_card_declined") | {"decline_code": "stolen_card"}, status=400)

    result = adapter.charge(charge_request())

    assert result.status == ChargeStatus.FAILED
    assert result.decline_code == "lost_or_stolen_card"
    assert result.gateway_code == "stolen_card"


def test_charge_201_without_venta_exitosa_is_failed(adapter, rsps):
    payload = load("charge_captured") | {
        "capture": None,
        "outcome": {
            "type": "expiracion_invalida",
            "code": "DNGA0054",
            "merchant_message": "Fecha de Expiracion Invalida.",
            "user_message": "La fecha de expiración de su tarjeta es inválida.",
        },
    }
    rsps.post(f"{API}/v2/charges", json=payload, status=201)

    result = adapter.charge(charge_request())

    assert result.status == ChargeStatus.FAILED
    assert result.gateway_payment_id == CHARGE_ID
    assert result.decline_code == "invalid_card_data"
    assert result.gateway_code == "expiracion_invalida"
    assert result.decline_message == "La fecha de expiración de su tarjeta es inválida."


# --- charge: 3-D Secure ---------------------------------------------------------------------------


def test_charge_review_requires_three_d_secure_and_made_no_charge(adapter, rsps):
    payload = load("review")
    rsps.post(f"{API}/v2/charges", json=payload, status=200)

    result = adapter.charge(charge_request())

    assert result == ChargeResult(
        status=ChargeStatus.REQUIRES_ACTION,
        gateway_payment_id=None,
        amount=12550,
        currency="PEN",
        gateway_status="REVIEW",
        next_action={
            "type": "three_d_secure",
            "provider": "culqi",
            "action_code": "REVIEW",
            "public_key": "pk_test_x",
            "amount": 12550,
            "currency": "PEN",
            "email": EMAIL,
            "user_message": "Por favor, autentica la operación con tu banco.",
        },
        reference=REFERENCE,
        raw=payload,
    )


# --- charge: errors -------------------------------------------------------------------------------


def test_parameter_error_is_an_invalid_request_naming_the_param(adapter, rsps):
    rsps.post(f"{API}/v2/charges", json=load("error_parameter"), status=400)

    with pytest.raises(GatewayInvalidRequest) as excinfo:
        adapter.charge(charge_request())

    error = excinfo.value
    assert type(error) is GatewayInvalidRequest
    assert error.param == "source_id"
    assert error.gateway_code == "invalid_source_id"
    assert error.http_status == 400
    assert error.gateway == "culqi"
    assert "expiró" in error.message


def test_parameter_error_with_422(adapter, rsps):
    rsps.post(f"{API}/v2/charges", json=load("error_parameter") | {"param": "amount"}, status=422)

    with pytest.raises(GatewayInvalidRequest) as excinfo:
        adapter.charge(charge_request())

    assert excinfo.value.param == "amount"


def test_authentication_error_is_a_configuration_error(adapter, rsps):
    rsps.post(f"{API}/v2/charges", json=load("error_authentication"), status=401)

    with pytest.raises(GatewayConfigurationError) as excinfo:
        adapter.charge(charge_request())

    assert excinfo.value.http_status == 401
    assert excinfo.value.gateway_code == "invalid_key"


def test_missing_secret_key_is_a_configuration_error_and_sends_nothing(rsps):
    adapter = CulqiAdapter(GatewayConfig(api_base=API, secret_key=""))

    with pytest.raises(GatewayConfigurationError):
        adapter.charge(charge_request())

    assert len(rsps.calls) == 0


def test_429_is_unavailable_with_retry_after(adapter, rsps):
    body = {"object": "error", "type": "limit_api_error", "merchant_message": "Demasiadas solicitudes."}
    rsps.post(f"{API}/v2/charges", json=body, status=429, headers={"Retry-After": "7"})

    with pytest.raises(GatewayUnavailable) as excinfo:
        adapter.charge(charge_request())

    assert excinfo.value.retry_after == 7.0
    assert excinfo.value.http_status == 429


def test_503_on_a_charge_is_outcome_unknown(adapter, rsps):
    """Culqi documents no "not processed" answer: after a charge was sent, a 503 may follow a charge made."""
    body = {"object": "error", "type": "api_error", "merchant_message": "Servicio no disponible."}
    rsps.post(f"{API}/v2/charges", json=body, status=503, headers={"Retry-After": "5"})

    with pytest.raises(GatewayOutcomeUnknown) as excinfo:
        adapter.charge(charge_request())

    assert excinfo.value.http_status == 503
    assert excinfo.value.retry_after == 5.0
    assert excinfo.value.gateway_code == "api_error"


def test_503_on_a_get_is_unavailable(adapter, rsps):
    body = {"object": "error", "type": "api_error", "merchant_message": "Servicio no disponible."}
    rsps.get(f"{API}/v2/charges/{CHARGE_ID}", json=body, status=503)

    with pytest.raises(GatewayUnavailable) as excinfo:
        adapter.retrieve(CHARGE_ID)

    assert type(excinfo.value) is GatewayUnavailable
    assert excinfo.value.gateway_code == "api_error"


SERVER_ERRORS = [
    pytest.param(500, {"json": SPRING_500}, id="500-spring-boot"),
    pytest.param(500, {"body": "Internal Server Error", "content_type": "text/plain"}, id="500-plain"),
    pytest.param(502, {"body": HTML_502, "content_type": "text/html"}, id="502-html"),
    pytest.param(504, {"json": APIGW_504}, id="504-api-gateway"),
    pytest.param(
        504, {"json": {"object": "error", "merchant_message": "Intenta de nuevo.", "user_message": "Intenta de nuevo."}}
    ),
]


@pytest.mark.parametrize(("status", "body"), SERVER_ERRORS)
def test_server_error_after_a_post_is_outcome_unknown(adapter, rsps, status, body):
    rsps.post(f"{API}/v2/charges", status=status, **body)

    with pytest.raises(GatewayOutcomeUnknown) as excinfo:
        adapter.charge(charge_request())

    assert excinfo.value.http_status == status


@pytest.mark.parametrize(("status", "body"), SERVER_ERRORS)
def test_server_error_on_a_get_is_unavailable(adapter, rsps, status, body):
    rsps.get(f"{API}/v2/charges/{CHARGE_ID}", status=status, **body)

    with pytest.raises(GatewayUnavailable) as excinfo:
        adapter.retrieve(CHARGE_ID)

    assert excinfo.value.http_status == status


@pytest.mark.parametrize(
    ("status", "body"),
    [
        pytest.param(201, {"body": '{"object": "charge", "id": "chr_test_', "content_type": "application/json"}),
        pytest.param(200, {"body": "<html>ok</html>", "content_type": "text/html"}, id="200-html"),
        pytest.param(201, {"json": {"object": "charge", "amount": 12550}}, id="201-charge-without-id"),
        pytest.param(200, {"json": {"status": "ok"}}, id="200-not-culqi"),
        pytest.param(402, {"body": "Payment Required", "content_type": "text/plain"}, id="402-not-culqi"),
        pytest.param(400, {"body": "<html>Bad Request</html>", "content_type": "text/html"}, id="400-html"),
    ],
)
def test_unreadable_answer_to_a_charge_is_outcome_unknown(adapter, rsps, status, body):
    rsps.post(f"{API}/v2/charges", status=status, **body)

    with pytest.raises(GatewayOutcomeUnknown):
        adapter.charge(charge_request())


@pytest.mark.parametrize(
    "body",
    [
        {"body": "{not json", "content_type": "application/json"},
        {"json": ["chr_test_Hj7RxQ1igDSznRiP"]},
        {"json": {"object": "charge", "id": CHARGE_ID, "amount": "doce", "currency_code": "PEN"}},
    ],
)
def test_unreadable_answer_to_a_retrieve_is_unavailable(adapter, rsps, body):
    rsps.get(f"{API}/v2/charges/{CHARGE_ID}", status=200, **body)

    with pytest.raises(GatewayUnavailable):
        adapter.retrieve(CHARGE_ID)


def test_connection_refused_is_unavailable(adapter, rsps):
    rsps.post(f"{API}/v2/charges", body=connection_refused())

    with pytest.raises(GatewayUnavailable) as excinfo:
        adapter.charge(charge_request())

    assert type(excinfo.value) is GatewayUnavailable


def test_connection_dropped_after_a_post_is_outcome_unknown(adapter, rsps):
    rsps.post(f"{API}/v2/charges", body=connection_dropped())

    with pytest.raises(GatewayOutcomeUnknown):
        adapter.charge(charge_request())


def test_connection_dropped_on_a_get_is_unavailable(adapter, rsps):
    rsps.get(f"{API}/v2/charges/{CHARGE_ID}", body=connection_dropped())

    with pytest.raises(GatewayUnavailable):
        adapter.retrieve(CHARGE_ID)


def test_read_timeout_after_a_post_is_outcome_unknown(adapter, rsps):
    rsps.post(f"{API}/v2/charges", body=requests.ReadTimeout("read timed out"))

    with pytest.raises(GatewayOutcomeUnknown):
        adapter.charge(charge_request())


def test_read_timeout_on_a_get_is_unavailable(adapter, rsps):
    rsps.get(f"{API}/v2/charges/{CHARGE_ID}", body=requests.ReadTimeout("read timed out"))

    with pytest.raises(GatewayUnavailable):
        adapter.retrieve(CHARGE_ID)


def test_secret_key_and_token_are_never_logged(adapter, rsps, caplog):
    rsps.post(f"{API}/v2/charges", json=load("charge_captured"), status=201)

    with caplog.at_level(logging.DEBUG, logger="smartpay"):
        adapter.charge(charge_request())

    logged = " ".join(f"{record.getMessage()} {record.__dict__}" for record in caplog.records)
    assert "/v2/charges" in logged
    assert "sk_test_x" not in logged
    assert TOKEN not in logged


# --- retrieve -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount_refunded", "status"),
    [
        (0, ChargeStatus.SUCCEEDED),
        (4000, ChargeStatus.PARTIALLY_REFUNDED),
        (12550, ChargeStatus.REFUNDED),
    ],
)
def test_retrieve_refund_states(adapter, rsps, amount_refunded, status):
    operations = [
        {"type": "devolución", "id": "ref_test_0000000000000001", "creation_date": 1715000090000, "amount": 4000},
        {"type": "devolución", "id": "ref_test_0000000000000002", "creation_date": 1715000095000, "amount": 8550},
    ]
    listed = [op for op in operations if op["amount"] <= amount_refunded][: 1 if amount_refunded == 4000 else 2]
    payload = load("charge_captured") | {
        "amount_refunded": amount_refunded,
        "current_amount": 12550 - amount_refunded,
        "capture_date": 1715000060000,
        "operations": listed if amount_refunded else [],
    }
    rsps.get(f"{API}/v2/charges/{CHARGE_ID}", json=payload, status=200)

    result = adapter.retrieve(CHARGE_ID)

    assert result == ChargeResult(
        status=status,
        gateway_payment_id=CHARGE_ID,
        amount=12550,
        currency="PEN",
        amount_refunded=amount_refunded,
        gateway_status="venta_exitosa",
        card=VISA,
        reference=REFERENCE,
        created_at=CREATED_AT,
        refunds=tuple(RefundSeen(op["id"], op["amount"]) for op in payload["operations"]),
        raw=payload,
    )
    assert sum(seen.amount for seen in result.refunds) == amount_refunded
    assert_culqi_headers(rsps.calls[0])


def test_retrieve_a_stored_decline(adapter, rsps):
    payload = load("charge_declined")
    rsps.get(f"{API}/v2/charges/chr_test_5lV3IV6ssSs9xMi9", json=payload, status=200)

    result = adapter.retrieve("chr_test_5lV3IV6ssSs9xMi9")

    assert result.status == ChargeStatus.FAILED
    assert result.decline_code == "insufficient_funds"
    assert result.gateway_code == "insufficient_funds"
    assert result.gateway_status == "card_error"
    assert result.decline_message == payload["outcome"]["user_message"]


def test_retrieve_unknown_charge_is_not_found(adapter, rsps):
    body = {"object": "error", "type": "resource_error", "merchant_message": "No existe el cargo.", "param": "id"}
    rsps.get(f"{API}/v2/charges/chr_test_doesnotexist0000", json=body, status=404)

    with pytest.raises(GatewayNotFound):
        adapter.retrieve("chr_test_doesnotexist0000")


def test_retrieve_404_that_culqi_did_not_write_is_unavailable(adapter, rsps):
    rsps.get(f"{API}/v2/charges/{CHARGE_ID}", body="<h1>Not Found</h1>", status=404, content_type="text/html")

    with pytest.raises(GatewayUnavailable):
        adapter.retrieve(CHARGE_ID)


# --- capture and cancel -------------------------------------------------------------------------


def test_capture(adapter, rsps):
    payload = load("charge_authorized") | {"capture": True}
    rsps.post(f"{API}/v2/charges/{AUTH_ID}/capture", json=payload, status=201)

    result = adapter.capture(AUTH_ID, amount=None, idempotency_key="cap-1")

    assert result.status == ChargeStatus.SUCCEEDED
    assert result.gateway_payment_id == AUTH_ID
    (call,) = rsps.calls
    assert call.request.body is None
    assert_culqi_headers(call)


def test_capture_with_the_full_amount_checks_then_captures(adapter, rsps):
    rsps.get(f"{API}/v2/charges/{AUTH_ID}", json=load("charge_authorized"), status=200)
    rsps.post(f"{API}/v2/charges/{AUTH_ID}/capture", json=load("charge_authorized") | {"capture": True}, status=201)

    result = adapter.capture(AUTH_ID, amount=12550, idempotency_key="cap-1")

    assert result.status == ChargeStatus.SUCCEEDED


def test_partial_capture_is_refused_before_capturing(adapter, rsps):
    rsps.get(f"{API}/v2/charges/{AUTH_ID}", json=load("charge_authorized"), status=200)

    with pytest.raises(GatewayInvalidRequest) as excinfo:
        adapter.capture(AUTH_ID, amount=10000, idempotency_key="cap-1")

    assert excinfo.value.param == "amount"
    assert "partial capture" in excinfo.value.message
    assert [call.request.method for call in rsps.calls] == ["GET"]


def test_cancel_refunds_the_whole_authorization(adapter, rsps):
    authorized = load("charge_authorized")
    released = authorized | {"amount_refunded": 12550, "current_amount": 0}
    rsps.get(f"{API}/v2/charges/{AUTH_ID}", json=authorized, status=200)
    rsps.post(
        f"{API}/v2/refunds",
        json=load("refund") | {"charge_id": AUTH_ID, "amount": 12550},
        status=201,
        match=[matchers.json_params_matcher({"amount": 12550, "charge_id": AUTH_ID, "reason": "solicitud_comprador"})],
    )
    rsps.get(f"{API}/v2/charges/{AUTH_ID}", json=released, status=200)

    result = adapter.cancel(AUTH_ID, idempotency_key="cancel-1")

    assert result.status == ChargeStatus.CANCELED
    assert result.amount_refunded == 12550
    assert result.raw == released
    assert [call.request.method for call in rsps.calls] == ["GET", "POST", "GET"]


def test_cancel_of_a_captured_charge_is_refused_without_refunding(adapter, rsps):
    rsps.get(f"{API}/v2/charges/{CHARGE_ID}", json=load("charge_captured"), status=200)

    with pytest.raises(GatewayInvalidRequest):
        adapter.cancel(CHARGE_ID, idempotency_key="cancel-1")

    assert [call.request.method for call in rsps.calls] == ["GET"]


# --- refunds --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reason", "culqi_reason"),
    [
        ("duplicate", "duplicado"),
        ("Duplicated order", "duplicado"),
        ("fraudulent", "fraudulento"),
        ("requested_by_customer", "solicitud_comprador"),
        ("", "solicitud_comprador"),
    ],
)
def test_partial_refund(adapter, rsps, reason, culqi_reason):
    payload = load("refund")
    rsps.post(f"{API}/v2/refunds", json=payload, status=201)

    result = adapter.refund(
        RefundRequest(
            gateway_payment_id=CHARGE_ID,
            amount=4000,
            currency="PEN",
            idempotency_key="re_01:1",
            reason=reason,
            reference="re_01",
        )
    )

    assert result == RefundResult(
        gateway_refund_id="ref_test_5XDnb6uKy0PiodCn", status="succeeded", amount=4000, raw=payload
    )
    (call,) = rsps.calls
    assert sent_json(call) == {
        "amount": 4000,
        "charge_id": CHARGE_ID,
        "reason": culqi_reason,
        "metadata": {"smartpay_refund_id": "re_01"},  # a lost answer can be matched later
    }
    assert_culqi_headers(call)


def test_refund_beyond_the_charge_is_an_invalid_request(adapter, rsps):
    body = load("error_parameter") | {"code": "invalid_amount", "param": "amount"}
    rsps.post(f"{API}/v2/refunds", json=body, status=400)

    with pytest.raises(GatewayInvalidRequest) as excinfo:
        adapter.refund(RefundRequest(gateway_payment_id=CHARGE_ID, amount=99999, currency="PEN", idempotency_key="k"))

    assert excinfo.value.param == "amount"


# --- find_by_reference ----------------------------------------------------------------------------

SEARCH_FROM = datetime(2024, 5, 6, 12, 50, tzinfo=UTC)
SEARCH_PARAMS = {
    "email": EMAIL,
    "amount": "12550",
    "currency_code": "PEN",
    "creation_date_from": str(int(SEARCH_FROM.timestamp()) - 15 * 60),  # epoch seconds, with clock skew
    "limit": "100",
}


def add_pages(rsps):
    rsps.get(
        f"{API}/v2/charges",
        json=load("charge_list_page1"),
        match=[matchers.query_param_matcher(SEARCH_PARAMS)],
    )
    rsps.get(
        f"{API}/v2/charges",
        json=load("charge_list_page2"),
        match=[matchers.query_param_matcher(SEARCH_PARAMS | {"after": "chr_test_SHvFuznvdB8laU2y"})],
    )


def test_find_by_reference_found_on_the_second_page(adapter, rsps):
    add_pages(rsps)

    result = adapter.find_by_reference(REFERENCE, amount=12550, currency="PEN", email=EMAIL, created_after=SEARCH_FROM)

    # Page 2 holds a decline and a success for the same payment: the success is the answer.
    assert result == ChargeResult(
        status=ChargeStatus.SUCCEEDED,
        gateway_payment_id=CHARGE_ID,
        amount=12550,
        currency="PEN",
        gateway_status="venta_exitosa",
        card=VISA,
        reference=REFERENCE,
        created_at=CREATED_AT,
        refunds=(),
        raw=load("charge_list_page2")["data"][0],
    )
    assert len(rsps.calls) == 2
    assert_culqi_headers(rsps.calls[1])


def test_find_by_reference_absent_after_all_pages(adapter, rsps):
    add_pages(rsps)

    result = adapter.find_by_reference(
        "pay_01HZX3ZZZZNEVERCHARGED0000", amount=12550, currency="PEN", email=EMAIL, created_after=SEARCH_FROM
    )

    assert result is None
    assert len(rsps.calls) == 2


def test_find_by_reference_returns_a_decline_when_that_is_all_there_is(adapter, rsps):
    page = load("charge_list_page2")
    page["data"] = page["data"][1:]
    rsps.get(f"{API}/v2/charges", json=page)

    result = adapter.find_by_reference(REFERENCE, amount=12550, currency="PEN", email=EMAIL, created_after=SEARCH_FROM)

    assert result.status == ChargeStatus.FAILED
    assert result.gateway_payment_id == "chr_test_5lV3IV6ssSs9xMi9"


def test_find_by_reference_without_a_cursor_to_follow_does_not_conclude_absence(adapter, rsps):
    page = load("charge_list_page1")
    page["paging"]["cursors"]["after"] = None
    rsps.get(f"{API}/v2/charges", json=page)

    with pytest.raises(GatewayUnavailable):
        adapter.find_by_reference(REFERENCE, amount=12550, currency="PEN", email=EMAIL, created_after=SEARCH_FROM)


def test_find_by_reference_server_error_is_unavailable(adapter, rsps):
    rsps.get(f"{API}/v2/charges", body=HTML_502, status=502, content_type="text/html")

    with pytest.raises(GatewayUnavailable):
        adapter.find_by_reference(REFERENCE, amount=12550, currency="PEN", email=EMAIL, created_after=SEARCH_FROM)


# --- saved cards ----------------------------------------------------------------------------------


def save_card_request(**overrides) -> SaveCardRequest:
    fields = {
        "token": TOKEN,
        "email": EMAIL,
        "reference": "cus_01HZX3M1A2B3C4D5E6F7G8H9J0",
        "name": "Ana Quispe Mamani",
        "phone": "+51 987 654 321",
    }
    fields.update(overrides)
    return SaveCardRequest(**fields)


def test_save_card_for_a_new_customer(adapter, rsps):
    card = load("card")
    rsps.post(f"{API}/v2/customers", json=load("customer"), status=201)
    rsps.post(f"{API}/v2/cards", json=card, status=201)

    saved = adapter.save_card(save_card_request())

    assert saved == SavedCard(
        gateway_customer_id="cus_test_ek1mJN6njtiknozF",
        gateway_card_id="crd_test_NcrDeY8rn4cccuMe",
        card=VISA,
        raw=card,
    )
    customer_call, card_call = rsps.calls
    assert sent_json(customer_call) == {
        "first_name": "Ana",
        "last_name": "Quispe Mamani",
        "email": EMAIL,
        "address": "Sin dirección",
        "address_city": "Lima",
        "country_code": "PE",
        "phone_number": "51987654321",
        "metadata": {"smartpay_customer_id": "cus_01HZX3M1A2B3C4D5E6F7G8H9J0"},
    }
    assert sent_json(card_call) == {"customer_id": "cus_test_ek1mJN6njtiknozF", "token_id": TOKEN, "validate": True}
    assert_culqi_headers(customer_call)
    assert_culqi_headers(card_call)


def test_save_card_new_customer_defaults(adapter, rsps):
    rsps.post(f"{API}/v2/customers", json=load("customer"), status=201)
    rsps.post(f"{API}/v2/cards", json=load("card"), status=201)

    adapter.save_card(save_card_request(name="", phone="n/a"))

    sent = sent_json(rsps.calls[0])
    assert (sent["first_name"], sent["last_name"], sent["phone_number"]) == ("Cliente", "SmartPay", "999999999")


@pytest.mark.parametrize(
    ("name", "first", "last"),
    [
        ("J Pérez", "J.", "Pérez"),
        ("Ana B", "Ana", "B."),
        ("X", "X.", "SmartPay"),
        ("   ", "Cliente", "SmartPay"),
        ("A" * 60 + " Quispe", "A" * 50, "Quispe"),
    ],
)
def test_save_card_names_fit_culqis_two_to_fifty_characters(adapter, rsps, name, first, last):
    """Culqi refuses a first or last name shorter than 2 characters (its customer validation)."""
    rsps.post(f"{API}/v2/customers", json=load("customer"), status=201)
    rsps.post(f"{API}/v2/cards", json=load("card"), status=201)

    adapter.save_card(save_card_request(name=name))

    sent = sent_json(rsps.calls[0])
    assert (sent["first_name"], sent["last_name"]) == (first, last)
    assert all(2 <= len(sent[key]) <= 50 for key in ("first_name", "last_name"))


def test_save_card_for_an_existing_customer(adapter, rsps):
    rsps.post(f"{API}/v2/cards", json=load("card"), status=201)

    saved = adapter.save_card(save_card_request(gateway_customer_id="cus_test_ek1mJN6njtiknozF"))

    assert saved.gateway_card_id == "crd_test_NcrDeY8rn4cccuMe"
    assert saved.gateway_customer_id == "cus_test_ek1mJN6njtiknozF"
    (call,) = rsps.calls
    assert sent_json(call) == {"customer_id": "cus_test_ek1mJN6njtiknozF", "token_id": TOKEN, "validate": True}


def test_save_card_declined_validation(adapter, rsps):
    error = load("error_card_declined") | {"decline_code": "lost_card"}
    rsps.post(f"{API}/v2/customers", json=load("customer"), status=201)
    rsps.post(f"{API}/v2/cards", json=error, status=400)

    with pytest.raises(GatewayInvalidRequest) as excinfo:
        adapter.save_card(save_card_request())

    assert excinfo.value.gateway_code == "lost_card"
    assert excinfo.value.message == error["user_message"]
    assert excinfo.value.gateway_customer_id == "cus_test_ek1mJN6njtiknozF"  # created here: keep it


def test_save_card_review_needs_three_d_secure(adapter, rsps):
    rsps.post(f"{API}/v2/cards", json=load("review"), status=200)

    with pytest.raises(GatewayInvalidRequest) as excinfo:
        adapter.save_card(save_card_request(gateway_customer_id="cus_test_ek1mJN6njtiknozF"))

    assert excinfo.value.message == "3-D Secure required to save this card"
    assert not hasattr(excinfo.value, "gateway_customer_id")


def test_delete_card(adapter, rsps):
    rsps.delete(f"{API}/v2/cards/crd_test_NcrDeY8rn4cccuMe", json=load("card_deleted"), status=200)

    assert adapter.delete_card(SavedCardRef("cus_test_ek1mJN6njtiknozF", "crd_test_NcrDeY8rn4cccuMe")) is None

    assert_culqi_headers(rsps.calls[0])


def test_delete_card_already_gone(adapter, rsps):
    body = {"object": "error", "type": "resource_error", "merchant_message": "No existe la tarjeta.", "param": "id"}
    rsps.delete(f"{API}/v2/cards/crd_test_NcrDeY8rn4cccuMe", json=body, status=404)

    adapter.delete_card(SavedCardRef("cus_test_ek1mJN6njtiknozF", "crd_test_NcrDeY8rn4cccuMe"))


# --- checkout (orders) ----------------------------------------------------------------------------


def checkout_request(**overrides) -> CheckoutRequest:
    fields = {
        "reference": REFERENCE,
        "idempotency_key": f"{REFERENCE}:checkout:1",
        "amount": 12550,
        "currency": "PEN",
        "email": EMAIL,
        "description": "Pedido 1042 - Tienda Acme",
        "return_url": "https://acme.example/return?order=1042&ok=1",
    }
    fields.update(overrides)
    return CheckoutRequest(**fields)


def test_create_checkout(adapter, rsps):
    order = load("order")
    rsps.post(f"{API}/v2/orders", json=order, status=201)

    session = adapter.create_checkout(checkout_request(expires_at=datetime(2024, 5, 7, 12, 53, 20, tzinfo=UTC)))

    assert session == CheckoutSession(
        gateway_checkout_id="ord_test_OKFVlnS9ALXbO6LV",
        redirect_url=(
            f"{SECURE}/checkout/ord_test_OKFVlnS9ALXbO6LV"
            "?return_url=https%3A%2F%2Facme.example%2Freturn%3Forder%3D1042%26ok%3D1"
        ),
        raw=order,
    )
    (call,) = rsps.calls
    assert sent_json(call) == {
        "amount": 12550,
        "currency_code": "PEN",
        "description": "Pedido 1042 - Tienda Acme",
        "order_number": REFERENCE,
        "expiration_date": 1715086400,
        "client_details": {
            "first_name": "Cliente",
            "last_name": "SmartPay",
            "email": EMAIL,
            "phone_number": "999999999",
        },
        "confirm": False,
        "metadata": {"smartpay_payment_id": REFERENCE},
    }
    assert_culqi_headers(call)


def test_create_checkout_expires_in_24_hours_by_default(adapter, rsps, monkeypatch):
    monkeypatch.setattr(culqi, "_now", lambda: datetime(2024, 5, 6, 12, 53, 20, tzinfo=UTC))
    rsps.post(f"{API}/v2/orders", json=load("order"), status=201)

    adapter.create_checkout(checkout_request(description=""))

    sent = sent_json(rsps.calls[0])
    assert sent["expiration_date"] == 1715000000 + 24 * 3600
    assert sent["description"] == f"Pago {REFERENCE}"


def test_create_checkout_timeout_is_unavailable(adapter, rsps):
    """An order takes no money and its URL never reached the payer: safe to retry or fail over."""
    rsps.post(f"{API}/v2/orders", body=requests.ReadTimeout("read timed out"))

    with pytest.raises(GatewayUnavailable) as excinfo:
        adapter.create_checkout(checkout_request())

    assert type(excinfo.value) is GatewayUnavailable
