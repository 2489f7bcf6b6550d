from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.generics import GenericAPIView
from rest_framework.response import Response

from payments import selectors
from payments.api.mixins import CustomerScopedMixin
from payments.api.serializers import CustomerSerializer, CustomerWriteSerializer
from payments.services.customers import customer_create, customer_update
from smartpay.api.base import CursorPagination, TenantScopedMixin


class CustomerListCreateView(TenantScopedMixin, GenericAPIView):
    serializer_class = CustomerSerializer
    pagination_class = CursorPagination
    filter_backends = []  # the selector applies the documented query filters (no view queryset to filter)

    @extend_schema(
        operation_id="customers_list",
        parameters=[
            OpenApiParameter("external_id", str, description="Only the customer with this external id."),
            OpenApiParameter("email", str, description="Only customers with this email (case-insensitive)."),
        ],
        responses=CustomerSerializer(many=True),
    )
    def get(self, request):
        queryset = selectors.customer_list(
            client_app=self.client_app,
            external_id=request.query_params.get("external_id"),
            email=request.query_params.get("email"),
        )
        page = self.paginate_queryset(queryset)
        return self.get_paginated_response(CustomerSerializer(page, many=True).data)

    @extend_schema(
        operation_id="customers_create", request=CustomerWriteSerializer, responses={201: CustomerSerializer}
    )
    def post(self, request):
        payload = CustomerWriteSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        customer = customer_create(client_app=self.client_app, **payload.validated_data)
        return Response(CustomerSerializer(customer).data, status=status.HTTP_201_CREATED)


class CustomerDetailView(CustomerScopedMixin, GenericAPIView):
    serializer_class = CustomerSerializer

    @extend_schema(operation_id="customers_retrieve", responses=CustomerSerializer)
    def get(self, request, customer_id: str):
        return Response(CustomerSerializer(self.get_customer(customer_id)).data)

    @extend_schema(operation_id="customers_update", request=CustomerWriteSerializer, responses=CustomerSerializer)
    def patch(self, request, customer_id: str):
        customer = self.get_customer(customer_id)
        payload = CustomerWriteSerializer(data=request.data, partial=True)
        payload.is_valid(raise_exception=True)
        customer = customer_update(customer=customer, **payload.validated_data)
        return Response(CustomerSerializer(customer).data)
