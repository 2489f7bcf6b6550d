"""A partial capture at Mercado Pago, end to end against the simulator.

Authorize 1000, capture 600: the payment is `succeeded` with 600 captured and invoiced, and no
refund is invented for the 400 released. The simulator's `payment.updated` webhook (the payment is
now 6.00 at Mercado Pago, less than the 10.00 asked for) is recognised as the payment's own capture:
processed, not refused as a mismatch, and nothing changes. A later full refund refunds 600.
"""

import itertools

import pytest
import requests

from billing.enums import DocumentType
from billing.models import Invoice
from payments.gateways.simulator import webhooks as simulator_webhooks
from payments.models import Payment, Refund, WebhookEvent

pytestmark = pytest.mark.django_db(transaction=True)

_keys = itertools.count()


def post(api, path, body=None):
    return api.post(path, body or {}, format="json", HTTP_IDEMPOTENCY_KEY=f"pc-{next(_keys)}")


@pytest.fixture
def simulator_webhooks_sent(sandbox, settings, monkeypatch):
    """The simulator builds and signs its webhooks (SIMULATOR_DELIVER_WEBHOOKS); the test sends them."""
    sent: list[simulator_webhooks.Delivery] = []
    monkeypatch.setattr(simulator_webhooks, "start", sent.append)
    settings.SIMULATOR_DELIVER_WEBHOOKS = True
    return sent


def deliver(sent: list) -> list[int]:
    """Send what the simulator queued (to our /webhooks/mercadopago, signed with its secret) and forget it."""
    statuses = [
        requests.post(delivery.url, data=delivery.body, headers=delivery.headers, timeout=10).status_code
        for delivery in sent
        if delivery.gateway == "mercadopago"
    ]
    sent.clear()
    return statuses


def snapshot(payment_id: str) -> tuple:
    payment = Payment.objects.get(pk=payment_id)
    return (
        payment.status,
        payment.amount,
        payment.amount_captured,
        payment.amount_refunded,
        payment.gateway_payment_id,
        Refund.objects.filter(payment=payment).count(),
        Invoice.objects.filter(payment=payment).count(),
    )


def test_partial_capture_is_the_payments_capture_on_every_path(api, tokenize, simulator_webhooks_sent):
    sent = simulator_webhooks_sent
    body = {
        "amount": 1000,
        "currency": "PEN",
        "email": "payer@example.com",
        "capture": False,
        "source": {"gateway": "mercadopago", "token": tokenize.mercadopago("APRO")},
    }
    created = api.post("/api/v1/payments", body, format="json", HTTP_IDEMPOTENCY_KEY="pc-create")
    assert created.status_code == 201, created.json()
    payment_id = created.json()["id"]
    assert created.json()["status"] == "authorized"
    assert deliver(sent) == [200]  # payment.created (authorized): nothing to change
    assert Payment.objects.get(pk=payment_id).status == "authorized"

    captured = post(api, f"/api/v1/payments/{payment_id}/capture", {"amount": 600})

    assert captured.status_code == 200, captured.json()
    assert captured.json()["status"] == "succeeded"
    payment = Payment.objects.get(pk=payment_id)
    assert (payment.amount, payment.amount_captured, payment.amount_refunded) == (1000, 600, 0)
    assert payment.refundable_amount == 600
    invoice = Invoice.objects.get(payment=payment)
    assert invoice.document_type != DocumentType.CREDIT_NOTE and invoice.total == 600
    assert not Refund.objects.filter(payment=payment).exists()  # the 400 released is not a refund
    before = snapshot(payment_id)

    assert deliver(sent) == [200]  # the capture's payment.updated, signed by the simulator

    events = WebhookEvent.objects.filter(gateway="mercadopago").order_by("received_at")
    assert [(event.status, event.payment_id) for event in events] == [(WebhookEvent.PROCESSED, payment_id)] * 2
    assert snapshot(payment_id) == before

    refunded = post(api, f"/api/v1/payments/{payment_id}/refunds")  # no amount: all that is left

    assert refunded.status_code == 201, refunded.json()
    assert (refunded.json()["status"], refunded.json()["amount"]) == ("succeeded", 600)
    assert deliver(sent) == [200]  # the refund's payment.updated: known already
    payment = Payment.objects.get(pk=payment_id)
    assert (payment.status, payment.amount_captured, payment.amount_refunded) == ("refunded", 600, 600)
    assert Refund.objects.get(payment=payment).amount == 600
    note = Invoice.objects.get(payment=payment, document_type=DocumentType.CREDIT_NOTE)
    assert note.total == 600
    assert WebhookEvent.objects.filter(gateway="mercadopago").exclude(status=WebhookEvent.PROCESSED).count() == 0
