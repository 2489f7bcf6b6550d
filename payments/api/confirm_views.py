"""POST /api/v1/payments/{id}/confirm: finish a `requires_action` payment after 3-D Secure."""

from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import serializers
from rest_framework.generics import GenericAPIView

from payments.api.idempotency import idempotency_parameter, idempotent
from payments.api.payment_views import PaymentLookupMixin, _payment_response
from payments.api.serializers import PaymentSerializer
from payments.services.confirm import payment_confirm
from smartpay.api.base import StrictSerializer


class Authentication3DSSerializer(StrictSerializer):
    """Culqi3DS's `parameters3DS`, passed through to Culqi as `authentication_3DS` (culqi.md §7)."""

    eci = serializers.RegexField(r"^\d{1,2}$", help_text="Electronic Commerce Indicator, e.g. `05`.")
    xid = serializers.CharField(max_length=100, required=False, allow_blank=True, allow_null=True)
    cavv = serializers.CharField(max_length=100)
    protocolVersion = serializers.RegexField(
        r"^\d+\.\d+(\.\d+)?$", max_length=20, help_text="3-D Secure version, e.g. `2.1.0`."
    )
    directoryServerTransactionId = serializers.CharField(
        max_length=100, required=False, allow_blank=True, allow_null=True
    )

    def to_internal_value(self, data):
        # Keep exactly what the payer's browser produced, minus absent optional values.
        return {key: value for key, value in super().to_internal_value(data).items() if value not in (None, "")}


class PaymentConfirmSerializer(StrictSerializer):
    token = serializers.CharField(
        max_length=200,
        required=False,
        help_text="Culqi: the card token the payment was created with (SmartPay never stores it). "
        "Not sent for a saved card, nor for Mercado Pago.",
    )
    authentication_3DS = Authentication3DSSerializer(
        required=False, help_text="Culqi: the payer's 3-D Secure result. Not sent for Mercado Pago."
    )


class PaymentConfirmView(PaymentLookupMixin, GenericAPIView):
    serializer_class = PaymentSerializer

    @extend_schema(
        operation_id="payments_confirm",
        request=PaymentConfirmSerializer,
        responses=PaymentSerializer,
        parameters=[idempotency_parameter(True)],
        description="Finish a `requires_action` payment after the payer's 3-D Secure challenge. "
        "Culqi: send the same `token` again with `authentication_3DS` (Culqi3DS's result); the charge "
        "is sent once more with it. Mercado Pago: empty body; the gateway is asked where the payment "
        "stands. Answers the payment in its new status (`succeeded`, `failed`, still `requires_action`, "
        "or `processing` when the gateway's answer was lost). Any status but `requires_action`: "
        "409 `invalid_payment_state`. Unconfirmed payments fail after a while with `action_expired`.",
        examples=[
            OpenApiExample(
                "Culqi",
                request_only=True,
                value={
                    "token": "tkn_test_0123456789abcdef",
                    "authentication_3DS": {
                        "eci": "05",
                        "xid": "Y2FyZGluYWxjb21tZXJjZWF1dGg=",
                        "cavv": "AAABAWFlmQAAAABjRWWZEEFgFz+=",
                        "protocolVersion": "2.1.0",
                        "directoryServerTransactionId": "88debec7-a798-46d1-bcfb-db3075fedb82",
                    },
                },
            ),
            OpenApiExample("Mercado Pago", request_only=True, value={}),
        ],
    )
    @idempotent(required=True)
    def post(self, request, payment_id: str):
        payment = self.get_payment(payment_id)
        payload = PaymentConfirmSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        return _payment_response(
            payment_confirm(payment=payment, token=data.get("token"), authentication_3ds=data.get("authentication_3DS"))
        )
