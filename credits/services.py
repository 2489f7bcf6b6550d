"""Every change to credits: grants, consumptions, expiries, claw-backs, adjustments, renewals.

Invariants kept by each function here:

* every credit movement writes one ledger row per lot touched, with the account's balance after it;
* `CreditAccount.balance` == sum of the account's ledger amounts == sum of its lots' `remaining`,
  never below zero (the database checks `balance >= 0` and `0 <= remaining <= granted`);
* a movement locks the account row first (`select_for_update`), then the lots it touches. Lock
  order across apps is payment -> credit purchase -> account -> lots; an auto-renewal row is only
  ever locked on its own (claim, outcome, settings), never while one of those is held, so no cycle
  is possible.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef, Q, Sum
from django.utils import timezone

from credits.exceptions import ConsumptionReferenceUsed, InsufficientCredits, PlanNotAvailable
from credits.models import (
    CreditAccount,
    CreditAutoRenewal,
    CreditConsumption,
    CreditKind,
    CreditLedgerEntry,
    CreditLot,
    CreditPlan,
    CreditPurchase,
    EntryType,
    PurchaseSource,
    PurchaseStatus,
)
from credits.selectors import EXPIRING_SOON, KIND_ORDER, credit_available
from notifications.models import OutgoingEvent
from notifications.selectors import low_balance_threshold
from notifications.services import event_record
from payments.enums import PaymentPurpose, PaymentStatus
from payments.exceptions import CustomerEmailRequired
from payments.models import Customer, Payment, PaymentMethod, Refund
from payments.services.confirm import ACTION_EXPIRED, AUTHENTICATION_REQUIRED, payment_abandon_action
from payments.services.payments import CardSource, payment_create
from smartpay.api.errors import ApiError
from smartpay.ids import make_id
from smartpay.queueing import enqueue_after_commit

logger = logging.getLogger("smartpay.credits")

PURPOSE = PaymentPurpose.CREDIT_PURCHASE
METADATA_KEY = "credit_purchase"  # set by SmartPay on the payment; names the CreditPurchase it pays for
RENEWAL_PAUSE_AFTER_DECLINE = timedelta(hours=12)
RENEWAL_MAX_CONSECUTIVE_DECLINES = 3
RENEWAL_CAP_WINDOW = timedelta(days=1)
STALE_PURCHASE_AFTER = timedelta(hours=1)
# Failures of a renewal's payment that are the card's doing, counted like declines (pause, then off):
# a decline, and 3-D Secure asked for a charge made with nobody present to pass it.
RENEWAL_DECLINE_CODES = frozenset({"card_declined", AUTHENTICATION_REQUIRED, ACTION_EXPIRED})

# --- Accounts, ledger rows -------------------------------------------------------------------------


def credit_account_for(*, customer: Customer) -> CreditAccount:
    """The customer's account, created on first use (concurrent first uses create one)."""
    account = CreditAccount.objects.filter(customer=customer).first()
    if account is not None:
        return account
    try:
        with transaction.atomic():
            return CreditAccount.objects.create(customer=customer, client_app_id=customer.client_app_id)
    except IntegrityError:
        return CreditAccount.objects.get(customer=customer)


def _accounts_for_update():
    # of=("self",): lock the account row only, never the customer, client app or renewal rows joined in.
    # no_key: movements still queue on each other, but rows that merely reference the account (a new
    # purchase, an auto-renewal) can be inserted meanwhile.
    return CreditAccount.objects.select_for_update(of=("self",), no_key=True).select_related(
        "customer", "client_app", "auto_renewal"
    )


def _lock_account(account_id: str) -> CreditAccount:
    return _accounts_for_update().get(pk=account_id)


def _lock_customer_account(customer: Customer) -> CreditAccount:
    """Lock the customer's account (inside the caller's transaction), creating it on first use."""
    try:
        return _accounts_for_update().get(customer=customer)
    except CreditAccount.DoesNotExist:
        return _lock_account(credit_account_for(customer=customer).pk)


def _renewal_of(account: CreditAccount) -> CreditAutoRenewal | None:
    try:
        return account.auto_renewal
    except CreditAutoRenewal.DoesNotExist:
        return None


def _locked_live_lots(account: CreditAccount, *, now: datetime) -> tuple[list[CreditLot], list[CreditLot]]:
    """The locked account's lots with credits left, locked: (past their expiry, spendable in spending order)."""
    lots = list(
        CreditLot.objects.select_for_update()
        .filter(account=account, remaining__gt=0)
        .annotate(kind_order=KIND_ORDER)
        .order_by("expires_at", "kind_order", "created_at", "id")
    )
    return [lot for lot in lots if lot.expires_at <= now], [lot for lot in lots if lot.expires_at > now]


_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # smartpay.ids' alphabet: string order == numeric order


def _successor(entry_id: str) -> str:
    prefix, body = entry_id.split("_", 1)
    chars = list(body)
    for index in range(len(chars) - 1, -1, -1):
        position = _ALPHABET.index(chars[index])
        if position < len(_ALPHABET) - 1:
            chars[index] = _ALPHABET[position + 1]
            break
        chars[index] = _ALPHABET[0]
    return f"{prefix}_{''.join(chars)}"


def _next_entry_id(account: CreditAccount) -> str:
    """A time-ordered id strictly greater than the account's previous one (two rows in one ms stay ordered)."""
    candidate = make_id("cle")
    if account.last_entry_id and candidate <= account.last_entry_id:
        candidate = _successor(account.last_entry_id)
    return candidate


class _Ledger:
    """Collects the ledger rows of one movement on a locked account, then writes them and the account."""

    def __init__(self, account: CreditAccount, *, actor: str = ""):
        self.account = account
        self.actor = actor
        self.entries: list[CreditLedgerEntry] = []

    def add(self, *, entry_type: str, amount: int, lot: CreditLot, **fields) -> CreditLedgerEntry:
        account = self.account
        account.balance += amount
        if account.balance < 0:
            raise AssertionError(f"credit balance of {account.pk} would go below zero")
        account.last_entry_seq += 1
        account.last_entry_id = _next_entry_id(account)
        entry = CreditLedgerEntry(
            id=account.last_entry_id,
            account=account,
            seq=account.last_entry_seq,
            entry_type=entry_type,
            amount=amount,
            balance_after=account.balance,
            lot=lot,
            actor=fields.pop("actor", self.actor),
            **fields,
        )
        self.entries.append(entry)
        return entry

    def take(self, lots: Iterable[CreditLot], amount: int, *, entry_type: str, **fields) -> list[CreditLedgerEntry]:
        """Take `amount` from `lots` in the order given (the caller checked there is enough)."""
        left = amount
        taken = []
        for lot in lots:
            if left == 0:
                break
            part = min(lot.remaining, left)
            if part <= 0:
                continue
            lot.remaining -= part
            left -= part
            lot.save(update_fields=["remaining"])
            taken.append(self.add(entry_type=entry_type, amount=-part, lot=lot, **fields))
        if left:
            raise AssertionError("took less than asked; the caller must check the total first")
        return taken

    def commit(self) -> None:
        if not self.entries:
            return
        CreditLedgerEntry.objects.bulk_create(self.entries)
        self.account.save(update_fields=["balance", "last_entry_seq", "last_entry_id", "updated_at"])
        _tell_low_balance(self.account, self.entries)


def _tell_low_balance(account: CreditAccount, entries: list[CreditLedgerEntry]) -> None:
    """Record `credits.low_balance` when these rows take the balance from at least the customer's
    threshold (their preferences', else `CREDITS_LOW_BALANCE_THRESHOLD`) to below it.

    Whatever took it there (consumption, expiry, refund claw-back, staff adjustment), once per
    crossing: the ledger row that crossed is the dedupe key. Going back up and down again is a new
    crossing, told again; staying below tells nothing more. In the movement's transaction.
    """
    before = entries[0].balance_after - entries[0].amount
    if account.balance >= before:
        return  # not a drop: grants and positive adjustments never cross downward
    threshold = low_balance_threshold(customer_id=account.customer_id)
    balance = before
    for entry in entries:
        if entry.balance_after < threshold <= balance:
            _event(
                account,
                "credits.low_balance",
                {"available": account.balance, "threshold": threshold, "ledger_entry": entry.id},
                dedupe_key=entry.id,
            )
        balance = entry.balance_after


def _event(account: CreditAccount, type_: str, data: dict, dedupe_key: str | None = None) -> None:
    event_record(
        client_app=account.client_app,
        type=type_,
        data={"customer": account.customer_id, **data},
        dedupe_key=dedupe_key,
        object_id=account.customer_id,  # a customer's credit events reach the app in order
    )


# --- Purchases and grants ------------------------------------------------------------------------


def credit_purchase_create(
    *,
    customer: Customer,
    plan: CreditPlan,
    currency: str,
    source: CardSource | None = None,
    payment_method: PaymentMethod | None = None,
) -> CreditPurchase:
    """Buy `plan` for `customer`: a purchase row (terms copied from the plan), then its payment.

    Credits are granted by `credit_purchase_on_success`, inside the transaction that moves the
    payment to `succeeded` (here, or later from a webhook or reconciliation). The purchase row is
    committed before the payment exists so that handler always finds it. Charging once is the
    payment's business (and the caller's Idempotency-Key's); granting once is the lots' unique
    (payment, kind) constraint.
    """
    price = plan.price_for(currency)
    if not plan.is_active or price is None:
        raise PlanNotAvailable(f"The plan '{plan.code}' is not on sale in {currency}.")
    if not customer.email:
        raise CustomerEmailRequired("The gateways need the customer's email to charge a card; set it first.")
    account = credit_account_for(customer=customer)
    purchase = CreditPurchase.objects.create(
        client_app_id=customer.client_app_id,
        customer=customer,
        account=account,
        plan=plan,
        source=PurchaseSource.API,
        amount=price,
        currency=currency,
        paid_credits=plan.credits,
        bonus_credits=plan.bonus_credits,
        validity_days=plan.validity_days,
    )
    try:
        payment_create(
            client_app=customer.client_app,
            amount=price,
            currency=currency,
            customer=customer,
            email=customer.email,
            description=f"{plan.name}: {plan.total_credits} credits",
            metadata={METADATA_KEY: purchase.id},
            source=source,
            payment_method=payment_method,
            purpose=PURPOSE,
        )
    finally:
        purchase = credit_purchase_settle(purchase_id=purchase.id)
    return purchase


def credit_purchase_settle(*, purchase_id: str) -> CreditPurchase:
    """Link a purchase to its payment and mark it failed when the payment failed or never happened.

    Never grants (only the success handler does). Locks the purchase row only.
    """
    with transaction.atomic():
        purchase = CreditPurchase.objects.select_for_update().get(pk=purchase_id)
        payment = purchase.payment
        if payment is None:
            payment = Payment.objects.filter(
                client_app_id=purchase.client_app_id, purpose=PURPOSE, **{f"metadata__{METADATA_KEY}": purchase.id}
            ).first()
            purchase.payment = payment
        if purchase.status == PurchaseStatus.PENDING and (
            payment is None or payment.status in (PaymentStatus.FAILED, PaymentStatus.CANCELED)
        ):
            purchase.status = PurchaseStatus.FAILED
        purchase.save(update_fields=["payment", "status", "updated_at"])
        return purchase


def credit_purchase_on_success(payment: Payment) -> None:
    """payments' success handler for purpose `credit_purchase`: grant the purchase's credits.

    Runs inside the transaction that moves the payment to `succeeded`, with the payment row locked,
    so the credits exist exactly when the success commits. Idempotent: a second call finds the
    purchase `granted`; were that check bypassed, the unique (payment, kind) constraint on lots
    refuses a second grant and nothing else is written. Locks: purchase, then account, then lots.
    """
    purchase_id = (payment.metadata or {}).get(METADATA_KEY)
    purchase = (
        CreditPurchase.objects.select_for_update().filter(pk=purchase_id, client_app_id=payment.client_app_id).first()
        if purchase_id
        else None
    )
    if purchase is None:
        logger.error("credit purchase payment without its purchase", extra={"payment": payment.pk})
        return
    if purchase.payment_id not in (None, payment.pk):
        logger.error("credit purchase already paid by another payment", extra={"payment": payment.pk})
        return
    if purchase.status == PurchaseStatus.GRANTED:
        return
    now = timezone.now()
    account = _lock_account(purchase.account_id)
    expires_at = now + timedelta(days=purchase.validity_days)
    grants = [(CreditKind.PAID, purchase.paid_credits), (CreditKind.BONUS, purchase.bonus_credits)]
    try:
        with transaction.atomic():
            lots = [
                CreditLot.objects.create(
                    account=account,
                    kind=kind,
                    granted=credits,
                    remaining=credits,
                    expires_at=expires_at,
                    purchase=purchase,
                    payment=payment,
                )
                for kind, credits in grants
                if credits > 0
            ]
    except IntegrityError:
        logger.warning("credits of this payment were already granted", extra={"payment": payment.pk})
        return
    ledger = _Ledger(account, actor="system:payment")
    for lot in lots:
        ledger.add(
            entry_type=EntryType.GRANT,
            amount=lot.granted,
            lot=lot,
            purchase=purchase,
            description=f"{lot.kind} credits of plan {purchase.plan.code}",
        )
    ledger.commit()
    purchase.payment = payment
    purchase.status = PurchaseStatus.GRANTED
    purchase.granted_at = now
    purchase.save(update_fields=["payment", "status", "granted_at", "updated_at"])
    _event(
        account,
        "credits.granted",
        {
            "purchase": purchase.id,
            "payment": payment.pk,
            "plan": purchase.plan.code,
            "credits": sum(lot.granted for lot in lots),
            "lots": [{"id": lot.id, "kind": lot.kind, "granted": lot.granted} for lot in lots],
            "expires_at": expires_at.isoformat(),
            "balance": account.balance,
        },
        dedupe_key=purchase.id,
    )
    if purchase.source == PurchaseSource.AUTO_RENEWAL:
        # Whatever path made the renewal's payment succeed (at once, a webhook, reconciliation).
        # The renewal row is only read here (already loaded with the account), never locked.
        renewal = _renewal_of(account)
        _event(
            account,
            "auto_renewal.succeeded",
            {
                "auto_renewal": renewal.id if renewal is not None else None,
                "purchase": purchase.id,
                "payment": payment.pk,
                "plan": purchase.plan.code,
                "credits": sum(lot.granted for lot in lots),
                "balance": account.balance,
            },
            dedupe_key=purchase.id,
        )


def credit_purchase_on_refund(payment: Payment, refund: Refund) -> dict:
    """payments' refund handler: claw back the unconsumed credits of the refunded purchase.

    Runs inside `refund_record_result`'s transaction (payment row locked). A full refund takes back
    everything still unconsumed in the purchase's lots; a partial one takes the refunded share of
    the purchase's credits (rounded up), minus what earlier refunds took, as far as it is
    unconsumed. Bonus lots go first. Credits already used stay used. Returns
    {"credits_clawed_back": n}. Locks: purchase, account, lots.
    """
    purchase = CreditPurchase.objects.select_for_update().filter(payment=payment).first()
    if purchase is None or purchase.status != PurchaseStatus.GRANTED:
        return {"credits_clawed_back": 0}
    account = _lock_account(purchase.account_id)
    lots = list(purchase.lots.select_for_update().annotate(kind_order=KIND_ORDER).order_by("kind_order", "id"))
    total = sum(lot.granted for lot in lots)
    captured = payment.amount_captured or payment.amount
    refunded = min(payment.amount_refunded, captured)
    owed = total if refunded >= captured else -(-total * refunded // captured)
    already = -(
        CreditLedgerEntry.objects.filter(purchase=purchase, entry_type=EntryType.REFUND_REVERSAL).aggregate(
            s=Sum("amount")
        )["s"]
        or 0
    )
    claw = max(0, min(owed - already, sum(lot.remaining for lot in lots)))
    if claw:
        ledger = _Ledger(account, actor="system:refund")
        ledger.take(
            lots,
            claw,
            entry_type=EntryType.REFUND_REVERSAL,
            purchase=purchase,
            refund=refund,
            description=f"refund {refund.pk} of payment {payment.pk}",
        )
        ledger.commit()
    return {"credits_clawed_back": claw}


# --- Consumption ---------------------------------------------------------------------------------


def credit_consume(
    *,
    customer: Customer,
    amount: int,
    reference: str = "",
    description: str = "",
    actor: str = "",
    now: datetime | None = None,
) -> CreditConsumption:
    """Spend `amount` credits: all of it, from the lots that expire first (bonus first on ties), or none.

    Lock: the customer's account row (`select_for_update`), then the lots, so concurrent calls for
    one customer queue and never overspend; the database also refuses a negative lot or balance.
    Lots past their expiry are expired first (they are never spent). Not enough: InsufficientCredits
    (402) and the transaction rolls back, so nothing at all changes.
    Idempotency: the API's Idempotency-Key replays the first answer; a non-empty `reference` is
    spent at most once per customer (unique constraint), even with another key or after the key
    records are purged: ConsumptionReferenceUsed (409).
    Queues one auto-renewal after commit when this drops the balance below the renewal threshold.
    """
    if amount <= 0:
        raise ValueError("amount must be positive")
    now = now or timezone.now()
    with transaction.atomic():
        account = _lock_customer_account(customer)
        overdue, lots = _locked_live_lots(account, now=now)
        _expire_lots(account, overdue, now=now, actor="system:expiry")
        available = sum(lot.remaining for lot in lots)
        consumption = CreditConsumption(
            account=account,
            amount=amount,
            reference=reference,
            description=description,
            balance_after=max(available - amount, 0),
            actor=actor,
        )
        if reference:  # checked before the balance: a repeat is told it was done, not that credits are short
            try:
                with transaction.atomic():
                    consumption.save(force_insert=True)
            except IntegrityError:
                first = CreditConsumption.objects.get(account=account, reference=reference)
                raise ConsumptionReferenceUsed(
                    f"Reference '{reference}' was already consumed ({first.pk}).", consumption=first.pk
                ) from None
        if available < amount:
            raise InsufficientCredits(
                f"{amount} credits were asked and {available} are available.", available=available, requested=amount
            )
        if not reference:
            consumption.save(force_insert=True)
        ledger = _Ledger(account, actor=actor)
        ledger.take(
            lots,
            amount,
            entry_type=EntryType.CONSUMPTION,
            consumption=consumption,
            reference=reference,
            description=description[:255],
        )
        ledger.commit()
        if account.balance != consumption.balance_after:
            raise AssertionError("the cached balance and the spendable lots disagree")
        consumption.taken = ledger.entries
        _after_balance_drop(account, before=available, after=account.balance, cause=consumption.pk)
    return consumption


def _after_balance_drop(account: CreditAccount, *, before: int, after: int, cause: str) -> None:
    """Below the auto-renewal threshold now and not before: one renewal, after commit.

    (`credits.low_balance` is the ledger's business, against the customer's low-balance threshold:
    `_tell_low_balance`.)"""
    renewal = _renewal_of(account)
    if renewal is None or not renewal.enabled or renewal.threshold is None or not after < renewal.threshold <= before:
        return
    _queue_renewal(account.pk, reason="threshold")


def _queue_renewal(account_id: str, *, reason: str) -> None:
    from credits.tasks import renew_credits

    # Robust: a failing renewal (or broker) never turns the committed consumption into an error; a
    # renewal that could not be queued is queued by `credit_auto_renewals_sweep` (every 5 minutes).
    enqueue_after_commit(renew_credits, account_id, reason)


# --- Expiry --------------------------------------------------------------------------------------


def _expire_lots(account: CreditAccount, lots: list[CreditLot], *, now: datetime, actor: str) -> int:
    """Expire `lots` (locked, past their expiry) of the locked account. Returns the credits expired."""
    if not lots:
        return 0
    ledger = _Ledger(account, actor=actor)
    expired = 0
    for lot in lots:
        credits = lot.remaining
        ledger.add(entry_type=EntryType.EXPIRY, amount=-credits, lot=lot, description=f"{lot.kind} credits expired")
        lot.remaining = 0
        lot.expired_at = now
        lot.save(update_fields=["remaining", "expired_at"])
        expired += credits
        _event(
            account,
            "credits.expired",
            {"lot": lot.id, "kind": lot.kind, "credits": credits, "expired_at": lot.expires_at.isoformat()},
            dedupe_key=lot.id,
        )
    ledger.commit()
    renewal = _renewal_of(account)
    if renewal is not None and renewal.enabled and renewal.renew_on_expiry:
        _queue_renewal(account.pk, reason="expiry")
    return expired


def credit_lots_expire(*, now: datetime | None = None, batch: int = 500) -> int:
    """Expire every lot past its `expires_at` (ledger rows, `credits.expired` events). Returns credits expired.

    One short transaction per account, with its row locked; running it twice expires nothing more.
    """
    now = now or timezone.now()
    account_ids = list(
        CreditLot.objects.filter(remaining__gt=0, expires_at__lte=now)
        .order_by()
        .values_list("account_id", flat=True)
        .distinct()[:batch]
    )
    total = 0
    for account_id in account_ids:
        with transaction.atomic():
            account = _lock_account(account_id)
            overdue, _ = _locked_live_lots(account, now=now)
            total += _expire_lots(account, overdue, now=now, actor="system:expiry")
    return total


def credit_expiring_notices_record(*, now: datetime | None = None) -> int:
    """Record one `credits.expiring` event per lot that expires within 7 days (once per lot)."""
    now = now or timezone.now()
    noticed = OutgoingEvent.objects.filter(type="credits.expiring", dedupe_key=OuterRef("pk"))
    lots = (
        CreditLot.objects.filter(remaining__gt=0, expires_at__gt=now, expires_at__lte=now + EXPIRING_SOON)
        .annotate(noticed=Exists(noticed))
        .filter(noticed=False)
        .select_related("account__client_app")
    )
    count = 0
    for lot in lots.iterator():
        _event(
            lot.account,
            "credits.expiring",
            {"lot": lot.id, "kind": lot.kind, "credits": lot.remaining, "expires_at": lot.expires_at.isoformat()},
            dedupe_key=lot.id,
        )
        count += 1
    return count


# --- Staff adjustments ---------------------------------------------------------------------------


def credit_adjust(
    *, customer: Customer, amount: int, reason: str, actor: str, validity_days: int = 365, now: datetime | None = None
) -> list[CreditLedgerEntry]:
    """A staff correction: add `amount` credits as a manual lot, or take -`amount` like a consumption.

    The reason and the staff user are kept on the ledger rows (the audit trail). Lock: account, then
    lots. Taking more than is available raises InsufficientCredits and changes nothing.
    """
    reason = (reason or "").strip()
    if not reason:
        raise ValueError("a reason is required")
    if amount == 0:
        raise ValueError("amount must not be zero")
    now = now or timezone.now()
    with transaction.atomic():
        account = _lock_customer_account(customer)
        ledger = _Ledger(account, actor=actor)
        if amount > 0:
            lot = CreditLot.objects.create(
                account=account,
                kind=CreditKind.MANUAL,
                granted=amount,
                remaining=amount,
                expires_at=now + timedelta(days=validity_days),
            )
            ledger.add(entry_type=EntryType.ADJUSTMENT, amount=amount, lot=lot, description=reason[:255])
        else:
            overdue, lots = _locked_live_lots(account, now=now)
            _expire_lots(account, overdue, now=now, actor="system:expiry")
            available = sum(lot.remaining for lot in lots)
            if available < -amount:
                raise InsufficientCredits(f"{-amount} credits cannot be taken; {available} are available.")
            ledger.take(lots, -amount, entry_type=EntryType.ADJUSTMENT, description=reason[:255])
        ledger.commit()
    logger.info("credits adjusted by staff", extra={"customer": customer.pk, "amount": amount, "actor": actor})
    return ledger.entries


# --- Automatic renewal ---------------------------------------------------------------------------


@dataclass(frozen=True)
class RenewalSettings:
    plan: CreditPlan
    currency: str
    payment_method: PaymentMethod
    threshold: int | None
    renew_on_expiry: bool
    max_per_day: int


def credit_auto_renewal_set(*, customer: Customer, settings: RenewalSettings) -> CreditAutoRenewal:
    """Create or replace the customer's auto-renewal. Saving it (re-)enables it and clears any pause."""
    if settings.threshold is None and not settings.renew_on_expiry:
        raise ValueError("a threshold or renew_on_expiry is required")
    account = credit_account_for(customer=customer)
    values = {
        "client_app_id": customer.client_app_id,
        "plan": settings.plan,
        "currency": settings.currency,
        "payment_method": settings.payment_method,
        "threshold": settings.threshold,
        "renew_on_expiry": settings.renew_on_expiry,
        "max_per_day": settings.max_per_day,
        "enabled": True,
        "consecutive_declines": 0,
        "paused_until": None,
        "disabled_reason": "",
    }
    with transaction.atomic():
        renewal, _ = CreditAutoRenewal.objects.select_for_update().update_or_create(account=account, defaults=values)
    return renewal


def credit_auto_renewal_delete(*, renewal: CreditAutoRenewal) -> None:
    renewal.delete()


def _renewal_claim(account_id: str, *, reason: str, now: datetime) -> tuple[CreditAutoRenewal, CreditPurchase] | None:
    """Decide under the renewal row's lock whether to renew; if so commit a pending purchase.

    The partial unique constraint on pending auto-renewal purchases makes a second one in flight
    impossible, even without this lock.
    """
    with transaction.atomic():
        renewal = (
            CreditAutoRenewal.objects.select_for_update(of=("self",))
            .select_related("plan", "payment_method", "account__customer")
            .filter(account_id=account_id, enabled=True)
            .first()
        )
        if renewal is None or (renewal.paused_until and renewal.paused_until > now):
            return None
        if reason == "expiry" and not renewal.renew_on_expiry:
            return None
        if reason == "threshold" and (
            renewal.threshold is None or credit_available(renewal.account, now=now) >= renewal.threshold
        ):
            return None
        recent = CreditPurchase.objects.filter(
            account_id=account_id, source=PurchaseSource.AUTO_RENEWAL, created_at__gt=now - RENEWAL_CAP_WINDOW
        ).count()
        if recent >= renewal.max_per_day:
            logger.info("auto-renewal daily cap reached", extra={"account": account_id})
            return None
        plan = renewal.plan
        price = plan.price_for(renewal.currency)
        if not plan.is_active or price is None or renewal.payment_method.deleted_at is not None:
            _renewal_disable(renewal, why="The plan or the saved card is no longer available.")
            return None
        try:
            with transaction.atomic():
                purchase = CreditPurchase.objects.create(
                    client_app_id=renewal.client_app_id,
                    customer=renewal.account.customer,
                    account_id=account_id,
                    plan=plan,
                    source=PurchaseSource.AUTO_RENEWAL,
                    amount=price,
                    currency=renewal.currency,
                    paid_credits=plan.credits,
                    bonus_credits=plan.bonus_credits,
                    validity_days=plan.validity_days,
                )
        except IntegrityError:
            return None  # a renewal is already in flight
        renewal.last_attempt_at = now
        renewal.save(update_fields=["last_attempt_at", "updated_at"])
        return renewal, purchase


def _renewal_disable(renewal: CreditAutoRenewal, *, why: str) -> None:
    renewal.enabled = False
    renewal.disabled_reason = why
    renewal.save(update_fields=["enabled", "disabled_reason", "updated_at"])
    _event(
        renewal.account,
        "auto_renewal.failed",
        {"auto_renewal": renewal.id, "plan": renewal.plan.code, "reason": why, "disabled": True},
        dedupe_key=f"{renewal.id}:{renewal.last_attempt_at.isoformat() if renewal.last_attempt_at else 'never'}",
    )


def credit_auto_renewal_run(*, account_id: str, reason: str, now: datetime | None = None) -> CreditPurchase | None:
    """Buy the renewal plan with the saved card if it is still due. Returns the purchase, or None.

    Due means: enabled, not paused, under the daily cap, and (threshold) available credits below the
    threshold, or (expiry) renew on expiry. At most one renewal is in flight per customer (unique
    constraint on pending renewal purchases), so two triggers at once charge once. The gateway is
    called with no lock held. After a decline renewal pauses; after three in a row it turns itself
    off and records `auto_renewal.failed`.
    """
    now = now or timezone.now()
    _settle_stale_renewals(now=now, account_id=account_id)  # a finished one must not hold the in-flight slot
    claimed = _renewal_claim(account_id, reason=reason, now=now)
    if claimed is None:
        return None
    renewal, purchase = claimed
    payment = None
    try:
        payment = payment_create(
            client_app=renewal.account.customer.client_app,
            amount=purchase.amount,
            currency=purchase.currency,
            customer=renewal.account.customer,
            email=renewal.account.customer.email,
            description=f"{renewal.plan.name}: {renewal.plan.total_credits} credits (automatic renewal)",
            metadata={METADATA_KEY: purchase.id},
            payment_method=renewal.payment_method,
            purpose=PURPOSE,
        )
    except ApiError as error:  # nothing charged (gateway down, card not usable in this currency)
        logger.warning("auto-renewal not charged", extra={"account": account_id, "error_code": error.code})
    if payment is not None and payment.status == PaymentStatus.REQUIRES_ACTION:
        # 3-D Secure needs the payer, and nobody is there for a renewal: a failed try now, rather than a
        # payment (and the in-flight slot) waiting for a challenge that cannot happen. Closed at the
        # gateway first when something exists there; if that fails, the action expiry does it later.
        payment_abandon_action(
            payment=payment,
            code=AUTHENTICATION_REQUIRED,
            message="The card asked for 3-D Secure, which needs the payer; an automatic renewal cannot pass it.",
        )
    purchase = credit_purchase_settle(purchase_id=purchase.id)
    credit_auto_renewal_record_outcome(purchase=purchase, now=now)
    return purchase


def credit_auto_renewal_record_outcome(*, purchase: CreditPurchase, now: datetime | None = None) -> None:
    """Count a declined renewal (pause; off after three in a row) or reset the count after a success."""
    now = now or timezone.now()
    if purchase.source != PurchaseSource.AUTO_RENEWAL or purchase.status == PurchaseStatus.PENDING:
        return
    with transaction.atomic():
        renewal = CreditAutoRenewal.objects.select_for_update().filter(account_id=purchase.account_id).first()
        if renewal is None:
            return
        if purchase.status == PurchaseStatus.GRANTED:
            renewal.consecutive_declines = 0
            renewal.paused_until = None
            renewal.save(update_fields=["consecutive_declines", "paused_until", "updated_at"])
            return
        payment = purchase.payment
        if payment is None or payment.failure_code not in RENEWAL_DECLINE_CODES:
            return  # not charged for a reason that is not the card's (e.g. gateway down): try again later
        renewal.consecutive_declines += 1
        renewal.paused_until = now + RENEWAL_PAUSE_AFTER_DECLINE
        renewal.save(update_fields=["consecutive_declines", "paused_until", "updated_at"])
        if renewal.consecutive_declines >= RENEWAL_MAX_CONSECUTIVE_DECLINES and renewal.enabled:
            _renewal_disable(
                renewal,
                why=f"The card was declined {renewal.consecutive_declines} times in a row "
                f"(last: {payment.decline_code or payment.failure_code}).",
            )


def _settle_stale_renewals(*, now: datetime, account_id: str | None = None, limit: int = 500) -> None:
    """Settle pending purchases whose payment ended (failed, canceled: whatever path failed it, e.g. the
    3-D Secure expiry) or never happened, releasing a renewal's in-flight slot and counting declines."""
    stale = CreditPurchase.objects.filter(status=PurchaseStatus.PENDING).filter(
        Q(payment__status__in=[PaymentStatus.FAILED, PaymentStatus.CANCELED])
        | Q(payment__isnull=True, created_at__lt=now - STALE_PURCHASE_AFTER)
    )
    if account_id is not None:
        stale = stale.filter(account_id=account_id)
    for purchase_id in list(stale.values_list("pk", flat=True)[:limit]):
        credit_auto_renewal_record_outcome(purchase=credit_purchase_settle(purchase_id=purchase_id), now=now)


def credit_auto_renewals_sweep(*, now: datetime | None = None) -> int:
    """Settle stale pending purchases, then queue renewals for customers still below their threshold.

    Returns how many renewals were queued. Renewal itself re-checks everything under its lock.
    """
    from credits.tasks import renew_credits

    now = now or timezone.now()
    _settle_stale_renewals(now=now)
    queued = 0
    due = (
        CreditAutoRenewal.objects.filter(enabled=True, threshold__isnull=False)
        .filter(Q(paused_until__isnull=True) | Q(paused_until__lte=now))
        .select_related("account")
    )
    for renewal in due.iterator():
        if credit_available(renewal.account, now=now) < renewal.threshold:
            renew_credits.delay(renewal.account_id, "threshold")
            queued += 1
    return queued
