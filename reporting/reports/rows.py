"""The detail sheets of a period report: which rows, in which order, and their columns.

Each sheet reads its rows with `values_list(...).iterator(chunk_size=2000)`, so a report holds one
chunk at a time whatever the row count. The filters are the metrics' own definitions
(`reporting.selectors`), so the summary adds up from the detail rows:

- Payments: created in the period (Lima days), in the report's currency. Σ captured == gross captured.
- Refunds: created in the period, in the currency, every status listed; Σ of the `succeeded` ones ==
  refunded.
- Invoices (boletas, facturas) and credit notes: `issue_date` in the period, in the currency, every
  status listed (rejected ones too: the summary counts them and reports how many were rejected).
- Credit movements: ledger entries created in the period. Credits are not money: they cover every
  currency, as in the summary's credit figures.

Amounts are `Money` (integer minor units); the writers show them as exact Decimal major units.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal

from django.db.models import QuerySet

from billing.enums import INVOICE_TYPES, CreditNoteReason, DocumentType
from billing.models import Invoice
from credits.models import CreditLedgerEntry
from payments.models import Payment, Refund
from smartpay.clock import business_time, business_zone

CHUNK_SIZE = 2000

IDENTITY_NAMES = {"1": "DNI", "6": "RUC", "4": "CE", "7": "PASAPORTE", "-": "VARIOS"}
CREDIT_NOTE_REASONS = dict(CreditNoteReason.choices)


@dataclass(frozen=True, slots=True)
class Money:
    """An amount in integer minor units (both currencies have two decimals)."""

    minor: int

    @property
    def major(self) -> Decimal:
        """Exact: 1234 -> Decimal("12.34"), never through a float."""
        return Decimal(self.minor).scaleb(-2)


@dataclass(frozen=True, slots=True)
class Rate:
    """A fraction 0..1 (success rate, share), shown as a percentage."""

    value: Decimal


@dataclass(frozen=True)
class Scope:
    """What a report covers: Lima days [start, end], one currency, one client app or all."""

    start: date
    end: date
    currency: str
    client_app_id: str | None = None

    @property
    def since(self) -> datetime:
        return datetime.combine(self.start, time.min, tzinfo=business_zone())

    @property
    def until(self) -> datetime:
        """Exclusive: midnight (Lima) after the last day."""
        return datetime.combine(self.end + timedelta(days=1), time.min, tzinfo=business_zone())


@dataclass(frozen=True)
class Sheet:
    name: str  # the XLSX sheet title
    filename: str  # the CSV file inside the zip
    headers: list[str]
    queryset: Callable[[Scope], QuerySet]  # values_list rows, ordered
    row: Callable[[tuple], list]  # a values_list tuple -> the cells

    def count(self, scope: Scope) -> int:
        return self.queryset(scope).order_by().count()

    def rows(self, scope: Scope) -> Iterator[list]:
        for values in self.queryset(scope).iterator(chunk_size=CHUNK_SIZE):
            yield self.row(values)


def lima(value: datetime | None) -> datetime | None:
    """A stored (UTC) time as a naive Lima wall-clock time: spreadsheets have no time zones."""
    return business_time(value).replace(tzinfo=None, microsecond=0) if value else None


def invoice_number(series: str | None, correlative: int | None) -> str:
    return f"{series}-{correlative:08d}" if series else ""


# --- Payments --------------------------------------------------------------------------------------


def payments_queryset(scope: Scope) -> QuerySet:
    rows = Payment.objects.filter(currency=scope.currency, created_at__gte=scope.since, created_at__lt=scope.until)
    if scope.client_app_id:
        rows = rows.filter(client_app_id=scope.client_app_id)
    return rows.order_by("created_at", "id").values_list(
        "id",
        "created_at",
        "client_app_id",
        "client_app__name",
        "customer_id",
        "email",
        "gateway",
        "gateway_payment_id",
        "status",
        "amount",
        "amount_captured",
        "amount_refunded",
        "currency",
        "failure_code",
        "decline_code",
    )


def _payment_row(v: tuple) -> list:
    (pid, created, app_id, app_name, customer, email, gateway, gateway_id, status) = v[:9]
    amount, captured, refunded, currency, failure, decline = v[9:]
    return [
        pid,
        lima(created),
        app_id,
        app_name,
        customer or "",
        email,
        gateway,
        gateway_id or "",
        status,
        Money(amount),
        Money(captured),
        Money(refunded),
        currency,
        failure,
        decline,
    ]


PAYMENTS = Sheet(
    name="Payments",
    filename="payments.csv",
    headers=[
        "Payment",
        "Created (Lima)",
        "Client app id",
        "Client app",
        "Customer",
        "Email",
        "Gateway",
        "Gateway id",
        "Status",
        "Amount",
        "Captured",
        "Refunded",
        "Currency",
        "Failure code",
        "Decline code",
    ],
    queryset=payments_queryset,
    row=_payment_row,
)


# --- Refunds ---------------------------------------------------------------------------------------


def refunds_queryset(scope: Scope) -> QuerySet:
    rows = Refund.objects.filter(currency=scope.currency, created_at__gte=scope.since, created_at__lt=scope.until)
    if scope.client_app_id:
        rows = rows.filter(payment__client_app_id=scope.client_app_id)
    return rows.order_by("created_at", "id").values_list(
        "id", "payment_id", "payment__client_app_id", "created_at", "status", "amount", "currency", "origin", "reason"
    )


def _refund_row(v: tuple) -> list:
    rid, payment, app_id, created, status, amount, currency, origin, reason = v
    return [rid, payment, app_id, lima(created), status, Money(amount), currency, origin, reason]


REFUNDS = Sheet(
    name="Refunds",
    filename="refunds.csv",
    headers=[
        "Refund",
        "Payment",
        "Client app id",
        "Created (Lima)",
        "Status",
        "Amount",
        "Currency",
        "Origin",
        "Reason",
    ],
    queryset=refunds_queryset,
    row=_refund_row,
)


# --- Invoices and credit notes ---------------------------------------------------------------------


def _documents(scope: Scope, types) -> QuerySet:
    rows = Invoice.objects.filter(
        currency=scope.currency, document_type__in=types, issue_date__gte=scope.start, issue_date__lte=scope.end
    )
    if scope.client_app_id:
        rows = rows.filter(client_app_id=scope.client_app_id)
    return rows.order_by("issue_date", "series", "correlative")


_DOCUMENT_COLUMNS = (
    "series",
    "correlative",
    "document_type",
    "issue_date",
    "buyer_document_type",
    "buyer_document_number",
    "buyer_name",
    "subtotal",
    "tax",
    "total",
    "currency",
    "status",
    "payment_id",
    "client_app_id",
)
_DOCUMENT_HEADERS = [
    "Number",
    "Type",
    "Issue date",
    "Buyer document",
    "Buyer document number",
    "Buyer name",
    "Subtotal",
    "IGV",
    "Total",
    "Currency",
    "Status",
    "Payment",
    "Client app id",
]


def _document_cells(v: tuple) -> list:
    series, correlative, doc_type, issued, buyer_type, buyer_number, buyer_name = v[:7]
    subtotal, tax, total, currency, status, payment, app_id = v[7:14]
    return [
        invoice_number(series, correlative),
        doc_type,
        issued,
        IDENTITY_NAMES.get(buyer_type, buyer_type),
        buyer_number,
        buyer_name,
        Money(subtotal),
        Money(tax),
        Money(total),
        currency,
        status,
        payment,
        app_id,
    ]


def invoices_queryset(scope: Scope) -> QuerySet:
    return _documents(scope, list(INVOICE_TYPES)).values_list(*_DOCUMENT_COLUMNS)


INVOICES = Sheet(
    name="Invoices",
    filename="invoices.csv",
    headers=_DOCUMENT_HEADERS,
    queryset=invoices_queryset,
    row=_document_cells,
)


def credit_notes_queryset(scope: Scope) -> QuerySet:
    return _documents(scope, [DocumentType.CREDIT_NOTE]).values_list(
        *_DOCUMENT_COLUMNS,
        "credited_invoice__series",
        "credited_invoice__correlative",
        "refund_id",
        "credit_note_reason",
        "credit_note_description",
    )


def _credit_note_row(v: tuple) -> list:
    credited_series, credited_correlative, refund, reason, description = v[14:]
    reason_text = f"{reason} {CREDIT_NOTE_REASONS.get(reason, '')}".strip()
    return [
        *_document_cells(v),
        invoice_number(credited_series, credited_correlative),
        refund or "",
        reason_text,
        description,
    ]


CREDIT_NOTES = Sheet(
    name="Credit notes",
    filename="credit_notes.csv",
    headers=[*_DOCUMENT_HEADERS, "Credited invoice", "Refund", "Reason", "Description"],
    queryset=credit_notes_queryset,
    row=_credit_note_row,
)


# --- Credit movements (credits, not money: every currency) ----------------------------------------


def credit_movements_queryset(scope: Scope) -> QuerySet:
    rows = CreditLedgerEntry.objects.filter(created_at__gte=scope.since, created_at__lt=scope.until)
    if scope.client_app_id:
        rows = rows.filter(account__client_app_id=scope.client_app_id)
    return rows.order_by("created_at", "id").values_list(
        "created_at",
        "id",
        "account_id",
        "account__customer_id",
        "account__client_app_id",
        "entry_type",
        "lot__kind",
        "amount",
        "balance_after",
        "reference",
        "purchase_id",
        "refund_id",
        "description",
    )


def _credit_movement_row(v: tuple) -> list:
    created, *rest = v
    return [lima(created), *(value if value is not None else "" for value in rest)]


CREDIT_MOVEMENTS = Sheet(
    name="Credit movements",
    filename="credit_movements.csv",
    headers=[
        "Date (Lima)",
        "Entry",
        "Account",
        "Customer",
        "Client app id",
        "Type",
        "Lot kind",
        "Credits",
        "Balance after",
        "Reference",
        "Purchase",
        "Refund",
        "Description",
    ],
    queryset=credit_movements_queryset,
    row=_credit_movement_row,
)

DETAIL_SHEETS: list[Sheet] = [PAYMENTS, REFUNDS, INVOICES, CREDIT_NOTES, CREDIT_MOVEMENTS]
