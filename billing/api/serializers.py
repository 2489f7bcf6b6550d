from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from billing.enums import IdentityDocument, PreferredDocument
from billing.identity import document_number_error
from billing.models import BillingProfile, Invoice, InvoiceLine
from smartpay.api.base import StrictCharField, StrictSerializer


class BillingProfileWriteSerializer(StrictSerializer):
    document_type = serializers.ChoiceField(choices=IdentityDocument.choices)
    document_number = StrictCharField(max_length=15, help_text="DNI: 8 digits. RUC: 11 digits with its check digit.")
    legal_name = StrictCharField(max_length=100, help_text="Name or razón social printed on the documents.")
    address = StrictCharField(max_length=200, required=False, allow_blank=True, default="")
    invoice_email = serializers.EmailField(required=False, allow_blank=True, default="")
    preferred_document = serializers.ChoiceField(
        choices=PreferredDocument.choices,
        default=PreferredDocument.BOLETA,
        help_text="`factura` needs document_type RUC.",
    )

    def validate_document_number(self, value: str) -> str:
        return value.strip().upper()

    def validate_legal_name(self, value: str) -> str:
        value = value.strip()
        if not value:
            raise serializers.ValidationError("This field may not be blank.")
        return value

    def validate(self, attrs):
        errors = {}
        problem = document_number_error(attrs["document_type"], attrs["document_number"])
        if problem:
            errors["document_number"] = [problem]
        if attrs["preferred_document"] == PreferredDocument.FACTURA and attrs["document_type"] != IdentityDocument.RUC:
            errors["preferred_document"] = ["A factura needs a RUC: set document_type to RUC or ask for a boleta."]
        if errors:
            raise serializers.ValidationError(errors)
        return attrs


class BillingProfileSerializer(serializers.ModelSerializer):
    object = serializers.SerializerMethodField()
    customer = serializers.PrimaryKeyRelatedField(read_only=True)
    invoice_email = serializers.SerializerMethodField(
        help_text="Where invoices are emailed; null: the customer's own email."
    )

    class Meta:
        model = BillingProfile
        fields = [
            "object",
            "customer",
            "document_type",
            "document_number",
            "legal_name",
            "address",
            "invoice_email",
            "preferred_document",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    def get_object(self, obj) -> str:
        return "billing_profile"

    @extend_schema_field(serializers.EmailField(allow_null=True))
    def get_invoice_email(self, obj) -> str | None:
        return obj.invoice_email or None


class InvoiceLineSerializer(serializers.ModelSerializer):
    class Meta:
        model = InvoiceLine
        fields = ["description", "quantity", "unit_code", "unit_value", "unit_price", "subtotal", "tax", "total"]
        read_only_fields = fields


class BuyerSerializer(serializers.Serializer):
    document_type = serializers.CharField(help_text="SUNAT catalog 06: 1 DNI, 6 RUC, 4 CE, 7 passport, - varios.")
    document_number = serializers.CharField()
    name = serializers.CharField()


class InvoiceSerializer(serializers.ModelSerializer):
    object = serializers.SerializerMethodField()
    number = serializers.CharField(read_only=True, help_text="SERIES-correlative, e.g. B001-00000001.")
    sunat_document_type = serializers.CharField(source="sunat_code", read_only=True, help_text="01, 03 or 07.")
    customer = serializers.PrimaryKeyRelatedField(read_only=True, allow_null=True)
    payment = serializers.PrimaryKeyRelatedField(read_only=True)
    refund = serializers.PrimaryKeyRelatedField(
        read_only=True, allow_null=True, help_text="Credit notes: the refund they document; null otherwise."
    )
    credited_invoice = serializers.PrimaryKeyRelatedField(
        read_only=True, allow_null=True, help_text="Credit notes: the invoice they correct; null otherwise."
    )
    credit_note_reason = serializers.SerializerMethodField(
        help_text="Credit notes: SUNAT catalog 09 reason (01 annulment, 09 decrease in value); null otherwise."
    )
    subtotal = serializers.IntegerField(read_only=True, help_text="Minor units: value without IGV.")
    tax = serializers.IntegerField(read_only=True, help_text="Minor units: IGV.")
    total = serializers.IntegerField(read_only=True, help_text="Minor units: subtotal + tax.")
    tax_rate = serializers.DecimalField(source="igv_percent", max_digits=5, decimal_places=2, read_only=True)
    buyer = serializers.SerializerMethodField()
    lines = InvoiceLineSerializer(many=True, read_only=True)

    class Meta:
        model = Invoice
        fields = [
            "id",
            "object",
            "number",
            "document_type",
            "sunat_document_type",
            "customer",
            "payment",
            "refund",
            "credited_invoice",
            "credit_note_reason",
            "currency",
            "subtotal",
            "tax",
            "tax_rate",
            "total",
            "amount_in_words",
            "buyer",
            "lines",
            "status",
            "issued_at",
        ]
        read_only_fields = fields

    def get_object(self, obj) -> str:
        return "invoice"

    @extend_schema_field(serializers.ChoiceField(choices=["01", "09"], allow_null=True))
    def get_credit_note_reason(self, obj) -> str | None:
        return obj.credit_note_reason or None

    @extend_schema_field(BuyerSerializer)
    def get_buyer(self, obj) -> dict:
        return {
            "document_type": obj.buyer_document_type,
            "document_number": obj.buyer_document_number,
            "name": obj.buyer_name,
        }
