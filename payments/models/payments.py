from django.db import models
from django.db.models import F, Q

from payments.enums import AttemptOperation, AttemptOutcome, Currency, PaymentPurpose, PaymentStatus, RefundStatus
from payments.models.clients import ClientApp
from payments.models.customers import Customer
from smartpay.ids import PrefixedIdField


class PaymentMethod(models.Model):
    """A card saved at one or more gateways. Only gateway ids, brand, last4 and expiry are kept."""

    id = PrefixedIdField("pm")
    client_app = models.ForeignKey(ClientApp, on_delete=models.PROTECT, related_name="payment_methods")
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="payment_methods")
    brand = models.CharField(max_length=40, blank=True)
    last4 = models.CharField(max_length=4, blank=True)
    exp_month = models.PositiveSmallIntegerField(null=True, blank=True)
    exp_year = models.PositiveSmallIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    deleted_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.brand} •••• {self.last4}"


class GatewayCustomer(models.Model):
    """Our customer's identity at one gateway (created when a card is first saved there)."""

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="gateway_customers")
    gateway = models.CharField(max_length=20)
    gateway_customer_id = models.CharField(max_length=120)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["customer", "gateway"], name="gateway_customer_once")]

    def __str__(self) -> str:
        return f"{self.gateway}:{self.gateway_customer_id}"


class GatewayCard(models.Model):
    payment_method = models.ForeignKey(PaymentMethod, on_delete=models.CASCADE, related_name="gateway_cards")
    gateway = models.CharField(max_length=20)
    gateway_customer_id = models.CharField(max_length=120)
    gateway_card_id = models.CharField(max_length=120)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["gateway", "gateway_card_id"], name="gateway_card_unique"),
            models.UniqueConstraint(fields=["payment_method", "gateway"], name="gateway_card_once_per_gateway"),
        ]

    def __str__(self) -> str:
        return f"{self.gateway}:{self.gateway_card_id}"


class Payment(models.Model):
    """One payment intent of a client app. Its status moves only through `payments.state`.

    Amounts are integers in minor units (céntimos/cents) of `currency`.
    """

    id = PrefixedIdField("pay")
    client_app = models.ForeignKey(ClientApp, on_delete=models.PROTECT, related_name="payments")
    customer = models.ForeignKey(Customer, null=True, blank=True, on_delete=models.PROTECT, related_name="payments")
    payment_method = models.ForeignKey(
        PaymentMethod, null=True, blank=True, on_delete=models.PROTECT, related_name="payments"
    )
    status = models.CharField(max_length=20, choices=PaymentStatus.choices, default=PaymentStatus.PENDING)
    amount = models.BigIntegerField(help_text="Minor units of currency.")
    amount_captured = models.BigIntegerField(default=0, help_text="Minor units actually captured.")
    amount_refunded = models.BigIntegerField(default=0, help_text="Minor units refunded (succeeded refunds).")
    currency = models.CharField(max_length=3, choices=Currency.choices)
    capture = models.BooleanField(default=True)
    email = models.EmailField(blank=True)
    description = models.CharField(max_length=255, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    purpose = models.CharField(max_length=30, choices=PaymentPurpose.choices, default=PaymentPurpose.GENERIC)

    gateway = models.CharField(max_length=20, blank=True)
    gateway_payment_id = models.CharField(max_length=120, null=True, blank=True)
    gateway_checkout_id = models.CharField(max_length=120, blank=True)
    checkout_expires_at = models.DateTimeField(
        null=True, blank=True, help_text="Until when the hosted checkout session can be paid."
    )
    # Non-sensitive routing hints of the source (e.g. Mercado Pago payment_method_id); never card data.
    source_details = models.JSONField(default=dict, blank=True)
    return_url = models.URLField(max_length=500, blank=True)

    failure_code = models.CharField(max_length=60, blank=True)
    decline_code = models.CharField(max_length=60, blank=True)
    failure_message = models.CharField(max_length=300, blank=True)
    next_action = models.JSONField(null=True, blank=True)
    # When to ask the gateway next about a payment whose outcome we do not know yet (null: nothing to settle).
    settle_after = models.DateTimeField(null=True, blank=True, db_index=True)
    settle_checks = models.PositiveSmallIntegerField(default=0)

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["gateway", "gateway_payment_id"],
                condition=Q(gateway_payment_id__isnull=False),
                name="payment_gateway_id_unique",
            ),
            models.CheckConstraint(condition=Q(amount__gt=0), name="payment_amount_positive"),
            models.CheckConstraint(
                condition=Q(amount_refunded__gte=0) & Q(amount_refunded__lte=F("amount")),
                name="payment_refunds_within_amount",
            ),
            models.CheckConstraint(
                condition=Q(amount_captured__gte=0) & Q(amount_captured__lte=F("amount")),
                name="payment_capture_within_amount",
            ),
        ]
        indexes = [
            models.Index(fields=["client_app", "status"], name="payment_app_status_idx"),
            models.Index(fields=["client_app", "customer"], name="payment_app_customer_idx"),
            models.Index(fields=["status", "updated_at"], name="payment_status_updated_idx"),
        ]
        permissions = [("refund_payment", "Can refund payments")]  # staff roles: reporting/roles.py

    def __str__(self) -> str:
        return self.id

    @property
    def refundable_amount(self) -> int:
        return self.amount_captured - self.amount_refunded


class PaymentAttempt(models.Model):
    """One call to a gateway on behalf of a payment, committed before the call is made.

    `idempotency_key` is derived from this row (`pay_…:charge:1`) and reused if the same attempt
    is retried, so a gateway that honours keys never charges twice for it.
    """

    payment = models.ForeignKey(Payment, on_delete=models.CASCADE, related_name="attempts")
    number = models.PositiveSmallIntegerField()
    operation = models.CharField(max_length=12, choices=AttemptOperation.choices)
    gateway = models.CharField(max_length=20)
    # Shared by the retries of one logical call, so the gateway sees one request (Mercado Pago dedupes on it).
    idempotency_key = models.CharField(max_length=80, db_index=True)
    retry = models.PositiveSmallIntegerField(default=0, help_text="0 for the first try of this key.")
    outcome = models.CharField(max_length=20, choices=AttemptOutcome.choices, default=AttemptOutcome.STARTED)
    error_code = models.CharField(max_length=60, blank=True)
    error_message = models.CharField(max_length=300, blank=True)
    gateway_payment_id = models.CharField(max_length=120, blank=True)
    amount = models.BigIntegerField(null=True, blank=True, help_text="Minor units asked for (captures).")
    http_status = models.PositiveSmallIntegerField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    raw_response = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["payment", "number"]
        constraints = [models.UniqueConstraint(fields=["payment", "number"], name="attempt_number_unique")]
        indexes = [models.Index(fields=["gateway", "created_at"], name="attempt_gateway_created_idx")]

    def __str__(self) -> str:
        return self.idempotency_key


class Refund(models.Model):
    """One refund of a payment, whoever asked for it. A refund the gateway reports that we did not
    ask for (made in its dashboard) is a row too, with `origin=gateway`. One row per gateway refund
    id: every path that learns of a refund upserts it through `payments.services.recording`."""

    API = "api"
    ADMIN = "admin"
    GATEWAY = "gateway"
    ORIGINS = [(API, "API"), (ADMIN, "Admin"), (GATEWAY, "Gateway")]

    id = PrefixedIdField("re")
    payment = models.ForeignKey(Payment, on_delete=models.PROTECT, related_name="refunds")
    amount = models.BigIntegerField(help_text="Minor units of currency.")
    currency = models.CharField(max_length=3, choices=Currency.choices)
    status = models.CharField(max_length=10, choices=RefundStatus.choices, default=RefundStatus.PENDING)
    reason = models.CharField(max_length=200, blank=True)
    gateway_refund_id = models.CharField(max_length=120, blank=True)
    idempotency_key = models.CharField(max_length=80, unique=True)
    failure_code = models.CharField(max_length=60, blank=True)
    failure_message = models.CharField(max_length=300, blank=True)
    created_by = models.CharField(max_length=120, blank=True, help_text="API key prefix, staff user or task.")
    origin = models.CharField(max_length=10, choices=ORIGINS, default=API)
    # A pending refund whose answer was lost or is still in process: when to ask the gateway next.
    settle_after = models.DateTimeField(null=True, blank=True, db_index=True)
    settle_checks = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="refund_amount_positive"),
            models.UniqueConstraint(
                fields=["payment", "gateway_refund_id"],
                condition=~Q(gateway_refund_id=""),
                name="refund_gateway_id_once",
            ),
        ]

    def __str__(self) -> str:
        return self.id


class IdempotencyRecord(models.Model):
    """The first response to an `Idempotency-Key`, replayed for repeats. Unique per client app.

    Linked (`resource_type`, `resource_id`) to the object its request created, in the transaction
    that created it, so a request that died or failed after that point is answered with the object.
    """

    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"

    client_app = models.ForeignKey(ClientApp, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    fingerprint = models.CharField(max_length=64)
    state = models.CharField(max_length=12, default=IN_PROGRESS)
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = models.JSONField(null=True, blank=True)
    resource_type = models.CharField(max_length=40, null=True, blank=True, help_text="e.g. payment, refund.")
    resource_id = models.CharField(max_length=40, null=True, blank=True)
    # When the current owner claimed the key: the start of its lease (reset when a retry takes over
    # a claim abandoned by a dead process) and of the retention window.
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["client_app", "key"], name="idempotency_key_unique_per_app")]

    def __str__(self) -> str:
        return self.key
