from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from credits.models import CreditAutoRenewal, CreditLedgerEntry, CreditLot, CreditPlan, CreditPurchase
from payments.api.serializers import MinorUnitsField, PaymentSerializer, SourceSerializer
from payments.enums import Currency
from smartpay.api.base import StrictCharField, StrictSerializer


class CreditsField(MinorUnitsField):
    """A count of credits: a JSON integer only (no strings, decimals or booleans)."""


class PricesSerializer(serializers.Serializer):
    PEN = serializers.IntegerField(help_text="Céntimos.")
    USD = serializers.IntegerField(help_text="Cents.")


class PlanSerializer(serializers.ModelSerializer):
    object = serializers.SerializerMethodField()
    bonus_credits = serializers.IntegerField(read_only=True)
    total_credits = serializers.IntegerField(read_only=True)
    prices = PricesSerializer(read_only=True)

    class Meta:
        model = CreditPlan
        fields = [
            "code",
            "object",
            "name",
            "credits",
            "bonus_percent",
            "bonus_credits",
            "total_credits",
            "prices",
            "validity_days",
        ]
        read_only_fields = fields

    def get_object(self, obj) -> str:
        return "plan"


class CreditPurchaseCreateSerializer(StrictSerializer):
    plan = StrictCharField(max_length=40)
    currency = serializers.ChoiceField(choices=Currency.choices)
    source = SourceSerializer(required=False)
    payment_method = StrictCharField(max_length=40, required=False)

    def validate(self, attrs):
        if bool(attrs.get("source")) == bool(attrs.get("payment_method")):
            raise serializers.ValidationError({"source": ["Send exactly one of source or payment_method."]})
        return attrs


class CreditPurchaseSerializer(serializers.ModelSerializer):
    object = serializers.SerializerMethodField()
    plan = serializers.SlugRelatedField(slug_field="code", read_only=True)
    customer = serializers.PrimaryKeyRelatedField(read_only=True)
    credits_granted = serializers.SerializerMethodField()
    payment = PaymentSerializer(read_only=True, allow_null=True)

    class Meta:
        model = CreditPurchase
        fields = [
            "id",
            "object",
            "customer",
            "plan",
            "status",
            "amount",
            "currency",
            "paid_credits",
            "bonus_credits",
            "credits_granted",
            "validity_days",
            "payment",
            "created_at",
            "granted_at",
        ]
        read_only_fields = fields

    def get_object(self, obj) -> str:
        return "credit_purchase"

    def get_credits_granted(self, obj) -> int:
        return sum(lot.granted for lot in obj.lots.all())


class CreditLotSerializer(serializers.ModelSerializer):
    class Meta:
        model = CreditLot
        fields = ["id", "kind", "granted", "remaining", "expires_at", "created_at"]
        read_only_fields = fields


class CreditBalanceSerializer(serializers.Serializer):
    object = serializers.SerializerMethodField()
    customer = serializers.CharField()
    available = serializers.IntegerField()
    expiring_soon = serializers.IntegerField(help_text="Credits that expire within the next 7 days.")
    lots = CreditLotSerializer(many=True, help_text="Lots with credits left, in the order they are spent.")

    def get_object(self, obj) -> str:
        return "credit_balance"


class CreditConsumptionCreateSerializer(StrictSerializer):
    amount = CreditsField(min_value=1, max_value=1_000_000_000)
    reference = StrictCharField(
        max_length=120,
        required=False,
        allow_blank=True,
        default="",
        help_text="Your id for what the credits pay for; a reference is spent at most once per customer.",
    )
    description = StrictCharField(max_length=255, required=False, allow_blank=True, default="")


class ConsumedLotSerializer(serializers.Serializer):
    lot = serializers.CharField()
    kind = serializers.CharField()
    amount = serializers.IntegerField(help_text="Credits taken from this lot.")


class CreditConsumptionSerializer(serializers.Serializer):
    id = serializers.CharField()
    object = serializers.SerializerMethodField()
    customer = serializers.SerializerMethodField()
    amount = serializers.IntegerField()
    reference = serializers.CharField()
    description = serializers.CharField()
    available = serializers.IntegerField(source="balance_after", help_text="Credits left after this consumption.")
    lots = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField()

    def get_object(self, obj) -> str:
        return "credit_consumption"

    def get_customer(self, obj) -> str:
        return obj.account.customer_id

    @extend_schema_field(ConsumedLotSerializer(many=True))
    def get_lots(self, obj):
        entries = getattr(obj, "taken", None) or obj.entries.select_related("lot").order_by("seq")
        return [{"lot": entry.lot_id, "kind": entry.lot.kind, "amount": -entry.amount} for entry in entries]


class CreditLedgerEntrySerializer(serializers.ModelSerializer):
    object = serializers.SerializerMethodField()
    type = serializers.CharField(source="entry_type")
    lot = serializers.PrimaryKeyRelatedField(read_only=True)
    kind = serializers.CharField(source="lot.kind")
    consumption = serializers.PrimaryKeyRelatedField(read_only=True, allow_null=True)
    purchase = serializers.PrimaryKeyRelatedField(read_only=True, allow_null=True)
    refund = serializers.PrimaryKeyRelatedField(read_only=True, allow_null=True)

    class Meta:
        model = CreditLedgerEntry
        fields = [
            "id",
            "object",
            "type",
            "amount",
            "balance_after",
            "lot",
            "kind",
            "consumption",
            "purchase",
            "refund",
            "reference",
            "description",
            "created_at",
        ]
        read_only_fields = fields

    def get_object(self, obj) -> str:
        return "credit_ledger_entry"


class AutoRenewalWriteSerializer(StrictSerializer):
    plan = StrictCharField(max_length=40)
    currency = serializers.ChoiceField(choices=Currency.choices)
    payment_method = StrictCharField(max_length=40)
    threshold = CreditsField(min_value=1, max_value=1_000_000_000, required=False, allow_null=True, default=None)
    renew_on_expiry = serializers.BooleanField(required=False, default=False)
    max_per_day = serializers.IntegerField(min_value=1, max_value=10, required=False, default=2)

    def validate(self, attrs):
        if attrs.get("threshold") is None and not attrs.get("renew_on_expiry"):
            raise serializers.ValidationError({"threshold": ["Send a threshold, renew_on_expiry: true, or both."]})
        return attrs


class AutoRenewalSerializer(serializers.ModelSerializer):
    object = serializers.SerializerMethodField()
    customer = serializers.SerializerMethodField()
    plan = serializers.SlugRelatedField(slug_field="code", read_only=True)
    payment_method = serializers.PrimaryKeyRelatedField(read_only=True)

    class Meta:
        model = CreditAutoRenewal
        fields = [
            "id",
            "object",
            "customer",
            "plan",
            "currency",
            "payment_method",
            "threshold",
            "renew_on_expiry",
            "max_per_day",
            "enabled",
            "consecutive_declines",
            "paused_until",
            "disabled_reason",
            "last_attempt_at",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    def get_object(self, obj) -> str:
        return "auto_renewal"

    def get_customer(self, obj) -> str:
        return obj.account.customer_id
