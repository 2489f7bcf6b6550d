"""State of the gateway simulators. Everything lives in the database so that several server
processes (runserver threads, gunicorn workers, a test's live server) agree on it.

Card numbers and security codes are never stored: a token keeps only what the real gateways show
back (BIN, last four, masked number, brand, expiry, cardholder) plus the *test scenario* the card
number selected when it was tokenized (Culqi decides outcomes by card number, §14 of culqi.md).

Amounts are integers in minor units (céntimos) beside a currency, as everywhere in SmartPay;
Mercado Pago's decimal amounts exist only at the HTTP edge (`mercadopago_objects`).
"""

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models


class Gateway(models.TextChoices):
    CULQI = "culqi", "Culqi"
    MERCADOPAGO = "mercadopago", "Mercado Pago"


class ControlMode(models.TextChoices):
    NORMAL = "normal"
    DOWN = "down"  # 503 plain text, nothing processed
    TIMEOUT = "timeout"  # processed, then the answer comes too late for the caller
    ERROR = "error"  # 500 HTML, nothing processed
    SLOW = "slow"  # sleep latency_ms, then process normally
    FLAKY = "flaky"  # with probability failure_rate: 503 before processing


class GatewayControl(models.Model):
    """Fault injection for one simulated gateway (one row per gateway, created on first use)."""

    gateway = models.CharField(max_length=20, choices=Gateway.choices, unique=True)
    mode = models.CharField(max_length=10, choices=ControlMode.choices, default=ControlMode.NORMAL)
    latency_ms = models.PositiveIntegerField(default=0)
    failure_rate = models.DecimalField(max_digits=5, decimal_places=4, default=0)  # 0..1, a probability
    seed = models.BigIntegerField(null=True, blank=True)  # makes `flaky` draws reproducible
    draws = models.PositiveBigIntegerField(default=0)  # seeded draws so far (the n of the n-th draw)
    # Optional scope: only requests with this method and/or whose gateway path starts with this prefix
    # (e.g. POST + "/v1/payments") misbehave; blank means every API request of the gateway.
    only_method = models.CharField(max_length=10, blank=True)
    only_path = models.CharField(max_length=200, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.gateway}: {self.mode}"


class SimCustomer(models.Model):
    gateway = models.CharField(max_length=20, choices=Gateway.choices)
    public_id = models.CharField(max_length=64, unique=True)  # cus_test_… or "<user id>-<alnum>"
    email = models.CharField(max_length=254)
    first_name = models.CharField(max_length=100, blank=True)
    last_name = models.CharField(max_length=100, blank=True)
    details = models.JSONField(default=dict, blank=True)  # the other fields as sent (address, phone, …)
    metadata = models.JSONField(default=dict, blank=True)
    deleted = models.BooleanField(default=False)
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            # Mercado Pago keeps one customer per email (cause 101 "the customer already exist").
            models.UniqueConstraint(
                fields=["gateway", "email"],
                condition=models.Q(gateway="mercadopago", deleted=False),
                name="sim_mp_customer_email_unique",
            )
        ]

    def __str__(self) -> str:
        return self.public_id


class SimCard(models.Model):
    """A saved card (Culqi `crd_…`, Mercado Pago customer card). Only displayable card facts."""

    gateway = models.CharField(max_length=20, choices=Gateway.choices)
    public_id = models.CharField(max_length=64, unique=True)
    customer = models.ForeignKey(SimCustomer, on_delete=models.PROTECT, related_name="cards")
    source_token = models.ForeignKey("SimToken", on_delete=models.PROTECT, related_name="+")
    bin = models.CharField(max_length=8)
    last4 = models.CharField(max_length=4)
    brand = models.CharField(max_length=20)  # visa | mastercard | amex | diners
    card_type = models.CharField(max_length=10)  # credit | debit
    exp_month = models.PositiveSmallIntegerField()
    exp_year = models.PositiveSmallIntegerField()
    cardholder_name = models.CharField(max_length=100, blank=True)
    scenario = models.CharField(max_length=40)  # the test outcome the card number selected
    metadata = models.JSONField(default=dict, blank=True)
    deleted = models.BooleanField(default=False)
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return self.public_id


class SimToken(models.Model):
    """A single-use card token. `used_at` is set, under a row lock, by the one request that spends it."""

    gateway = models.CharField(max_length=20, choices=Gateway.choices)
    public_id = models.CharField(max_length=64, unique=True)
    bin = models.CharField(max_length=8)  # first six digits
    last4 = models.CharField(max_length=4)
    card_length = models.PositiveSmallIntegerField()
    brand = models.CharField(max_length=20)  # visa | mastercard | amex | diners
    card_type = models.CharField(max_length=10)  # credit | debit
    exp_month = models.PositiveSmallIntegerField()
    exp_year = models.PositiveSmallIntegerField()
    security_code_length = models.PositiveSmallIntegerField(default=3)
    luhn_valid = models.BooleanField(default=True)
    cardholder_name = models.CharField(max_length=100, blank=True)
    cardholder_identification = models.JSONField(default=dict, blank=True)
    email = models.CharField(max_length=254, blank=True)
    # Culqi: "approve", "review_3ds" or a decline_code chosen by the card number. Mercado Pago
    # decides by cardholder name at payment time, so this stays "".
    scenario = models.CharField(max_length=40, blank=True)
    card = models.ForeignKey(SimCard, null=True, blank=True, on_delete=models.PROTECT, related_name="tokens")
    client_ip = models.CharField(max_length=45, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    used_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField()
    created_at = models.DateTimeField()

    def __str__(self) -> str:
        return self.public_id


class SimCharge(models.Model):
    """A Culqi charge or a Mercado Pago payment.

    `status` is Mercado Pago's own word for MP payments (approved, authorized, rejected, in_process,
    cancelled, refunded); for Culqi, which has no status field, it is the simulator's bookkeeping word:
    authorized | captured | declined | voided. `payload` is the object as last rendered on the wire.
    """

    gateway = models.CharField(max_length=20, choices=Gateway.choices)
    public_id = models.CharField(max_length=64, unique=True)  # chr_test_… or MP's numeric id as text
    status = models.CharField(max_length=20)
    status_detail = models.CharField(max_length=60, blank=True)  # MP status_detail / Culqi decline_code
    amount = models.BigIntegerField()  # minor units of `currency`, as authorized
    amount_refunded = models.BigIntegerField(default=0)  # minor units
    currency = models.CharField(max_length=3)
    email = models.CharField(max_length=254, blank=True)
    description = models.CharField(max_length=255, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    external_reference = models.CharField(max_length=255, blank=True, db_index=True)
    capture = models.BooleanField(default=True)  # what the caller asked for
    captured = models.BooleanField(default=False)
    token = models.ForeignKey(SimToken, null=True, blank=True, on_delete=models.PROTECT, related_name="charges")
    card = models.ForeignKey(SimCard, null=True, blank=True, on_delete=models.PROTECT, related_name="charges")
    customer = models.ForeignKey(SimCustomer, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    details = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder)  # facts the renderer needs
    payload = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder)  # Decimals kept as text
    created_at = models.DateTimeField(db_index=True)
    approved_at = models.DateTimeField(null=True, blank=True)
    captured_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["gateway", "email", "amount"])]

    def __str__(self) -> str:
        return self.public_id

    @property
    def remaining(self) -> int:
        return self.amount - self.amount_refunded


class SimRefund(models.Model):
    gateway = models.CharField(max_length=20, choices=Gateway.choices)
    public_id = models.CharField(max_length=64, unique=True)
    charge = models.ForeignKey(SimCharge, on_delete=models.PROTECT, related_name="refunds")
    amount = models.BigIntegerField()  # minor units of charge.currency
    reason = models.CharField(max_length=40, blank=True)
    status = models.CharField(max_length=20, default="approved")
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField()

    def __str__(self) -> str:
        return self.public_id


class SimCheckout(models.Model):
    """A Culqi order or a Mercado Pago Checkout Pro preference, payable on the simulator's page."""

    gateway = models.CharField(max_length=20, choices=Gateway.choices)
    public_id = models.CharField(max_length=80, unique=True)
    order_number = models.CharField(max_length=64, null=True, blank=True)  # Culqi: unique per merchant
    state = models.CharField(max_length=20)  # Culqi: created | pending | paid | expired | deleted
    amount = models.BigIntegerField()  # minor units of `currency`
    currency = models.CharField(max_length=3)
    description = models.CharField(max_length=255, blank=True)
    email = models.CharField(max_length=254, blank=True)
    external_reference = models.CharField(max_length=255, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    details = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder)  # request as sent (items, …)
    charge = models.ForeignKey(SimCharge, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    expires_at = models.DateTimeField(null=True, blank=True)
    paid_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["gateway", "order_number"],
                condition=models.Q(order_number__isnull=False),
                name="sim_checkout_order_number_unique",
            )
        ]

    def __str__(self) -> str:
        return self.public_id


class SimIdempotencyKey(models.Model):
    """An `X-Idempotency-Key` seen by the Mercado Pago simulator, with the answer it got.

    The unique constraint is what makes two concurrent requests with one key create one payment:
    the second insert waits for the first transaction and then fails, and replays its answer.
    """

    gateway = models.CharField(max_length=20, choices=Gateway.choices)
    scope = models.CharField(max_length=200)  # "POST /v1/payments", "PUT /v1/payments/123", …
    key = models.CharField(max_length=200)
    fingerprint = models.CharField(max_length=64)  # sha256 of the canonical request body
    response_status = models.PositiveSmallIntegerField(null=True)
    response_body = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["gateway", "scope", "key"], name="sim_idempotency_key_unique")]

    def __str__(self) -> str:
        return f"{self.scope} {self.key}"


class ReceivedEvent(models.Model):
    """An event SmartPay POSTed to the sandbox receiver (`/sandbox/receiver/<app_id>`), as a client
    app would see it: its headers, body, whether the signature checked out, and what we answered."""

    client_app_id = models.CharField(max_length=40, db_index=True)  # app_…, as in the URL
    event_id = models.CharField(max_length=60, blank=True)  # SmartPay-Event-Id
    event_type = models.CharField(max_length=60, blank=True)
    signature_ok = models.BooleanField()
    signature_problem = models.CharField(max_length=120, blank=True)
    headers = models.JSONField(default=dict)  # the SmartPay-*, Content-Type and User-Agent headers
    body = models.TextField(blank=True)  # the raw body (at most 64 KiB kept)
    answered_status = models.PositiveSmallIntegerField()
    fault = models.CharField(max_length=20, blank=True)  # the `?fail=` asked for, if any
    received_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-received_at", "-id"]

    def __str__(self) -> str:
        return f"{self.event_type} {self.event_id}"
