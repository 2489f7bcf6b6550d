"""Reads of the credits app, shared by the services, the API, the admin and the ledger check."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Case, Count, F, IntegerField, OuterRef, QuerySet, Subquery, Sum, Value, When
from django.utils import timezone

from credits.models import CreditAccount, CreditAutoRenewal, CreditKind, CreditLedgerEntry, CreditLot, CreditPlan
from payments.models import Customer

EXPIRING_SOON = timedelta(days=7)

# Spending order among lots expiring at the same instant: bonus first, paid (refundable) last.
KIND_ORDER = Case(
    When(kind=CreditKind.BONUS, then=Value(0)),
    When(kind=CreditKind.MANUAL, then=Value(1)),
    default=Value(2),
    output_field=IntegerField(),
)


def spendable_lots(account: CreditAccount, *, now: datetime) -> QuerySet:
    """Lots that can still be spent, in spending order: first to expire first, bonus first on ties."""
    return (
        CreditLot.objects.filter(account=account, remaining__gt=0, expires_at__gt=now)
        .annotate(kind_order=KIND_ORDER)
        .order_by("expires_at", "kind_order", "created_at", "id")
    )


def credit_available(account: CreditAccount, *, now: datetime | None = None) -> int:
    return spendable_lots(account, now=now or timezone.now()).aggregate(s=Sum("remaining"))["s"] or 0


@dataclass(frozen=True)
class CreditBalance:
    customer: str
    available: int
    expiring_soon: int
    lots: list[CreditLot]


def plan_list(*, active_only: bool = True) -> QuerySet:
    plans = CreditPlan.objects.all()
    return plans.filter(is_active=True) if active_only else plans


def plan_get(*, code: str) -> CreditPlan:
    """An active plan by code, or CreditPlan.DoesNotExist."""
    return plan_list().get(code=code)


def credit_account_get(*, customer: Customer) -> CreditAccount | None:
    return CreditAccount.objects.filter(customer=customer).first()


def credit_balance_get(*, customer: Customer, now: datetime | None = None) -> CreditBalance:
    """What the customer can spend now: lots past their expiry count as gone even before the job runs."""
    now = now or timezone.now()
    account = credit_account_get(customer=customer)
    lots = list(spendable_lots(account, now=now)) if account else []
    return CreditBalance(
        customer=customer.pk,
        available=sum(lot.remaining for lot in lots),
        expiring_soon=sum(lot.remaining for lot in lots if lot.expires_at <= now + EXPIRING_SOON),
        lots=lots,
    )


def credit_ledger_list(*, customer: Customer) -> QuerySet:
    return CreditLedgerEntry.objects.filter(account__customer=customer).select_related("lot")


def credit_auto_renewal_get(*, customer: Customer) -> CreditAutoRenewal:
    """The customer's auto-renewal, or CreditAutoRenewal.DoesNotExist."""
    return CreditAutoRenewal.objects.select_related("plan").get(account__customer=customer)


@dataclass(frozen=True)
class LedgerDrift:
    account: str
    customer: str
    cached_balance: int
    ledger_sum: int
    lots_remaining: int
    last_balance_after: int | None
    entries: int
    last_seq: int
    lots_off_ledger: list[str]

    def describe(self) -> str:
        text = (
            f"{self.account} ({self.customer}): cached balance {self.cached_balance}, ledger sum {self.ledger_sum}, "
            f"lots remaining {self.lots_remaining}, last balance_after {self.last_balance_after}, "
            f"{self.entries} entries for last seq {self.last_seq}"
        )
        if self.lots_off_ledger:
            text += f"; lots whose remaining differs from their ledger rows: {', '.join(self.lots_off_ledger)}"
        return text


def credit_ledger_drift() -> list[LedgerDrift]:
    """Accounts where the cached balance, the ledger and the lots disagree. Empty when all is well.

    Checked per account: cached balance == sum of ledger amounts == sum of lots' remaining ==
    balance_after of the last ledger row; ledger rows numbered 1..n without gaps; and per lot,
    remaining == the sum of that lot's own ledger rows. A few grouped queries, whatever the size.
    """
    ledger = {
        row["account_id"]: row
        for row in CreditLedgerEntry.objects.order_by()
        .values("account_id")
        .annotate(total=Sum("amount"), count=Count("id"))
    }
    lots = {
        row["account_id"]: row["total"]
        for row in CreditLot.objects.order_by().values("account_id").annotate(total=Sum("remaining"))
    }
    off: dict[str, list[str]] = {}
    for row in (
        CreditLedgerEntry.objects.order_by()
        .values("lot_id", "lot__account_id", "lot__remaining")
        .annotate(total=Sum("amount"))
        .exclude(total=F("lot__remaining"))
    ):
        off.setdefault(row["lot__account_id"], []).append(row["lot_id"])
    for lot_id, account_id in CreditLot.objects.filter(entries__isnull=True).values_list("pk", "account_id"):
        off.setdefault(account_id, []).append(lot_id)  # a lot with no grant row at all
    last_row = CreditLedgerEntry.objects.filter(account=OuterRef("pk"), seq=OuterRef("last_entry_seq"))
    accounts = CreditAccount.objects.annotate(last_balance_after=Subquery(last_row.values("balance_after")[:1]))
    drift = []
    for account in accounts.order_by("pk").iterator():
        row = ledger.get(account.pk, {"total": 0, "count": 0})
        ledger_sum, count = row["total"] or 0, row["count"] or 0
        lots_remaining = lots.get(account.pk) or 0
        expected_last = account.balance if account.last_entry_seq else None
        if (
            account.balance != ledger_sum
            or account.balance != lots_remaining
            or account.last_balance_after != expected_last
            or count != account.last_entry_seq
            or account.pk in off
        ):
            drift.append(
                LedgerDrift(
                    account=account.pk,
                    customer=account.customer_id,
                    cached_balance=account.balance,
                    ledger_sum=ledger_sum,
                    lots_remaining=lots_remaining,
                    last_balance_after=account.last_balance_after,
                    entries=count,
                    last_seq=account.last_entry_seq,
                    lots_off_ledger=sorted(off.get(account.pk, [])),
                )
            )
    return drift
