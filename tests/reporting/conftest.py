"""Reporting fixtures: factories that build payments, attempts, refunds, credit movements and
invoices directly with the ORM, at the times a test chooses (reporting tests test reads).

    make_payment(amount=1000, status="succeeded", gateway="culqi", at=lima(2025, 3, 10, 12),
                 attempts=[attempt("culqi", "declined", 300, "insufficient_funds")])
    make_refund(payment, 500, at=...)
    credits_book.purchase(customer, "professional", at=...); credits_book.consume(account, 30, at=...)
    make_invoice(payment, "boleta", subtotal=8475, tax=1525, issue_date=date(2025, 3, 10))

`lima(y, m, d, h, mi)` is an aware datetime in America/Lima.
"""

from __future__ import annotations

import importlib
import itertools
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from billing.models import Invoice
from credits.models import (
    CreditAccount,
    CreditKind,
    CreditLedgerEntry,
    CreditLot,
    CreditPlan,
    CreditPurchase,
    PurchaseSource,
    PurchaseStatus,
)
from payments.enums import PaymentStatus
from payments.models import Customer, Payment, PaymentAttempt, Refund
from payments.services.clients import client_app_create

LIMA = ZoneInfo("America/Lima")
SUCCEEDED = {PaymentStatus.SUCCEEDED, PaymentStatus.PARTIALLY_REFUNDED, PaymentStatus.REFUNDED}


def lima(year: int, month: int, day: int, hour: int = 12, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=LIMA)


@dataclass(frozen=True)
class Attempt:
    gateway: str
    outcome: str
    duration_ms: int | None = None
    error_code: str = ""
    operation: str = "charge"
    at: datetime | None = None  # default: the payment's creation time


def attempt(gateway, outcome, duration_ms=None, error_code="", *, operation="charge", at=None) -> Attempt:
    return Attempt(gateway, outcome, duration_ms, error_code, operation, at)


_counter = itertools.count(1)


def _set_created(model, pk, at: datetime) -> None:
    model.objects.filter(pk=pk).update(created_at=at)


@pytest.fixture
def other_app(db):
    return client_app_create(name="Other Store")


@pytest.fixture
def make_payment(client_app):
    """Payment + its charge attempts. Defaults: captured = amount when succeeded; one attempt at the
    payment's gateway following its status (succeeded / declined with `decline_code`) unless given."""

    def make(
        *,
        amount: int = 1000,
        currency: str = "PEN",
        status: str = PaymentStatus.SUCCEEDED,
        gateway: str = "culqi",
        at: datetime,
        app=None,
        captured: int | None = None,
        decline_code: str = "",
        checkout_id: str = "",
        attempts: list[Attempt] | None = None,
        duration_ms: int | None = None,
    ) -> Payment:
        if captured is None:
            captured = amount if status in SUCCEEDED else 0
        payment = Payment.objects.create(
            client_app=app or client_app,
            amount=amount,
            amount_captured=captured,
            currency=currency,
            status=status,
            gateway=gateway,
            gateway_checkout_id=checkout_id,
            failure_code="card_declined" if decline_code else "",
            decline_code=decline_code,
        )
        _set_created(Payment, payment.pk, at)
        if attempts is None:
            attempts = []
            if gateway and status in SUCCEEDED:
                attempts = [attempt(gateway, "succeeded", duration_ms)]
            elif gateway and status == PaymentStatus.FAILED:
                attempts = [attempt(gateway, "declined", duration_ms, decline_code)]
        for number, spec in enumerate(attempts, start=1):
            row = PaymentAttempt.objects.create(
                payment=payment,
                number=number,
                operation=spec.operation,
                gateway=spec.gateway,
                idempotency_key=f"{payment.pk}:{spec.operation}:{number}",
                outcome=spec.outcome,
                error_code=spec.error_code,
                duration_ms=spec.duration_ms,
            )
            _set_created(PaymentAttempt, row.pk, spec.at or at)
        payment.refresh_from_db()
        return payment

    return make


@pytest.fixture
def make_refund(db):
    """A refund row; a succeeded one also moves the payment's amount_refunded and status."""

    def make(payment: Payment, amount: int, *, at: datetime, status: str = "succeeded") -> Refund:
        refund = Refund.objects.create(
            payment=payment,
            amount=amount,
            currency=payment.currency,
            status=status,
            idempotency_key=f"refund-test-{next(_counter)}",
            origin=Refund.ADMIN,
        )
        _set_created(Refund, refund.pk, at)
        if status == "succeeded":
            refunded = payment.amount_refunded + amount
            new_status = PaymentStatus.REFUNDED if refunded == payment.amount else PaymentStatus.PARTIALLY_REFUNDED
            Payment.objects.filter(pk=payment.pk).update(amount_refunded=refunded, status=new_status)
            payment.refresh_from_db()
        return refund

    return make


class CreditsBook:
    """Credit accounts, purchases, lots and ledger rows with consistent balances, at chosen times."""

    def __init__(self, client_app):
        self.client_app = client_app

    def account(self, app=None, name: str = "Ana") -> CreditAccount:
        app = app or self.client_app
        customer = Customer.objects.create(client_app=app, email=f"c{next(_counter)}@example.pe", name=name)
        return CreditAccount.objects.create(client_app=app, customer=customer)

    def _entry(self, account: CreditAccount, entry_type: str, amount: int, lot: CreditLot, at: datetime, **extra):
        account.refresh_from_db()
        account.balance += amount
        account.last_entry_seq += 1
        account.save(update_fields=["balance", "last_entry_seq"])
        entry = CreditLedgerEntry.objects.create(
            account=account,
            seq=account.last_entry_seq,
            entry_type=entry_type,
            amount=amount,
            balance_after=account.balance,
            lot=lot,
            **extra,
        )
        _set_created(CreditLedgerEntry, entry.pk, at)
        return entry

    def grant(self, account, credits: int, *, kind=CreditKind.MANUAL, at: datetime, purchase=None) -> CreditLot:
        lot = CreditLot.objects.create(
            account=account,
            kind=kind,
            granted=credits,
            remaining=credits,
            expires_at=at + timedelta(days=365),
            purchase=purchase,
        )
        self._entry(account, "grant", credits, lot, at, purchase=purchase)
        return lot

    def purchase(
        self,
        account: CreditAccount,
        plan_code: str,
        *,
        at: datetime,
        currency: str = "PEN",
        status: str = PurchaseStatus.GRANTED,
        source: str = PurchaseSource.API,
    ) -> CreditPurchase:
        """A purchase at the plan's price; granted: its paid and bonus lots granted at `at`."""
        if not CreditPlan.objects.filter(code=plan_code).exists():  # flushed by a transactional test
            from django.apps import apps

            importlib.import_module("credits.migrations.0002_seed_plans").seed(apps, None)
        plan = CreditPlan.objects.get(code=plan_code)
        purchase = CreditPurchase.objects.create(
            client_app=account.client_app,
            customer=account.customer,
            account=account,
            plan=plan,
            source=source,
            status=status,
            amount=plan.price_for(currency),
            currency=currency,
            paid_credits=plan.credits,
            bonus_credits=plan.bonus_credits,
            validity_days=plan.validity_days,
            granted_at=at if status == PurchaseStatus.GRANTED else None,
        )
        CreditPurchase.objects.filter(pk=purchase.pk).update(created_at=at, updated_at=at)
        if status == PurchaseStatus.GRANTED:
            self.grant(account, plan.credits, kind=CreditKind.PAID, at=at, purchase=purchase)
            if plan.bonus_credits:
                self.grant(account, plan.bonus_credits, kind=CreditKind.BONUS, at=at, purchase=purchase)
        return purchase

    def take(self, lot: CreditLot, credits: int, entry_type: str, *, at: datetime) -> CreditLedgerEntry:
        """Take credits from a lot: consumption, expiry or refund_reversal."""
        lot.refresh_from_db()
        CreditLot.objects.filter(pk=lot.pk).update(remaining=lot.remaining - credits)
        return self._entry(lot.account, entry_type, -credits, lot, at)


@pytest.fixture
def credits_book(client_app):
    return CreditsBook(client_app)


@pytest.fixture
def make_invoice(db):
    """An issued document (boleta, factura, or credit note crediting `credits`) with its amounts."""
    series_of = {"boleta": "B001", "factura": "F001", "credit_note": "BC01"}

    def make(
        payment: Payment,
        document_type: str,
        *,
        subtotal: int,
        tax: int,
        issue_date: date,
        status: str = "accepted",
        credits: Invoice | None = None,
        refund: Refund | None = None,
    ) -> Invoice:
        return Invoice.objects.create(
            client_app=payment.client_app,
            document_type=document_type,
            series=series_of[document_type],
            correlative=next(_counter),
            payment=payment,
            refund=refund,
            credited_invoice=credits,
            credit_note_reason="09" if document_type == "credit_note" else "",
            currency=payment.currency,
            subtotal=subtotal,
            tax=tax,
            total=subtotal + tax,
            igv_percent="18.00",
            amount_in_words="-",
            issue_date=issue_date,
            issued_at=datetime.combine(issue_date, datetime.min.time(), LIMA) + timedelta(hours=12),
            issuer_ruc="20000000001",
            issuer_name="SMARTPAY DEMO S.A.C.",
            issuer_address="AV. LARCO 123, LIMA",
            issuer_ubigeo="150101",
            issuer_establishment="0000",
            buyer_document_type="1",
            buyer_document_number="45678912",
            buyer_name="ANA QUISPE",
            payment_reference=payment.pk,
            status=status,
        )

    return make


# --- the known-answer dataset ---------------------------------------------------------------------

DAY = date(2025, 3, 10)  # a Monday, long past: read live unless rolled up


@dataclass
class Dataset:
    """What `dataset` built. Its figures are worked out by hand in tests/reporting/test_metrics.py."""

    day: date
    app: object
    other_app: object
    payments: dict
    credit_account: CreditAccount | None = None


@pytest.fixture
def dataset(client_app, other_app, make_payment, make_refund, credits_book, make_invoice) -> Dataset:
    """On DAY (Lima), for `client_app` in PEN:

    culqi:  P1 succeeded 10000 (100 ms) · P2 succeeded 20000 (200 ms), refunded 5000 that day (and a
            failed refund of 1000 on P1) · P3 failed 8000, insufficient_funds (300 ms) · P6 failed
            4000, insufficient_funds (no duration) · P8 canceled 5000 (attempt authorized) · P9
            processing 6000 (attempt unknown, no code) · P10 succeeded 15000 at 23:30 Lima (04:30 UTC
            the next day), no duration
    mercadopago: P4 succeeded 30000 after culqi was unavailable (culqi 1000 ms, "gateway_unavailable";
            mercadopago 400 ms) · P5 failed 12000, cc_rejected_call_for_authorize · P7 hosted checkout
            25000 still pending (a checkout attempt, no charge)
    Besides: P11 culqi succeeded 1234 at 00:10 Lima on DAY+1; USD: U1 culqi succeeded 9999 (5000 ms),
    U2 mercadopago failed cc_rejected_other_reason; `other_app` PEN: O1 culqi succeeded 7777 (50 ms).
    Credits (client_app): a granted PEN purchase of "professional" (12900, 500 paid + 50 bonus), 30
    consumed, the 50 bonus expired, 20 clawed back, a manual grant of 40, a failed PEN auto-renewal of
    "basic", a granted USD purchase of "basic" (900, 100 paid). Other app: a manual grant of 7.
    Invoices (PEN, DAY): boleta P1 8475+1525, factura P2 16949+3051, credit note of P2's refund
    4237+763, boleta P10 12712+2288 rejected; a USD boleta for U1 and a PEN boleta for P11 on DAY+1.
    """
    at = lima(DAY.year, DAY.month, DAY.day, 10)
    p = {}
    p["P1"] = make_payment(amount=10000, at=at, duration_ms=100)
    p["P2"] = make_payment(amount=20000, at=at, duration_ms=200)
    p["P3"] = make_payment(amount=8000, status="failed", at=at, decline_code="insufficient_funds", duration_ms=300)
    p["P4"] = make_payment(
        amount=30000,
        gateway="mercadopago",
        at=at,
        attempts=[
            attempt("culqi", "unavailable", 1000, "gateway_unavailable"),
            attempt("mercadopago", "succeeded", 400),
        ],
    )
    p["P5"] = make_payment(
        amount=12000, gateway="mercadopago", status="failed", at=at, decline_code="cc_rejected_call_for_authorize"
    )
    p["P6"] = make_payment(amount=4000, status="failed", at=at, decline_code="insufficient_funds")
    p["P7"] = make_payment(
        amount=25000,
        gateway="mercadopago",
        status="pending",
        at=at,
        checkout_id="pref_123",
        attempts=[attempt("mercadopago", "succeeded", 150, operation="checkout")],
    )
    p["P8"] = make_payment(amount=5000, status="canceled", at=at, attempts=[attempt("culqi", "authorized")])
    p["P9"] = make_payment(amount=6000, status="processing", at=at, attempts=[attempt("culqi", "unknown")])
    p["P10"] = make_payment(amount=15000, at=lima(DAY.year, DAY.month, DAY.day, 23, 30))
    next_day = DAY + timedelta(days=1)
    p["P11"] = make_payment(amount=1234, at=lima(next_day.year, next_day.month, next_day.day, 0, 10))
    p["U1"] = make_payment(amount=9999, currency="USD", at=at, duration_ms=5000)
    p["U2"] = make_payment(
        amount=3000,
        currency="USD",
        gateway="mercadopago",
        status="failed",
        at=at,
        decline_code="cc_rejected_other_reason",
    )
    p["O1"] = make_payment(amount=7777, at=at, app=other_app, duration_ms=50)

    refund = make_refund(p["P2"], 5000, at=at + timedelta(hours=2))
    make_refund(p["P1"], 1000, at=at + timedelta(hours=2), status="failed")

    account = credits_book.account()
    credits_book.purchase(account, "professional", at=at)
    paid_lot, bonus_lot = CreditLot.objects.filter(account=account).order_by("kind").reverse()
    assert (paid_lot.kind, bonus_lot.kind) == ("paid", "bonus")
    credits_book.take(paid_lot, 30, "consumption", at=at + timedelta(hours=1))
    credits_book.take(bonus_lot, 50, "expiry", at=at + timedelta(hours=2))
    credits_book.take(paid_lot, 20, "refund_reversal", at=at + timedelta(hours=3))
    credits_book.grant(account, 40, at=at + timedelta(hours=4))
    credits_book.purchase(account, "basic", at=at, status="failed", source="auto_renewal")
    credits_book.purchase(account, "basic", at=at, currency="USD")
    credits_book.grant(credits_book.account(app=other_app), 7, at=at)

    boleta = make_invoice(p["P1"], "boleta", subtotal=8475, tax=1525, issue_date=DAY)
    factura = make_invoice(p["P2"], "factura", subtotal=16949, tax=3051, issue_date=DAY)
    make_invoice(p["P2"], "credit_note", subtotal=4237, tax=763, issue_date=DAY, credits=factura, refund=refund)
    make_invoice(p["P10"], "boleta", subtotal=12712, tax=2288, issue_date=DAY, status="rejected")
    make_invoice(p["U1"], "boleta", subtotal=8474, tax=1525, issue_date=DAY)
    make_invoice(p["P11"], "boleta", subtotal=1046, tax=188, issue_date=next_day)
    assert boleta.total == 10000
    return Dataset(day=DAY, app=client_app, other_app=other_app, payments=p, credit_account=account)
