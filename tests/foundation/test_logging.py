"""Logs are JSON lines tagged with the request id; secrets and card numbers never reach them."""

import io
import json
import logging

import pytest
from rest_framework.test import APIClient

from smartpay import request_context
from smartpay.logging import JsonFormatter, RedactingFilter, RequestIdFilter, redact

CARD = "4111111111111111"


@pytest.fixture
def log_lines():
    """A handler configured like the production console handler, on a test logger; yields a reader."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestIdFilter())
    handler.addFilter(RedactingFilter())
    logger = logging.getLogger("smartpay.tests.logging")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)

    def read() -> list[dict]:
        lines = stream.getvalue().splitlines()
        return [json.loads(line) for line in lines]

    read.logger = logger
    yield read
    logger.removeHandler(handler)


def test_settings_wire_the_json_formatter_and_both_filters_on_the_console_handler(settings):
    console = settings.LOGGING["handlers"]["console"]
    assert settings.LOGGING["formatters"][console["formatter"]]["()"] == "smartpay.logging.JsonFormatter"
    filters = {settings.LOGGING["filters"][name]["()"] for name in console["filters"]}
    assert filters == {"smartpay.logging.RequestIdFilter", "smartpay.logging.RedactingFilter"}
    assert "console" in settings.LOGGING["root"]["handlers"]
    # ...and the running process really has that handler on the root logger.
    root_formatters = [type(handler.formatter) for handler in logging.getLogger().handlers]
    assert JsonFormatter in root_formatters


def test_one_json_object_per_line_with_the_request_id(log_lines):
    token = request_context.set_request_id("req_logtest1")
    try:
        log_lines.logger.info("first line\nwith an embedded newline")
        log_lines.logger.warning("second %s", "message", extra={"payment_id": "pay_01abc", "amount": 1500})
    finally:
        request_context.reset_request_id(token)
    log_lines.logger.info("outside any request")
    first, second, third = log_lines()
    assert first["message"] == "first line\nwith an embedded newline"
    assert first["level"] == "INFO"
    assert first["logger"] == "smartpay.tests.logging"
    assert first["ts"].endswith("+00:00")
    assert first["request_id"] == "req_logtest1"
    assert second["message"] == "second message"
    assert second["request_id"] == "req_logtest1"
    assert second["payment_id"] == "pay_01abc"
    assert second["amount"] == 1500
    assert third["request_id"] is None


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("calling with Authorization: Bearer sk_live_AbCdEf0123456789xyz", "sk_live_AbCdEf0123456789xyz"),
        ("raw key sk_test_Zz9Yy8Xx7Ww6Vv5 leaked", "sk_test_Zz9Yy8Xx7Ww6Vv5"),
        ("GET /x?api_key=k3y-v4lue&amount=1500", "k3y-v4lue"),
        ('body {"email": "a@b.pe", "password": "hunter2 with spaces"}', "hunter2"),
        ("{'password': 'pa55'}", "pa55"),
        ("config secret=s3cr3t-value and more", "s3cr3t-value"),
        ("webhook_secret=whsec_abcdef", "whsec_abcdef"),
        ("mp access_token: APP_USR-123-abc", "APP_USR-123-abc"),
        ("Authorization: Basic dXNlcjpwYXNz", "dXNlcjpwYXNz"),
        ("cvv=123 ok", "cvv=123"),
        (f"card {CARD} was sent", CARD),
        ("card 4111 1111 1111 1111 spaced", "4111 1111 1111 1111"),
        ("card 5555-5555-5555-4444 dashed", "5555-5555-5555-4444"),
        ("amex 378282246310005", "378282246310005"),
    ],
)
def test_redaction_masks_secrets_and_card_numbers(log_lines, text, secret):
    assert secret not in redact(text)
    log_lines.logger.info("event: %s", text)
    (line,) = log_lines()
    assert secret not in json.dumps(line)
    assert "REDACTED" in line["message"]


@pytest.mark.parametrize(
    "text",
    [
        "amount=150000 currency=PEN",
        "payment pay_01jd8x6k2m9q4r7t5v3w1y0zab for cus_01jd8x6k2m9q4r7t5v3w1y0zab",
        "order 4111111111111112 (16 digits, not Luhn)",
        "ruc 20123456789 dni 45678912 phone +51 987 654 321",
        "took 1732590000003 ms since epoch",  # 13 digits, Luhn-valid, but no card starts with 1
        "invoice F001-00000042 total 11800",
    ],
)
def test_redaction_keeps_ordinary_numbers(text):
    assert redact(text) == text


def test_extra_fields_are_redacted_but_numbers_stay_numbers(log_lines):
    log_lines.logger.info(
        "charge", extra={"auth": "Bearer sk_live_AbCdEf0123456789xyz", "pan": CARD, "pan_int": int(CARD), "amount": 990}
    )
    (line,) = log_lines()
    assert "sk_live_AbCdEf0123456789xyz" not in json.dumps(line)
    assert CARD not in json.dumps(line)
    assert line["amount"] == 990


def test_exception_traceback_is_redacted_and_stays_on_one_line(log_lines):
    try:
        raise ValueError(f"gateway refused card {CARD} with api_key=sk_live_AbCdEf0123456789xyz")
    except ValueError:
        log_lines.logger.exception("charge failed for %s", CARD)
    raw = log_lines()
    assert len(raw) == 1
    (line,) = raw
    assert "Traceback" in line["exc"]
    assert "ValueError" in line["exc"]
    assert CARD not in json.dumps(line)
    assert "sk_live_AbCdEf0123456789xyz" not in json.dumps(line)
    assert "[CARD REDACTED]" in line["exc"]


@pytest.mark.django_db
@pytest.mark.urls("tests.foundation.test_errors")
def test_a_request_logs_with_the_request_id_of_its_response():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestIdFilter())
    handler.addFilter(RedactingFilter())
    logger = logging.getLogger("smartpay")
    logger.addHandler(handler)
    try:
        response = APIClient().get("/api/v1/test-boom", HTTP_X_REQUEST_ID="trace-logging-1")
    finally:
        logger.removeHandler(handler)
    assert response.status_code == 500
    assert response["Request-Id"] == "trace-logging-1"
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert lines, "the unhandled error was not logged"
    (error,) = [line for line in lines if line["level"] == "ERROR"]
    assert error["request_id"] == response["Request-Id"]
    assert "RuntimeError" in error["exc"]
    assert "hunter2" not in json.dumps(error)  # db-password=… in the exception text is redacted
