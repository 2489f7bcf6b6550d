"""Chunked request bodies are read whole where the server de-chunks them, refused (411) where it
does not, and never acted on as an empty body."""

import io
import json
from wsgiref.util import setup_testing_defaults

import pytest
from django.core.signals import request_finished, request_started
from django.db import close_old_connections

from payments.models import Customer
from smartpay.wsgi import application
from tests.foundation.test_errors import assert_problem

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def keep_the_test_connection():
    """Calling the WSGI application directly would close the test's connection at request end
    (Django's test client does the same: it disconnects these receivers during a request)."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


def call_wsgi(environ):
    captured = {}

    def start_response(status, headers, exc_info=None):
        captured["status"], captured["headers"] = status, dict(headers)

    body = b"".join(application(environ, start_response))
    return int(captured["status"].split()[0]), captured["headers"], body


def chunked_environ(api_key, body: bytes, *, terminated: bool):
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/api/v1/customers",
        "CONTENT_TYPE": "application/json",
        "HTTP_TRANSFER_ENCODING": "chunked",
        "HTTP_AUTHORIZATION": f"Bearer {api_key}",
        "HTTP_HOST": "testserver",
        "wsgi.input": io.BytesIO(body),  # as a de-chunking server hands it over
    }
    if terminated:
        environ["wsgi.input_terminated"] = True
    setup_testing_defaults(environ)
    environ.pop("CONTENT_LENGTH", None)
    return environ


def test_a_chunked_body_the_server_decoded_is_read_whole(api_key):
    body = json.dumps({"email": "chunked@example.com", "name": "Ana"}).encode()
    status, _, answer = call_wsgi(chunked_environ(api_key, body, terminated=True))
    assert status == 201, answer
    customer = Customer.objects.get()
    assert (customer.email, customer.name) == ("chunked@example.com", "Ana")


def test_a_chunked_body_over_the_limit_is_a_413(api_key, settings):
    settings.MAX_REQUEST_BODY_BYTES = 1000
    body = json.dumps({"email": "big@example.com", "name": "x" * 2000}).encode()
    status, headers, answer = call_wsgi(chunked_environ(api_key, body, terminated=True))
    assert status == 413
    assert headers["Content-Type"] == "application/problem+json"
    assert json.loads(answer)["code"] == "payload_too_large"
    assert Customer.objects.count() == 0


def test_a_chunked_body_left_encoded_is_a_411_and_creates_nothing(api_key):
    body = json.dumps({"email": "chunked@example.com"}).encode()
    status, _, answer = call_wsgi(chunked_environ(api_key, body, terminated=False))
    assert status == 411
    assert json.loads(answer)["code"] == "length_required"
    assert Customer.objects.count() == 0


def test_the_django_guard_refuses_a_chunked_request_without_length(api):
    response = api.generic(
        "POST", "/api/v1/customers", b"", content_type="application/json", HTTP_TRANSFER_ENCODING="chunked"
    )
    assert_problem(response, 411, "length_required")
    assert Customer.objects.count() == 0
