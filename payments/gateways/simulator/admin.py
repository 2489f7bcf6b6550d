"""Read-only views of the simulators' state, for people poking at the sandbox. Change it through the
simulated APIs and /sandbox/control, not here."""

from django.contrib import admin

from payments.gateways.simulator.models import (
    GatewayControl,
    ReceivedEvent,
    SimCard,
    SimCharge,
    SimCheckout,
    SimCustomer,
    SimRefund,
    SimToken,
)


class ReadOnly(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(SimCharge)
class SimChargeAdmin(ReadOnly):
    list_display = ("public_id", "gateway", "status", "status_detail", "amount", "amount_refunded", "currency", "email")
    list_filter = ("gateway", "status")
    search_fields = ("public_id", "email", "external_reference")


@admin.register(SimRefund)
class SimRefundAdmin(ReadOnly):
    list_display = ("public_id", "gateway", "charge", "amount", "status", "created_at")
    list_filter = ("gateway",)


@admin.register(SimToken)
class SimTokenAdmin(ReadOnly):
    list_display = ("public_id", "gateway", "brand", "bin", "last4", "cardholder_name", "scenario", "used_at")
    list_filter = ("gateway", "brand")


@admin.register(SimCustomer)
class SimCustomerAdmin(ReadOnly):
    list_display = ("public_id", "gateway", "email", "deleted")
    list_filter = ("gateway",)
    search_fields = ("public_id", "email")


@admin.register(SimCard)
class SimCardAdmin(ReadOnly):
    list_display = ("public_id", "gateway", "customer", "brand", "last4", "deleted")
    list_filter = ("gateway",)


@admin.register(SimCheckout)
class SimCheckoutAdmin(ReadOnly):
    list_display = ("public_id", "gateway", "state", "amount", "currency", "external_reference", "paid_at")
    list_filter = ("gateway", "state")


@admin.register(GatewayControl)
class GatewayControlAdmin(ReadOnly):
    list_display = ("gateway", "mode", "latency_ms", "failure_rate", "seed", "only_method", "only_path")


@admin.register(ReceivedEvent)
class ReceivedEventAdmin(ReadOnly):
    list_display = ("received_at", "client_app_id", "event_type", "event_id", "signature_ok", "answered_status")
    list_filter = ("signature_ok", "event_type")
    search_fields = ("event_id", "client_app_id")
