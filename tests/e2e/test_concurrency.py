"""Races that must never cost money. Real threads against PostgreSQL and the simulators."""

import pytest

from payments.models import Payment, PaymentAttempt, Refund
from tests.concurrency import api_client, run_at_once

pytestmark = pytest.mark.django_db(transaction=True)


def test_same_idempotency_key_on_10_connections_charges_once(require_postgres, api_key, tokenize, client_app):
    from payments.gateways.simulator.models import SimCharge

    token = tokenize.culqi()
    body = {"amount": 3100, "currency": "PEN", "email": "p@example.com", "source": {"gateway": "culqi", "token": token}}

    def send(_):
        response = api_client(api_key).post("/api/v1/payments", body, format="json", HTTP_IDEMPOTENCY_KEY="same-key")
        return response.status_code, response.json(), response.headers.get("Idempotent-Replayed")

    results = run_at_once(10, send)
    statuses = {status for status, _, _ in results}
    ids = {body["id"] for _, body, _ in results}
    assert statuses == {201}, results
    assert len(ids) == 1
    assert sum(1 for _, _, replayed in results if replayed == "true") == 9
    assert Payment.objects.count() == 1
    assert PaymentAttempt.objects.count() == 1
    assert SimCharge.objects.count() == 1  # exactly one charge reached the gateway


def test_ten_concurrent_partial_refunds_never_exceed_the_payment(require_postgres, api, api_key, tokenize):
    payment = api.post(
        "/api/v1/payments",
        {
            "amount": 5000,
            "currency": "PEN",
            "email": "p@example.com",
            "source": {"gateway": "culqi", "token": tokenize.culqi()},
        },
        format="json",
        HTTP_IDEMPOTENCY_KEY="pay-1",
    ).json()
    assert payment["status"] == "succeeded"

    def refund(index):
        response = api_client(api_key).post(
            f"/api/v1/payments/{payment['id']}/refunds",
            {"amount": 1500},
            format="json",
            HTTP_IDEMPOTENCY_KEY=f"refund-{index}",
        )
        return response.status_code, response.json()

    results = run_at_once(10, refund)
    ok = [body for status, body in results if status == 201]
    refused = [body for status, body in results if status == 422]
    assert len(ok) == 3 and len(refused) == 7, results  # 3 x 1500 <= 5000 < 4 x 1500
    assert all(body["code"] == "refund_exceeds_payment" for body in refused)
    row = Payment.objects.get(pk=payment["id"])
    assert row.amount_refunded == 4500
    assert row.status == "partially_refunded"
    assert sum(Refund.objects.filter(payment=row, status="succeeded").values_list("amount", flat=True)) == 4500
