"""Emails to payers in the admin: every `SentEmail` (read-only; filters kind/status) and the
suppressed addresses, where staff lift a suppression by deleting it (the payer fixed their mailbox).

Imported at the end of notifications/admin.py (one line), which registers the rest of the app.
"""

from django.contrib import admin

from notifications.alerts import alert_resolve
from notifications.emails import EMAIL_BOUNCING
from notifications.models import AlertResolution, SentEmail, SuppressedAddress
from smartpay.admin_base import RecordAdmin
from smartpay.clock import business_time


def _local(value) -> str:
    return business_time(value).strftime("%Y-%m-%d %H:%M:%S") if value else "-"


@admin.register(SentEmail)
class SentEmailAdmin(RecordAdmin):
    list_display = ["id", "kind", "recipient", "status", "attempts", "created", "sent", "subject_key"]
    list_filter = ["kind", "status"]
    search_fields = ["id", "recipient", "subject_key", "provider_message_id"]
    list_select_related = ["customer"]
    date_hierarchy = "created_at"

    @admin.display(description="created (Lima)", ordering="created_at")
    def created(self, obj):
        return _local(obj.created_at)

    @admin.display(description="sent (Lima)", ordering="sent_at")
    def sent(self, obj):
        return _local(obj.sent_at)


@admin.register(SuppressedAddress)
class SuppressedAddressAdmin(RecordAdmin):
    """Read-only, except deleting: that lifts the suppression (and resolves its alert)."""

    list_display = ["address", "reason", "detail", "created"]
    list_filter = ["reason"]
    search_fields = ["address"]

    @admin.display(description="since (Lima)", ordering="created_at")
    def created(self, obj):
        return _local(obj.created_at)

    def has_delete_permission(self, request, obj=None):
        return admin.ModelAdmin.has_delete_permission(self, request, obj)

    def delete_model(self, request, obj):
        super().delete_model(request, obj)
        alert_resolve(EMAIL_BOUNCING, obj.address, AlertResolution.STAFF, user=request.user)

    def delete_queryset(self, request, queryset):
        addresses = list(queryset.values_list("address", flat=True))
        super().delete_queryset(request, queryset)
        for address in addresses:
            alert_resolve(EMAIL_BOUNCING, address, AlertResolution.STAFF, user=request.user)
