"""Invoices of the demo history (`reporting.demo`): a boleta or factura per succeeded payment and a
credit note per succeeded refund, as `billing.services` would have issued them, written in bulk.

Numbers are gap-free per series in issue order (continuing each series' counter), the IGV split is
`billing.taxes.igv_split`, and a credit note completing its invoice takes exactly what is left of its
value and IGV, so the notes of an invoice add up to it to the céntimo (as `credit_note_issue` does).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta
from typing import TYPE_CHECKING

from billing.enums import (
    ANONYMOUS_DOCUMENT_NUMBER,
    ANONYMOUS_IDENTITY_CODE,
    ANONYMOUS_NAME,
    SUNAT_IDENTITY_CODE,
    CreditNoteReason,
    DocumentType,
    EmailStatus,
    InvoiceStatus,
    PreferredDocument,
)
from billing.issuer import igv_percent, igv_rate, issuer, series_for
from billing.models import Invoice, InvoiceLine, SeriesCounter
from billing.services import ANONYMOUS_LIMIT
from billing.taxes import TaxSplit, igv_split
from billing.words import amount_in_words
from payments.enums import PaymentStatus, RefundStatus
from payments.models import Payment, Refund
from smartpay.clock import business_date

if TYPE_CHECKING:
    from reporting.demo import _Builder

SUCCEEDED = (PaymentStatus.SUCCEEDED, PaymentStatus.PARTIALLY_REFUNDED, PaymentStatus.REFUNDED)


def write_demo_invoices(b: _Builder) -> tuple[int, int]:
    """Write the documents of the builder's payments; returns (invoices, credit notes)."""
    paid = Payment.objects.filter(client_app=b.app, status__in=SUCCEEDED, metadata__demo=True)
    refunds = Refund.objects.filter(payment__in=paid, status=RefundStatus.SUCCEEDED).select_related("payment")
    documents = [(p.updated_at, "invoice", p) for p in paid.select_related("customer")]
    documents += [(r.created_at + timedelta(seconds=5), "note", r) for r in refunds]
    documents.sort(key=lambda item: (item[0], item[1]))
    counters = {c.series: c for c in SeriesCounter.objects.select_for_update()}
    the_issuer, percent, rate = issuer(), igv_percent(), igv_rate()
    invoices, lines, by_payment, credited = [], [], {}, defaultdict(lambda: [0, 0, 0])
    count = notes = 0
    for issued_at, kind, obj in documents:
        if kind == "invoice":
            payment = obj
            profile = b.profiles.get(payment.customer_id)
            doc_type = (
                DocumentType.FACTURA
                if profile and profile.preferred_document == PreferredDocument.FACTURA
                else DocumentType.BOLETA
            )
            split = igv_split(total=payment.amount_captured, rate=rate)
            if profile is not None:
                buyer = (SUNAT_IDENTITY_CODE[profile.document_type], profile.document_number, profile.legal_name)
            else:
                name = payment.customer.name if payment.customer_id else ANONYMOUS_NAME
                buyer = (ANONYMOUS_IDENTITY_CODE, ANONYMOUS_DOCUMENT_NUMBER, name)
            extra = {"buyer_unidentified_over_limit": buyer[0] == ANONYMOUS_IDENTITY_CODE
                     and split.total > ANONYMOUS_LIMIT.get(payment.currency, 0)}  # fmt: skip
            series = series_for(doc_type)
            reference = f"{payment.pk} ({payment.gateway} {payment.gateway_payment_id})"
            description = payment.description
        else:
            refund, payment = obj, obj.payment
            invoice = by_payment.get(payment.pk)
            if invoice is None:
                continue
            done = credited[invoice.pk]
            left = invoice.total - done[0]
            amount = min(refund.amount, left)
            if amount <= 0:
                continue
            split = igv_split(total=amount, rate=rate)
            if amount == left:
                split = TaxSplit(subtotal=invoice.subtotal - done[1], tax=invoice.tax - done[2], total=left)
            reason = CreditNoteReason.CANCELLATION if amount == invoice.total else CreditNoteReason.DECREASE_IN_VALUE
            doc_type = DocumentType.CREDIT_NOTE
            series = series_for(doc_type, credited_type=invoice.document_type)
            buyer = (invoice.buyer_document_type, invoice.buyer_document_number, invoice.buyer_name)
            extra = {
                "refund": refund,
                "credited_invoice": invoice,
                "credit_note_reason": reason,
                "credit_note_description": (refund.reason or reason.label)[:250],
            }
            reference = f"{refund.pk} / {payment.pk} ({payment.gateway} {refund.gateway_refund_id})"
            description = payment.description
            done[0], done[1], done[2] = done[0] + split.total, done[1] + split.subtotal, done[2] + split.tax
        counter = counters.get(series) or SeriesCounter(series=series)
        counters[series] = counter
        counter.last_correlative += 1
        rejected = b.rng.random() < 0.01
        email_to = payment.email or (payment.customer.email if payment.customer_id else "")
        invoice = Invoice(
            id=b.make_id("inv", issued_at),
            client_app=b.app,
            document_type=doc_type,
            series=series,
            correlative=counter.last_correlative,
            payment=payment,
            customer_id=payment.customer_id,
            currency=payment.currency,
            subtotal=split.subtotal,
            tax=split.tax,
            total=split.total,
            igv_percent=percent,
            amount_in_words=amount_in_words(split.total, payment.currency),
            issue_date=business_date(issued_at),
            issued_at=issued_at,
            issuer_ruc=the_issuer.ruc,
            issuer_name=the_issuer.name,
            issuer_address=the_issuer.address,
            issuer_ubigeo=the_issuer.ubigeo,
            issuer_establishment=the_issuer.establishment,
            buyer_document_type=buyer[0],
            buyer_document_number=buyer[1],
            buyer_name=buyer[2][:200],
            payment_reference=reference[:200],
            status=InvoiceStatus.REJECTED if rejected else InvoiceStatus.ACCEPTED,
            status_changed_at=issued_at + timedelta(minutes=b.rng.randrange(2, 90)),
            pse="nubefact",
            pse_attempts=1,
            sunat_response_code="2800" if rejected else "0",
            sunat_description="El tipo de documento del receptor no es válido" if rejected else "Aceptada",
            email_to=email_to,
            email_status=EmailStatus.SENT if email_to else EmailStatus.SKIPPED,
            emailed_at=issued_at + timedelta(seconds=40) if email_to else None,
            **extra,
        )
        invoices.append(invoice)
        if kind == "invoice":
            by_payment[payment.pk] = invoice
            count += 1
        else:
            notes += 1
        lines.append(
            InvoiceLine(
                invoice=invoice, position=1, description=description[:500], quantity=1,
                unit_value=split.subtotal, unit_price=split.total,
                subtotal=split.subtotal, tax=split.tax, total=split.total,
            )
        )  # fmt: skip
    Invoice.objects.bulk_create(invoices, batch_size=500)
    InvoiceLine.objects.bulk_create(lines, batch_size=1000)
    for counter in counters.values():
        counter.save()
    return count, notes
