"""Property: any sequence of grants, consumptions, expiries and refunds keeps the books straight.

After every step: cached balance == sum of the ledger == sum of the lots' remaining, nothing is
below zero, every lot is within 0..granted, and a refused consumption changed nothing.
"""

import itertools
from datetime import timedelta

import pytest
from django.db import transaction
from django.db.models import Sum
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from credits.exceptions import InsufficientCredits
from credits.models import CreditAccount, CreditLedgerEntry, CreditLot, CreditPurchase
from credits.selectors import credit_available, credit_ledger_drift
from credits.services import credit_account_for, credit_adjust, credit_consume, credit_lots_expire
from payments.gateways.base import ChargeResult, ChargeStatus
from payments.models import Customer, Payment, Refund
from payments.services.payments import payment_apply_gateway_result
from payments.services.recording import record_refund
from tests.credits.conftest import plan

pytestmark = pytest.mark.django_db

_ids = itertools.count()

grants = st.tuples(st.just("grant"), st.integers(1, 300), st.integers(1, 60))
purchases = st.tuples(st.just("purchase"), st.sampled_from(["basic", "professional", "enterprise"]), st.just(0))
consumptions = st.tuples(st.just("consume"), st.integers(1, 400), st.just(0))
clock = st.tuples(st.just("advance"), st.integers(1, 40), st.just(0))
refunds = st.tuples(st.just("refund"), st.integers(0, 9), st.sampled_from([25, 50, 100]))
steps = st.lists(st.one_of(grants, purchases, consumptions, clock, refunds), min_size=1, max_size=18)


def _buy(customer, code: str) -> Payment:
    """A purchase whose payment is then succeeded the way a webhook would do it."""
    chosen = plan(code)
    purchase = CreditPurchase.objects.create(
        client_app=customer.client_app,
        customer=customer,
        account=credit_account_for(customer=customer),
        plan=chosen,
        amount=chosen.price_pen,
        currency="PEN",
        paid_credits=chosen.credits,
        bonus_credits=chosen.bonus_credits,
        validity_days=chosen.validity_days,
    )
    payment = Payment.objects.create(
        client_app=customer.client_app,
        customer=customer,
        status="processing",
        amount=chosen.price_pen,
        currency="PEN",
        metadata={"credit_purchase": purchase.pk},
        purpose="credit_purchase",
        gateway="culqi",
    )
    with transaction.atomic():
        locked = Payment.objects.select_for_update().get(pk=payment.pk)
        result = ChargeResult(ChargeStatus.SUCCEEDED, f"chr_prop_{next(_ids)}", payment.amount, "PEN")
        payment_apply_gateway_result(locked, result, gateway="culqi")
    return payment


def _refund(payment: Payment, percent: int) -> None:
    payment.refresh_from_db()
    left = payment.amount_captured - payment.amount_refunded
    amount = min(left, max(1, payment.amount * percent // 100))
    if amount <= 0:
        return
    refund = Refund.objects.create(payment=payment, amount=amount, currency="PEN", idempotency_key=f"prop:{next(_ids)}")
    with transaction.atomic():
        locked = Payment.objects.select_for_update().get(pk=payment.pk)
        refund = record_refund(
            locked,
            gateway_refund_id=f"ref_{next(_ids)}",
            amount=amount,
            status="succeeded",
            source="direct",
            refund=refund,
        )
    assert refund.handler_report["credits_clawed_back"] >= 0


def _books(account_id: str) -> tuple:
    account = CreditAccount.objects.get(pk=account_id)
    ledger = CreditLedgerEntry.objects.filter(account=account).aggregate(s=Sum("amount"))["s"] or 0
    lots = list(CreditLot.objects.filter(account=account).values_list("pk", "remaining", "granted"))
    return account.balance, ledger, sorted(lots)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=steps)
def test_random_sequences_keep_balance_equal_to_the_ledger(client_app, steps):
    customer = Customer.objects.create(client_app=client_app, email=f"p{next(_ids)}@example.com")
    account = credit_account_for(customer=customer)
    now = timezone.now()
    payments: list[Payment] = []
    for op, a, b in steps:
        before = _books(account.pk)
        if op == "grant":
            credit_adjust(customer=customer, amount=a, reason="prop", actor="test", validity_days=b, now=now)
        elif op == "purchase":
            payments.append(_buy(customer, a))
        elif op == "consume":
            available = credit_available(account, now=now)
            try:
                consumption = credit_consume(customer=customer, amount=a, now=now)
            except InsufficientCredits:
                assert a > available
                assert _books(account.pk) == before  # refused: nothing at all changed
            else:
                assert a <= available
                assert consumption.balance_after == available - a
        elif op == "advance":
            now += timedelta(days=a)
            credit_lots_expire(now=now)
            assert credit_available(account, now=now) == CreditAccount.objects.get(pk=account.pk).balance
        elif op == "refund" and payments:
            _refund(payments[a % len(payments)], b)

        balance, ledger, lots = _books(account.pk)
        assert balance == ledger == sum(remaining for _, remaining, _ in lots)
        assert balance >= 0
        assert all(0 <= remaining <= granted for _, remaining, granted in lots)
    assert credit_ledger_drift() == []
