"""The audit log in the admin: who did what to which object, when (Lima), with before/after.

Read-only: entries are written by `reporting.audit.record_staff_action` in the transaction of the
change they record; nobody adds, edits or deletes one here. Imported from reporting/admin.py.
"""

import json

from django.apps import apps
from django.contrib import admin
from django.contrib.admin.utils import quote
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from reporting.models import AuditEntry
from smartpay.admin_base import ImmutableRecordAdmin
from smartpay.clock import business_time

MISSING = object()
CHANGED = mark_safe(' class="audit-changed" style="background: var(--selected-row, #ffc)"')


def object_url(object_type: str, object_id: str) -> str | None:
    """The admin page of an audited object, if its model has one (whether or not it still exists)."""
    try:
        model = apps.get_model(object_type)
    except (LookupError, ValueError):
        return None
    if not admin.site.is_registered(model):
        return None
    try:
        return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_change", args=[quote(object_id)])
    except NoReverseMatch:
        return None


def _json(value) -> str:
    if value is MISSING:
        return "—"
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def changes_html(before: dict | None, after: dict | None):
    """before/after as a table: one row per field, changed values marked."""
    before, after = before or {}, after or {}
    keys = [*before, *(key for key in after if key not in before)]
    if not keys:
        return "—"
    rows = []
    for key in keys:
        old, new = before.get(key, MISSING), after.get(key, MISSING)
        rows.append((CHANGED if old != new else "", key, _json(old), _json(new)))
    body = format_html_join(
        "", '<tr{}><th scope="row">{}</th><td><code>{}</code></td><td><code>{}</code></td></tr>', rows
    )
    return format_html(
        '<table class="audit-changes"><thead><tr><th>Field</th><th>Before</th><th>After</th></tr></thead>'
        "<tbody>{}</tbody></table>",
        body,
    )


class ActorFilter(admin.SimpleListFilter):
    title = "actor"
    parameter_name = "actor"

    def lookups(self, request, model_admin):
        names = AuditEntry.objects.order_by("actor_username").values_list("actor_username", flat=True).distinct()
        return [(name, name) for name in names]

    def queryset(self, request, queryset):
        return queryset.filter(actor_username=self.value()) if self.value() else queryset


@admin.register(AuditEntry)
class AuditEntryAdmin(ImmutableRecordAdmin):
    list_display = ["when", "who", "action", "object_link", "client_app_link", "summary"]
    list_display_links = ["when"]
    list_filter = ["action", ActorFilter]
    search_fields = ["id", "object_id", "summary", "actor_username"]
    date_hierarchy = "created_at"
    list_select_related = ["client_app"]
    fields = [
        "id",
        "when",
        "actor_link",
        "action",
        "object_type",
        "object_link",
        "client_app_link",
        "summary",
        "changes",
        "raw",
    ]

    def get_readonly_fields(self, request, obj=None):
        return self.fields

    def get_actions(self, request):
        return {}  # nothing to act on: entries are never changed or deleted

    @admin.display(description="When (Lima)", ordering="created_at")
    def when(self, obj):
        return f"{business_time(obj.created_at):%Y-%m-%d %H:%M:%S}"

    @admin.display(description="Who", ordering="actor_username")
    def who(self, obj):
        return obj.actor_username

    @admin.display(description="Who", ordering="actor_username")
    def actor_link(self, obj):
        if obj.actor_id is None:
            return obj.actor_username
        url = reverse("admin:auth_user_change", args=[obj.actor_id])
        return format_html('<a href="{}">{}</a>', url, obj.actor_username)

    @admin.display(description="Object", ordering="object_id")
    def object_link(self, obj):
        url = None if obj.action.endswith(".delete") else object_url(obj.object_type, obj.object_id)
        label = f"{obj.object_type} {obj.object_id}".strip()
        return format_html('<a href="{}">{}</a>', url, label) if url else (label or "—")

    @admin.display(description="Client app", ordering="client_app__name")
    def client_app_link(self, obj):
        if obj.client_app_id is None:
            return "—"
        url = reverse("admin:payments_clientapp_change", args=[quote(obj.client_app_id)])
        return format_html('<a href="{}">{}</a>', url, obj.client_app)

    @admin.display(description="Before / after")
    def changes(self, obj):
        return changes_html(obj.before, obj.after)

    @admin.display(description="As recorded (JSON)")
    def raw(self, obj):
        text = json.dumps({"before": obj.before, "after": obj.after}, indent=2, ensure_ascii=False, sort_keys=True)
        return format_html('<pre style="white-space: pre-wrap; margin: 0">{}</pre>', text)
