"""When did a transport failure happen? Before the request left (`GatewayUnavailable`, safe to retry and
fail over) or after it may have been sent (`GatewayOutcomeUnknown` for side-effecting requests).

The classifier is tested on the exceptions requests raises (built as requests and urllib3 build them),
then the adapters against real TCP and TLS servers on 127.0.0.1 that fail at a chosen moment.
"""

import logging
import socket
import ssl
from http.client import RemoteDisconnected

import pytest
import requests
from urllib3.exceptions import (
    ConnectTimeoutError,
    MaxRetryError,
    NameResolutionError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
)
from urllib3.exceptions import ProxyError as Urllib3ProxyError
from urllib3.exceptions import SSLError as Urllib3SSLError

from payments.gateways.base import (
    ChargeRequest,
    CheckoutRequest,
    GatewayConfig,
    GatewayOutcomeUnknown,
    GatewayUnavailable,
    RefundRequest,
    request_never_left,
    transport_error,
)
from payments.gateways.culqi import CulqiAdapter
from payments.gateways.mercadopago import MercadoPagoAdapter
from tests.transport_faults import closed_port_url

# A URL with a secret in its path, as Mercado Pago's GET /v1/card_tokens/{token} has: it must never
# reach an error message.
SECRET_URL = "/v1/card_tokens/tok_SECRET_1234"


def do_handshake(error: BaseException):
    """Stands for ssl.SSLSocket.do_handshake: an error raised here was raised in the TLS handshake."""
    raise error


def getresponse(error: BaseException):
    """Stands for reading the answer, after the request was written."""
    raise error


def raised(frame, error: BaseException) -> BaseException:
    try:
        frame(error)
    except BaseException as caught:  # the exception with its traceback
        return caught
    raise AssertionError("unreachable")


def connect_error(reason: BaseException) -> requests.ConnectionError:
    return requests.ConnectionError(MaxRetryError(None, SECRET_URL, reason))


def lost(inner: BaseException) -> requests.ConnectionError:
    return requests.ConnectionError(ProtocolError("Connection aborted.", inner))


def handshake_timeout() -> requests.ReadTimeout:
    """urllib3 reports a TLS handshake that timed out as a read timeout, caused by the socket timeout."""
    timeout = raised(do_handshake, TimeoutError("_ssl.c:1000: The handshake operation timed out"))
    wrapped = ReadTimeoutError(None, SECRET_URL, "Read timed out. (read timeout=20)")
    wrapped.__cause__ = timeout
    return requests.ReadTimeout(wrapped)


NEVER_LEFT = [
    pytest.param(
        lambda: requests.ConnectTimeout(MaxRetryError(None, SECRET_URL, ConnectTimeoutError(None, "timed out"))),
        id="connect-timeout",
    ),
    pytest.param(lambda: requests.ConnectTimeout("connect timeout"), id="connect-timeout-bare"),
    pytest.param(
        lambda: connect_error(NameResolutionError("api.culqi.com", None, socket.gaierror(-2, "Name not known"))),
        id="dns-name-resolution",
    ),
    pytest.param(
        lambda: connect_error(NewConnectionError(None, "Failed to establish a new connection: [Errno 111] refused")),
        id="connection-refused",
    ),
    pytest.param(
        lambda: requests.exceptions.SSLError(
            MaxRetryError(
                None,
                SECRET_URL,
                Urllib3SSLError(ssl.SSLCertVerificationError(1, "certificate verify failed: self-signed")),
            )
        ),
        id="tls-certificate-refused",
    ),
    pytest.param(lambda: requests.exceptions.SSLError("bad handshake"), id="tls-error-bare"),
    pytest.param(
        lambda: requests.exceptions.SSLError(
            MaxRetryError(None, SECRET_URL, Urllib3SSLError(raised(do_handshake, ssl.SSLError(1, "alert"))))
        ),
        id="tls-error-raised-in-the-handshake",
    ),
    pytest.param(
        lambda: lost(raised(do_handshake, ConnectionResetError(104, "Connection reset by peer"))),
        id="reset-during-the-handshake",
    ),
    pytest.param(handshake_timeout, id="read-timeout-inside-the-handshake"),
    pytest.param(
        lambda: requests.exceptions.ProxyError(
            MaxRetryError(None, SECRET_URL, Urllib3ProxyError("Unable to connect to proxy", OSError("refused")))
        ),
        id="proxy-unreachable",
    ),
]


MAY_HAVE_LEFT = [
    pytest.param(
        lambda: requests.ReadTimeout(ReadTimeoutError(None, SECRET_URL, "Read timed out.")), id="read-timeout"
    ),
    pytest.param(lambda: requests.ReadTimeout("read timed out"), id="read-timeout-bare"),
    pytest.param(
        lambda: lost(RemoteDisconnected("Remote end closed connection without response")), id="remote-disconnected"
    ),
    pytest.param(lambda: lost(ConnectionResetError(104, "Connection reset by peer")), id="connection-reset"),
    pytest.param(lambda: lost(BrokenPipeError(32, "Broken pipe")), id="broken-pipe"),
    pytest.param(
        lambda: lost(raised(getresponse, ConnectionResetError(104, "Connection reset by peer"))),
        id="reset-while-reading-the-answer",
    ),
    pytest.param(
        lambda: requests.exceptions.ChunkedEncodingError(
            ProtocolError("Response ended prematurely", RemoteDisconnected("closed"))
        ),
        id="chunked-encoding",
    ),
    pytest.param(lambda: requests.exceptions.ContentDecodingError("incorrect header check"), id="content-decoding"),
    pytest.param(
        lambda: requests.exceptions.SSLError(
            MaxRetryError(None, SECRET_URL, Urllib3SSLError(raised(getresponse, ssl.SSLError(1, "bad record mac"))))
        ),
        id="tls-error-raised-after-the-handshake",
    ),
    pytest.param(lambda: requests.ConnectionError("refused"), id="connection-error-without-a-reason"),
    pytest.param(lambda: requests.exceptions.TooManyRedirects("Exceeded 30 redirects."), id="too-many-redirects"),
]


@pytest.mark.parametrize("make", NEVER_LEFT)
@pytest.mark.parametrize("side_effect", [True, False])
def test_failures_before_the_request_left_are_unavailable(make, side_effect):
    exc = make()

    error = transport_error(exc, gateway="culqi", side_effect=side_effect)

    assert request_never_left(exc) is True
    assert type(error) is GatewayUnavailable
    assert error.gateway == "culqi"
    assert "not sent" in error.message
    assert "SECRET" not in error.message


@pytest.mark.parametrize("make", MAY_HAVE_LEFT)
def test_failures_after_the_request_may_have_left_are_unknown_for_side_effects(make):
    exc = make()

    error = transport_error(exc, gateway="culqi", side_effect=True)

    assert request_never_left(exc) is False
    assert type(error) is GatewayOutcomeUnknown
    assert "after the request was sent" in error.message
    assert "SECRET" not in error.message


@pytest.mark.parametrize("make", MAY_HAVE_LEFT)
def test_failures_after_the_request_may_have_left_are_unavailable_for_reads(make):
    error = transport_error(make(), gateway="mercadopago", side_effect=False)

    assert type(error) is GatewayUnavailable
    assert error.gateway == "mercadopago"


def test_messages_say_what_failed_without_urls():
    dns = connect_error(NameResolutionError("api.culqi.com", None, socket.gaierror(-2, "Name not known")))
    assert transport_error(dns, gateway="culqi", side_effect=True).message == (
        "culqi: DNS lookup failed; the request was not sent"
    )
    timeout = requests.ReadTimeout(ReadTimeoutError(None, SECRET_URL, "Read timed out."))
    assert transport_error(timeout, gateway="culqi", side_effect=True).message == (
        "culqi: read timeout after the request was sent"
    )
    dropped = lost(RemoteDisconnected("Remote end closed connection without response"))
    assert transport_error(dropped, gateway="culqi", side_effect=True).message == (
        "culqi: no answer (RemoteDisconnected) after the request was sent"
    )


# --- The adapters against real servers ------------------------------------------------------------------


def culqi(
    base: str, *, ca_file: str | None = None, connect_timeout: float = 2.0, read_timeout: float = 5.0
) -> CulqiAdapter:
    session = requests.Session()
    session.trust_env = False  # no proxies nor CA bundles from the environment
    if ca_file:
        session.verify = ca_file
    config = GatewayConfig(
        api_base=base, secret_key="sk_test_x", connect_timeout=connect_timeout, read_timeout=read_timeout
    )
    return CulqiAdapter(config, session=session)


def mercadopago(base: str) -> MercadoPagoAdapter:
    session = requests.Session()
    session.trust_env = False
    config = GatewayConfig(api_base=base, secret_key="TEST-token", public_key="TEST-pk", read_timeout=5.0)
    return MercadoPagoAdapter(config, session=session)


def charge(**overrides) -> ChargeRequest:
    fields = {
        "reference": "pay_transport01",
        "idempotency_key": "pay_transport01:charge:1",
        "amount": 2500,
        "currency": "PEN",
        "email": "ana@example.pe",
        "token": "tkn_test_x",
    }
    return ChargeRequest(**{**fields, **overrides})


def checkout() -> CheckoutRequest:
    return CheckoutRequest(
        reference="pay_transport02",
        idempotency_key="pay_transport02:checkout:1",
        amount=2500,
        currency="PEN",
        email="ana@example.pe",
        description="Plan mensual",
        return_url="https://shop.example/return",
    )


def test_culqi_charge_dropped_after_the_server_read_it_is_unknown(servers):
    server = servers("drop_after_request")

    with pytest.raises(GatewayOutcomeUnknown, match="RemoteDisconnected"):
        culqi(server.url).charge(charge())

    (received,) = server.received
    assert (received.method, received.path) == ("POST", "/v2/charges")
    assert b'"smartpay_payment_id": "pay_transport01"' in received.body  # the whole charge arrived


def test_culqi_refund_dropped_after_the_server_read_it_is_unknown(servers):
    server = servers("drop_after_request")
    refund = RefundRequest(gateway_payment_id="chr_test_x", amount=1000, currency="PEN", idempotency_key="k")

    with pytest.raises(GatewayOutcomeUnknown):
        culqi(server.url).refund(refund)

    assert server.paths() == ["/v2/refunds"]


def test_culqi_retrieve_dropped_is_only_unavailable(servers):
    server = servers("drop_after_request")

    with pytest.raises(GatewayUnavailable) as excinfo:
        culqi(server.url).retrieve("chr_test_x")

    assert type(excinfo.value) is GatewayUnavailable
    assert server.paths() == ["/v2/charges/chr_test_x"]


@pytest.mark.parametrize("adapter", ["culqi", "mercadopago"])
def test_checkout_creation_dropped_is_unavailable_because_it_takes_no_money(servers, adapter):
    server = servers("drop_after_request")
    client = culqi(server.url) if adapter == "culqi" else mercadopago(server.url)

    with pytest.raises(GatewayUnavailable) as excinfo:
        client.create_checkout(checkout())

    assert type(excinfo.value) is GatewayUnavailable
    assert len(server.received) == 1


def test_plain_http_server_closing_before_reading_is_still_unknown(servers):
    """The client wrote the request before it could see the close: it cannot know the server read nothing."""
    server = servers("close_on_accept")

    with pytest.raises(GatewayOutcomeUnknown):
        culqi(server.url).charge(charge())

    assert server.accepted == 1 and server.received == []


def test_connection_refused_is_unavailable_even_for_a_charge():
    with pytest.raises(GatewayUnavailable, match="could not connect; the request was not sent") as excinfo:
        culqi(closed_port_url()).charge(charge())

    assert type(excinfo.value) is GatewayUnavailable


def test_tls_server_closing_before_the_handshake_is_unavailable(servers):
    server = servers("close_on_accept", tls=True)

    with pytest.raises(GatewayUnavailable, match="TLS handshake failed") as excinfo:
        culqi(server.url, ca_file=server.ca_file).charge(charge())

    assert type(excinfo.value) is GatewayUnavailable
    assert server.accepted == 1 and server.received == []


def test_untrusted_certificate_is_unavailable(servers):
    server = servers("drop_after_request", tls=True)

    with pytest.raises(GatewayUnavailable, match="TLS handshake failed") as excinfo:
        culqi(server.url).charge(charge())  # the self-signed certificate is not trusted

    assert type(excinfo.value) is GatewayUnavailable
    assert server.received == []


def test_tls_handshake_timeout_is_unavailable(servers):
    """urllib3 reports it as a read timeout (timed by the connect timeout), but no byte of the request was written."""
    server = servers("hold", tls=True)

    with pytest.raises(GatewayUnavailable, match="TLS handshake failed") as excinfo:
        culqi(server.url, ca_file=server.ca_file, connect_timeout=0.3).charge(charge())

    assert type(excinfo.value) is GatewayUnavailable


def test_tls_connection_dropped_after_the_request_is_unknown(servers):
    server = servers("drop_after_request", tls=True)

    with pytest.raises(GatewayOutcomeUnknown):
        culqi(server.url, ca_file=server.ca_file).charge(charge())

    assert server.handshakes == 1
    assert server.paths() == ["/v2/charges"]


def test_read_timeout_after_the_request_is_unknown(servers):
    server = servers("hold")

    with pytest.raises(GatewayOutcomeUnknown, match="read timeout"):
        culqi(server.url, read_timeout=0.3).charge(charge())


# --- HTTP statuses, from a real server ------------------------------------------------------------------


def test_503_on_a_culqi_charge_is_unknown(servers):
    server = servers("answer", status=503, body=b"Service Unavailable", headers={"Retry-After": "2"})

    with pytest.raises(GatewayOutcomeUnknown) as excinfo:
        culqi(server.url).charge(charge())

    assert (excinfo.value.http_status, excinfo.value.retry_after) == (503, 2.0)
    assert len(server.received) == 1


def test_503_on_a_culqi_get_is_unavailable(servers):
    server = servers("answer", status=503, body=b"Service Unavailable")

    with pytest.raises(GatewayUnavailable) as excinfo:
        culqi(server.url).retrieve("chr_test_x")

    assert type(excinfo.value) is GatewayUnavailable and excinfo.value.http_status == 503


def test_429_on_a_culqi_charge_is_unavailable(servers):
    body = b'{"object": "error", "type": "limit_api_error", "merchant_message": "Demasiadas solicitudes."}'
    server = servers("answer", status=429, body=body, headers={"Retry-After": "3"})

    with pytest.raises(GatewayUnavailable) as excinfo:
        culqi(server.url).charge(charge())

    assert type(excinfo.value) is GatewayUnavailable
    assert (excinfo.value.http_status, excinfo.value.retry_after) == (429, 3.0)


def test_503_on_a_culqi_order_is_unavailable(servers):
    server = servers("answer", status=503, body=b"Service Unavailable")

    with pytest.raises(GatewayUnavailable) as excinfo:
        culqi(server.url).create_checkout(checkout())

    assert type(excinfo.value) is GatewayUnavailable


@pytest.mark.parametrize("status", [503, 424])
def test_503_and_424_on_a_mercadopago_charge_are_unknown(servers, status):
    server = servers("answer", status=status, body=b'{"message": "unavailable", "status": %d}' % status)

    with pytest.raises(GatewayOutcomeUnknown) as excinfo:
        mercadopago(server.url).charge(charge(token="tok", payment_method_id="visa"))

    assert excinfo.value.http_status == status
    assert server.paths() == ["/v1/payments"]


def test_503_on_a_mercadopago_get_is_unavailable(servers):
    server = servers("answer", status=503, body=b"Service Unavailable", headers={"Retry-After": "1"})

    with pytest.raises(GatewayUnavailable) as excinfo:
        mercadopago(server.url).retrieve("1319840012")

    assert type(excinfo.value) is GatewayUnavailable and excinfo.value.retry_after == 1.0


def test_a_transport_failure_is_logged_without_the_card_token(servers, caplog):
    server = servers("drop_after_request")
    caplog.set_level(logging.WARNING, logger="smartpay.gateways")

    with pytest.raises(GatewayUnavailable):  # a token lookup moves no money: read-only
        mercadopago(server.url).charge(charge(token="tok_SECRET_5678"))

    assert server.paths() == ["/v1/card_tokens/tok_SECRET_5678"]  # it was in the URL
    (record,) = [r for r in caplog.records if r.getMessage() == "gateway transport failure"]
    assert record.path == "/v1/card_tokens/{token}"
    assert record.failure == "ConnectionError > ProtocolError > RemoteDisconnected"
    assert all("SECRET" not in str(value) for value in vars(record).values())
