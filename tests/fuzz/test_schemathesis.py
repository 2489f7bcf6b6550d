"""Schemathesis over every operation of the OpenAPI schema, against a live test server.

Each operation gets up to FUZZ_EXAMPLES generated requests (valid and invalid data, derandomized
so a failure reproduces), authenticated as a client app, and every answer must pass: no server
error, a status code the schema documents, the content type it documents, and a body that
conforms to the response schema. Payments reach the gateway simulators over real HTTP. New
endpoints are covered without anyone listing them. Bounded to a few minutes on two cores; any
finding fails CI, with every failing operation and its reproduction in the message.
"""

import os

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from billing.models import Invoice
from payments.gateways import registry
from payments.services.clients import api_key_issue, client_app_create
from tests.e2e.conftest import Tokenizer

FUZZ_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "100"))  # 4,700 requests, about 2 min on PostgreSQL
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def sandboxed_live_server(live_server, settings):
    base = live_server.url
    settings.PUBLIC_BASE_URL = base
    settings.CULQI_API_BASE = settings.CULQI_SECURE_BASE = f"{base}/sandbox/culqi"
    settings.MERCADOPAGO_API_BASE = f"{base}/sandbox/mercadopago"
    settings.SIMULATOR_DELIVER_WEBHOOKS = False
    settings.GATEWAY_READ_TIMEOUT = 5.0
    settings.GATEWAY_RETRY_MAX_TRIES = 1
    registry._cache.clear()
    yield base
    registry._cache.clear()


def seed_real_objects(base: str, headers: dict, settings) -> None:
    """Objects of every kind the list endpoints return, so their answers are checked against the
    schema too: a customer with a billing profile (no invoice email), a card payment with its
    boleta, a partial refund with its credit note, a declined payment, a saved card."""
    tokens = Tokenizer(base, settings)

    def call(method, path, body=None, key=None):
        extra = {"Idempotency-Key": key} if key else {}
        response = requests.request(method, f"{base}{path}", json=body, headers={**headers, **extra}, timeout=30)
        assert response.status_code < 300, (path, response.status_code, response.text)
        return response.json()

    customer = call("POST", "/api/v1/customers", {"email": "fuzz@example.pe", "name": "Ana Quispe"})
    call(
        "PUT",
        f"/api/v1/customers/{customer['id']}/billing-profile",
        {"document_type": "DNI", "document_number": "45678912", "legal_name": "ANA QUISPE"},
    )
    paid = call(
        "POST",
        "/api/v1/payments",
        {
            "amount": 11800,
            "currency": "PEN",
            "customer": customer["id"],
            "description": "Plan Pro",
            "source": {"gateway": "culqi", "token": tokens.culqi()},
        },
        key="seed-paid",
    )
    assert paid["status"] == "succeeded", paid
    call("POST", f"/api/v1/payments/{paid['id']}/refunds", {"amount": 1000, "reason": "seed"}, key="seed-refund")
    call(
        "POST",
        "/api/v1/payments",
        {
            "amount": 5000,
            "currency": "PEN",
            "email": "declined@example.pe",
            "source": {"gateway": "culqi", "token": tokens.culqi(number="4000020000000000")},
        },
        key="seed-declined",
    )


def test_every_operation_answers_as_its_schema_says(sandboxed_live_server, settings):
    app = client_app_create(name="Fuzzed app")
    headers = {"Authorization": f"Bearer {api_key_issue(client_app=app, label='fuzz').raw_key}"}
    seed_real_objects(sandboxed_live_server, headers, settings)
    assert Invoice.objects.filter(document_type="credit_note").exists()
    schema = schemathesis.openapi.from_url(f"{sandboxed_live_server}/api/schema/?format=json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 30  # the whole API, not an empty schema
    calls, failures = [0], []

    for operation in operations:

        @given(case=operation.as_strategy())
        @hypothesis_settings(
            max_examples=FUZZ_EXAMPLES,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def fuzz(case):
            calls[0] += 1
            case.call_and_validate(headers=headers, checks=CHECKS)

        try:
            fuzz()
        except Exception as exc:  # collect every operation's finding, then fail once
            failures.append(f"{operation.label}: {exc}")

    print(f"schemathesis: {calls[0]} generated requests over {len(operations)} operations")
    assert not failures, "\n\n".join(failures)
