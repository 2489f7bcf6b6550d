"""Web Push subscriptions: the browser's `PushSubscription.toJSON()` in, the stored row out."""

from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import URLValidator
from rest_framework import serializers

from notifications import push
from notifications.models import PushSubscription
from smartpay.api.base import StrictCharField, StrictSerializer


class PushSubscriptionSerializer(serializers.ModelSerializer):
    object = serializers.SerializerMethodField()
    customer = serializers.PrimaryKeyRelatedField(read_only=True)

    class Meta:
        model = PushSubscription
        fields = ["id", "object", "customer", "endpoint", "created_at", "last_used_at"]
        read_only_fields = fields

    def get_object(self, obj) -> str:
        return "push_subscription"


class PushKeysSerializer(StrictSerializer):
    p256dh = StrictCharField(
        max_length=200, help_text="base64url of the browser's 65-byte uncompressed P-256 public key."
    )
    auth = StrictCharField(max_length=100, help_text="base64url of the browser's 16-byte auth secret.")

    def validate_p256dh(self, value: str) -> str:
        try:
            push.check_p256dh(value)
        except ValueError as error:
            raise serializers.ValidationError(str(error)) from None
        return value

    def validate_auth(self, value: str) -> str:
        try:
            push.check_auth(value)
        except ValueError as error:
            raise serializers.ValidationError(str(error)) from None
        return value


class PushSubscriptionCreateSerializer(StrictSerializer):
    """Exactly what `JSON.stringify(subscription)` gives in the browser (`expirationTime` is ignored)."""

    endpoint = StrictCharField(max_length=1000, help_text="The push service URL (https).")
    expirationTime = serializers.IntegerField(required=False, allow_null=True, help_text="Ignored.")
    keys = PushKeysSerializer()

    def validate_endpoint(self, value: str) -> str:
        value = value.strip()
        schemes = ["https"] if settings.EVENTS_REQUIRE_HTTPS else ["https", "http"]
        try:
            URLValidator(schemes=schemes)(value)
        except DjangoValidationError:
            raise serializers.ValidationError(
                "Must be the push service's https:// URL (PushSubscription.endpoint)."
            ) from None
        parts = urlsplit(value)
        if parts.username is not None or parts.password is not None:
            raise serializers.ValidationError("Must not contain a user name or password.")
        return value
