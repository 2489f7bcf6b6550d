"""Emails to payers: receipts and credits notices, through Django's mail API (Postmark via anymail).

* **Which email when.** Outbox events decide: `notifications.services.event_record` calls
  `emails_for_event_safely` right after it writes an event, inside the same transaction, so an email
  row exists exactly when its change committed. `payment.succeeded` → payment receipt,
  `payment.refunded` → refund receipt (both also to the customer's `extra_billing_email`);
  `credits.low_balance`, `credits.expiring`, `credits.expired`, `auto_renewal.failed` → a notice,
  only when the customer's `email_alerts` is on (default on). Receipts go to the payment's email,
  else its customer's; notices to the customer's email. Invoices: billing emails the document's
  recipient itself (claimed on `Invoice.email_status`) with `invoice_message`; its copy to the
  customer's `extra_billing_email` is a row here (`invoice_extra_email_record`, at issue).
* **At most once.** One `SentEmail` row per (kind, subject key, recipient): the unique constraint
  decides (`INSERT … ON CONFLICT DO NOTHING`). Sending claims the row with one conditional UPDATE
  (`pending` → `sending`, attempts + 1), so two workers, a task that runs twice, or the sweep
  racing the task never send it twice.
* **Retries.** Postmark 429/5xx or no answer (timeouts, connection errors): back to `pending`,
  tried again with backoff (the task's retry, or the sweep on `RETRY_AFTER`), at most
  `MAX_ATTEMPTS` tries, then `failed`. Another 4xx: `failed`. Refused recipients: `suppressed`.
* **Suppression.** An address that bounced hard or complained (`notifications.email_tracking`)
  gets nothing more: its emails become `suppressed` without being sent.

Rows keep only what the email is about (`subject_key`: a payment, refund or event id); the message
is built from the current rows when it is sent, in the customer's language (`es` by default).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.template.loader import render_to_string
from django.utils import timezone

from notifications.models import CustomerPreferences, EmailKind, Language, OutgoingEvent, SentEmail, SuppressedAddress
from smartpay.clock import business_time
from smartpay.outbound import request_never_left
from smartpay.queueing import enqueue, enqueue_after_commit

logger = logging.getLogger("smartpay.notifications")

SENDING = SentEmail.SENDING  # claimed by a worker (a conditional UPDATE from pending)

EVENT_KINDS = {
    "payment.succeeded": EmailKind.PAYMENT_RECEIPT,
    "payment.refunded": EmailKind.REFUND_RECEIPT,
    "credits.low_balance": EmailKind.CREDITS_LOW_BALANCE,
    "credits.expiring": EmailKind.CREDITS_EXPIRING,
    "credits.expired": EmailKind.CREDITS_EXPIRED,
    "auto_renewal.failed": EmailKind.AUTO_RENEWAL_FAILED,
}
RECEIPTS = (EmailKind.PAYMENT_RECEIPT, EmailKind.REFUND_RECEIPT)

MAX_ATTEMPTS = 5
# The sweep sends a `pending` row whose try number `attempts + 1` is due: the first one minute after
# the row was written (its task was lost: broker outage), later ones on this backoff from creation.
RETRY_AFTER = [
    timedelta(minutes=1),
    timedelta(minutes=5),
    timedelta(minutes=15),
    timedelta(minutes=45),
    timedelta(hours=2),
]
# A row still `sending` this long after it was written was claimed by a worker that died mid-send:
# it may or may not have left, so it is marked `failed` (never re-sent automatically).
STUCK_AFTER = timedelta(hours=6)
SWEEP_BATCH = 500


class EmailRetry(Exception):
    """The provider did not take the message (429/5xx, no answer): try again later."""


# --- Which email when ------------------------------------------------------------------------------


def emails_for_event_safely(event: OutgoingEvent) -> list[SentEmail]:
    """`emails_for_event` for `event_record`: never raises, and its savepoint leaves the caller's
    transaction usable whatever happens (the change being recorded matters more than its email)."""
    if event.type not in EVENT_KINDS or not settings.PAYER_EMAILS_ENABLED:
        return []
    try:
        with transaction.atomic():
            return emails_for_event(event)
    except Exception:
        logger.exception("payer email not recorded", extra={"event": event.pk, "type": event.type})
        return []


def emails_for_event(event: OutgoingEvent) -> list[SentEmail]:
    """Write the `pending` email rows `event` calls for (none for other types), and queue their
    sending after commit. Rows that already exist (same kind, subject key, recipient) are left
    alone: the unique constraint decides. Returns the rows it asked to insert."""
    kind = EVENT_KINDS.get(event.type)
    if kind is None:
        return []
    data = event.data or {}
    customer_id, recipients, subject_key = None, [], ""
    if kind in RECEIPTS:
        from payments.models import Payment

        payment_id = event.object_id or str(data.get("id") or "")
        row = (
            Payment.objects.filter(pk=payment_id, client_app_id=event.client_app_id)
            .values_list("email", "customer_id", "customer__email", "customer__preferences__extra_billing_email")
            .first()
        )
        if row is None:
            return []
        payment_email, customer_id, customer_email, extra = row
        recipients = [payment_email or customer_email or "", extra or ""]
        refund = data.get("refund") if isinstance(data.get("refund"), dict) else {}
        subject_key = str(refund.get("id") or "") if kind == EmailKind.REFUND_RECEIPT else payment_id
    else:
        from payments.models import Customer

        customer_id = str(data.get("customer") or "")
        row = (
            Customer.objects.filter(pk=customer_id, client_app_id=event.client_app_id)
            .values_list("email", "preferences__email_alerts")
            .first()
        )
        if row is None or row[1] is False:  # no preferences row: alerts on (the model's default)
            return []
        recipients = [row[0] or ""]
        subject_key = event.pk
    if not subject_key:
        return []
    addresses = list(dict.fromkeys(address.strip().lower() for address in recipients if address and address.strip()))
    rows = [
        SentEmail(kind=kind, subject_key=subject_key[:120], recipient=address, customer_id=customer_id)
        for address in addresses
    ]
    if not rows:
        return []
    SentEmail.objects.bulk_create(rows, ignore_conflicts=True)
    from notifications.email_tasks import send_payer_email

    for row in rows:  # a row that was already there: its task finds it not `pending` (or gone) and stops
        enqueue_after_commit(send_payer_email, row.pk)
    return rows


# --- Sending ---------------------------------------------------------------------------------------


def is_suppressed(address: str) -> bool:
    return SuppressedAddress.objects.filter(address__iexact=address.strip()).exists()


def email_send(email_id: str) -> str:
    """Send one `pending` email, at most once. Returns its resulting status.

    A suppressed recipient: `suppressed`, not sent. Otherwise the message is built, then the row is
    claimed (`pending` → `sending`, attempts + 1: exactly one caller wins), then sent. Raises
    `EmailRetry` when the provider did not take it and tries remain (the row is `pending` again).
    """
    email = SentEmail.objects.select_related("customer").filter(pk=email_id).first()
    if email is None:
        return "missing"
    if email.status != SentEmail.PENDING:
        return email.status
    pending = SentEmail.objects.filter(pk=email.pk, status=SentEmail.PENDING)
    if is_suppressed(email.recipient):
        pending.update(status=SentEmail.SUPPRESSED, last_error="address suppressed (bounced or complained)")
        return _status(email.pk)
    try:
        message = build_message(email)
    except Exception as error:  # the payment, refund or event it is about is gone, a template is broken...
        logger.exception("payer email could not be built", extra={"email": email.pk})
        pending.update(status=SentEmail.FAILED, last_error=f"not built: {type(error).__name__}: {error}"[:300])
        return _status(email.pk)
    if not pending.update(status=SENDING, attempts=F("attempts") + 1):
        return _status(email.pk)  # another worker claimed it
    _deliver(email, message)
    return _status(email.pk)


def _status(email_id: str) -> str:
    return SentEmail.objects.values_list("status", flat=True).get(pk=email_id)


def _deliver(email: SentEmail, message: EmailMultiAlternatives) -> None:
    """Send a claimed (`sending`) email and record what became of it."""
    from anymail.exceptions import AnymailAPIError, AnymailRecipientsRefused

    claimed = SentEmail.objects.filter(pk=email.pk, status=SENDING)
    try:
        message.send()
    except AnymailRecipientsRefused as error:
        claimed.update(status=SentEmail.SUPPRESSED, last_error=f"refused by the provider: {_describe(error)}"[:300])
        suppress_address(email.recipient, reason="refused", detail=_describe(error))
        return
    except AnymailAPIError as error:
        status = getattr(error, "status_code", None)
        if status is not None and status != 429 and status < 500:
            claimed.update(status=SentEmail.FAILED, last_error=f"HTTP {status}: {_describe(error)}"[:300])
            return
        what = f"HTTP {status}" if status is not None else f"no answer: {_describe(error).splitlines()[0]}"
        if status is None and not request_never_left(error):
            # The request may have reached Postmark (a read timeout, a dropped connection): sending it
            # again could email the payer twice, so it is not retried; staff see it failed.
            claimed.update(status=SentEmail.FAILED, last_error=f"{what}; it may have been sent: not sent again"[:300])
            logger.error("payer email may or may not have been sent", extra={"email": email.pk})
            return
        attempts = SentEmail.objects.values_list("attempts", flat=True).get(pk=email.pk)
        if attempts >= MAX_ATTEMPTS:
            claimed.update(status=SentEmail.FAILED, last_error=f"{what} (after {attempts} tries)"[:300])
            logger.warning("payer email failed after its last try", extra={"email": email.pk})
            return
        claimed.update(status=SentEmail.PENDING, last_error=what[:300])
        raise EmailRetry(what) from error
    except Exception as error:  # another backend's error (SMTP, …): not retried, staff see it
        claimed.update(status=SentEmail.FAILED, last_error=f"{type(error).__name__}: {_describe(error)}"[:300])
        logger.exception("payer email not sent", extra={"email": email.pk})
        return
    status = getattr(message, "anymail_status", None)
    claimed.update(
        status=SentEmail.SENT,
        sent_at=timezone.now(),
        provider_message_id=(getattr(status, "message_id", None) or "")[:120],
        last_error="",
    )


def _describe(error: BaseException) -> str:
    """str(error), or its class when that fails (anymail's errors without a response can)."""
    try:
        return str(error) or type(error).__name__
    except Exception:
        return type(error).__name__


def emails_sweep(*, now: datetime | None = None) -> dict:
    """Beat, every 2 minutes: queue `pending` emails whose try is due (their task was lost to a broker
    outage, or failed and waits its backoff), and mark `failed` those claimed long ago by a worker
    that never finished. Safe to run twice: each send claims its row first."""
    from notifications.email_tasks import send_payer_email

    now = now or timezone.now()
    due = Q()
    for attempts, delay in enumerate(RETRY_AFTER[:MAX_ATTEMPTS]):
        due |= Q(attempts=attempts, created_at__lte=now - delay)
    ids = list(
        SentEmail.objects.filter(due, status=SentEmail.PENDING)
        .order_by("created_at")
        .values_list("pk", flat=True)[:SWEEP_BATCH]
    )
    queued = sum(1 for pk in ids if enqueue(send_payer_email, pk))
    stuck = SentEmail.objects.filter(status=SENDING, created_at__lt=now - STUCK_AFTER).update(
        status=SentEmail.FAILED, last_error="claimed but never confirmed (worker stopped?)"
    )
    return {"queued": queued, "stuck": stuck}


# --- Suppression -----------------------------------------------------------------------------------


def suppress_address(address: str, *, reason: str, detail: str = "") -> SuppressedAddress | None:
    """Record that `address` must get nothing more (insert or update; the unique address decides),
    mark its `pending` emails `suppressed`, and raise an `email_bouncing` alert (panel only)."""
    address = (address or "").strip().lower()
    if not address:
        return None
    values = {"reason": reason[:30], "detail": (detail or "")[:300]}
    try:
        with transaction.atomic():
            suppressed = SuppressedAddress.objects.create(address=address, **values)
    except IntegrityError:
        SuppressedAddress.objects.filter(address__iexact=address).update(**values)
        suppressed = SuppressedAddress.objects.filter(address__iexact=address).first()
    SentEmail.objects.filter(recipient__iexact=address, status=SentEmail.PENDING).update(
        status=SentEmail.SUPPRESSED, last_error=f"address suppressed ({reason})"[:300]
    )
    _raise_alert(address, reason, detail)
    return suppressed


EMAIL_BOUNCING = "email_bouncing"


def _raise_alert(address: str, reason: str, detail: str) -> None:
    from notifications.alerts import alert_raise_safely
    from notifications.models import AlertSeverity

    alert_raise_safely(
        kind=EMAIL_BOUNCING,
        dedupe_key=address,
        severity=AlertSeverity.WARNING,  # a payer no longer gets receipts or invoices: staff are told
        title=f"Emails to {address} are suppressed ({reason})",
        detail=(detail or "")[:1000] + "\nNothing more is emailed to it until staff delete its suppressed address.",
        context={"address": address, "reason": reason},
    )


# --- The message -----------------------------------------------------------------------------------


def build_message(email: SentEmail) -> EmailMultiAlternatives:
    """The email as it is sent now: subject and text from `emails/<kind>.<lang>.txt` (first line: the
    subject), HTML from `emails/<kind>.<lang>.html`; Postmark stream, tag and metadata set."""
    if email.kind == EmailKind.INVOICE:  # the extra billing email's copy of an invoice
        from billing.models import Invoice

        invoice = Invoice.objects.select_related("credited_invoice").get(pk=email.subject_key)
        message = invoice_message(invoice, to=email.recipient)
        message.metadata = {"sent_email": email.pk, "kind": email.kind, "invoice_id": invoice.pk}
        return message
    language = _language(email.customer_id)
    context = {**_context(email), "language": language}
    message = _render(email.kind, language, context, to=email.recipient, from_email=settings.PAYER_EMAIL_FROM)
    message.metadata = {"sent_email": email.pk, "kind": email.kind}
    return message


def _render(kind: str, language: str, context: dict, *, to: str, from_email: str) -> EmailMultiAlternatives:
    """`emails/<kind>.<lang>.txt` (first line: the subject) and `.html`, the kind as Postmark's tag,
    the payer emails' message stream."""
    text = render_to_string(f"emails/{kind}.{language}.txt", context)
    subject, _, body = text.lstrip().partition("\n")
    message = EmailMultiAlternatives(subject=subject.strip(), body=body.lstrip("\n"), from_email=from_email, to=[to])
    message.attach_alternative(render_to_string(f"emails/{kind}.{language}.html", context), "text/html")
    message.tags = [kind]  # Postmark keeps one tag
    if settings.PAYER_EMAIL_MESSAGE_STREAM:
        message.esp_extra = {"MessageStream": settings.PAYER_EMAIL_MESSAGE_STREAM}
    return message


# --- Invoices (billing claims the main recipient's email; the extra billing email is a row here) -------

INVOICE_TITLES_EN = {  # by billing's DocumentType (Spanish: billing.documents.pdf.TITLES)
    "boleta": "Electronic sales receipt (boleta)",
    "factura": "Electronic invoice (factura)",
    "credit_note": "Electronic credit note",
}


def invoice_message(invoice, *, to: str) -> EmailMultiAlternatives:
    """A billing document's email (boletas, facturas, credit notes) in its customer's language, its
    PDF and XML attached, from `BILLING_EMAIL_FROM`, tag `invoice`, the payer emails' stream."""
    from billing.documents.pdf import TITLES
    from billing.services import invoice_pdf, invoice_xml
    from billing.taxes import to_decimal

    language = _language(invoice.customer_id)
    if language == Language.EN:
        title = INVOICE_TITLES_EN[invoice.document_type]
    else:
        title = TITLES[invoice.document_type].capitalize()
    context = {"invoice": invoice, "title": title, "total": f"{to_decimal(invoice.total):,.2f}", "language": language}
    message = _render(EmailKind.INVOICE, language, context, to=to, from_email=settings.BILLING_EMAIL_FROM)
    name = f"{invoice.issuer_ruc}-{invoice.sunat_code}-{invoice.number}"
    message.attach(f"{name}.pdf", invoice_pdf(invoice=invoice), "application/pdf")
    message.attach(f"{name}.xml", invoice_xml(invoice=invoice), "application/xml")
    message.metadata = {"invoice_id": invoice.pk, "client_app": invoice.client_app_id}
    return message


def invoice_extra_email_record(invoice) -> SentEmail | None:
    """Inside the transaction that issues `invoice`: a `pending` row for its copy to the customer's
    `extra_billing_email` (unless it is the invoice's own recipient), queued after commit. Never
    raises (the document matters more than its copy); `PAYER_EMAILS_ENABLED=false`: nothing."""
    if not settings.PAYER_EMAILS_ENABLED or not invoice.customer_id:
        return None
    try:
        with transaction.atomic():
            extra = (
                CustomerPreferences.objects.filter(customer_id=invoice.customer_id)
                .values_list("extra_billing_email", flat=True)
                .first()
            )
            address = (extra or "").strip().lower()
            if not address or address == (invoice.email_to or "").strip().lower():
                return None
            row = SentEmail(
                kind=EmailKind.INVOICE, subject_key=invoice.pk, recipient=address, customer_id=invoice.customer_id
            )
            SentEmail.objects.bulk_create([row], ignore_conflicts=True)
    except Exception:
        logger.exception("invoice copy to the extra billing email not recorded", extra={"invoice": invoice.pk})
        return None
    from notifications.email_tasks import send_payer_email

    enqueue_after_commit(send_payer_email, row.pk)  # already there: its task finds it not `pending` and stops
    return row


def _language(customer_id: str | None) -> str:
    if customer_id:
        language = (
            CustomerPreferences.objects.filter(customer_id=customer_id).values_list("language", flat=True).first()
        )
        if language in Language.values:
            return language
    return Language.ES


def money(minor_units: int, currency: str) -> str:
    """2500, "PEN" → "S/ 25.00"."""
    from billing.taxes import format_money

    return format_money(int(minor_units), currency)


def lima(value: datetime | str | None) -> str:
    """A time as Lima's wall clock, "2026-03-14 09:05" (ISO strings from event data accepted)."""
    if isinstance(value, str):
        from django.utils.dateparse import parse_datetime

        value = parse_datetime(value)
    if value is None:
        return ""
    return business_time(value).strftime("%Y-%m-%d %H:%M")


def _context(email: SentEmail) -> dict:
    customer = email.customer
    base = {"customer_name": (customer.name if customer else "") or "", "email": email}
    if email.kind == EmailKind.PAYMENT_RECEIPT:
        from payments.models import Payment

        payment = Payment.objects.select_related("payment_method").get(pk=email.subject_key)
        amount = payment.amount_captured or payment.amount
        return {
            **base,
            **_payment_context(payment),
            "amount": money(amount, payment.currency),
            "when": lima(email.created_at),
        }
    if email.kind == EmailKind.REFUND_RECEIPT:
        from payments.models import Refund

        refund = Refund.objects.select_related("payment__payment_method").get(pk=email.subject_key)
        return {
            **base,
            **_payment_context(refund.payment),
            "amount": money(refund.amount, refund.currency),
            "payment_amount": money(refund.payment.amount, refund.payment.currency),
            "refund": refund,
            "when": lima(email.created_at),
        }
    event = OutgoingEvent.objects.get(pk=email.subject_key)
    data = event.data or {}
    context = {**base, "data": data, "when": lima(event.created_at)}
    for key in ("expires_at", "expired_at"):
        if data.get(key):
            context[key] = lima(data[key])
    return context


def _payment_context(payment) -> dict:
    brand, last4 = card_of(payment)
    return {
        "payment": payment,
        "description": payment.description,
        "reference": payment.gateway_payment_id or "",
        "card_brand": brand.capitalize() if brand.islower() else brand,
        "card_last4": last4,
    }


def card_of(payment) -> tuple[str, str]:
    """(brand, last4) of the card that paid, if known: the saved card, else the gateway's answer
    (Culqi's `source`, Mercado Pago's `card`/`payment_method_id`) on the latest attempt that has it."""
    method = payment.payment_method
    if method is not None and (method.brand or method.last4):
        return method.brand, method.last4
    for raw in payment.attempts.exclude(raw_response=None).order_by("-number").values_list("raw_response", flat=True):
        if not isinstance(raw, dict):
            continue
        source = raw.get("source") if isinstance(raw.get("source"), dict) else {}
        if isinstance(source.get("source"), dict):  # a Culqi card wrapping its token
            source = source["source"]
        iin = source.get("iin") if isinstance(source.get("iin"), dict) else {}
        card = raw.get("card") if isinstance(raw.get("card"), dict) else {}
        brand = str(iin.get("card_brand") or raw.get("payment_method_id") or "")
        last4 = str(source.get("last_four") or card.get("last_four_digits") or "")
        if not last4 and isinstance(source.get("card_number"), str):
            last4 = source["card_number"][-4:]
        if brand or last4:
            return brand, last4 if last4.isdigit() else ""
    return "", ""
