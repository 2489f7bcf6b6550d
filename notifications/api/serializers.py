from django.core.validators import URLValidator
from django.utils import timezone
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from notifications.models import CustomerPreferences, DeliveryAttempt, DeliveryState, Language, OutgoingEvent
from payments.models import ClientApp
from smartpay.api.base import StrictSerializer

SECRET_HINT_LENGTH = 10  # "whsec_" + 4 characters: tells secrets apart, useless for signing


class DeliveryAttemptSerializer(serializers.ModelSerializer):
    status_code = serializers.IntegerField(
        read_only=True, allow_null=True, help_text="The HTTP status your endpoint answered; null when no answer came."
    )
    duration_ms = serializers.IntegerField(read_only=True, allow_null=True)
    response_excerpt = serializers.CharField(
        read_only=True, help_text="The first 500 characters of your endpoint's answer."
    )
    error = serializers.CharField(
        read_only=True, help_text="Timeout, connection error, refused URL…; empty when an answer came."
    )

    class Meta:
        model = DeliveryAttempt
        fields = ["number", "url", "status_code", "duration_ms", "response_excerpt", "error", "created_at"]
        read_only_fields = fields


class EventSerializer(serializers.ModelSerializer):
    object = serializers.SerializerMethodField()
    data = serializers.JSONField(read_only=True, help_text="The object as the API showed it when the event happened.")
    attempts = serializers.IntegerField(read_only=True, help_text="How many times delivery was tried.")
    next_attempt_at = serializers.SerializerMethodField(help_text="When the next try is due; null unless pending.")
    delivered_at = serializers.DateTimeField(read_only=True, allow_null=True)
    last_error = serializers.CharField(read_only=True, help_text="Why the last try failed; empty when it did not.")

    class Meta:
        model = OutgoingEvent
        fields = [
            "id",
            "object",
            "type",
            "created_at",
            "data",
            "delivery_state",
            "attempts",
            "next_attempt_at",
            "delivered_at",
            "last_error",
        ]
        read_only_fields = fields

    def get_object(self, obj) -> str:
        return "event"

    @extend_schema_field(serializers.DateTimeField(allow_null=True))
    def get_next_attempt_at(self, obj):
        if obj.delivery_state != DeliveryState.PENDING:
            return None
        return serializers.DateTimeField().to_representation(obj.next_attempt_at)


class EventDetailSerializer(EventSerializer):
    delivery_attempts = DeliveryAttemptSerializer(many=True, read_only=True, help_text="Oldest first.")

    class Meta(EventSerializer.Meta):
        fields = [*EventSerializer.Meta.fields, "delivery_attempts"]
        read_only_fields = fields


class WebhookEndpointSerializer(serializers.ModelSerializer):
    """The calling app's endpoint; the secret appears only as a hint (see rotate-secret)."""

    object = serializers.SerializerMethodField()
    url = serializers.CharField(source="webhook_url", read_only=True, help_text="Where events are POSTed; empty: none.")
    enabled = serializers.BooleanField(
        source="webhook_enabled", read_only=True, help_text="False: events are recorded, not sent."
    )
    secret_hint = serializers.SerializerMethodField(help_text="The signing secret's first 10 characters.")
    previous_secret_expires_at = serializers.SerializerMethodField(
        help_text="Until when the secret replaced by the last rotation still signs; null when none does."
    )

    class Meta:
        model = ClientApp
        fields = ["object", "url", "enabled", "secret_hint", "previous_secret_expires_at"]
        read_only_fields = fields

    def get_object(self, obj) -> str:
        return "webhook_endpoint"

    def get_secret_hint(self, obj) -> str:
        return f"{obj.webhook_secret[:SECRET_HINT_LENGTH]}…" if obj.webhook_secret else ""

    @extend_schema_field(serializers.DateTimeField(allow_null=True))
    def get_previous_secret_expires_at(self, obj):
        expires_at = obj.previous_webhook_secret_expires_at
        if not obj.previous_webhook_secret or expires_at is None or expires_at <= timezone.now():
            return None
        return serializers.DateTimeField().to_representation(expires_at)


class WebhookEndpointSecretSerializer(WebhookEndpointSerializer):
    """The answer to a rotation: the only time the full secret is shown."""

    secret = serializers.CharField(
        source="webhook_secret", read_only=True, help_text="The new signing secret. Store it now."
    )

    class Meta(WebhookEndpointSerializer.Meta):
        fields = [*WebhookEndpointSerializer.Meta.fields, "secret"]
        read_only_fields = fields


class WebhookEndpointWriteSerializer(StrictSerializer):
    url = serializers.URLField(
        max_length=200,
        allow_blank=True,
        required=False,
        validators=[URLValidator(schemes=["http", "https"])],
        help_text="An http(s) URL on a public address; empty to stop deliveries.",
    )
    enabled = serializers.BooleanField(required=False)


# --- Payers' preferences --------------------------------------------------------------------------


class _JsonBooleanField(serializers.BooleanField):
    """true or false only: "yes", 1 or "true" are refused rather than guessed."""

    def to_internal_value(self, data):
        if not isinstance(data, bool):
            self.fail("invalid", input=data)
        return data


class _ThresholdField(serializers.IntegerField):
    """A count of credits: a JSON integer only (no strings, decimals or booleans)."""

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


class CustomerPreferencesWriteSerializer(StrictSerializer):
    language = serializers.ChoiceField(
        choices=Language.choices, required=False, default=Language.ES, help_text="Of the payer's emails."
    )
    email_alerts = _JsonBooleanField(
        required=False,
        default=True,
        help_text="Low balance, credits expiring or expired, renewal failed. Receipts and invoices are always sent.",
    )
    billing_email = serializers.EmailField(
        source="extra_billing_email",
        max_length=254,
        required=False,
        allow_blank=True,
        default="",
        help_text="Also receives receipts and invoices; empty: nobody else.",
    )
    low_balance_threshold = _ThresholdField(
        min_value=0,
        max_value=1_000_000_000,
        required=False,
        allow_null=True,
        default=None,
        help_text="Credits: `credits.low_balance` is told when the balance drops below it. "
        "null: the server's default (`effective_low_balance_threshold`).",
    )


class CustomerPreferencesSerializer(serializers.ModelSerializer):
    object = serializers.SerializerMethodField()
    customer = serializers.PrimaryKeyRelatedField(read_only=True)
    low_balance_threshold = serializers.IntegerField(
        read_only=True, allow_null=True, help_text="The customer's own threshold; null: the server's default."
    )
    effective_low_balance_threshold = serializers.SerializerMethodField(
        help_text="The threshold that applies: `low_balance_threshold`, or the server's default when null."
    )
    updated_at = serializers.DateTimeField(read_only=True, allow_null=True, help_text="null: never saved (defaults).")
    billing_email = serializers.EmailField(
        source="extra_billing_email", read_only=True, help_text="An extra recipient of receipts and invoices."
    )

    class Meta:
        model = CustomerPreferences
        fields = [
            "object",
            "customer",
            "language",
            "email_alerts",
            "billing_email",
            "low_balance_threshold",
            "effective_low_balance_threshold",
            "updated_at",
        ]
        read_only_fields = fields

    def get_object(self, obj) -> str:
        return "customer_preferences"

    def get_effective_low_balance_threshold(self, obj) -> int:
        from notifications.selectors import low_balance_threshold

        return low_balance_threshold(customer_id=obj.customer_id, preferences=obj)
