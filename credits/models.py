"""Credit plans, per-customer accounts, lots and the append-only ledger.

Credits are integers. A customer's balance is the sum of their ledger rows; `CreditAccount.balance`
caches it (and equals the sum of the lots' `remaining`), and `check_credit_ledger` proves both.
Every row here is written by `credits.services` only, with the account row locked.
"""

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import F, Q

from payments.enums import Currency
from payments.models import ClientApp, Customer, Payment, PaymentMethod, Refund
from smartpay.ids import PrefixedIdField


class CreditKind(models.TextChoices):
    PAID = "paid"
    BONUS = "bonus"
    MANUAL = "manual"


class EntryType(models.TextChoices):
    GRANT = "grant"
    CONSUMPTION = "consumption"
    EXPIRY = "expiry"
    REFUND_REVERSAL = "refund_reversal"
    ADJUSTMENT = "adjustment"


class PurchaseStatus(models.TextChoices):
    PENDING = "pending"  # the payment has not succeeded (yet)
    GRANTED = "granted"  # the payment succeeded and the lots exist
    FAILED = "failed"  # the payment failed or was never made; nothing was granted


class PurchaseSource(models.TextChoices):
    API = "api"
    AUTO_RENEWAL = "auto_renewal"


class CreditPlan(models.Model):
    """A pack of credits sold at a fixed price per currency. Bonus credits are derived, never typed."""

    id = PrefixedIdField("plan")
    code = models.SlugField(max_length=40, unique=True)
    name = models.CharField(max_length=120)
    credits = models.PositiveIntegerField(help_text="Paid credits in the pack.")
    bonus_percent = models.PositiveSmallIntegerField(
        default=0,
        validators=[MaxValueValidator(100)],
        help_text="Extra credits as a percentage of the paid ones, rounded down.",
    )
    # Prices are integers in minor units (céntimos / cents) of their currency.
    price_pen = models.BigIntegerField(validators=[MinValueValidator(1)], help_text="Céntimos of PEN.")
    price_usd = models.BigIntegerField(validators=[MinValueValidator(1)], help_text="Cents of USD.")
    validity_days = models.PositiveIntegerField(
        default=365, validators=[MinValueValidator(1)], help_text="Credits expire this many days after the grant."
    )
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["credits", "code"]
        constraints = [
            models.CheckConstraint(condition=Q(credits__gt=0), name="credit_plan_credits_positive"),
            models.CheckConstraint(condition=Q(bonus_percent__lte=100), name="credit_plan_bonus_at_most_100"),
            models.CheckConstraint(
                condition=Q(price_pen__gt=0) & Q(price_usd__gt=0), name="credit_plan_prices_positive"
            ),
            models.CheckConstraint(condition=Q(validity_days__gt=0), name="credit_plan_validity_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.code})"

    @property
    def bonus_credits(self) -> int:
        return self.credits * self.bonus_percent // 100

    @property
    def total_credits(self) -> int:
        return self.credits + self.bonus_credits

    @property
    def prices(self) -> dict[str, int]:
        return {"PEN": self.price_pen, "USD": self.price_usd}

    def price_for(self, currency: str) -> int | None:
        return self.prices.get(currency)


class CreditAccount(models.Model):
    """One per customer. Its row is the lock every credit movement of that customer takes."""

    id = PrefixedIdField("cacc")
    client_app = models.ForeignKey(ClientApp, on_delete=models.PROTECT, related_name="credit_accounts")
    customer = models.OneToOneField(Customer, on_delete=models.PROTECT, related_name="credit_account")
    # Cached: always the sum of this account's ledger amounts (and of its lots' `remaining`).
    balance = models.BigIntegerField(default=0)
    last_entry_seq = models.BigIntegerField(default=0)
    last_entry_id = models.CharField(max_length=40, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.CheckConstraint(condition=Q(balance__gte=0), name="credit_account_balance_non_negative")]

    def __str__(self) -> str:
        return f"{self.customer_id}: {self.balance}"


class CreditPurchase(models.Model):
    """A customer buying a plan. Created before its payment; the plan's terms are copied here.

    The payment carries this id in `metadata["credit_purchase"]` (set by SmartPay, not the client),
    which is how the success handler finds it, whichever path makes the payment succeed.
    """

    id = PrefixedIdField("cpur")
    client_app = models.ForeignKey(ClientApp, on_delete=models.PROTECT, related_name="credit_purchases")
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="credit_purchases")
    account = models.ForeignKey(CreditAccount, on_delete=models.PROTECT, related_name="purchases")
    plan = models.ForeignKey(CreditPlan, on_delete=models.PROTECT, related_name="purchases")
    source = models.CharField(max_length=20, choices=PurchaseSource.choices, default=PurchaseSource.API)
    status = models.CharField(max_length=10, choices=PurchaseStatus.choices, default=PurchaseStatus.PENDING)
    amount = models.BigIntegerField(help_text="Minor units of currency.")
    currency = models.CharField(max_length=3, choices=Currency.choices)
    paid_credits = models.PositiveIntegerField()
    bonus_credits = models.PositiveIntegerField(default=0)
    validity_days = models.PositiveIntegerField()
    payment = models.OneToOneField(
        Payment, null=True, blank=True, on_delete=models.PROTECT, related_name="credit_purchase"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    granted_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="credit_purchase_amount_positive"),
            # At most one automatic renewal in flight per customer, whatever triggers it.
            models.UniqueConstraint(
                fields=["account"],
                condition=Q(source="auto_renewal", status="pending"),
                name="credit_one_renewal_in_flight",
            ),
        ]
        indexes = [models.Index(fields=["account", "source", "created_at"], name="credit_purchase_source_idx")]

    def __str__(self) -> str:
        return self.id


class CreditLot(models.Model):
    """Credits granted together with one expiry. `remaining` only goes down."""

    id = PrefixedIdField("cl")
    account = models.ForeignKey(CreditAccount, on_delete=models.PROTECT, related_name="lots")
    kind = models.CharField(max_length=10, choices=CreditKind.choices)
    granted = models.BigIntegerField()
    remaining = models.BigIntegerField()
    expires_at = models.DateTimeField()
    expired_at = models.DateTimeField(null=True, blank=True)
    purchase = models.ForeignKey(CreditPurchase, null=True, blank=True, on_delete=models.PROTECT, related_name="lots")
    payment = models.ForeignKey(Payment, null=True, blank=True, on_delete=models.PROTECT, related_name="credit_lots")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(granted__gt=0), name="credit_lot_granted_positive"),
            models.CheckConstraint(
                condition=Q(remaining__gte=0) & Q(remaining__lte=F("granted")), name="credit_lot_remaining_in_range"
            ),
            # A payment grants its paid lot and its bonus lot once, whatever calls the handler again.
            models.UniqueConstraint(
                fields=["payment", "kind"], condition=Q(payment__isnull=False), name="credit_lot_once_per_payment"
            ),
        ]
        indexes = [
            models.Index(fields=["account", "expires_at"], condition=Q(remaining__gt=0), name="credit_lot_live_idx"),
            models.Index(fields=["expires_at"], condition=Q(remaining__gt=0), name="credit_lot_expiry_idx"),
        ]

    def __str__(self) -> str:
        return self.id


class CreditConsumption(models.Model):
    """One call that spent credits; its ledger rows say which lots paid for it."""

    id = PrefixedIdField("ccon")
    account = models.ForeignKey(CreditAccount, on_delete=models.PROTECT, related_name="consumptions")
    amount = models.BigIntegerField()
    reference = models.CharField(max_length=120, blank=True)
    description = models.CharField(max_length=255, blank=True)
    balance_after = models.BigIntegerField()
    actor = models.CharField(max_length=120, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="credit_consumption_amount_positive"),
            # A client's own reference is spent once, even with another Idempotency-Key or days later.
            models.UniqueConstraint(
                fields=["account", "reference"], condition=~Q(reference=""), name="credit_consumption_reference_once"
            ),
        ]

    def __str__(self) -> str:
        return self.id


class CreditLedgerEntry(models.Model):
    """Append-only: one row per lot per movement, with the account's balance after it.

    Ids are strictly increasing per account (see `services._next_entry_id`), so newest-first by id
    is the order the rows were written; `seq` numbers them without gaps.
    """

    id = PrefixedIdField("cle")
    account = models.ForeignKey(CreditAccount, on_delete=models.PROTECT, related_name="entries")
    seq = models.BigIntegerField()
    entry_type = models.CharField(max_length=20, choices=EntryType.choices)
    amount = models.BigIntegerField(help_text="Credits, positive when added, negative when taken.")
    balance_after = models.BigIntegerField()
    lot = models.ForeignKey(CreditLot, on_delete=models.PROTECT, related_name="entries")
    consumption = models.ForeignKey(
        CreditConsumption, null=True, blank=True, on_delete=models.PROTECT, related_name="entries"
    )
    purchase = models.ForeignKey(
        CreditPurchase, null=True, blank=True, on_delete=models.PROTECT, related_name="entries"
    )
    refund = models.ForeignKey(Refund, null=True, blank=True, on_delete=models.PROTECT, related_name="credit_entries")
    reference = models.CharField(max_length=120, blank=True)
    description = models.CharField(max_length=255, blank=True)
    actor = models.CharField(max_length=120, blank=True, help_text="API key prefix, staff user or system task.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["account", "seq"], name="credit_entry_seq_unique"),
            models.CheckConstraint(condition=~Q(amount=0), name="credit_entry_amount_non_zero"),
            models.CheckConstraint(condition=Q(balance_after__gte=0), name="credit_entry_balance_non_negative"),
            models.UniqueConstraint(
                fields=["lot"], condition=Q(entry_type="grant"), name="credit_entry_one_grant_per_lot"
            ),
            models.UniqueConstraint(
                fields=["lot"], condition=Q(entry_type="expiry"), name="credit_entry_one_expiry_per_lot"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.entry_type} {self.amount:+d}"


class CreditAutoRenewal(models.Model):
    """Buy `plan` again with a saved card when the balance drops below `threshold` and/or on expiry."""

    id = PrefixedIdField("car")
    client_app = models.ForeignKey(ClientApp, on_delete=models.PROTECT, related_name="credit_auto_renewals")
    account = models.OneToOneField(CreditAccount, on_delete=models.PROTECT, related_name="auto_renewal")
    plan = models.ForeignKey(CreditPlan, on_delete=models.PROTECT, related_name="auto_renewals")
    currency = models.CharField(max_length=3, choices=Currency.choices)
    payment_method = models.ForeignKey(PaymentMethod, on_delete=models.PROTECT, related_name="credit_auto_renewals")
    threshold = models.BigIntegerField(null=True, blank=True, help_text="Renew when available credits drop below.")
    renew_on_expiry = models.BooleanField(default=False)
    enabled = models.BooleanField(default=True)
    max_per_day = models.PositiveSmallIntegerField(default=2, validators=[MinValueValidator(1), MaxValueValidator(10)])
    consecutive_declines = models.PositiveSmallIntegerField(default=0)
    paused_until = models.DateTimeField(null=True, blank=True)
    disabled_reason = models.CharField(max_length=200, blank=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(threshold__isnull=False) | Q(renew_on_expiry=True), name="credit_renewal_has_a_trigger"
            ),
            models.CheckConstraint(
                condition=Q(threshold__isnull=True) | Q(threshold__gt=0), name="credit_renewal_threshold_positive"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.account_id}: {self.plan_id}"
