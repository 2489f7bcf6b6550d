"""Credits API: plans, purchases, balance, consumptions, ledger, auto-renewal. Parse, call one service, serialize."""

from django.http import Http404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.generics import GenericAPIView
from rest_framework.response import Response

from credits import selectors, services
from credits.api.serializers import (
    AutoRenewalSerializer,
    AutoRenewalWriteSerializer,
    CreditBalanceSerializer,
    CreditConsumptionCreateSerializer,
    CreditConsumptionSerializer,
    CreditLedgerEntrySerializer,
    CreditPurchaseCreateSerializer,
    CreditPurchaseSerializer,
    PlanSerializer,
)
from credits.models import CreditAutoRenewal, CreditLedgerEntry, CreditPlan
from payments import selectors as payment_selectors
from payments.api.idempotency import idempotency_parameter, idempotent
from payments.api.mixins import CustomerScopedMixin as PaymentsCustomerScopedMixin
from payments.api.serializers import card_source
from payments.models import Customer, PaymentMethod
from smartpay.api.base import CursorPagination, TenantScopedMixin

PROBLEM = OpenApiResponse(description="application/problem+json")


class CustomerScopedMixin(PaymentsCustomerScopedMixin):
    def body_plan(self, code: str) -> CreditPlan:
        try:
            return selectors.plan_get(code=code)
        except CreditPlan.DoesNotExist:
            raise serializers.ValidationError({"plan": ["No such plan."]}) from None

    def body_payment_method(self, customer: Customer, pm_id: str) -> PaymentMethod:
        method = payment_selectors.payment_method_list(customer=customer).filter(pk=pm_id).first()
        if method is None:
            raise serializers.ValidationError({"payment_method": ["No such payment method for this customer."]})
        return method


class PlanListView(TenantScopedMixin, GenericAPIView):
    queryset = CreditPlan.objects.none()  # schema introspection only
    serializer_class = PlanSerializer
    pagination_class = None

    @extend_schema(operation_id="plans_list", responses=PlanSerializer(many=True))
    def get(self, request):
        return Response(PlanSerializer(selectors.plan_list(), many=True).data)


class CreditPurchaseCreateView(CustomerScopedMixin, GenericAPIView):
    serializer_class = CreditPurchaseSerializer

    @extend_schema(
        operation_id="customers_credit_purchases_create",
        request=CreditPurchaseCreateSerializer,
        responses={201: CreditPurchaseSerializer, 400: PROBLEM, 404: PROBLEM, 422: PROBLEM},
        parameters=[idempotency_parameter(True)],
        description="Charge the plan's price with a card token (`source`) or a saved card (`payment_method`). "
        "On success the paid and bonus credits are granted in the same transaction as the payment's "
        "success. A decline is a 201 with the purchase `failed` and the payment's `failure` filled.",
    )
    @idempotent(required=True)
    def post(self, request, customer_id: str):
        customer = self.get_customer(customer_id)
        payload = CreditPurchaseCreateSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        plan = self.body_plan(data["plan"])
        source = card_source(data.get("source"))
        method = self.body_payment_method(customer, data["payment_method"]) if data.get("payment_method") else None
        purchase = services.credit_purchase_create(
            customer=customer, plan=plan, currency=data["currency"], source=source, payment_method=method
        )
        return Response(CreditPurchaseSerializer(purchase).data, status=status.HTTP_201_CREATED)


class CreditBalanceView(CustomerScopedMixin, GenericAPIView):
    serializer_class = CreditBalanceSerializer

    @extend_schema(operation_id="customers_credits_retrieve", responses={200: CreditBalanceSerializer, 404: PROBLEM})
    def get(self, request, customer_id: str):
        balance = selectors.credit_balance_get(customer=self.get_customer(customer_id))
        return Response(CreditBalanceSerializer(balance).data)


class CreditConsumptionCreateView(CustomerScopedMixin, GenericAPIView):
    serializer_class = CreditConsumptionSerializer

    @extend_schema(
        operation_id="customers_credit_consumptions_create",
        request=CreditConsumptionCreateSerializer,
        responses={201: CreditConsumptionSerializer, 400: PROBLEM, 402: PROBLEM, 404: PROBLEM, 409: PROBLEM},
        parameters=[idempotency_parameter(True)],
        description="Spend credits from the lots that expire first (bonus before paid on ties). All or nothing: "
        "402 `insufficient_credits` takes nothing. A non-empty `reference` is spent once per customer "
        "(409 `consumption_reference_used`).",
    )
    @idempotent(required=True)
    def post(self, request, customer_id: str):
        customer = self.get_customer(customer_id)
        payload = CreditConsumptionCreateSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        consumption = services.credit_consume(customer=customer, actor=self.actor(), **payload.validated_data)
        return Response(CreditConsumptionSerializer(consumption).data, status=status.HTTP_201_CREATED)


class CreditLedgerView(CustomerScopedMixin, GenericAPIView):
    queryset = CreditLedgerEntry.objects.none()  # schema introspection only; scoped by customer below
    serializer_class = CreditLedgerEntrySerializer
    pagination_class = CursorPagination

    @extend_schema(operation_id="customers_credit_ledger_list", responses=CreditLedgerEntrySerializer(many=True))
    def get(self, request, customer_id: str):
        customer = self.get_customer(customer_id)
        page = self.paginate_queryset(selectors.credit_ledger_list(customer=customer))
        return self.get_paginated_response(CreditLedgerEntrySerializer(page, many=True).data)


class AutoRenewalView(CustomerScopedMixin, GenericAPIView):
    queryset = CreditAutoRenewal.objects.none()  # schema introspection only
    serializer_class = AutoRenewalSerializer

    def get_renewal(self, customer: Customer) -> CreditAutoRenewal:
        try:
            return selectors.credit_auto_renewal_get(customer=customer)
        except CreditAutoRenewal.DoesNotExist:
            raise Http404 from None

    @extend_schema(operation_id="customers_auto_renewal_retrieve", responses={200: AutoRenewalSerializer, 404: PROBLEM})
    def get(self, request, customer_id: str):
        return Response(AutoRenewalSerializer(self.get_renewal(self.get_customer(customer_id))).data)

    @extend_schema(
        operation_id="customers_auto_renewal_update",
        request=AutoRenewalWriteSerializer,
        responses={200: AutoRenewalSerializer, 400: PROBLEM, 404: PROBLEM},
        description="Create or replace the auto-renewal. Saving it turns it on again and clears a pause.",
    )
    def put(self, request, customer_id: str):
        customer = self.get_customer(customer_id)
        payload = AutoRenewalWriteSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        plan = self.body_plan(data["plan"])
        if plan.price_for(data["currency"]) is None:
            raise serializers.ValidationError({"currency": ["This plan has no price in that currency."]})
        renewal = services.credit_auto_renewal_set(
            customer=customer,
            settings=services.RenewalSettings(
                plan=plan,
                currency=data["currency"],
                payment_method=self.body_payment_method(customer, data["payment_method"]),
                threshold=data["threshold"],
                renew_on_expiry=data["renew_on_expiry"],
                max_per_day=data["max_per_day"],
            ),
        )
        return Response(AutoRenewalSerializer(renewal).data)

    @extend_schema(operation_id="customers_auto_renewal_delete", responses={204: None, 404: PROBLEM})
    def delete(self, request, customer_id: str):
        services.credit_auto_renewal_delete(renewal=self.get_renewal(self.get_customer(customer_id)))
        return Response(status=status.HTTP_204_NO_CONTENT)
