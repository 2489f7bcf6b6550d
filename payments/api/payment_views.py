"""Payments, refunds, saved payment methods and gateways: parse, call one service, serialize."""

from django.http import Http404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.generics import GenericAPIView
from rest_framework.response import Response

from payments import routing, selectors
from payments.api.filters import PaymentFilter
from payments.api.idempotency import idempotency_parameter, idempotent
from payments.api.mixins import CustomerScopedMixin
from payments.api.serializers import (
    CaptureSerializer,
    EmptySerializer,
    GatewaySerializer,
    PaymentCreateSerializer,
    PaymentMethodCreateSerializer,
    PaymentMethodSerializer,
    PaymentSerializer,
    RefundCreateSerializer,
    RefundSerializer,
    card_source,
)
from payments.enums import Currency
from payments.gateways.registry import get_adapter
from payments.models import Customer, Payment, PaymentMethod, Refund
from payments.services.operations import payment_cancel, payment_capture
from payments.services.payment_methods import payment_method_delete, payment_method_save
from payments.services.payments import payment_create
from payments.services.refunds import refund_create
from smartpay.api.base import CursorPagination, TenantScopedMixin


class PaymentLookupMixin(CustomerScopedMixin):
    def get_payment(self, payment_id: str) -> Payment:
        try:
            return selectors.payment_get(client_app=self.client_app, payment_id=payment_id)
        except Payment.DoesNotExist:
            raise Http404 from None


def _payment_response(payment: Payment, status_code: int = status.HTTP_200_OK) -> Response:
    return Response(PaymentSerializer(payment).data, status=status_code)


class PaymentListCreateView(PaymentLookupMixin, GenericAPIView):
    serializer_class = PaymentSerializer
    pagination_class = CursorPagination
    filterset_class = PaymentFilter

    def get_queryset(self):
        return selectors.payment_list(client_app=self.client_app)

    @extend_schema(operation_id="payments_list", responses=PaymentSerializer(many=True))
    def get(self, request):
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        return self.get_paginated_response(PaymentSerializer(page, many=True).data)

    @extend_schema(
        operation_id="payments_create",
        request=PaymentCreateSerializer,
        responses={201: PaymentSerializer},
        parameters=[idempotency_parameter(True)],
        description="Charge a card token (`source`), a saved card (`payment_method`) or open a hosted "
        "checkout (`checkout: true`). A decline is a 201 with `status: failed` and `failure` filled.",
    )
    @idempotent(required=True)
    def post(self, request):
        payload = PaymentCreateSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        customer = self._body_customer(data.get("customer"))
        payment_method = self._body_payment_method(data.get("payment_method"), customer)
        customer = customer or (payment_method.customer if payment_method else None)
        if not data.get("email") and not (customer and customer.email):
            raise serializers.ValidationError({"email": ["Required when the customer has no email."]})
        source = card_source(data.get("source"))
        payment = payment_create(
            client_app=self.client_app,
            amount=data["amount"],
            currency=data["currency"],
            email=data.get("email", ""),
            customer=customer,
            description=data.get("description", ""),
            metadata=data.get("metadata", {}),
            capture=data.get("capture", True),
            source=source,
            payment_method=payment_method,
            checkout=data.get("checkout", False),
            return_url=data.get("return_url", ""),
        )
        return _payment_response(payment, status.HTTP_201_CREATED)

    def _body_customer(self, customer_id):
        if not customer_id:
            return None
        try:
            return selectors.customer_get(client_app=self.client_app, customer_id=customer_id)
        except Customer.DoesNotExist:
            raise serializers.ValidationError({"customer": ["No such customer."]}) from None

    def _body_payment_method(self, pm_id, customer):
        if not pm_id:
            return None
        method = (
            PaymentMethod.objects.filter(pk=pm_id, client_app=self.client_app, deleted_at__isnull=True)
            .select_related("customer")
            .first()
        )
        if method is None or (customer is not None and method.customer_id != customer.pk):
            raise serializers.ValidationError({"payment_method": ["No such payment method for this customer."]})
        return method


class PaymentDetailView(PaymentLookupMixin, GenericAPIView):
    serializer_class = PaymentSerializer

    @extend_schema(operation_id="payments_retrieve")
    def get(self, request, payment_id: str):
        return _payment_response(self.get_payment(payment_id))


class PaymentCaptureView(PaymentLookupMixin, GenericAPIView):
    serializer_class = PaymentSerializer

    @extend_schema(
        operation_id="payments_capture",
        request=CaptureSerializer,
        responses=PaymentSerializer,
        parameters=[idempotency_parameter(True)],
    )
    @idempotent(required=True)
    def post(self, request, payment_id: str):
        payment = self.get_payment(payment_id)
        payload = CaptureSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        return _payment_response(payment_capture(payment=payment, amount=payload.validated_data.get("amount")))


class PaymentCancelView(PaymentLookupMixin, GenericAPIView):
    serializer_class = PaymentSerializer

    @extend_schema(
        operation_id="payments_cancel",
        request=EmptySerializer,
        responses=PaymentSerializer,
        parameters=[idempotency_parameter(True)],
    )
    @idempotent(required=True)
    def post(self, request, payment_id: str):
        payment = self.get_payment(payment_id)
        EmptySerializer(data=request.data).is_valid(raise_exception=True)
        return _payment_response(payment_cancel(payment=payment))


class PaymentRefundsView(PaymentLookupMixin, GenericAPIView):
    queryset = Refund.objects.none()  # for schema introspection only; views scope by client app
    serializer_class = RefundSerializer
    pagination_class = CursorPagination

    @extend_schema(operation_id="payments_refunds_list", responses=RefundSerializer(many=True))
    def get(self, request, payment_id: str):
        payment = self.get_payment(payment_id)
        page = self.paginate_queryset(payment.refunds.all())
        return self.get_paginated_response(RefundSerializer(page, many=True).data)

    @extend_schema(
        operation_id="payments_refunds_create",
        request=RefundCreateSerializer,
        responses={201: RefundSerializer},
        parameters=[idempotency_parameter(True)],
    )
    @idempotent(required=True)
    def post(self, request, payment_id: str):
        payment = self.get_payment(payment_id)
        payload = RefundCreateSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        refund = refund_create(
            payment=payment,
            amount=payload.validated_data.get("amount"),
            reason=payload.validated_data.get("reason", ""),
            actor=self.actor(),
        )
        return Response(RefundSerializer(refund).data, status=status.HTTP_201_CREATED)


class CustomerPaymentsView(PaymentLookupMixin, GenericAPIView):
    queryset = Payment.objects.none()  # for schema introspection only; views scope by client app
    serializer_class = PaymentSerializer
    pagination_class = CursorPagination

    @extend_schema(operation_id="customers_payments_list", responses=PaymentSerializer(many=True))
    def get(self, request, customer_id: str):
        customer = self.get_customer(customer_id)
        page = self.paginate_queryset(selectors.payment_list(client_app=self.client_app).filter(customer=customer))
        return self.get_paginated_response(PaymentSerializer(page, many=True).data)


class PaymentMethodListCreateView(PaymentLookupMixin, GenericAPIView):
    queryset = PaymentMethod.objects.none()  # for schema introspection only; views scope by client app
    serializer_class = PaymentMethodSerializer
    pagination_class = CursorPagination

    @extend_schema(operation_id="customers_payment_methods_list", responses=PaymentMethodSerializer(many=True))
    def get(self, request, customer_id: str):
        customer = self.get_customer(customer_id)
        page = self.paginate_queryset(selectors.payment_method_list(customer=customer))
        return self.get_paginated_response(PaymentMethodSerializer(page, many=True).data)

    @extend_schema(
        operation_id="customers_payment_methods_create",
        request=PaymentMethodCreateSerializer,
        responses={201: PaymentMethodSerializer},
        parameters=[idempotency_parameter(False)],
    )
    @idempotent(required=False)
    def post(self, request, customer_id: str):
        customer = self.get_customer(customer_id)
        payload = PaymentMethodCreateSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        source = payload.validated_data["source"]
        method = payment_method_save(customer=customer, gateway=source["gateway"], token=source["token"])
        return Response(PaymentMethodSerializer(method).data, status=status.HTTP_201_CREATED)


class PaymentMethodDetailView(PaymentLookupMixin, GenericAPIView):
    serializer_class = PaymentMethodSerializer

    @extend_schema(operation_id="customers_payment_methods_delete", responses={204: None})
    def delete(self, request, customer_id: str, payment_method_id: str):
        customer = self.get_customer(customer_id)
        method = selectors.payment_method_list(customer=customer).filter(pk=payment_method_id).first()
        if method is None:
            raise Http404
        payment_method_delete(payment_method=method)
        return Response(status=status.HTTP_204_NO_CONTENT)


class GatewayListView(TenantScopedMixin, GenericAPIView):
    queryset = Payment.objects.none()  # schema introspection only; this view lists gateways
    serializer_class = GatewaySerializer
    pagination_class = None

    @extend_schema(
        operation_id="gateways_list",
        parameters=[OpenApiParameter("currency", str, enum=Currency.values, description="Default PEN.")],
        responses=GatewaySerializer(many=True),
    )
    def get(self, request):
        currency = request.query_params.get("currency", "PEN")
        if currency not in Currency.values:
            raise serializers.ValidationError({"currency": [f"One of {', '.join(Currency.values)}."]})
        rows = []
        for name in routing.candidates(currency):
            adapter = get_adapter(name)
            rows.append(
                {
                    "name": name,
                    "display_name": adapter.display_name,
                    "healthy": routing.is_healthy(name),
                    "public_key": adapter.public_key,
                    "api_base": adapter.tokenization_base,
                    "currencies": sorted(adapter.currencies),
                }
            )
        rows.sort(key=lambda row: not row["healthy"])  # healthy first, routing order kept otherwise
        return Response(GatewaySerializer(rows, many=True).data)
