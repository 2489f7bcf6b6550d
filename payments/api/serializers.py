from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from payments.enums import Currency
from payments.models import Customer, Payment, PaymentAttempt, PaymentMethod, Refund
from smartpay.api.base import MetadataField, StrictSerializer


class CustomerSerializer(serializers.ModelSerializer):
    object = serializers.SerializerMethodField()
    metadata = MetadataField()
    email = serializers.CharField(help_text="The customer's email, or an empty string when none was given.")

    class Meta:
        model = Customer
        fields = ["id", "object", "external_id", "email", "name", "phone", "metadata", "created_at", "updated_at"]
        read_only_fields = fields

    def get_object(self, obj) -> str:
        return "customer"


class CustomerWriteSerializer(StrictSerializer):
    external_id = serializers.CharField(max_length=120, required=False, allow_null=True)
    email = serializers.EmailField(required=False, allow_blank=True)
    name = serializers.CharField(max_length=200, required=False, allow_blank=True)
    phone = serializers.RegexField(r"^\+?[0-9 ()\-]{5,20}$", max_length=40, required=False, allow_blank=True)
    metadata = MetadataField()


class MinorUnitsField(serializers.IntegerField):
    """Money in minor units: a JSON integer only (no strings, no decimals, no booleans)."""

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


class SourceSerializer(StrictSerializer):
    gateway = serializers.ChoiceField(choices=["culqi", "mercadopago"])
    token = serializers.CharField(max_length=200)
    payment_method_id = serializers.CharField(max_length=40, required=False)
    issuer_id = serializers.CharField(max_length=40, required=False)
    installments = serializers.IntegerField(min_value=1, max_value=36, required=False, default=1)


def card_source(data: dict | None):
    """The service-level CardSource for a validated `source` object (None when absent)."""
    from payments.services.payments import CardSource

    if not data:
        return None
    return CardSource(
        gateway=data["gateway"],
        token=data["token"],
        payment_method_id=data.get("payment_method_id"),
        issuer_id=data.get("issuer_id"),
        installments=data.get("installments", 1),
    )


class PaymentCreateSerializer(StrictSerializer):
    amount = MinorUnitsField(min_value=1, max_value=10_000_000_00)
    currency = serializers.ChoiceField(choices=Currency.choices)
    customer = serializers.CharField(max_length=40, required=False)
    email = serializers.EmailField(required=False, max_length=50)
    description = serializers.CharField(max_length=255, required=False, allow_blank=True, default="")
    metadata = MetadataField()
    capture = serializers.BooleanField(required=False, default=True)
    source = SourceSerializer(required=False)
    payment_method = serializers.CharField(max_length=40, required=False)
    checkout = serializers.BooleanField(required=False, default=False)
    return_url = serializers.URLField(required=False, max_length=500)

    def validate(self, attrs):
        chosen = [name for name in ("source", "payment_method") if attrs.get(name)] + (
            ["checkout"] if attrs.get("checkout") else []
        )
        if len(chosen) != 1:
            raise serializers.ValidationError(
                {"source": ["Send exactly one of source, payment_method or checkout: true."]}
            )
        if attrs.get("return_url") and not attrs.get("checkout"):
            raise serializers.ValidationError({"return_url": ["Only used with checkout: true."]})
        if attrs.get("checkout") and attrs.get("capture") is False:
            raise serializers.ValidationError({"capture": ["Hosted checkout always captures."]})
        return attrs


class CaptureSerializer(StrictSerializer):
    amount = MinorUnitsField(min_value=1, required=False)


class EmptySerializer(StrictSerializer):
    pass


class RefundCreateSerializer(StrictSerializer):
    amount = MinorUnitsField(min_value=1, required=False)
    reason = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")


class FailureSerializer(serializers.Serializer):
    code = serializers.CharField()
    decline_code = serializers.CharField(allow_null=True)
    message = serializers.CharField()


class AttemptSerializer(serializers.ModelSerializer):
    class Meta:
        model = PaymentAttempt
        fields = ["gateway", "outcome", "error_code", "duration_ms", "created_at"]
        read_only_fields = fields


class PaymentSerializer(serializers.ModelSerializer):
    object = serializers.SerializerMethodField()
    failure = serializers.SerializerMethodField()
    gateway = serializers.SerializerMethodField()
    attempts = AttemptSerializer(many=True, read_only=True)
    metadata = serializers.DictField(child=serializers.CharField())
    next_action = serializers.JSONField(allow_null=True)
    customer = serializers.PrimaryKeyRelatedField(read_only=True, allow_null=True)
    payment_method = serializers.PrimaryKeyRelatedField(read_only=True, allow_null=True)

    class Meta:
        model = Payment
        fields = [
            "id",
            "object",
            "status",
            "amount",
            "amount_refunded",
            "currency",
            "description",
            "customer",
            "gateway",
            "gateway_payment_id",
            "payment_method",
            "capture",
            "failure",
            "next_action",
            "metadata",
            "created_at",
            "updated_at",
            "attempts",
        ]
        read_only_fields = fields

    def get_object(self, obj) -> str:
        return "payment"

    def get_gateway(self, obj) -> str | None:
        return obj.gateway or None

    @extend_schema_field(FailureSerializer(allow_null=True))
    def get_failure(self, obj):
        if not obj.failure_code:
            return None
        return {"code": obj.failure_code, "decline_code": obj.decline_code or None, "message": obj.failure_message}


class RefundSerializer(serializers.ModelSerializer):
    object = serializers.SerializerMethodField()
    payment = serializers.PrimaryKeyRelatedField(read_only=True)
    credits_clawed_back = serializers.SerializerMethodField(
        help_text="For refunds of credit purchases: unconsumed credits taken back by this refund; null otherwise."
    )

    class Meta:
        model = Refund
        fields = [
            "id",
            "object",
            "payment",
            "amount",
            "currency",
            "status",
            "reason",
            "origin",
            "created_at",
            "credits_clawed_back",
        ]
        read_only_fields = fields

    def get_object(self, obj) -> str:
        return "refund"

    def get_credits_clawed_back(self, obj) -> int | None:
        return (getattr(obj, "handler_report", None) or {}).get("credits_clawed_back")


class PaymentMethodSerializer(serializers.ModelSerializer):
    object = serializers.SerializerMethodField()
    customer = serializers.PrimaryKeyRelatedField(read_only=True)
    gateways = serializers.SerializerMethodField()

    class Meta:
        model = PaymentMethod
        fields = ["id", "object", "customer", "brand", "last4", "exp_month", "exp_year", "gateways", "created_at"]
        read_only_fields = fields

    def get_object(self, obj) -> str:
        return "payment_method"

    def get_gateways(self, obj) -> list[str]:
        return sorted(card.gateway for card in obj.gateway_cards.all())


class PaymentMethodCreateSerializer(StrictSerializer):
    source = SourceSerializer()


class GatewaySerializer(serializers.Serializer):
    name = serializers.CharField()
    display_name = serializers.CharField()
    healthy = serializers.BooleanField()
    public_key = serializers.CharField()
    api_base = serializers.CharField()
    currencies = serializers.ListField(child=serializers.CharField())
