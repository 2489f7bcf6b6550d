"""Demo history for `make run`: ninety days of payments, refunds, invoices and credits, so the staff
dashboard and the period reports mean something on first login.

Deterministic (one `random.Random(seed)`), fast (payments, attempts, refunds and invoices are
written with `bulk_create`), and idempotent: the payments carry `metadata["demo"] = True`, and a
client app that has them is left alone. Credits go through `credits.services` (grants, consumptions,
expiry, refund claw-backs), so the ledger's invariants hold exactly as in production
(`check_credit_ledger` passes); the rows are then dated back to when they "happened".

The mix, per 100 card payments, roughly: 85 succeed (a few after a failover or a timeout settled
later), 10 are declined with each gateway's own decline codes, 1-2 are abandoned at 3-D Secure or
canceled, 1 fails with both gateways down; 5 in 100 payments are hosted checkouts, about half never
paid. Durations are log-normal around ~450 ms (Culqi) and ~650 ms (Mercado Pago).
"""

from __future__ import annotations

import contextlib
import math
import random
import unicodedata
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from django.db import transaction
from django.test import override_settings
from django.utils import timezone

from billing.enums import (
    IdentityDocument,
    PreferredDocument,
)
from billing.identity import ruc_check_digit
from billing.models import BillingProfile
from credits.services import METADATA_KEY as CREDIT_PURCHASE_KEY
from payments.enums import AttemptOperation, AttemptOutcome, PaymentPurpose, PaymentStatus, RefundStatus
from payments.gateways import culqi, mercadopago
from payments.models import ClientApp, Customer, Payment, PaymentAttempt, Refund
from reporting.demo_credits import CreditHistory
from reporting.demo_invoices import write_demo_invoices
from smartpay.clock import business_date, business_zone
from smartpay.ids import _encode

DEMO_KEY = "demo"  # metadata["demo"] = True marks the demo history
SUCCEEDED = (PaymentStatus.SUCCEEDED, PaymentStatus.PARTIALLY_REFUNDED, PaymentStatus.REFUNDED)

# Gateway codes as the gateways send them, with how often each comes up among declines.
CULQI_DECLINES = {
    "insufficient_funds": 34,
    "issuer_decline_operation": 18,
    "invalid_cvv": 10,
    "contactar_emisor": 9,
    "expired_card": 8,
    "fraudulent": 6,
    "amount_limit_exceeded": 5,
    "stolen_card": 4,
    "issuer_not_available": 3,
}
MERCADOPAGO_DECLINES = {
    "cc_rejected_insufficient_amount": 32,
    "cc_rejected_other_reason": 21,
    "cc_rejected_bad_filled_security_code": 12,
    "cc_rejected_call_for_authorize": 10,
    "cc_rejected_high_risk": 9,
    "cc_rejected_bad_filled_date": 6,
    "cc_rejected_card_disabled": 4,
    "cc_rejected_max_attempts": 4,
}
DECLINE_MAPS = {"culqi": culqi.DECLINE_CODES, "mercadopago": mercadopago.DECLINE_CODES}
DECLINE_WEIGHTS = {"culqi": CULQI_DECLINES, "mercadopago": MERCADOPAGO_DECLINES}
MEDIAN_MS = {"culqi": 450, "mercadopago": 650}
ID_CHARS = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnpqrstuvwxyz23456789"
HOUR_WEIGHTS = [1, 1, 1, 1, 1, 2, 3, 5, 7, 9, 10, 11, 11, 10, 9, 9, 9, 10, 11, 12, 12, 10, 6, 3]
FIRST_NAMES = ["Ana", "Luis", "María", "Jorge", "Rosa", "Carlos", "Lucía", "Diego", "Carmen", "José", "Valeria"]
LAST_NAMES = ["Quispe", "Flores", "Rojas", "Huamán", "García", "Mendoza", "Torres", "Vargas", "Castillo", "Ramos"]
COMPANIES = ["Inversiones Andinas", "Comercial Misti", "Servicios Chavín", "Textiles Paracas", "Agroexport Nazca"]


@dataclass(frozen=True)
class DemoHistory:
    skipped: bool
    payments: int = 0
    attempts: int = 0
    refunds: int = 0
    invoices: int = 0
    credit_notes: int = 0
    credit_purchases: int = 0
    consumptions: int = 0
    rollup_rows: int | None = None  # DailyRollup rows written; None: not computed


def demo_history_exists(client_app: ClientApp) -> bool:
    return Payment.objects.filter(client_app=client_app, **{f"metadata__{DEMO_KEY}": True}).exists()


def demo_history_seed(
    *, client_app: ClientApp, payments: int = 3000, days: int = 90, seed: int = 20250101, rollups: bool = True
) -> DemoHistory:
    """Write `payments` demo payments (and everything that follows from them) over the last `days`
    Lima days for `client_app`, unless it already has a demo history. One transaction: all or none.

    Outgoing events that the credit services record along the way are marked delivered, and payer
    emails are off while seeding: the history is the past, nobody is told about it again."""
    if demo_history_exists(client_app):
        return DemoHistory(skipped=True)
    rng = random.Random(seed)  # noqa: S311 - made-up data, reproducible on purpose
    builder = _Builder(client_app, rng, timezone.now(), days)
    with override_settings(PAYER_EMAILS_ENABLED=False), transaction.atomic():
        builder.customers(max(40, payments // 12))
        builder.plan_payments(payments)
        builder.write_payments()
        builder.credit_history()
        builder.write_invoices()
        builder.quiet_events()
    rollup_rows = _rollups(builder.first_day, builder.today - timedelta(days=1)) if rollups else None
    return DemoHistory(
        skipped=False,
        payments=len(builder.payments),
        attempts=len(builder.attempts),
        refunds=len(builder.refunds),
        invoices=builder.invoice_count,
        credit_notes=builder.credit_note_count,
        credit_purchases=builder.credit_purchase_count,
        consumptions=builder.consumption_count,
        rollup_rows=rollup_rows,
    )


def _rollups(first: date, last: date) -> int:
    """Compute the daily rollups of the past days with the rollup job's own code; returns the rows written."""
    try:
        from reporting.services.rollups import rollup_range
    except ImportError as error:
        raise RuntimeError(
            "reporting.services.rollups.rollup_range is missing: the demo history was written, but "
            "its daily rollups could not be computed (the dashboard computes those days live)."
        ) from error
    return rollup_range(first, last)


def _ascii(text: str) -> str:
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()


@contextlib.contextmanager
def _explicit_timestamps(*models):
    """Let bulk_create keep the created_at/updated_at we set (auto_now fields would overwrite them)."""
    saved = []
    for model in models:
        for field in model._meta.concrete_fields:
            if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
                saved.append((field, field.auto_now, field.auto_now_add))
                field.auto_now = field.auto_now_add = False
    try:
        yield
    finally:
        for field, auto_now, auto_now_add in saved:
            field.auto_now, field.auto_now_add = auto_now, auto_now_add


class _Builder:
    def __init__(self, client_app: ClientApp, rng: random.Random, now: datetime, days: int):
        self.app = client_app
        self.rng = rng
        self.now = now
        self.started = now  # rows the services write while seeding carry times >= this
        self.today = business_date(now)
        self.first_day = self.today - timedelta(days=days - 1)
        self.days = days
        self.zone = business_zone()
        self.payments: list[Payment] = []
        self.attempts: list[PaymentAttempt] = []
        self.refunds: list[Refund] = []
        self.credit_plans: list[tuple[Payment, dict]] = []  # credit purchase payments and their terms
        self.customer_list: list[Customer] = []
        self.profiles: dict[str, BillingProfile] = {}
        # Ids (ours and the gateways') are unique whatever the seed: they never come from `rng`, so
        # the same seed gives the same history while two histories never collide.
        self.ids = random.SystemRandom()
        self.mp_sequence = 10_000_000_000 + self.ids.randrange(80_000_000_000)
        self.invoice_count = self.credit_note_count = 0
        self.credit_purchase_count = self.consumption_count = 0

    # --- small helpers ----------------------------------------------------------------------------

    def make_id(self, prefix: str, when: datetime) -> str:
        """Time-ordered like `smartpay.ids.make_id`, but at `when` and from the seeded generator."""
        return f"{prefix}_{_encode(int(when.timestamp() * 1000), 10)}{_encode(self.ids.getrandbits(79), 16)}"

    def when(self) -> datetime:
        """A moment of the period: more traffic lately and in Lima's daytime, less at weekends."""
        if not hasattr(self, "_day_weights"):
            self._day_weights = [
                (0.7 + 0.3 * offset / self.days)
                * (0.75 if (self.first_day + timedelta(days=offset)).weekday() >= 5 else 1)
                for offset in range(self.days)
            ]
        while True:
            day = self.first_day + timedelta(days=self.rng.choices(range(self.days), self._day_weights)[0])
            hour = self.rng.choices(range(24), HOUR_WEIGHTS)[0]
            moment = datetime.combine(day, time(hour, self.rng.randrange(60), self.rng.randrange(60)), self.zone)
            if moment < self.now - timedelta(minutes=2):
                return moment

    def duration(self, gateway: str) -> int:
        return max(80, min(15_000, int(self.rng.lognormvariate(math.log(MEDIAN_MS[gateway]), 0.45))))

    def amount(self, currency: str) -> int:
        median = 7_900 if currency == "PEN" else 2_500
        value = int(self.rng.lognormvariate(math.log(median), 0.9))
        return max(500, min(900_000, value // 10 * 10 or 500))

    def gateway_payment_id(self, gateway: str) -> str:
        if gateway == "culqi":
            return "chr_test_" + "".join(self.ids.choices(ID_CHARS, k=16))
        self.mp_sequence += self.ids.randrange(3, 40)
        return str(self.mp_sequence)

    # --- customers ------------------------------------------------------------------------------

    def customers(self, count: int) -> None:
        rows = []
        for index in range(count):
            first, last = self.rng.choice(FIRST_NAMES), self.rng.choice(LAST_NAMES)
            created = self.now - timedelta(days=self.days + self.rng.randrange(200), minutes=self.rng.randrange(1440))
            rows.append(
                Customer(
                    id=self.make_id("cus", created),
                    client_app=self.app,
                    external_id=f"demo-{index + 1:04d}",
                    email=_ascii(f"{first}.{last}{index + 1}@example.com").lower(),
                    name=f"{first} {last}",
                    metadata={DEMO_KEY: True},
                    created_at=created,
                    updated_at=created,
                )
            )
        with _explicit_timestamps(Customer, BillingProfile):
            self.customer_list = Customer.objects.bulk_create(rows)
            profiles = []
            for customer in self.customer_list:
                roll = self.rng.random()
                if roll < 0.12:  # a company: RUC, wants facturas
                    first_ten = "20" + f"{self.rng.randrange(10**8):08d}"
                    profile = BillingProfile(
                        customer=customer,
                        document_type=IdentityDocument.RUC,
                        document_number=first_ten + str(ruc_check_digit(first_ten)),
                        legal_name=f"{self.rng.choice(COMPANIES)} S.A.C.",
                        address="Av. Javier Prado Este 1234, San Isidro, Lima",
                        preferred_document=PreferredDocument.FACTURA,
                    )
                elif roll < 0.42:  # a person with a DNI: boletas in their name
                    profile = BillingProfile(
                        customer=customer,
                        document_type=IdentityDocument.DNI,
                        document_number=f"{self.rng.randrange(10**7, 8 * 10**7):08d}",
                        legal_name=customer.name.upper(),
                    )
                else:
                    continue
                profile.created_at = profile.updated_at = customer.created_at
                profiles.append(profile)
            for profile in BillingProfile.objects.bulk_create(profiles):
                self.profiles[profile.customer_id] = profile

    # --- payments -------------------------------------------------------------------------------

    def plan_payments(self, count: int) -> None:
        credit_share = 0.05
        for _ in range(count):
            created = self.when()
            if self.rng.random() < credit_share:
                self.plan_credit_payment(created)
                continue
            currency = "PEN" if self.rng.random() < 0.86 else "USD"
            customer = self.rng.choice(self.customer_list) if self.rng.random() < 0.7 else None
            payment = self.new_payment(created, currency, self.amount(currency), customer)
            if currency == "PEN" and self.rng.random() < 0.05:
                self.hosted_checkout(payment)
            else:
                self.card_payment(payment)
            self.maybe_refund(payment)

    def new_payment(self, created: datetime, currency: str, amount: int, customer: Customer | None, **extra) -> Payment:
        email = customer.email if customer else f"guest{self.rng.randrange(10**5)}@example.com"
        payment = Payment(
            id=self.make_id("pay", created),
            client_app=self.app,
            customer=customer,
            amount=amount,
            currency=currency,
            email=email,
            description=extra.pop("description", f"Pedido #{self.rng.randrange(10_000, 99_999)}"),
            metadata={DEMO_KEY: True, **extra.pop("metadata", {})},
            created_at=created,
            updated_at=created,
            **extra,
        )
        self.payments.append(payment)
        return payment

    def attempt(self, payment: Payment, at: datetime, gateway: str, operation: str, outcome: str, **fields):
        number = 1 + sum(1 for a in self.attempts[-6:] if a.payment_id == payment.id)
        duration = fields.pop("duration_ms", None) or self.duration(gateway)
        row = PaymentAttempt(
            payment_id=payment.id,
            number=number,
            operation=operation,
            gateway=gateway,
            idempotency_key=f"{payment.id}:{operation}:{number}",
            outcome=outcome,
            duration_ms=duration,
            created_at=at,
            finished_at=at + timedelta(milliseconds=duration),
            **fields,
        )
        self.attempts.append(row)
        return row.finished_at

    def first_gateway(self, currency: str) -> str:
        return "culqi" if currency == "USD" or self.rng.random() < 0.62 else "mercadopago"

    def succeed(self, payment: Payment, gateway: str, at: datetime) -> None:
        payment.status = PaymentStatus.SUCCEEDED
        payment.gateway = gateway
        payment.gateway_payment_id = self.gateway_payment_id(gateway)
        payment.amount_captured = payment.amount
        payment.updated_at = at

    def fail(self, payment: Payment, code: str, message: str, at: datetime, decline_code: str = "") -> None:
        payment.status = PaymentStatus.FAILED
        payment.failure_code, payment.decline_code, payment.failure_message = code, decline_code, message
        payment.updated_at = at

    def charge(self, payment: Payment, gateway: str, at: datetime, *, decline_rate: float = 0.105) -> None:
        """One charge attempt that the gateway answered: approved or declined."""
        if self.rng.random() < decline_rate:
            raw_code = self.rng.choices(list(DECLINE_WEIGHTS[gateway]), list(DECLINE_WEIGHTS[gateway].values()))[0]
            code = str(DECLINE_MAPS[gateway].get(raw_code, "card_declined"))
            gateway_id = self.gateway_payment_id(gateway)
            raw = (
                {"object": "error", "type": "card_error", "decline_code": raw_code, "charge_id": gateway_id}
                if gateway == "culqi"
                else {"id": int(gateway_id), "status": "rejected", "status_detail": raw_code}
            )
            end = self.attempt(
                payment, at, gateway, AttemptOperation.CHARGE, AttemptOutcome.DECLINED,
                error_code=code, gateway_payment_id=gateway_id, http_status=402 if gateway == "culqi" else 201,
                raw_response=raw,
            )  # fmt: skip
            payment.gateway = gateway
            payment.gateway_payment_id = gateway_id if gateway == "culqi" else None
            self.fail(payment, "card_declined", "The card was declined.", end, decline_code=code)
            return
        end = self.attempt(payment, at, gateway, AttemptOperation.CHARGE, AttemptOutcome.SUCCEEDED, http_status=201)
        self.succeed(payment, gateway, end)
        self.attempts[-1].gateway_payment_id = payment.gateway_payment_id

    def card_payment(self, payment: Payment) -> None:
        at = payment.created_at + timedelta(milliseconds=self.rng.randrange(20, 120))
        gateway = self.first_gateway(payment.currency)
        roll = self.rng.random()
        recent = self.now - payment.created_at < timedelta(hours=2)
        if roll < 0.022:  # 3-D Secure asked for; the payer never finished (or the app canceled)
            end = self.attempt(payment, at, gateway, AttemptOperation.CHARGE, AttemptOutcome.REQUIRES_ACTION)
            payment.gateway = gateway
            if recent:
                payment.status = PaymentStatus.REQUIRES_ACTION
                payment.next_action = {"type": "three_d_secure"}
            elif roll < 0.012:
                self.fail(payment, "action_expired", "The payer did not complete 3-D Secure in time.", end)
            else:
                payment.status = PaymentStatus.CANCELED
                payment.updated_at = end + timedelta(minutes=3)
        elif roll < 0.052:  # the first gateway was down: fail over (PEN), or nothing to fail over to
            end = self.attempt(
                payment, at, gateway, AttemptOperation.CHARGE, AttemptOutcome.UNAVAILABLE,
                error_code="gateway_unavailable", http_status=503, duration_ms=self.rng.randrange(40, 400),
                error_message="Service Unavailable",
            )  # fmt: skip
            if payment.currency == "PEN":
                other = "mercadopago" if gateway == "culqi" else "culqi"
                self.charge(payment, other, end + timedelta(milliseconds=15))
            else:
                payment.gateway = gateway
                self.fail(payment, "gateway_unavailable", "The gateway is unavailable; nothing was charged.", end)
        elif roll < 0.06:  # the answer was lost (read timeout): settled later by asking the gateway
            timeout = 20_000 + self.rng.randrange(5, 60)
            end = self.attempt(
                payment, at, gateway, AttemptOperation.CHARGE, AttemptOutcome.UNKNOWN,
                error_code="gateway_timeout", duration_ms=timeout, error_message="Read timed out.",
            )  # fmt: skip
            payment.gateway = gateway
            if recent:
                payment.status = PaymentStatus.PROCESSING
            else:
                later = end + timedelta(minutes=self.rng.randrange(1, 6))
                outcome = AttemptOutcome.SUCCEEDED if self.rng.random() < 0.8 else AttemptOutcome.DECLINED
                done = self.attempt(payment, later, gateway, AttemptOperation.SYNC, outcome, http_status=200)
                if outcome == AttemptOutcome.SUCCEEDED:
                    self.succeed(payment, gateway, done)
                else:
                    self.fail(payment, "card_declined", "The card was declined.", done, decline_code="card_declined")
                    self.attempts[-1].error_code = "card_declined"
        else:
            self.charge(payment, gateway, at)

    def hosted_checkout(self, payment: Payment) -> None:
        gateway = "mercadopago" if self.rng.random() < 0.6 else "culqi"
        at = payment.created_at + timedelta(milliseconds=30)
        end = self.attempt(payment, at, gateway, AttemptOperation.CHECKOUT, AttemptOutcome.PENDING, http_status=201)
        payment.gateway = gateway
        tail = self.ids.getrandbits(60)
        payment.gateway_checkout_id = f"ord_test_{tail:015x}" if gateway == "culqi" else f"1234567-{tail:x}"
        payment.checkout_expires_at = payment.created_at + timedelta(hours=24)
        roll = self.rng.random()
        if self.now < payment.checkout_expires_at and roll < 0.5:
            payment.status = PaymentStatus.PENDING  # the session is still open
        elif roll < 0.55:
            self.succeed(payment, gateway, end + timedelta(minutes=self.rng.randrange(2, 30)))
        elif roll < 0.9:
            message = "The hosted checkout session expired before the payer paid; nothing was charged."
            self.fail(payment, "checkout_expired", message, payment.checkout_expires_at + timedelta(minutes=2))
        else:
            payment.status = PaymentStatus.CANCELED
            payment.updated_at = end + timedelta(minutes=self.rng.randrange(5, 120))

    def maybe_refund(self, payment: Payment, *, rate: float = 0.07) -> Refund | None:
        if payment.status != PaymentStatus.SUCCEEDED or self.rng.random() >= rate:
            return None
        created = payment.updated_at + timedelta(hours=self.rng.randrange(1, 24 * 12))
        if created >= self.now:
            return None
        full = self.rng.random() < 0.6
        part = max(100, payment.amount_captured * self.rng.randrange(10, 70) // 100)
        amount = payment.amount_captured if full else part
        return self.add_refund(payment, amount, created)

    def add_refund(self, payment: Payment, amount: int, created: datetime) -> Refund:
        origin = self.rng.choices([Refund.API, Refund.ADMIN, Refund.GATEWAY], [70, 25, 5])[0]
        refund_id = self.make_id("re", created)
        refund = Refund(
            id=refund_id,
            payment=payment,
            amount=amount,
            currency=payment.currency,
            status=RefundStatus.SUCCEEDED,
            reason=self.rng.choice(["solicitud_comprador", "duplicado", "producto no entregado"]),
            gateway_refund_id=(
                f"ref_test_{self.ids.getrandbits(60):015x}"
                if payment.gateway == "culqi"
                else str(self.ids.randrange(10**10, 10**11))
            ),
            idempotency_key=f"demo:{refund_id}",
            created_by={Refund.API: "sk_test_demo", Refund.ADMIN: "admin", Refund.GATEWAY: "gateway"}[origin],
            origin=origin,
            created_at=created,
            updated_at=created + timedelta(seconds=2),
        )
        self.refunds.append(refund)
        payment.amount_refunded += amount
        full = payment.amount_refunded >= payment.amount_captured
        payment.status = PaymentStatus.REFUNDED if full else PaymentStatus.PARTIALLY_REFUNDED
        payment.updated_at = max(payment.updated_at, refund.updated_at)
        return refund

    def plan_credit_payment(self, created: datetime) -> None:
        from credits.models import CreditPlan

        if not hasattr(self, "_plans"):
            self._plans = {plan.code: plan for plan in CreditPlan.objects.filter(is_active=True)}
            self._buyers = self.rng.sample(self.customer_list, k=min(45, len(self.customer_list)))
        if not self._plans:
            return
        codes = [code for code in ("basic", "professional", "enterprise") if code in self._plans] or list(self._plans)
        plan = self._plans[self.rng.choices(codes, [55, 35, 10][: len(codes)] or None)[0]]
        currency = "PEN" if self.rng.random() < 0.9 else "USD"
        customer = self.rng.choice(self._buyers)
        payment = self.new_payment(
            created, currency, plan.price_for(currency), customer,
            purpose=PaymentPurpose.CREDIT_PURCHASE, description=f"{plan.name}: {plan.total_credits} credits",
        )  # fmt: skip
        self.card_payment(payment)
        if payment.status in (PaymentStatus.PENDING, PaymentStatus.PROCESSING, PaymentStatus.REQUIRES_ACTION):
            self.fail(payment, "card_declined", "The card was declined.", created, decline_code="card_declined")
        paid_at = payment.updated_at  # before a refund moves it
        self.maybe_refund(payment, rate=0.05)
        source = "auto_renewal" if self.rng.random() < 0.12 else "api"
        purchase_id = self.make_id("cpur", created)
        payment.metadata[CREDIT_PURCHASE_KEY] = purchase_id
        terms = {"id": purchase_id, "plan": plan, "customer": customer, "source": source, "paid_at": paid_at}
        self.credit_plans.append((payment, terms))

    def write_payments(self) -> None:
        with _explicit_timestamps(Payment, PaymentAttempt, Refund):
            Payment.objects.bulk_create(self.payments, batch_size=500)
            PaymentAttempt.objects.bulk_create(self.attempts, batch_size=1000)
            Refund.objects.bulk_create(self.refunds, batch_size=500)

    # --- credits, through credits.services ---------------------------------------------------------

    def credit_history(self) -> None:
        history = CreditHistory(self)
        history.run()
        self.credit_purchase_count = history.purchases
        self.consumption_count = history.consumptions

    def write_invoices(self) -> None:
        self.invoice_count, self.credit_note_count = write_demo_invoices(self)

    def quiet_events(self) -> None:
        """Events the services recorded for the past: delivered back then, not sent again now."""
        from notifications.models import DeliveryState, OutgoingEvent

        OutgoingEvent.objects.filter(
            client_app=self.app, created_at__gte=self.started, delivery_state=DeliveryState.PENDING
        ).update(delivery_state=DeliveryState.DELIVERED, delivered_at=self.started, attempts=1)
