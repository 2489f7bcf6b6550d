"""Alerts in the admin: the changelist (filters status/kind/severity; Acknowledge and Resolve
actions), each alert's page (where to look, its context, buttons), and the two POST views behind the
buttons of the open-alerts panel on the admin index (`templates/admin/index.html`).

Alerts are for every staff user: any active staff member sees them, and acknowledges them ("I am on
it") without a model permission. Resolving by hand needs the change permission on alerts; rules
resolve theirs by themselves when the problem is gone. Times show in Lima, as everywhere in the admin.

Imported at the end of notifications/admin.py (one line), which registers the rest of the app.
"""

import json
from urllib.parse import quote

from django.contrib import admin, messages
from django.db import transaction
from django.http import HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import NoReverseMatch, path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.http import url_has_allowed_host_and_scheme

from notifications.alerts import AlertKind, alert_acknowledge, alerts_resolve
from notifications.models import Alert, AlertStatus
from reporting.audit import record_staff_action
from smartpay.admin_base import RecordAdmin
from smartpay.clock import business_time

# Where staff look for each kind: (label, admin URL name, query string): the rows at fault.
WHERE_TO_LOOK = {
    AlertKind.BREAKER_OPEN: ("Routing rules (circuit breakers)", "admin:payments_routingrule_changelist", ""),
    AlertKind.GATEWAY_SUCCESS_RATE_LOW: (
        "Payments at the gateway",
        "admin:payments_payment_changelist",
        "gateway__exact={gateway}",
    ),
    AlertKind.WEBHOOK_PROCESSING_FAILED: (
        "Failed webhook events",
        "admin:payments_webhookevent_changelist",
        "status__exact=failed&gateway__exact={gateway}",
    ),
    AlertKind.EVENT_DELIVERY_FAILED: (
        "Failed outgoing events of the app",
        "admin:notifications_outgoingevent_changelist",
        "delivery_state__exact=failed&client_app__id__exact={client_app}",
    ),
    AlertKind.RECONCILIATION_FAILED: (
        "Failed reconciliation runs",
        "admin:payments_reconciliationrun_changelist",
        "status__exact=failed",
    ),
    AlertKind.RECONCILIATION_DIFFERENCES: (
        "Open reconciliation issues",
        "admin:payments_reconciliationissue_changelist",
        "resolved=no&gateway__exact={gateway}",
    ),
    AlertKind.PSE_REJECTED: ("Rejected documents", "admin:billing_invoice_changelist", "status__exact=rejected"),
    AlertKind.CREDIT_LEDGER_DRIFT: ("Credit accounts", "admin:credits_creditaccount_changelist", ""),
    AlertKind.STRAY_CHARGE: ("Stray charges", "admin:payments_straycharge_changelist", ""),
    AlertKind.MONEY_MISMATCH: ("The payment", "admin:payments_payment_changelist", "q={payment}"),
}
# Admin pages of the ids an alert's context names.
CONTEXT_PAGES = {
    "payment": "admin:payments_payment_change",
    "stray_charge": "admin:payments_straycharge_change",
    "run": "admin:payments_reconciliationrun_change",
    "client_app": "admin:payments_clientapp_change",
}


def lima(value) -> str:
    return f"{business_time(value):%Y-%m-%d %H:%M}" if value else "—"


def _url(name: str, *args) -> str | None:
    try:
        return reverse(name, args=args)
    except NoReverseMatch:
        return None


def acknowledge_audited(alert: Alert, user) -> bool:
    """Acknowledge `alert` as `user`, with its staff audit entry in the same transaction. True if it moved."""
    with transaction.atomic():
        moved = alert_acknowledge(alert, user)
        if moved:
            record_staff_action(
                user=user,
                action="alert.acknowledge",
                obj=alert,
                summary=alert.title,
                before={"status": AlertStatus.OPEN.value},
                after={"status": alert.status},
            )
    return moved


def where_to_look(alert: Alert) -> tuple[str, str] | None:
    """(label, URL) of the admin rows at fault for this alert, None for a kind it does not know."""
    label, name, query = WHERE_TO_LOOK.get(alert.kind, ("", "", ""))
    url = _url(name) if name else None
    if url is None:
        return None
    values = {key: quote(str(value)) for key, value in (alert.context or {}).items()}
    try:
        query = query.format(**values)
    except (KeyError, IndexError):
        query = "&".join(part for part in query.split("&") if "{" not in part)  # what the context allows
    return label, f"{url}?{query}" if query else url


class AlertStatusFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [("unresolved", "Unresolved (open or acknowledged)"), *AlertStatus.choices]

    def queryset(self, request, queryset):
        if self.value() == "unresolved":
            return queryset.filter(resolved_at__isnull=True)
        if self.value() in AlertStatus.values:
            return queryset.filter(status=self.value())
        return queryset


@admin.register(Alert)
class AlertAdmin(RecordAdmin):
    list_display = [
        "severity_badge",
        "title_and_kind",
        "status",
        "count",
        "last_seen",
        "acknowledged_by",
    ]
    list_display_links = ["title_and_kind"]
    list_filter = [AlertStatusFilter, "kind", "severity"]
    search_fields = ["id", "title", "dedupe_key", "detail"]
    list_select_related = ["acknowledged_by"]
    actions = ["acknowledge", "resolve"]
    fields = [
        "id",
        "severity",
        "status",
        "title",
        "detail",
        "kind",
        "dedupe_key",
        "count",
        "first_seen",
        "last_seen",
        "where_to_look",
        "context_links",
        "pretty_context",
        "acknowledged_by",
        "acknowledged_at",
        "resolved_at",
        "resolved_by",
        "resolution",
        "emailed_at",
    ]
    change_form_template = "admin/notifications/alert/change_form.html"

    class Media:
        css = {"all": ["notifications/alerts.css"]}

    # Every active staff user sees alerts and acknowledges them; resolving by hand needs change.
    def _staff(self, request) -> bool:
        return bool(request.user.is_active and request.user.is_staff)

    def has_module_permission(self, request):
        return self._staff(request)

    def has_view_permission(self, request, obj=None):
        return self._staff(request)

    def has_acknowledge_permission(self, request, obj=None):
        return self._staff(request)

    def has_resolve_permission(self, request, obj=None):
        return self._staff(request) and request.user.has_perm("notifications.change_alert")

    def get_readonly_fields(self, request, obj=None):
        return [
            *super().get_readonly_fields(request, obj),
            "first_seen",
            "last_seen",
            "where_to_look",
            "context_links",
            "pretty_context",
        ]

    def get_urls(self):
        custom = [
            path(
                "<str:object_id>/acknowledge/",
                self.admin_site.admin_view(self.acknowledge_view),
                name="notifications_alert_acknowledge",
            ),
            path(
                "<str:object_id>/resolve/",
                self.admin_site.admin_view(self.resolve_view),
                name="notifications_alert_resolve",
            ),
        ]
        return custom + super().get_urls()

    # --- Columns and fields ---------------------------------------------------------------------------

    @admin.display(description="Severity", ordering="severity")
    def severity_badge(self, obj):
        return format_html('<span class="alert-severity alert-{}">{}</span>', obj.severity, obj.severity)

    @admin.display(description="Alert", ordering="title")
    def title_and_kind(self, obj):
        return format_html('{}<span class="alert-kind">{}</span>', obj.title, obj.kind)

    @admin.display(description="Last seen (Lima)", ordering="last_seen_at")
    def last_seen(self, obj):
        return lima(obj.last_seen_at)

    @admin.display(description="First seen (Lima)", ordering="first_seen_at")
    def first_seen(self, obj):
        return lima(obj.first_seen_at)

    @admin.display(description="Where to look")
    def where_to_look(self, obj):
        found = where_to_look(obj)
        return format_html('<a href="{}">{}</a>', found[1], found[0]) if found else "—"

    @admin.display(description="About")
    def context_links(self, obj):
        links = []
        for key, url_name in CONTEXT_PAGES.items():
            value = (obj.context or {}).get(key)
            url = _url(url_name, value) if value not in (None, "") else None
            if url:
                links.append((key.replace("_", " "), url, value))
        if not links:
            return "—"
        return format_html_join(" · ", '{}: <a href="{}">{}</a>', links)

    @admin.display(description="Context")
    def pretty_context(self, obj):
        return format_html(
            '<pre style="white-space: pre-wrap; margin: 0">{}</pre>',
            json.dumps(obj.context, indent=2, ensure_ascii=False, sort_keys=True),
        )

    # --- Actions ----------------------------------------------------------------------------------------

    @admin.action(description="Acknowledge (I am on it)", permissions=["acknowledge"])
    def acknowledge(self, request, queryset):
        moved = 0
        for alert in queryset.filter(status=AlertStatus.OPEN):
            if acknowledge_audited(alert, request.user):
                self.log_change(request, alert, "Acknowledged")
                moved += 1
        self.message_user(request, f"Acknowledged {moved} alert(s).", messages.SUCCESS if moved else messages.WARNING)

    @admin.action(description="Resolve", permissions=["resolve"])
    def resolve(self, request, queryset):
        alerts = list(queryset.filter(resolved_at__isnull=True))
        count = alerts_resolve(alerts, user=request.user)
        for alert in alerts:
            self.log_change(request, alert, "Resolved by staff")
        self.message_user(
            request,
            f"Resolved {count} alert(s). An alert whose problem still holds opens again at the next check "
            "(every minute).",
            messages.SUCCESS if count else messages.WARNING,
        )

    # --- The buttons' views (admin index panel and the alert's page) -------------------------------------

    def _back(self, request, alert):
        target = request.POST.get("next", "")
        if target and url_has_allowed_host_and_scheme(target, {request.get_host()}, request.is_secure()):
            return HttpResponseRedirect(target)
        return HttpResponseRedirect(reverse("admin:notifications_alert_change", args=[alert.pk]))

    def acknowledge_view(self, request, object_id):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        alert = get_object_or_404(Alert, pk=object_id)
        if not self.has_acknowledge_permission(request, alert):
            self.message_user(request, "You may not acknowledge alerts.", messages.ERROR)
        elif acknowledge_audited(alert, request.user):
            self.log_change(request, alert, "Acknowledged")
            self.message_user(request, f"Acknowledged: {alert.title}", messages.SUCCESS)
        else:
            self.message_user(request, f"Already {alert.status}: {alert.title}", messages.WARNING)
        return self._back(request, alert)

    def resolve_view(self, request, object_id):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        alert = get_object_or_404(Alert, pk=object_id)
        if not self.has_resolve_permission(request, alert):
            self.message_user(request, "Resolving alerts needs the change permission on alerts.", messages.ERROR)
        elif alerts_resolve([alert], user=request.user):
            self.log_change(request, alert, "Resolved by staff")
            self.message_user(request, f"Resolved: {alert.title}", messages.SUCCESS)
        else:
            self.message_user(request, f"Already resolved: {alert.title}", messages.WARNING)
        return self._back(request, alert)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = {
            **(extra_context or {}),
            "can_acknowledge": self.has_acknowledge_permission(request),
            "can_resolve": self.has_resolve_permission(request),
        }
        return super().change_view(request, object_id, form_url, extra_context)
