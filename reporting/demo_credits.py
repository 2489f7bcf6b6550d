"""The credit part of the demo history (`reporting.demo`), written through `credits.services` so the
ledger's invariants hold: purchases granted by the payments' success handler, consumptions,
a promotional lot that expires, and refund claw-backs, replayed in the order they "happened".

The services stamp rows with the current time; each step is then dated back to its moment (rows
written while seeding are the only ones of the account dated after the seeding started). Dates
are not part of the invariants (`check_credit_ledger`: balance = Σ ledger = Σ lots' remaining,
gap-free sequence), so they hold throughout.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from credits.exceptions import InsufficientCredits
from credits.models import (
    CreditAccount,
    CreditConsumption,
    CreditLedgerEntry,
    CreditLot,
    CreditPurchase,
    PurchaseStatus,
)
from credits.services import (
    credit_account_for,
    credit_adjust,
    credit_consume,
    credit_lots_expire,
    credit_purchase_on_refund,
    credit_purchase_on_success,
)
from payments.enums import PaymentStatus
from payments.models import Payment, Refund

if TYPE_CHECKING:
    from reporting.demo import _Builder

PAID = (PaymentStatus.SUCCEEDED, PaymentStatus.PARTIALLY_REFUNDED, PaymentStatus.REFUNDED)
GRANT, PROMO, CONSUME, REFUND = 0, 1, 2, 3  # order of events that share a moment
FEATURES = ["Reporte crediticio", "Consulta RUC", "Validación de identidad", "Envío de SMS", "Firma digital"]


class CreditHistory:
    def __init__(self, builder: _Builder):
        self.b = builder
        self.rng = builder.rng
        self.purchases = 0
        self.consumptions = 0
        self.first_grant: dict[str, datetime] = {}  # customer id -> first grant
        self.accounts: dict[str, str] = {}  # customer id -> credit account id

    def run(self) -> None:
        events: list[tuple[datetime, int, object]] = []
        for payment, terms in self.b.credit_plans:
            paid_at = terms["paid_at"]
            events.append((paid_at, GRANT, (payment, terms)))
            if payment.status in PAID:
                first = self.first_grant.get(terms["customer"].pk)
                if first is None or paid_at < first:
                    self.first_grant[terms["customer"].pk] = paid_at
        credit_refunds = {p.pk for p, _ in self.b.credit_plans}
        for refund in self.b.refunds:
            if refund.payment_id in credit_refunds:
                events.append((refund.created_at, REFUND, refund))
        for customer_id, first in self.first_grant.items():
            span = (self.b.now - first).total_seconds()
            for _ in range(self.rng.randrange(2, 16)):
                moment = first + timedelta(seconds=self.rng.uniform(60, max(120, span - 60)))
                events.append((moment, CONSUME, (customer_id, self.rng.choice([1, 1, 2, 5, 5, 10, 20, 40]))))
        promo_takers = self.rng.sample(self.b.customer_list, k=min(8, len(self.b.customer_list)))
        for customer in promo_takers:  # 50 welcome credits valid 30 days, granted early in the period
            moment = self.b.now - timedelta(days=self.rng.uniform(40, max(41, self.b.days - 1)))
            events.append((moment, PROMO, customer))
        events.sort(key=lambda event: (event[0], event[1]))
        customers = {c.pk: c for c in self.b.customer_list}
        for moment, kind, data in events:
            if kind == GRANT:
                self.purchase(moment, *data)
            elif kind == PROMO:
                credit_adjust(
                    customer=data, amount=50, reason="Welcome promotion", actor="admin", validity_days=30, now=moment
                )
                self.date_back(data.pk, moment)
            elif kind == CONSUME:
                self.consume(moment, customers[data[0]], data[1])
            else:
                self.claw_back(moment, data)
        credit_lots_expire(now=self.b.now)  # what the nightly job would have expired by now

    def purchase(self, moment: datetime, payment: Payment, terms: dict) -> None:
        plan, customer = terms["plan"], terms["customer"]
        account = credit_account_for(customer=customer)
        succeeded = payment.status in PAID
        CreditPurchase.objects.create(
            id=terms["id"],
            client_app=self.b.app,
            customer=customer,
            account=account,
            plan=plan,
            source=terms["source"],
            status=PurchaseStatus.PENDING if succeeded else PurchaseStatus.FAILED,
            amount=payment.amount,
            currency=payment.currency,
            paid_credits=plan.credits,
            bonus_credits=plan.bonus_credits,
            validity_days=plan.validity_days,
            payment=payment,
        )
        self.purchases += 1
        if succeeded:
            credit_purchase_on_success(Payment.objects.select_for_update().get(pk=payment.pk))
            CreditLot.objects.filter(purchase_id=terms["id"]).update(
                expires_at=moment + timedelta(days=plan.validity_days)
            )
        CreditPurchase.objects.filter(pk=terms["id"]).update(
            created_at=payment.created_at, updated_at=moment, granted_at=moment if succeeded else None
        )
        fresh_account = CreditAccount.objects.filter(pk=account.pk, created_at__gte=self.b.started)
        fresh_account.update(created_at=payment.created_at)
        self.date_back(customer.pk, moment)

    def consume(self, moment: datetime, customer, amount: int) -> None:
        try:
            credit_consume(
                customer=customer,
                amount=amount,
                reference=f"demo-{self.b.ids.getrandbits(48):012x}",
                description=self.rng.choice(FEATURES),
                actor="sk_test_demo",
                now=moment,
            )
        except InsufficientCredits:
            return
        self.consumptions += 1
        self.date_back(customer.pk, moment)

    def claw_back(self, moment: datetime, refund: Refund) -> None:
        payment = Payment.objects.select_for_update().get(pk=refund.payment_id)
        credit_purchase_on_refund(payment, Refund.objects.get(pk=refund.pk))
        self.date_back(payment.customer_id, moment)

    def date_back(self, customer_id: str, moment: datetime) -> None:
        """Date the rows just written for this customer's account at `moment`."""
        account_id = self.accounts.get(customer_id)
        if account_id is None:
            account_id = self.accounts[customer_id] = CreditAccount.objects.get(customer_id=customer_id).pk
        fresh = {"account_id": account_id, "created_at__gte": self.b.started}
        CreditLedgerEntry.objects.filter(**fresh).update(created_at=moment)
        CreditLot.objects.filter(**fresh).update(created_at=moment)
        CreditConsumption.objects.filter(**fresh).update(created_at=moment)
