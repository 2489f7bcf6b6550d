"""Events API: the calling app's outgoing events and its webhook endpoint. Parse, call one service,
serialize."""

from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.generics import GenericAPIView
from rest_framework.response import Response

from notifications import selectors, services
from notifications.api.filters import EventFilter
from notifications.api.serializers import (
    CustomerPreferencesSerializer,
    CustomerPreferencesWriteSerializer,
    EventDetailSerializer,
    EventSerializer,
    WebhookEndpointSecretSerializer,
    WebhookEndpointSerializer,
    WebhookEndpointWriteSerializer,
)
from notifications.models import CustomerPreferences, OutgoingEvent
from payments.api.idempotency import idempotency_parameter, idempotent
from payments.api.mixins import CustomerScopedMixin
from payments.api.serializers import EmptySerializer
from payments.models import ClientApp
from smartpay.api.base import CursorPagination, TenantScopedMixin
from smartpay.api.errors import Conflict

PROBLEM = OpenApiResponse(description="application/problem+json")


class WebhookEndpointNotConfigured(Conflict):
    code = "webhook_endpoint_not_configured"
    title = "The webhook endpoint has no URL or is disabled"


class EventLookupMixin(TenantScopedMixin):
    def get_event(self, event_id: str) -> OutgoingEvent:
        try:
            return selectors.event_get(client_app=self.client_app, event_id=event_id)
        except OutgoingEvent.DoesNotExist:
            raise Http404 from None


class EventListView(TenantScopedMixin, GenericAPIView):
    serializer_class = EventSerializer
    pagination_class = CursorPagination
    filterset_class = EventFilter

    def get_queryset(self):
        return selectors.event_list(client_app=self.client_app)

    @extend_schema(
        operation_id="events_list",
        responses=EventSerializer(many=True),
        description="The events recorded for this app, newest first, whatever their delivery state.",
    )
    def get(self, request):
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        return self.get_paginated_response(EventSerializer(page, many=True).data)


class EventDetailView(EventLookupMixin, GenericAPIView):
    serializer_class = EventDetailSerializer

    @extend_schema(operation_id="events_retrieve", responses={200: EventDetailSerializer, 404: PROBLEM})
    def get(self, request, event_id: str):
        return Response(EventDetailSerializer(self.get_event(event_id)).data)


class EventRedeliverView(EventLookupMixin, GenericAPIView):
    serializer_class = EventDetailSerializer

    @extend_schema(
        operation_id="events_redeliver",
        request=EmptySerializer,
        responses={202: EventDetailSerializer, 404: PROBLEM, 409: PROBLEM},
        parameters=[idempotency_parameter(False)],
        description="Send the event again, whatever its state (`failed`, `skipped`, `delivered`, or `pending` "
        "in its back-off): it becomes `pending`, due now, on a fresh retry schedule (`attempts` back to 0; "
        "earlier delivery attempts are kept), and a worker POSTs it to the endpoint's current URL, signed "
        "with the current secrets. Answers 202 with the event as it is then; follow it with "
        "`GET /api/v1/events/{id}`. 409 `webhook_endpoint_not_configured` when the endpoint has no URL or "
        "is disabled. `Idempotency-Key` is optional: a repeat with the same key replays the first answer "
        "instead of sending the event once more.",
    )
    @idempotent(required=False)
    def post(self, request, event_id: str):
        event = self.get_event(event_id)
        EmptySerializer(data=request.data).is_valid(raise_exception=True)
        if not selectors.webhook_endpoint_ready(self.client_app):
            raise WebhookEndpointNotConfigured("Set a webhook URL and enable it (PATCH /api/v1/webhook-endpoint).")
        services.event_redeliver(event)  # the delivery engine's: pending, due now, dispatch queued after commit
        return Response(EventDetailSerializer(self.get_event(event_id)).data, status=status.HTTP_202_ACCEPTED)


class WebhookEndpointView(TenantScopedMixin, GenericAPIView):
    queryset = ClientApp.objects.none()  # schema introspection only; the endpoint is the calling app's
    serializer_class = WebhookEndpointSerializer

    @extend_schema(operation_id="webhook_endpoint_retrieve", responses=WebhookEndpointSerializer)
    def get(self, request):
        return Response(WebhookEndpointSerializer(self.client_app).data)

    @extend_schema(
        operation_id="webhook_endpoint_update",
        request=WebhookEndpointWriteSerializer,
        responses={200: WebhookEndpointSerializer, 400: PROBLEM},
        description="Set `url` and/or `enabled`. A URL on a loopback, private or link-local address (or a "
        "name resolving to one) is refused with a 400 whose `errors` name `url`, unless the server runs "
        "with `EVENTS_ALLOW_PRIVATE_URLS` (sandbox default). An empty `url` stops deliveries.",
    )
    def patch(self, request):
        payload = WebhookEndpointWriteSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        try:
            client_app = services.webhook_endpoint_update(client_app=self.client_app, **payload.validated_data)
        except DjangoValidationError as error:
            raise serializers.ValidationError(error.message_dict) from None
        return Response(WebhookEndpointSerializer(client_app).data)


class WebhookSecretRotateView(TenantScopedMixin, GenericAPIView):
    queryset = ClientApp.objects.none()  # schema introspection only
    serializer_class = WebhookEndpointSecretSerializer

    @extend_schema(
        operation_id="webhook_endpoint_rotate_secret",
        request=EmptySerializer,
        responses={200: WebhookEndpointSecretSerializer},
        parameters=[idempotency_parameter(False)],
        description="A new signing secret, shown in full only in this answer (`secret`). The previous one "
        "keeps signing for 24 h (`previous_secret_expires_at`): deliveries carry one `v1=` per valid "
        "secret, so deploy the new one within that time. Rotating again within 24 h retires the older "
        "one at once. Send an `Idempotency-Key`: if this answer is lost, a repeat with the same key "
        "replays it (the same secret) instead of rotating again.",
    )
    @idempotent(required=False)
    def post(self, request):
        EmptySerializer(data=request.data).is_valid(raise_exception=True)
        client_app = services.webhook_secret_rotate(client_app=self.client_app)
        response = Response(WebhookEndpointSecretSerializer(client_app).data)
        response["Cache-Control"] = "no-store"
        return response


# --- Payers' preferences --------------------------------------------------------------------------


class CustomerPreferencesView(CustomerScopedMixin, GenericAPIView):
    queryset = CustomerPreferences.objects.none()  # schema introspection only
    serializer_class = CustomerPreferencesSerializer

    @extend_schema(
        operation_id="customers_preferences_retrieve",
        responses={200: CustomerPreferencesSerializer, 404: PROBLEM},
        description="How the customer (the payer) wants to hear from SmartPay. A customer who never saved "
        "preferences gets the defaults (`language: es`, `email_alerts: true`, no extra billing email, the "
        "server's low-balance threshold) and `updated_at: null`.",
    )
    def get(self, request, customer_id: str):
        preferences = selectors.customer_preferences_get(customer=self.get_customer(customer_id))
        return Response(CustomerPreferencesSerializer(preferences).data)

    @extend_schema(
        operation_id="customers_preferences_update",
        request=CustomerPreferencesWriteSerializer,
        responses={200: CustomerPreferencesSerializer, 400: PROBLEM, 404: PROBLEM},
        description="Create or replace the customer's preferences; a field left out takes its default. "
        "`language`: `es` or `en` (400 naming `language` otherwise). `low_balance_threshold`: credits, "
        "`credits.low_balance` is told when the available balance drops from at least it to below it; "
        "null uses the server's default. Applies from the next change on.",
    )
    def put(self, request, customer_id: str):
        customer = self.get_customer(customer_id)
        payload = CustomerPreferencesWriteSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        try:
            preferences = services.customer_preferences_update(customer=customer, **payload.validated_data)
        except DjangoValidationError as error:
            raise serializers.ValidationError(error.message_dict) from None
        return Response(CustomerPreferencesSerializer(preferences).data)
