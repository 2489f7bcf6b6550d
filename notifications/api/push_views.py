"""Web Push subscriptions of a client app's customer: register, list, delete.

Another app's customer or subscription is not found (404), exactly as a missing one."""

from django.conf import settings
from django.http import Http404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.generics import GenericAPIView
from rest_framework.response import Response

from notifications import push
from notifications.api.push_serializers import PushSubscriptionCreateSerializer, PushSubscriptionSerializer
from notifications.models import PushSubscription
from payments.api.mixins import CustomerScopedMixin
from smartpay.api.base import CursorPagination, TenantScopedMixin


class PushSubscriptionListCreateView(CustomerScopedMixin, GenericAPIView):
    queryset = PushSubscription.objects.none()  # for schema introspection only; views scope by customer
    serializer_class = PushSubscriptionSerializer
    pagination_class = CursorPagination

    @extend_schema(operation_id="customers_push_subscriptions_list", responses=PushSubscriptionSerializer(many=True))
    def get(self, request, customer_id: str):
        customer = self.get_customer(customer_id)
        page = self.paginate_queryset(PushSubscription.objects.filter(customer=customer))
        return self.get_paginated_response(PushSubscriptionSerializer(page, many=True).data)

    @extend_schema(
        operation_id="customers_push_subscriptions_create",
        request=PushSubscriptionCreateSerializer,
        responses={
            201: PushSubscriptionSerializer,
            200: OpenApiResponse(PushSubscriptionSerializer, description="The endpoint was already registered."),
        },
        description="Register the payer's browser for Web Push: the body is the browser's "
        "`PushSubscription.toJSON()`. The same endpoint again answers the existing subscription (200).",
    )
    def post(self, request, customer_id: str):
        customer = self.get_customer(customer_id)
        payload = PushSubscriptionCreateSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        subscription, created = push.subscription_save(
            customer=customer, endpoint=data["endpoint"], p256dh=data["keys"]["p256dh"], auth=data["keys"]["auth"]
        )
        return Response(
            PushSubscriptionSerializer(subscription).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )


class PushSubscriptionDetailView(CustomerScopedMixin, GenericAPIView):
    queryset = PushSubscription.objects.none()
    serializer_class = PushSubscriptionSerializer

    @extend_schema(operation_id="customers_push_subscriptions_delete", responses={204: None})
    def delete(self, request, customer_id: str, subscription_id: str):
        customer = self.get_customer(customer_id)
        deleted, _ = PushSubscription.objects.filter(customer=customer, pk=subscription_id).delete()
        if not deleted:
            raise Http404
        return Response(status=status.HTTP_204_NO_CONTENT)


class VapidPublicKeySerializer(serializers.Serializer):
    public_key = serializers.CharField(help_text="The application server key (base64url) for pushManager.subscribe().")
    enabled = serializers.BooleanField(help_text="False when no VAPID key pair is configured: nothing is pushed.")


class VapidPublicKeyView(TenantScopedMixin, GenericAPIView):
    serializer_class = VapidPublicKeySerializer

    @extend_schema(operation_id="push_vapid_public_key", responses=VapidPublicKeySerializer)
    def get(self, request):
        """The key a browser needs to subscribe (`applicationServerKey`)."""
        return Response(
            {"public_key": settings.WEBPUSH_VAPID_PUBLIC_KEY or "", "enabled": push.push_enabled()},
            status=status.HTTP_200_OK,
        )
