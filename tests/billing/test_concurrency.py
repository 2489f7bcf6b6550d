"""Numbering under real concurrency (PostgreSQL row locks): no gap, no repeat, one invoice per payment."""

import pytest

from billing.models import Invoice, SeriesCounter
from notifications.models import OutgoingEvent
from payments.models import Payment
from tests.concurrency import api_client, run_at_once

pytestmark = pytest.mark.django_db(transaction=True)


def test_10_payments_succeeding_at_once_are_numbered_1_to_10(require_postgres, client_app, api_key, wire):
    def pay(index):
        response = api_client(api_key).post(
            "/api/v1/payments",
            {
                "amount": 1000 + index,
                "currency": "PEN",
                "email": f"buyer{index}@example.pe",
                "source": {"gateway": "culqi", "token": f"tkn_test_{index}"},
            },
            format="json",
            HTTP_IDEMPOTENCY_KEY=f"race-{index}",
        )
        return response.status_code, response.json()

    results = run_at_once(10, pay)
    assert [status for status, _ in results] == [201] * 10, results
    assert all(body["status"] == "succeeded" for _, body in results)
    invoices = list(Invoice.objects.filter(series="B001").order_by("correlative"))
    assert [invoice.correlative for invoice in invoices] == list(range(1, 11))
    assert len({invoice.payment_id for invoice in invoices}) == 10
    assert {invoice.payment_id for invoice in invoices} == {body["id"] for _, body in results}
    assert all(invoice.total == Payment.objects.get(pk=invoice.payment_id).amount for invoice in invoices)
    assert SeriesCounter.objects.get(series="B001").last_correlative == 10
    assert OutgoingEvent.objects.filter(type="invoice.issued").count() == 10


def test_refunds_at_once_get_gap_free_credit_notes(require_postgres, client_app, api_key, wire):
    client = api_client(api_key)
    payments = []
    for index in range(10):
        response = client.post(
            "/api/v1/payments",
            {"amount": 5000, "currency": "PEN", "email": "r@example.pe", "source": {"gateway": "culqi", "token": "t"}},
            format="json",
            HTTP_IDEMPOTENCY_KEY=f"refund-race-pay-{index}",
        )
        payments.append(response.json()["id"])

    def refund(index):
        response = api_client(api_key).post(
            f"/api/v1/payments/{payments[index]}/refunds",
            {"amount": 1000},
            format="json",
            HTTP_IDEMPOTENCY_KEY=f"refund-race-{index}",
        )
        return response.status_code

    assert set(run_at_once(10, refund)) <= {200, 201}
    notes = Invoice.objects.filter(document_type="credit_note").order_by("correlative")
    assert [note.number for note in notes] == [f"BC01-{n:08d}" for n in range(1, 11)]
    assert {note.credited_invoice.payment_id for note in notes} == set(payments)
