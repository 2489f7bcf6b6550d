"""Builders for the period-report tests: payments, refunds, invoices, credit notes and credit
ledger rows made directly with the ORM (these tests read), at chosen Lima times."""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from billing.models import Invoice
from credits.models import CreditAccount, CreditLedgerEntry, CreditLot
from payments.models import Customer, Payment, Refund

LIMA = ZoneInfo("America/Lima")
_serial = itertools.count(1)


def lima_dt(day: date, hour: int = 12, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=LIMA)


def make_payment(
    app,
    *,
    currency="PEN",
    status="succeeded",
    amount=1000,
    captured=None,
    refunded=0,
    created_at,
    gateway="culqi",
    decline_code="",
    failure_code="",
    customer=None,
) -> Payment:
    if captured is None:
        captured = amount if status in ("succeeded", "partially_refunded", "refunded") else 0
    payment = Payment.objects.create(
        client_app=app,
        customer=customer,
        status=status,
        amount=amount,
        amount_captured=captured,
        amount_refunded=refunded,
        currency=currency,
        gateway=gateway,
        gateway_payment_id=f"chr_test_{next(_serial)}",
        decline_code=decline_code,
        failure_code=failure_code,
    )
    Payment.objects.filter(pk=payment.pk).update(created_at=created_at)
    return payment


def make_refund(payment, *, amount, status="succeeded", created_at) -> Refund:
    refund = Refund.objects.create(
        payment=payment,
        amount=amount,
        currency=payment.currency,
        status=status,
        reason="requested by customer",
        idempotency_key=f"test-refund-{next(_serial)}",
    )
    Refund.objects.filter(pk=refund.pk).update(created_at=created_at)
    return refund


def make_invoice(
    payment,
    *,
    document_type="boleta",
    total,
    issue_date,
    status="accepted",
    refund=None,
    credited=None,
    buyer=("1", "45678912", "ANA QUISPE"),
) -> Invoice:
    subtotal = (Decimal(total) / Decimal("1.18")).quantize(Decimal(1))
    subtotal = int(subtotal)
    series = {"boleta": "B001", "factura": "F001", "credit_note": "BC01"}[document_type]
    return Invoice.objects.create(
        client_app=payment.client_app,
        document_type=document_type,
        series=series,
        correlative=next(_serial),
        payment=payment,
        refund=refund,
        credited_invoice=credited,
        credit_note_reason="01" if document_type == "credit_note" else "",
        currency=payment.currency,
        subtotal=subtotal,
        tax=total - subtotal,
        total=total,
        igv_percent=Decimal("18.00"),
        amount_in_words="SON: ...",
        issue_date=issue_date,
        issued_at=lima_dt(issue_date),
        issuer_ruc="20100066603",
        issuer_name="SMARTPAY SAC",
        issuer_address="AV. LARCO 123",
        issuer_ubigeo="150122",
        issuer_establishment="0000",
        buyer_document_type=buyer[0],
        buyer_document_number=buyer[1],
        buyer_name=buyer[2],
        payment_reference=payment.id,
        status=status,
    )


def make_credit_entries(app, customer, *, movements, created_at) -> list[CreditLedgerEntry]:
    """`movements`: [(entry_type, amount)] applied in order to one paid lot of the customer."""
    account, _ = CreditAccount.objects.get_or_create(client_app=app, customer=customer)
    lot = CreditLot.objects.create(
        account=account, kind="paid", granted=1000, remaining=1000, expires_at=created_at + timedelta(days=365)
    )
    entries = []
    balance = account.balance
    for seq, (entry_type, amount) in enumerate(movements, start=account.last_entry_seq + 1):
        balance += amount
        entry = CreditLedgerEntry.objects.create(
            account=account, seq=seq, entry_type=entry_type, amount=amount, balance_after=balance, lot=lot
        )
        CreditLedgerEntry.objects.filter(pk=entry.pk).update(created_at=created_at)
        entries.append(entry)
    CreditAccount.objects.filter(pk=account.pk).update(balance=balance, last_entry_seq=seq)
    return entries


@dataclass
class Expected:
    """What the reports over [start, end] must hold, computed while building (not by the code)."""

    payments: dict = field(default_factory=dict)  # (app_id, currency) -> {payment id: captured}
    refunds: dict = field(default_factory=dict)  # (app_id, currency) -> {refund id: (status, amount)}
    invoices: dict = field(default_factory=dict)  # (app_id, currency) -> {number: total}
    credit_notes: dict = field(default_factory=dict)  # (app_id, currency) -> {number: total}

    def of(self, what: str, currency: str, app_id: str | None = None) -> dict:
        out = {}
        for (app, cur), rows in getattr(self, what).items():
            if cur == currency and (app_id is None or app == app_id):
                out.update(rows)
        return out


STATUSES = ["succeeded", "succeeded", "succeeded", "partially_refunded", "refunded", "failed", "canceled", "pending"]


def random_dataset(rng: random.Random, apps: list, start: date, end: date, n: int = 40) -> Expected:
    """n payments over [start - 2, end + 2] (Lima) in both currencies, with random statuses,
    amounts, refunds (some failed), boletas/facturas and credit notes; returns what falls inside."""
    expected = Expected()
    days = (end - start).days + 5
    customers = {app.pk: Customer.objects.create(client_app=app, email=f"c@{app.pk}.pe") for app in apps}
    for _ in range(n):
        app = rng.choice(apps)
        currency = rng.choice(["PEN", "PEN", "USD"])
        day = start - timedelta(days=2) + timedelta(days=rng.randrange(days))
        # Times near midnight too: a payment at 23:30 Lima belongs to that Lima day.
        created = lima_dt(day, rng.choice([0, 9, 13, 23]), rng.choice([0, 15, 30, 59]))
        inside = start <= day <= end
        status = rng.choice(STATUSES)
        amount = rng.randrange(100, 500_000)
        captured = amount if status in ("succeeded", "partially_refunded", "refunded") else 0
        refunds = []
        if status == "partially_refunded":
            refunds = [(rng.randrange(1, amount), "succeeded"), (rng.randrange(1, amount), "failed")]
        elif status == "refunded":
            refunds = [(amount, "succeeded")]
        refunded = sum(a for a, s in refunds if s == "succeeded")
        if refunded > amount:
            refunds, refunded = [(amount, "succeeded")], amount
        payment = make_payment(
            app,
            currency=currency,
            status=status,
            amount=amount,
            captured=captured,
            refunded=refunded,
            created_at=created,
            gateway=rng.choice(["culqi", "mercadopago"]),
            decline_code="insufficient_funds" if status == "failed" else "",
            customer=customers[app.pk],
        )
        key = (app.pk, currency)
        if inside:
            expected.payments.setdefault(key, {})[payment.pk] = captured
        invoice = None
        if captured:
            issue = day + timedelta(days=rng.choice([0, 0, 1]))
            kind = rng.choice(["boleta", "factura"])
            buyer = ("6", "20100066603", "EMPRESA SAC") if kind == "factura" else ("1", "45678912", "ANA QUISPE")
            invoice_status = rng.choice(["accepted", "accepted", "submitted", "rejected"])  # all are listed and summed
            invoice = make_invoice(
                payment, document_type=kind, total=captured, issue_date=issue, buyer=buyer, status=invoice_status
            )
            if start <= issue <= end:
                expected.invoices.setdefault(key, {})[invoice.number] = captured
        for amount_refunded, refund_status in refunds:
            refund_day = day + timedelta(days=rng.choice([0, 1, 3]))
            refund = make_refund(
                payment, amount=amount_refunded, status=refund_status, created_at=lima_dt(refund_day, 10)
            )
            if start <= refund_day <= end:
                expected.refunds.setdefault(key, {})[refund.pk] = (refund_status, amount_refunded)
            if refund_status == "succeeded" and invoice is not None:
                note = make_invoice(
                    payment,
                    document_type="credit_note",
                    total=amount_refunded,
                    issue_date=refund_day,
                    refund=refund,
                    credited=invoice,
                )
                if start <= refund_day <= end:
                    expected.credit_notes.setdefault(key, {})[note.number] = amount_refunded
    return expected
