"""The invoice email follows the payer emails' rules: the customer's language, a copy to the extra
billing email (once), never to a suppressed address, the payer emails' Postmark stream."""

from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from billing import services as billing_services
from billing import tasks as billing_tasks
from billing.models import Invoice
from notifications import email_tasks
from notifications.emails import emails_sweep
from notifications.models import CustomerPreferences, SentEmail, SuppressedAddress
from tests.billing.conftest import pay

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("payer_emails")]


def invoice_emails() -> list:
    return [message for message in mail.outbox if getattr(message, "tags", None) == ["invoice"]]


def later(minutes: int):
    return timezone.now() + timedelta(minutes=minutes)


def test_english_when_preferred_with_the_pdf_and_the_payer_stream(api, wire, customer):
    CustomerPreferences.objects.create(customer=customer, language="en")
    payment = pay(api, amount=11800, customer=customer, email="ana@example.pe")
    invoice = Invoice.objects.get(payment_id=payment["id"])
    (message,) = invoice_emails()
    assert message.to == ["ana@example.pe"]
    assert message.subject == "Electronic sales receipt (boleta) B001-00000001 - SMARTPAY DEMO S.A.C."
    assert "Attached is your electronic sales receipt (boleta) B001-00000001" in message.body
    assert "Total amount: PEN 118.00" in message.body and "SON: CIENTO DIECIOCHO CON 00/100 SOLES" in message.body
    (html, mimetype) = message.alternatives[0]
    assert mimetype == "text/html" and '<html lang="en">' in html and "B001-00000001" in html
    assert [name for name, *_ in message.attachments] == [
        "20000000001-03-B001-00000001.pdf",
        "20000000001-03-B001-00000001.xml",
    ]
    assert message.attachments[0][1].startswith(b"%PDF")
    assert message.esp_extra == {"MessageStream": "outbound"}
    assert message.metadata == {"invoice_id": invoice.pk, "client_app": invoice.client_app_id}
    invoice.refresh_from_db()
    assert invoice.email_status == "sent"


def test_spanish_by_default(api, wire, customer):
    pay(api, amount=11800, customer=customer, email="ana@example.pe")
    (message,) = invoice_emails()
    assert message.subject == "Boleta de venta electrónica B001-00000001 - SMARTPAY DEMO S.A.C."
    assert "Importe total: PEN 118.00" in message.body and '<html lang="es">' in message.alternatives[0][0]


def test_the_extra_billing_email_gets_one_copy_however_often_the_tasks_run(api, wire, customer):
    CustomerPreferences.objects.create(customer=customer, extra_billing_email="Books@Acme.pe")
    payment = pay(api, amount=11800, customer=customer, email="ana@example.pe")
    invoice = Invoice.objects.get(payment_id=payment["id"])
    assert sorted(m.to[0] for m in invoice_emails()) == ["ana@example.pe", "books@acme.pe"]

    email = SentEmail.objects.get(kind="invoice")
    assert (email.subject_key, email.recipient, email.status, email.attempts) == (
        invoice.pk,
        "books@acme.pe",
        "sent",
        1,
    )
    # Both tasks run again (a redelivered message, a second worker), then both sweeps: nothing more.
    for _ in range(2):
        assert email_tasks.send_payer_email.delay(email.pk).get() == "sent"
        assert billing_tasks.email_invoice.delay(invoice.pk).get() == "sent"
    assert emails_sweep(now=later(60)) == {"queued": 0, "stuck": 0}
    billing_services.billing_sweep(now=later(60))
    assert sorted(m.to[0] for m in invoice_emails()) == ["ana@example.pe", "books@acme.pe"]
    assert SentEmail.objects.get(pk=email.pk).attempts == 1

    (copy,) = [m for m in invoice_emails() if m.to == ["books@acme.pe"]]
    assert copy.subject == "Boleta de venta electrónica B001-00000001 - SMARTPAY DEMO S.A.C."
    assert copy.attachments[0][0] == "20000000001-03-B001-00000001.pdf"
    assert copy.esp_extra == {"MessageStream": "outbound"}
    assert copy.metadata == {"sent_email": email.pk, "kind": "invoice", "invoice_id": invoice.pk}


def test_no_copy_when_the_extra_address_is_the_invoices_own(api, wire, customer):
    CustomerPreferences.objects.create(customer=customer, extra_billing_email="ANA@example.pe")
    pay(api, amount=11800, customer=customer, email="ana@example.pe")
    assert [m.to for m in invoice_emails()] == [["ana@example.pe"]]
    assert not SentEmail.objects.filter(kind="invoice").exists()


def test_a_suppressed_address_gets_nothing(api, wire, customer):
    CustomerPreferences.objects.create(customer=customer, extra_billing_email="books@acme.pe")
    SuppressedAddress.objects.create(address="ana@example.pe", reason="bounced")
    payment = pay(api, amount=11800, customer=customer, email="ana@example.pe")
    invoice = Invoice.objects.get(payment_id=payment["id"])
    assert [m.to for m in invoice_emails()] == [["books@acme.pe"]]  # the extra address is not suppressed
    invoice.refresh_from_db()
    assert invoice.email_status == "suppressed" and invoice.email_attempts == 0 and invoice.email_error
    # Not queued again by the sweep, not sent by a task run again, nor by staff's re-send.
    assert billing_services.billing_sweep(now=later(60))["emails"] == 0
    assert billing_tasks.email_invoice.delay(invoice.pk).get() == "suppressed"
    assert billing_services.invoice_email_resend(invoice=invoice, actor="staff") == "suppressed"
    assert [m.to for m in invoice_emails()] == [["books@acme.pe"]]


def test_a_suppressed_extra_address_gets_no_copy(api, wire, customer):
    CustomerPreferences.objects.create(customer=customer, extra_billing_email="books@acme.pe")
    SuppressedAddress.objects.create(address="books@acme.pe", reason="complained")
    pay(api, amount=11800, customer=customer, email="ana@example.pe")
    assert [m.to for m in invoice_emails()] == [["ana@example.pe"]]
    assert SentEmail.objects.get(kind="invoice").status == "suppressed"


def test_payer_emails_turned_off_the_invoice_still_goes_without_the_copy(api, wire, customer, settings):
    settings.PAYER_EMAILS_ENABLED = False
    CustomerPreferences.objects.create(customer=customer, extra_billing_email="books@acme.pe")
    pay(api, amount=11800, customer=customer, email="ana@example.pe")
    assert [m.to for m in invoice_emails()] == [["ana@example.pe"]]
    assert not SentEmail.objects.exists()
