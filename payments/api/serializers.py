from rest_framework import serializers

from payments.models import Customer
from smartpay.api.base import MetadataField, StrictSerializer


class CustomerSerializer(serializers.ModelSerializer):
    object = serializers.SerializerMethodField()
    metadata = MetadataField()

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
