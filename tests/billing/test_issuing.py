"""A payment that succeeds gets one invoice; a refund gets one credit note. Through the public API."""

import pytest
from django.core import mail
from django.db import IntegrityError, transaction

from billing import services
from billing.enums import DocumentType
from billing.models import ImmutableDocument, Invoice, InvoiceLine, SeriesCounter
from notifications.models import OutgoingEvent
from payments.models import Payment
from tests.billing.conftest import pay, refund

pytestmark = pytest.mark.django_db


def test_a_payment_without_profile_gets_an_anonymous_boleta(api, wire, client_app):
    payment = pay(api, amount=11800, email="payer@example.pe")
    invoice = Invoice.objects.get(payment_id=payment["id"])
    assert invoice.document_type == DocumentType.BOLETA
    assert invoice.number == "B001-00000001"
    assert (invoice.series, invoice.correlative, invoice.sunat_code) == ("B001", 1, "03")
    assert (invoice.subtotal, invoice.tax, invoice.total, invoice.currency) == (10000, 1800, 11800, "PEN")
    assert invoice.amount_in_words == "SON: CIENTO DIECIOCHO CON 00/100 SOLES"
    assert (invoice.buyer_document_type, invoice.buyer_document_number, invoice.buyer_name) == (
        "-",
        "-",
        "CLIENTES VARIOS",
    )
    assert invoice.buyer_unidentified_over_limit is False
    assert invoice.client_app == client_app and invoice.customer is None
    assert invoice.issuer_ruc == "20000000001"
    assert invoice.payment_reference.startswith(payment["id"]) and "culqi chr_test_" in invoice.payment_reference
    (line,) = InvoiceLine.objects.filter(invoice=invoice)
    assert (line.quantity, line.unit_code, line.unit_value, line.unit_price) == (1, "ZZ", 10000, 11800)
    assert (line.subtotal, line.tax, line.total, line.description) == (10000, 1800, 11800, "Plan Pro")
    # No PSE configured: it stays issued here. Emailed to the payer.
    assert invoice.status == "issued"
    assert invoice.email_to == "payer@example.pe" and invoice.email_status == "sent"


def test_the_invoice_issued_event_is_recorded_with_the_invoice(api, wire, client_app):
    payment = pay(api)
    invoice = Invoice.objects.get(payment_id=payment["id"])
    event = OutgoingEvent.objects.get(type="invoice.issued")
    assert event.client_app == client_app
    assert event.data["id"] == invoice.pk and event.data["number"] == "B001-00000001"
    assert event.data["total"] == 11800 and event.data["document_type"] == "boleta"
    assert event.data["issued_at"].endswith("Z")


def test_a_customer_with_dni_profile_gets_an_identified_boleta(api, wire, dni_customer):
    payment = pay(api, amount=99999, customer=dni_customer)
    invoice = Invoice.objects.get(payment_id=payment["id"])
    assert invoice.document_type == "boleta" and invoice.customer == dni_customer
    assert (invoice.buyer_document_type, invoice.buyer_document_number) == ("1", "45678912")
    assert invoice.buyer_name == "ANA QUISPE MAMANI" and invoice.buyer_address == "JR. LAMPA 456, LIMA"
    assert invoice.email_to == "facturas.ana@example.pe"
    assert (invoice.subtotal, invoice.tax) == (84745, 15254)


def test_a_ruc_profile_asking_for_factura_gets_a_factura_in_its_own_series(api, wire, ruc_customer, customer):
    first = pay(api, customer=customer, key="a")
    factura = pay(api, customer=ruc_customer, amount=50000, key="b")
    second = pay(api, customer=customer, key="c")
    numbers = {p["id"]: Invoice.objects.get(payment_id=p["id"]).number for p in (first, factura, second)}
    assert numbers == {first["id"]: "B001-00000001", factura["id"]: "F001-00000001", second["id"]: "B001-00000002"}
    invoice = Invoice.objects.get(payment_id=factura["id"])
    assert invoice.document_type == "factura" and invoice.sunat_code == "01"
    assert (invoice.buyer_document_type, invoice.buyer_document_number) == ("6", "20131312955")
    assert invoice.email_to == "pagos@andina.example.pe"  # no invoice_email: the customer's
    assert dict(SeriesCounter.objects.values_list("series", "last_correlative")) == {"B001": 2, "F001": 1}


def test_a_customer_without_profile_is_named_on_an_anonymous_boleta(api, wire, customer):
    payment = pay(api, customer=customer, amount=80000)
    invoice = Invoice.objects.get(payment_id=payment["id"])
    assert (invoice.buyer_document_type, invoice.buyer_name) == ("-", "Ana Quispe")
    assert invoice.buyer_unidentified_over_limit is True  # S/ 800 > S/ 700 without identification
    assert invoice.email_to == "ana@example.pe"


def test_usd_payment_is_invoiced_in_dollars(api, wire):
    payment = pay(api, amount=1234567, currency="USD")
    invoice = Invoice.objects.get(payment_id=payment["id"])
    assert (invoice.currency, invoice.subtotal, invoice.tax, invoice.total) == ("USD", 1046243, 188324, 1234567)
    assert invoice.amount_in_words == ("SON: DOCE MIL TRESCIENTOS CUARENTA Y CINCO CON 67/100 DÓLARES AMERICANOS")


def test_a_full_refund_issues_one_cancelling_credit_note(api, wire):
    payment = pay(api, amount=11800)
    refund(api, payment["id"], reason="Cliente desistió")
    invoice = Invoice.objects.get(payment_id=payment["id"], document_type="boleta")
    note = Invoice.objects.get(document_type="credit_note")
    assert note.number == "BC01-00000001" and note.sunat_code == "07"
    assert note.credited_invoice == invoice and note.refund.payment_id == payment["id"]
    assert (note.credit_note_reason, note.credit_note_description) == ("01", "Cliente desistió")
    assert (note.subtotal, note.tax, note.total) == (invoice.subtotal, invoice.tax, invoice.total)
    assert (note.buyer_document_type, note.buyer_name) == (invoice.buyer_document_type, invoice.buyer_name)
    assert OutgoingEvent.objects.filter(type="invoice.issued").count() == 2


def test_partial_refunds_issue_notes_that_add_up_to_the_invoice(api, wire, ruc_customer):
    payment = pay(api, amount=10001, customer=ruc_customer)
    refund(api, payment["id"], amount=3333, key="r1")
    refund(api, payment["id"], amount=3333, key="r2")
    refund(api, payment["id"], key="r3")  # the rest: 3335
    invoice = Invoice.objects.get(payment_id=payment["id"], document_type="factura")
    notes = list(Invoice.objects.filter(document_type="credit_note").order_by("correlative"))
    assert [n.number for n in notes] == ["FC01-00000001", "FC01-00000002", "FC01-00000003"]
    assert {n.credit_note_reason for n in notes} == {"09"}
    assert [n.total for n in notes] == [3333, 3333, 3335]
    assert sum(n.subtotal for n in notes) == invoice.subtotal
    assert sum(n.tax for n in notes) == invoice.tax
    assert all(n.subtotal + n.tax == n.total for n in notes)
    assert Payment.objects.get(pk=payment["id"]).status == "refunded"


def test_the_refund_reports_its_credit_note(api, wire):
    payment = pay(api, amount=5000)
    body = refund(api, payment["id"], amount=1000)
    note = Invoice.objects.get(refund_id=body["id"])
    assert note.total == 1000 and note.credit_note_reason == "09"


def test_a_second_issue_for_the_same_payment_returns_the_first(api, wire):
    payment = Payment.objects.get(pk=pay(api)["id"])
    with transaction.atomic():
        again = services.invoice_issue(payment=payment)
    assert again == Invoice.objects.get()
    assert SeriesCounter.objects.get(series="B001").last_correlative == 1


def test_the_database_refuses_a_second_invoice_for_a_payment(api, wire):
    invoice = Invoice.objects.get(payment_id=pay(api)["id"])
    duplicate = Invoice(
        **{
            field.attname: getattr(invoice, field.attname)
            for field in Invoice._meta.concrete_fields
            if field.attname not in ("id", "correlative")
        },
        correlative=99,
    )
    duplicate.document_type = "factura"
    with pytest.raises(IntegrityError), transaction.atomic():
        duplicate.save()


def test_issued_documents_are_immutable(api, wire):
    invoice = Invoice.objects.get(payment_id=pay(api)["id"])
    invoice.total = 1
    with pytest.raises(ImmutableDocument):
        invoice.save()
    with pytest.raises(ImmutableDocument):
        Invoice.objects.filter(pk=invoice.pk).update(total=1)
    with pytest.raises(ImmutableDocument):
        invoice.delete()
    with pytest.raises(ImmutableDocument):
        Invoice.objects.all().delete()
    with pytest.raises(ImmutableDocument):
        invoice.lines.get().save()
    invoice.refresh_from_db()
    assert invoice.total == 11800


def test_a_failing_issue_does_not_block_the_payment_and_the_sweep_issues_it(api, wire, monkeypatch, settings):
    def broken(series):
        raise RuntimeError("counter table unavailable")

    monkeypatch.setattr(services, "_take_number", broken)
    payment = pay(api, amount=2000)
    assert Payment.objects.get(pk=payment["id"]).status == "succeeded"
    assert not Invoice.objects.exists()
    assert not OutgoingEvent.objects.filter(type="invoice.issued").exists()
    assert len(mail.outbox) == 0

    monkeypatch.undo()
    report = services.billing_sweep()
    assert report["invoices"] == 1
    assert Invoice.objects.get(payment_id=payment["id"]).number == "B001-00000001"
    assert services.billing_sweep()["invoices"] == 0


def test_a_missed_credit_note_is_issued_by_the_sweep(api, wire, monkeypatch):
    payment = pay(api, amount=2000)
    monkeypatch.setattr(services, "credit_note_issue", lambda **kwargs: 1 / 0)
    body = refund(api, payment["id"])
    assert not Invoice.objects.filter(document_type="credit_note").exists()
    monkeypatch.undo()
    assert services.billing_sweep()["credit_notes"] == 1
    assert Invoice.objects.get(document_type="credit_note").refund_id == body["id"]


def test_numbers_are_not_taken_by_a_rolled_back_issue(api, wire):
    payment = Payment.objects.get(pk=pay(api)["id"])
    other = Payment.objects.create(
        client_app=payment.client_app, amount=500, amount_captured=500, currency="PEN", status="succeeded"
    )
    with pytest.raises(RuntimeError), transaction.atomic():
        services.invoice_issue(payment=other)
        raise RuntimeError("the payment's transaction failed after issuing")
    assert SeriesCounter.objects.get(series="B001").last_correlative == 1
    with transaction.atomic():
        assert services.invoice_issue(payment=other).number == "B001-00000002"
