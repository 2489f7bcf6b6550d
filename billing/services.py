"""Every change in billing: profiles, issuing documents, storing their XML, submitting them to
SUNAT through a PSE, emailing them, and the sweep that catches up on anything missed.

Invariants kept here:

* every payment that succeeds gets exactly one invoice (a boleta or a factura): the handler runs
  inside the transaction that moves the payment to `succeeded`, and the database refuses a second
  one (unique payment among boletas/facturas). If issuing fails, the payment's success still
  commits and `billing_sweep` issues the invoice minutes later;
* numbers are gap-free and unique per series: the series' counter row is locked
  (SELECT ... FOR UPDATE) and incremented in the same transaction as the document's insert, so a
  rollback gives the number back, and (series, correlative) is unique in the database;
* a succeeded refund gets exactly one credit note (unique refund), in the refund's transaction;
  the credit notes of an invoice never add up to more than it;
* issued documents never change (`Invoice.save()`/`update()` refuse it); only delivery state moves;
* an automatic email is sent at most once per document (see `invoice_email_send`), never to a
  suppressed address (bounced or complained: `notifications.models.SuppressedAddress`).

Lock order: payment (held by the caller: payments' success/refund transaction, or the sweep) ->
series counter. Nothing else is locked while a counter is held, so no cycle is possible. The PSE
and the email provider are never called inside a transaction or under a lock.
"""

from __future__ import annotations

import contextlib
import logging
from datetime import UTC, timedelta

from django.db import IntegrityError, transaction
from django.db.models import Exists, F, OuterRef, Q, Sum
from django.utils import timezone

from billing.documents import pdf as pdf_document
from billing.documents import ubl
from billing.enums import (
    ANONYMOUS_DOCUMENT_NUMBER,
    ANONYMOUS_IDENTITY_CODE,
    ANONYMOUS_NAME,
    INVOICE_TYPES,
    SUNAT_IDENTITY_CODE,
    CreditNoteReason,
    DocumentType,
    EmailStatus,
    IdentityDocument,
    InvoiceStatus,
    PreferredDocument,
)
from billing.issuer import igv_percent, igv_rate, issuer, series_for
from billing.models import BillingProfile, Invoice, InvoiceLine, SeriesCounter
from billing.pse import base as pse
from billing.pse.registry import get_sender, pse_configured
from billing.taxes import TaxSplit, igv_split, to_decimal
from billing.words import amount_in_words
from notifications.emails import invoice_extra_email_record, invoice_message, is_suppressed
from notifications.services import event_record
from payments.enums import PaymentStatus, RefundStatus
from payments.models import Customer, Payment, Refund
from smartpay.clock import business_date
from smartpay.outbound import request_never_left
from smartpay.queueing import enqueue, enqueue_after_commit

logger = logging.getLogger("smartpay.billing")

# A boleta must identify its buyer above S/ 700 (SUNAT). USD: the same at a conservative 4 PEN/USD.
ANONYMOUS_LIMIT = {"PEN": 700_00, "USD": 175_00}
SWEEP_WINDOW = timedelta(days=7)  # how far back the sweep looks for payments/refunds without documents
SWEEP_BATCH = 200
STALLED_AFTER = timedelta(minutes=10)  # queued work not done after this is queued again by the sweep
SENDING_LEASE = timedelta(minutes=30)  # an email claimed longer ago than this is marked `unknown`
POLL_EVERY = timedelta(minutes=15)  # how often a submitted document's SUNAT verdict is asked for


class SeriesExhausted(Exception):
    """A series reached 99999999: configure a new one."""


# --- Billing profiles -----------------------------------------------------------------------------


def billing_profile_set(
    *,
    customer: Customer,
    document_type: str,
    document_number: str,
    legal_name: str,
    address: str = "",
    invoice_email: str = "",
    preferred_document: str = PreferredDocument.BOLETA,
) -> BillingProfile:
    """Create or replace the customer's billing profile (validated: number format, RUC check
    digit, factura only with a RUC). Applies to documents issued from now on; issued ones keep
    their snapshot. Concurrent first saves end with one profile (the OneToOne decides)."""
    values = {
        "document_type": document_type,
        "document_number": document_number,
        "legal_name": legal_name,
        "address": address,
        "invoice_email": invoice_email,
        "preferred_document": preferred_document,
    }
    BillingProfile(customer=customer, **values).clean()  # raises ValidationError naming the field
    try:
        with transaction.atomic():
            profile, _ = BillingProfile.objects.update_or_create(customer=customer, defaults=values)
    except IntegrityError:
        profile, _ = BillingProfile.objects.update_or_create(customer=customer, defaults=values)
    return profile


def _profile_of(customer_id: str | None) -> BillingProfile | None:
    return BillingProfile.objects.filter(customer_id=customer_id).first() if customer_id else None


# --- Issuing --------------------------------------------------------------------------------------


def invoice_on_payment_success(payment: Payment) -> None:
    """payments' success handler for every purpose: issue the payment's invoice.

    Runs inside the transaction that moves the payment to `succeeded`, with the payment row locked.
    The work is in a savepoint: should it fail, it is undone entirely (number included), the
    payment's success commits anyway, and `billing_sweep` issues the invoice later. Catching every
    error here is deliberate: a payment that happened at the gateway must be recorded whatever
    invoicing does.
    """
    try:
        with transaction.atomic():
            invoice_issue(payment=payment)
    except Exception:
        logger.exception("invoice not issued; the billing sweep will retry", extra={"payment": payment.pk})


def credit_note_on_refund(payment: Payment, refund: Refund) -> dict:
    """payments' refund handler for every purpose: issue the refund's credit note.

    Runs inside the refund-success transaction (payment row locked); same savepoint and fallback as
    `invoice_on_payment_success`. Reports the credit note's id in the refund's handler report.
    """
    try:
        with transaction.atomic():
            note = credit_note_issue(payment=payment, refund=refund)
    except Exception:
        logger.exception("credit note not issued; the billing sweep will retry", extra={"refund": refund.pk})
        return {}
    return {"credit_note": note.pk} if note else {}


def invoice_issue(*, payment: Payment) -> Invoice:
    """The payment's invoice, issued now unless it exists: a factura (01) when the customer's
    profile asks for one and has a RUC, otherwise a boleta (03), for the captured amount.

    Call it inside a transaction or savepoint that holds the payment's row lock (payments' success
    transaction, or the sweep), so two issues for one payment cannot interleave; were they to, the
    unique constraint refuses the second (IntegrityError) and the caller's savepoint undoes it,
    number included. Locks the series counter until commit.
    """
    existing = Invoice.objects.filter(payment=payment, document_type__in=INVOICE_TYPES).first()
    if existing is not None:
        return existing
    profile = _profile_of(payment.customer_id)
    wants_factura = (
        profile is not None
        and profile.preferred_document == PreferredDocument.FACTURA
        and profile.document_type == IdentityDocument.RUC
    )
    document_type = DocumentType.FACTURA if wants_factura else DocumentType.BOLETA
    total = payment.amount_captured or payment.amount
    customer = payment.customer if payment.customer_id else None
    if profile is not None:
        buyer = {
            "buyer_document_type": SUNAT_IDENTITY_CODE[profile.document_type],
            "buyer_document_number": profile.document_number,
            "buyer_name": profile.legal_name,
            "buyer_address": profile.address,
        }
    else:
        # No identified buyer: a boleta to "varios" (catalog 06 "-"), allowed up to S/ 700.
        buyer = {
            "buyer_document_type": ANONYMOUS_IDENTITY_CODE,
            "buyer_document_number": ANONYMOUS_DOCUMENT_NUMBER,
            "buyer_name": (customer.name if customer and customer.name else ANONYMOUS_NAME)[:100],
            "buyer_address": "",
        }
    over_limit = buyer["buyer_document_type"] == ANONYMOUS_IDENTITY_CODE and total > ANONYMOUS_LIMIT.get(
        payment.currency, 0
    )
    if over_limit:
        logger.warning("boleta above the anonymous limit without buyer identification", extra={"payment": payment.pk})
    gateway_ref = f" ({payment.gateway} {payment.gateway_payment_id})" if payment.gateway_payment_id else ""
    return _issue(
        payment=payment,
        document_type=document_type,
        series=series_for(document_type),
        split=igv_split(total=total, rate=igv_rate()),
        description=(payment.description or f"Pago {payment.pk}")[:500],
        buyer=buyer,
        buyer_unidentified_over_limit=over_limit,
        payment_reference=f"{payment.pk}{gateway_ref}"[:200],
        email_to=(profile.invoice_email if profile else "") or (customer.email if customer else "") or payment.email,
    )


def credit_note_issue(*, payment: Payment, refund: Refund) -> Invoice | None:
    """The refund's credit note (07), issued now unless it exists, against the payment's invoice
    (issued first if it was missed). Its series starts with the letter of the invoice it corrects.

    Reason (catalog 09): 01 "anulación de la operación" when one note cancels the whole invoice,
    otherwise 09 "disminución en el valor". The notes of an invoice never exceed it; the note that
    completes it takes exactly what is left of its value and IGV, so the notes add up to the
    invoice to the céntimo. The caller holds the payment's row lock (refund transaction or sweep).
    """
    existing = Invoice.objects.filter(refund=refund).first()
    if existing is not None:
        return existing
    invoice = invoice_issue(payment=payment)
    credited = invoice.credit_notes.aggregate(total=Sum("total"), subtotal=Sum("subtotal"), tax=Sum("tax"))
    left = invoice.total - (credited["total"] or 0)
    amount = min(refund.amount, left)
    if amount <= 0:
        logger.error("refund beyond what the invoice left to credit", extra={"refund": refund.pk})
        return None
    split = igv_split(total=amount, rate=igv_rate())
    if amount == left:
        rest = TaxSplit(
            subtotal=invoice.subtotal - (credited["subtotal"] or 0),
            tax=invoice.tax - (credited["tax"] or 0),
            total=left,
        )
        split = rest if rest.subtotal >= 0 and rest.tax >= 0 else split
    reason = CreditNoteReason.CANCELLATION if amount == invoice.total else CreditNoteReason.DECREASE_IN_VALUE
    line = invoice.lines.first()
    gateway_ref = f" ({payment.gateway} {refund.gateway_refund_id})" if refund.gateway_refund_id else ""
    return _issue(
        payment=payment,
        document_type=DocumentType.CREDIT_NOTE,
        series=series_for(DocumentType.CREDIT_NOTE, credited_type=invoice.document_type),
        split=split,
        description=line.description if line else invoice.number,
        buyer={
            "buyer_document_type": invoice.buyer_document_type,
            "buyer_document_number": invoice.buyer_document_number,
            "buyer_name": invoice.buyer_name,
            "buyer_address": invoice.buyer_address,
        },
        buyer_unidentified_over_limit=False,
        payment_reference=f"{refund.pk} / {payment.pk}{gateway_ref}"[:200],
        email_to=invoice.email_to,
        refund=refund,
        credited_invoice=invoice,
        credit_note_reason=reason,
        credit_note_description=(refund.reason or reason.label)[:250],
    )


def _take_number(series: str) -> int:
    """The next correlative of `series`, from its counter row locked until the caller's commit."""
    counter = SeriesCounter.objects.select_for_update().filter(series=series).first()
    if counter is None:
        # First use of the series: create the row (concurrent creators insert one), then lock it.
        SeriesCounter.objects.bulk_create([SeriesCounter(series=series)], ignore_conflicts=True)
        counter = SeriesCounter.objects.select_for_update().get(series=series)
    if counter.last_correlative >= 99_999_999:
        raise SeriesExhausted(f"Series {series} is exhausted; configure a new one.")
    counter.last_correlative += 1
    counter.save(update_fields=["last_correlative", "updated_at"])
    return counter.last_correlative


def _issue(
    *,
    payment: Payment,
    document_type: str,
    series: str,
    split: TaxSplit,
    description: str,
    buyer: dict,
    buyer_unidentified_over_limit: bool,
    payment_reference: str,
    email_to: str,
    **credit_note,
) -> Invoice:
    """Number and insert one document with its line, record `invoice.issued`, queue its delivery.

    Runs inside the caller's savepoint or transaction (the handlers' savepoint, the sweep's
    transaction): if anything here fails, including a unique constraint refusing a second document
    for the same payment or refund, all of it is undone there, the counter's increment included.
    """
    now = timezone.now()
    the_issuer = issuer()
    invoice = Invoice.objects.create(
        client_app_id=payment.client_app_id,
        document_type=document_type,
        series=series,
        correlative=_take_number(series),
        payment=payment,
        customer_id=payment.customer_id,
        currency=payment.currency,
        subtotal=split.subtotal,
        tax=split.tax,
        total=split.total,
        igv_percent=igv_percent(),
        amount_in_words=amount_in_words(split.total, payment.currency),
        issue_date=business_date(now),
        issued_at=now,
        issuer_ruc=the_issuer.ruc,
        issuer_name=the_issuer.name,
        issuer_address=the_issuer.address,
        issuer_ubigeo=the_issuer.ubigeo,
        issuer_establishment=the_issuer.establishment,
        buyer_unidentified_over_limit=buyer_unidentified_over_limit,
        payment_reference=payment_reference,
        email_to=email_to,
        email_status=EmailStatus.PENDING if email_to else EmailStatus.SKIPPED,
        status_changed_at=now,
        **buyer,
        **credit_note,
    )
    InvoiceLine.objects.create(
        invoice=invoice,
        position=1,
        description=description,
        quantity=1,
        unit_value=split.subtotal,
        unit_price=split.total,
        subtotal=split.subtotal,
        tax=split.tax,
        total=split.total,
    )
    event_record(
        client_app=payment.client_app,
        type="invoice.issued",
        data=invoice_event_data(invoice),
        dedupe_key=f"invoice.issued:{invoice.pk}",
    )
    _queue_delivery(invoice)
    return invoice


def _queue_delivery(invoice: Invoice) -> None:
    """After commit (never for a document whose transaction rolled back): email it, submit it.

    With the broker down the document stays `pending`/`issued` (the payment's answer is not
    affected) and `billing_sweep` queues it later."""
    from billing import tasks

    if invoice.email_status == EmailStatus.PENDING:
        enqueue_after_commit(tasks.email_invoice, invoice.pk)
    invoice_extra_email_record(invoice)  # the copy to the customer's extra billing email, if any
    if pse_configured():
        enqueue_after_commit(tasks.submit_invoice, invoice.pk)


def _utc(value) -> str | None:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z") if value else None


def invoice_event_data(invoice: Invoice) -> dict:
    """The `data` of an `invoice.issued` event: the API's invoice object without its lines."""
    return {
        "id": invoice.pk,
        "object": "invoice",
        "number": invoice.number,
        "document_type": invoice.document_type,
        "customer": invoice.customer_id,
        "payment": invoice.payment_id,
        "refund": invoice.refund_id,
        "credited_invoice": invoice.credited_invoice_id,
        "currency": invoice.currency,
        "subtotal": invoice.subtotal,
        "tax": invoice.tax,
        "total": invoice.total,
        "status": invoice.status,
        "issued_at": _utc(invoice.issued_at),
    }


# --- Documents ------------------------------------------------------------------------------------


def invoice_xml(*, invoice: Invoice) -> bytes:
    """The document's UBL 2.1 XML. Built (and signed, when configured) on first use and stored once
    (`UPDATE ... WHERE xml = ''`): every later download, email and audit sees the same bytes."""
    if not invoice.xml:
        xml, digest = ubl.render(invoice, invoice.lines.all(), invoice.credited_invoice)
        Invoice.objects.filter(pk=invoice.pk, xml="").update(xml=xml.decode("utf-8"), xml_digest=digest)
        invoice.refresh_from_db(fields=["xml", "xml_digest"])
    return invoice.xml.encode("utf-8")


def invoice_pdf(*, invoice: Invoice) -> bytes:
    """The printed representation (PDF). Stores the XML first so a signed document's digest is printed."""
    invoice_xml(invoice=invoice)
    return pdf_document.render(invoice, invoice.lines.all(), invoice.credited_invoice)


# --- Submission to SUNAT through the PSE ----------------------------------------------------------


def pse_document(invoice: Invoice) -> pse.PseDocument:
    credited = invoice.credited_invoice
    return pse.PseDocument(
        sunat_code=invoice.sunat_code,
        series=invoice.series,
        correlative=invoice.correlative,
        issue_date=invoice.issue_date,
        currency=invoice.currency,
        igv_percent=invoice.igv_percent,
        buyer_document_type=invoice.buyer_document_type,
        buyer_document_number=invoice.buyer_document_number,
        buyer_name=invoice.buyer_name,
        buyer_address=invoice.buyer_address,
        subtotal=to_decimal(invoice.subtotal),
        tax=to_decimal(invoice.tax),
        total=to_decimal(invoice.total),
        lines=tuple(
            pse.PseLine(
                description=line.description,
                quantity=line.quantity,
                unit_code=line.unit_code,
                unit_value=to_decimal(line.unit_value),
                unit_price=to_decimal(line.unit_price),
                subtotal=to_decimal(line.subtotal),
                tax=to_decimal(line.tax),
                total=to_decimal(line.total),
            )
            for line in invoice.lines.all()
        ),
        reference=f"{invoice.pk} {invoice.payment_reference}"[:250],
        credited_sunat_code=credited.sunat_code if credited else "",
        credited_series=credited.series if credited else "",
        credited_correlative=credited.correlative if credited else 0,
        credit_note_reason=invoice.credit_note_reason,
    )


FINAL_STATUSES = (InvoiceStatus.ACCEPTED, InvoiceStatus.REJECTED)
_STATUS_FROM_OUTCOME = {
    pse.ACCEPTED: InvoiceStatus.ACCEPTED,
    pse.REJECTED: InvoiceStatus.REJECTED,
    pse.PENDING: InvoiceStatus.SUBMITTED,
}


def invoice_submit(*, invoice_id: str) -> Invoice:
    """Submit an `issued` document to the configured PSE, or ask about a `submitted` one.

    Without a PSE nothing happens (the document stays `issued`). Accepted and rejected are final and
    left alone. Safe to repeat: the PSE refuses a second document with the same series-number and
    the sender then reads the first one's state instead. Called without any lock or transaction
    open (it waits on the network). Raises `PseTransientError` when it should be tried again.
    """
    sender = get_sender()
    invoice = Invoice.objects.select_related("credited_invoice").get(pk=invoice_id)
    if sender is None or invoice.status in FINAL_STATUSES:
        return invoice
    if invoice.credited_invoice and invoice.credited_invoice.status == InvoiceStatus.ISSUED:
        raise pse.PseTransientError(f"{invoice.credited_invoice.number} has not reached the PSE yet.")
    Invoice.objects.filter(pk=invoice.pk).update(
        pse=sender.name, pse_attempts=F("pse_attempts") + 1, pse_last_attempt_at=timezone.now()
    )
    document = pse_document(invoice)
    try:
        # A submitted document is asked about, never sent again.
        result = sender.submit(document) if invoice.status == InvoiceStatus.ISSUED else sender.status(document)
    except pse.PseRejected as error:
        result = pse.SubmissionResult(
            outcome=pse.REJECTED, response_code=error.code, description=error.message, raw=error.raw
        )
    except pse.PseTransientError as error:
        Invoice.objects.filter(pk=invoice.pk).update(pse_error=error.message[:300], pse_response=error.raw or None)
        raise
    return _record_submission(invoice_id=invoice.pk, result=result)


def _record_submission(*, invoice_id: str, result: pse.SubmissionResult) -> Invoice:
    """Store the PSE's answer under the document's row lock; a final status never moves again."""
    with transaction.atomic():
        invoice = Invoice.objects.select_for_update().get(pk=invoice_id)
        status = _STATUS_FROM_OUTCOME[result.outcome]
        if invoice.status not in FINAL_STATUSES:
            changes = {
                "status": status,
                "pse_response": result.raw,
                "sunat_response_code": result.response_code[:10],
                "sunat_description": result.description,
                "pse_error": "",
            }
            if status != invoice.status:
                changes["status_changed_at"] = timezone.now()
            Invoice.objects.filter(pk=invoice.pk).update(**changes)
            if status == InvoiceStatus.REJECTED:
                logger.error(
                    "document rejected",
                    extra={"invoice": invoice.pk, "number": invoice.number, "code": result.response_code},
                )
                invoice.refresh_from_db()
                event_record(
                    client_app=invoice.client_app,
                    type="invoice.rejected",
                    data={
                        **invoice_event_data(invoice),
                        "sunat_response_code": invoice.sunat_response_code,
                        "sunat_description": invoice.sunat_description,
                    },
                    dedupe_key=f"invoice.rejected:{invoice.pk}",
                    object_id=invoice.pk,
                )
        invoice.refresh_from_db()
        return invoice


def invoice_submission_failed(*, invoice_id: str, error: str) -> None:
    """Out of retries for now: the document stays as it is and the sweep queues it again later."""
    Invoice.objects.filter(pk=invoice_id).update(pse_error=error[:300])
    logger.error("document submission failed; the billing sweep will retry", extra={"invoice": invoice_id})


# --- Email ------------------------------------------------------------------------------------------


class EmailRetry(Exception):
    """The email provider certainly did not take the message: try again later."""


def _email_message(invoice: Invoice, *, to: str):
    """The document's email, as the other payer emails are built (`templates/emails/invoice.<lang>.*`,
    the customer's language, the payer emails' Postmark stream), PDF and XML attached."""
    return invoice_message(invoice, to=to)


def _deliver(invoice: Invoice, message) -> None:
    """Send a message whose document is claimed (`sending`) and record what became of it.

    Sent: `sent`. The provider answered an error, or no connection was made: nothing was sent, so
    `retrying` and `EmailRetry` is raised (a 4xx other than 429, or refused recipients: `failed`).
    Anything else (a timeout after the request left, an unexpected error): it may have been sent,
    so `unknown`, never retried automatically.
    """
    from anymail.exceptions import AnymailRecipientsRefused, AnymailRequestsAPIError

    rows = Invoice.objects.filter(pk=invoice.pk, email_status=EmailStatus.SENDING)
    try:
        message.send()
    except AnymailRecipientsRefused as error:
        rows.update(email_status=EmailStatus.FAILED, email_error=str(error)[:300])
        return
    except AnymailRequestsAPIError as error:
        status = error.status_code
        if status is not None and (status == 429 or status >= 500):
            rows.update(email_status=EmailStatus.RETRYING, email_error=f"HTTP {status}", email_claimed_at=None)
            raise EmailRetry(f"provider answered HTTP {status}") from error
        if status is not None:
            rows.update(email_status=EmailStatus.FAILED, email_error=str(error)[:300])
            return
        if request_never_left(error):
            rows.update(email_status=EmailStatus.RETRYING, email_error="no connection", email_claimed_at=None)
            raise EmailRetry("no connection to the provider") from error
        rows.update(email_status=EmailStatus.UNKNOWN, email_error=str(error)[:300])
        logger.error("invoice email may or may not have been sent", extra={"invoice": invoice.pk})
        return
    except Exception as error:  # any other backend error: its outcome is unknown, so record exactly that
        rows.update(email_status=EmailStatus.UNKNOWN, email_error=f"{error.__class__.__name__}: {error}"[:300])
        logger.exception("invoice email may or may not have been sent", extra={"invoice": invoice.pk})
        return
    status = getattr(message, "anymail_status", None)
    rows.update(
        email_status=EmailStatus.SENT,
        emailed_at=timezone.now(),
        email_message_id=(getattr(status, "message_id", None) or "")[:120],
        email_error="",
    )


def invoice_email_send(*, invoice_id: str) -> str:
    """Email the document (PDF and XML attached) to its `email_to`, at most once automatically.

    The message is built first; then the document is claimed with one conditional UPDATE
    (`pending`/`retrying` -> `sending`), so two workers can never both send it, and a document
    already `sent`, `sending`, `failed` or `unknown` is left alone. Only an outcome that proves
    nothing left (an error answer, no connection) returns it to `retrying` for another try; a crash
    or timeout after sending leaves it `sending`/`unknown`, which staff resolve (admin re-send)
    rather than risk a duplicate. Returns the resulting email status.
    """
    invoice = Invoice.objects.select_related("credited_invoice").get(pk=invoice_id)
    if invoice.email_status not in (EmailStatus.PENDING, EmailStatus.RETRYING) or not invoice.email_to:
        return invoice.email_status
    if is_suppressed(invoice.email_to):
        Invoice.objects.filter(pk=invoice.pk, email_status__in=[EmailStatus.PENDING, EmailStatus.RETRYING]).update(
            email_status=EmailStatus.SUPPRESSED, email_error="address suppressed (bounced or complained)"
        )
        logger.info("invoice email not sent: its address is suppressed", extra={"invoice": invoice.pk})
        return Invoice.objects.values_list("email_status", flat=True).get(pk=invoice.pk)
    message = _email_message(invoice, to=invoice.email_to)
    claimed = Invoice.objects.filter(
        pk=invoice.pk, email_status__in=[EmailStatus.PENDING, EmailStatus.RETRYING]
    ).update(email_status=EmailStatus.SENDING, email_claimed_at=timezone.now(), email_attempts=F("email_attempts") + 1)
    if not claimed:
        return Invoice.objects.values_list("email_status", flat=True).get(pk=invoice.pk)
    _deliver(invoice, message)
    return Invoice.objects.values_list("email_status", flat=True).get(pk=invoice.pk)


def invoice_email_failed(*, invoice_id: str) -> None:
    """Out of retries: the document's email is `failed` (staff may re-send it from the admin)."""
    Invoice.objects.filter(pk=invoice_id, email_status=EmailStatus.RETRYING).update(email_status=EmailStatus.FAILED)


def invoice_email_resend(*, invoice: Invoice, to: str = "", actor: str = "") -> str:
    """Staff's deliberate re-send (admin action), whatever happened before, except while another
    send of it is in flight. Counted in `email_resends`. Returns the resulting email status."""
    to = to or invoice.email_to
    if not to:
        return EmailStatus.SKIPPED
    if is_suppressed(to):  # lifted only by deleting its suppressed address
        logger.info(
            "invoice email not re-sent: its address is suppressed", extra={"invoice": invoice.pk, "actor": actor}
        )
        return EmailStatus.SUPPRESSED
    message = _email_message(invoice, to=to)
    claimed = (
        Invoice.objects.filter(pk=invoice.pk)
        .exclude(email_status=EmailStatus.SENDING, email_claimed_at__gt=timezone.now() - SENDING_LEASE)
        .update(
            email_status=EmailStatus.SENDING,
            email_claimed_at=timezone.now(),
            email_attempts=F("email_attempts") + 1,
            email_resends=F("email_resends") + 1,
        )
    )
    if not claimed:
        return EmailStatus.SENDING
    logger.info("invoice email re-sent by staff", extra={"invoice": invoice.pk, "actor": actor})
    with contextlib.suppress(EmailRetry):  # left `retrying`: the sweep picks it up
        _deliver(invoice, message)
    return Invoice.objects.values_list("email_status", flat=True).get(pk=invoice.pk)


# --- The sweep ----------------------------------------------------------------------------------------


def billing_sweep(*, now=None) -> dict:
    """Catch up on whatever a crash, an outage or a failed handler left behind (every 5 minutes):
    issue missing invoices and credit notes (each under its payment's lock, like the handlers),
    queue submissions and emails that stalled or were never queued (broker down at the commit), ask
    the PSE about documents awaiting SUNAT, and mark emails stuck in `sending` as `unknown` (never
    re-sent automatically). With the broker still down, queueing stops and waits for the next sweep."""
    from billing import tasks

    now = now or timezone.now()
    since = now - SWEEP_WINDOW
    report = {"invoices": 0, "credit_notes": 0, "submissions": 0, "emails": 0, "emails_unknown": 0}

    invoiced = Invoice.objects.filter(payment=OuterRef("pk"), document_type__in=INVOICE_TYPES)
    missing = (
        Payment.objects.filter(
            status__in=[PaymentStatus.SUCCEEDED, PaymentStatus.PARTIALLY_REFUNDED, PaymentStatus.REFUNDED],
            updated_at__gte=since,
        )
        .exclude(Exists(invoiced))
        .values_list("pk", flat=True)[:SWEEP_BATCH]
    )
    for payment_id in list(missing):
        report["invoices"] += _sweep_one(payment_id, lambda payment: invoice_issue(payment=payment))

    noted = Invoice.objects.filter(refund=OuterRef("pk"))
    refunds = (
        Refund.objects.filter(status=RefundStatus.SUCCEEDED, updated_at__gte=since)
        .exclude(Exists(noted))
        .values_list("pk", "payment_id")[:SWEEP_BATCH]
    )
    for refund_id, payment_id in list(refunds):
        report["credit_notes"] += _sweep_one(
            payment_id,
            lambda payment, refund_id=refund_id: credit_note_issue(
                payment=payment, refund=Refund.objects.get(pk=refund_id)
            ),
        )

    if pse_configured():
        due = Invoice.objects.filter(
            Q(status=InvoiceStatus.ISSUED, issued_at__lt=now - STALLED_AFTER)
            & (Q(pse_last_attempt_at__isnull=True) | Q(pse_last_attempt_at__lt=now - STALLED_AFTER))
            | Q(status=InvoiceStatus.SUBMITTED, pse_last_attempt_at__lt=now - POLL_EVERY)
        ).values_list("pk", flat=True)[:SWEEP_BATCH]
        for invoice_id in list(due):
            if not enqueue(tasks.submit_invoice, invoice_id):
                break  # the broker is down: all of it is still due at the next sweep
            report["submissions"] += 1

    report["emails_unknown"] = Invoice.objects.filter(
        email_status=EmailStatus.SENDING, email_claimed_at__lt=now - SENDING_LEASE
    ).update(email_status=EmailStatus.UNKNOWN, email_error="claimed but never confirmed (worker stopped?)")
    # `pending` this long after issuing: its email was never queued (broker down at the commit) or
    # its message was lost; `retrying`: an earlier try certainly sent nothing. Queued again: the
    # conditional claim in `invoice_email_send` lets one send happen, however often it is queued.
    stalled = (
        Invoice.objects.filter(
            email_status__in=[EmailStatus.PENDING, EmailStatus.RETRYING], issued_at__lt=now - STALLED_AFTER
        )
        .order_by("issued_at")
        .values_list("pk", flat=True)[:SWEEP_BATCH]
    )
    for invoice_id in list(stalled):
        if not enqueue(tasks.email_invoice, invoice_id):
            break
        report["emails"] += 1
    return report


def _sweep_one(payment_id: str, issue) -> int:
    """Run `issue(locked payment)` in its own transaction. One payment's failure is logged and
    does not stop the others (it is tried again next sweep)."""
    try:
        with transaction.atomic():
            payment = Payment.objects.select_for_update().get(pk=payment_id)
            return 1 if issue(payment) else 0
    except Exception:
        logger.exception("billing sweep could not issue a document", extra={"payment": payment_id})
        return 0
