"""Payments that succeed through a gateway webhook are invoiced once, however often the webhook comes."""

import json
from pathlib import Path

import pytest
from django.core import mail
from django.test import Client, TestCase

from billing.models import Invoice
from payments.models import Payment, WebhookEvent

pytestmark = pytest.mark.django_db

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
CULQI = "https://api.culqi.test/v2"


def culqi_charge(payment_id: str, charge_id: str, amount: int) -> dict:
    body = json.loads((FIXTURES / "culqi" / "charge_captured.json").read_text())
    body.update(id=charge_id, amount=amount, currency_code="PEN", metadata={"smartpay_payment_id": payment_id})
    return body


def deliver(charge_id: str, event_id: str, amount: int):
    payload = {
        "object": "event",
        "id": event_id,
        "type": "charge.creation.succeeded",
        "creation_date": 1715000000000,
        "data": json.dumps({"id": charge_id, "creationDate": 1715000000000, "actualAmount": amount}),
    }
    with TestCase.captureOnCommitCallbacks(execute=True):
        response = Client().post("/webhooks/culqi", json.dumps(payload), content_type="application/json")
    assert response.status_code == 200
    return response


def test_webhook_replayed_still_one_invoice(client_app, wire):
    payment = Payment.objects.create(
        client_app=client_app,
        amount=4990,
        currency="PEN",
        email="ana@example.pe",
        description="Checkout 7781",
        gateway="culqi",
        gateway_payment_id="chr_test_webhook01",
        status="processing",
    )
    wire.mock.get(f"{CULQI}/charges/chr_test_webhook01", json=culqi_charge(payment.pk, "chr_test_webhook01", 4990))
    deliver("chr_test_webhook01", "evt_test_1", 4990)
    deliver("chr_test_webhook01", "evt_test_1", 4990)  # the same event again (a duplicate)
    deliver("chr_test_webhook01", "evt_test_2", 4990)  # another event about the same charge
    payment.refresh_from_db()
    assert payment.status == "succeeded"
    assert WebhookEvent.objects.count() == 2
    invoice = Invoice.objects.get(payment=payment)
    assert (invoice.number, invoice.total, invoice.subtotal, invoice.tax) == ("B001-00000001", 4990, 4229, 761)
    assert invoice.payment_reference == f"{payment.pk} (culqi chr_test_webhook01)"
    assert Invoice.objects.count() == 1
    assert len(mail.outbox) == 1
