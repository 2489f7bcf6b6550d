from django.contrib import admin, messages
from django.db import models, transaction
from django.urls import reverse
from django.utils.html import format_html

from payments.models import (
    ApiKey,
    ClientApp,
    Customer,
    Payment,
    PaymentAttempt,
    PaymentMethod,
    ReconciliationIssue,
    ReconciliationRun,
    Refund,
    RoutingRule,
    StrayCharge,
    WebhookEvent,
)
from payments.services.clients import api_key_issue, api_key_revoke
from reporting.audit import AuditedModelAdmin, masked_key, record_staff_action
from smartpay.admin_base import ImmutableRecordAdmin, ReadOnlyInline, RecordAdmin
from smartpay.api.errors import ApiError


class ApiKeyInline(admin.TabularInline):
    model = ApiKey
    extra = 0
    can_delete = False
    fields = ["prefix", "label", "created_at", "last_used_at", "revoked_at"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False  # keys are issued with the "Issue a new API key" action, which shows the key once


@admin.register(ClientApp)
class ClientAppAdmin(AuditedModelAdmin, admin.ModelAdmin):
    list_display = ["name", "id", "is_active", "webhook_url", "created_at"]
    list_filter = ["is_active"]
    search_fields = ["name", "id"]
    readonly_fields = ["id", "masked_webhook_secret", "delivery_health", "created_at", "updated_at"]
    fields = [
        "id",
        "name",
        "is_active",
        "webhook_url",
        "webhook_enabled",
        "rate_limit_write_per_minute",
        "rate_limit_read_per_minute",
        "masked_webhook_secret",
        "delivery_health",
        "created_at",
        "updated_at",
    ]
    inlines = [ApiKeyInline]
    actions = ["issue_api_key", "rotate_signing_secret"]
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}

    AUDITED_FIELDS = [
        "name",
        "is_active",
        "webhook_url",
        "webhook_enabled",
        "rate_limit_write_per_minute",
        "rate_limit_read_per_minute",
    ]

    AUDIT_NAME = "client_app"
    AUDIT_SUMMARY = False

    def after_audited_save(self, request, obj, change, after):
        if not change:  # a new client app gets its first key, shown once (after the commit)
            issued = api_key_issue(client_app=obj, label=f"created by {request.user.get_username()}")
            after["api_key"] = f"issued {masked_key(issued.api_key.prefix)}"
            request._issued_api_key = issued

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        issued = getattr(request, "_issued_api_key", None)
        if issued is not None:
            self.message_user(
                request,
                f"API key for {obj.name}: {issued.raw_key} — copy it now, it will not be shown again.",
                level=messages.WARNING,
            )

    @admin.display(description="Webhook signing secret")
    def masked_webhook_secret(self, obj):
        return f"{obj.webhook_secret[:10]}…" if obj and obj.webhook_secret else "—"

    @admin.display(description="Event delivery health")
    def delivery_health(self, obj):
        from notifications.admin import delivery_health_html

        return delivery_health_html(obj)

    def has_issue_key_permission(self, request):
        return request.user.has_perm("payments.add_apikey")

    @admin.action(description="Rotate signing secret (shown once; the old one signs 24 h more)", permissions=["change"])
    def rotate_signing_secret(self, request, queryset):
        from notifications.services import webhook_secret_rotate

        for client_app in queryset:
            with transaction.atomic():
                rotated = webhook_secret_rotate(client_app=client_app)
                record_staff_action(
                    user=request.user,
                    action="client_app.rotate_secret",
                    obj=rotated,
                    summary="Webhook signing secret rotated; the previous one signs 24 h more",
                    after={"webhook_signing": "rotated"},
                )
            self.log_change(request, rotated, "Webhook signing secret rotated")
            self.message_user(
                request,
                f"New signing secret for {rotated.name}: {rotated.webhook_secret} — copy it now, it will not be "
                "shown again. The previous one keeps signing for 24 h.",
                level=messages.WARNING,
            )

    @admin.action(description="Issue a new API key (shown once)", permissions=["issue_key"])
    def issue_api_key(self, request, queryset):
        for client_app in queryset:
            with transaction.atomic():
                issued = api_key_issue(client_app=client_app, label=f"issued by {request.user.get_username()}")
                record_staff_action(
                    user=request.user,
                    action="api_key.issue",
                    obj=issued.api_key,
                    summary=f"API key {masked_key(issued.api_key.prefix)} issued",
                    after={"key": masked_key(issued.api_key.prefix), "label": issued.api_key.label},
                )
            self.message_user(
                request,
                f"New API key for {client_app.name}: {issued.raw_key} — copy it now, it will not be shown again.",
                level=messages.WARNING,
            )


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ["prefix", "client_app", "label", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["client_app"]
    search_fields = ["prefix", "label", "client_app__name"]
    readonly_fields = ["id", "client_app", "prefix", "created_at", "last_used_at", "revoked_at"]
    fields = ["id", "client_app", "label", "prefix", "created_at", "last_used_at", "revoked_at"]
    actions = ["revoke"]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.action(description="Revoke selected keys", permissions=["change"])
    def revoke(self, request, queryset):
        revoked = 0
        for api_key in queryset:
            with transaction.atomic():
                was_active = ApiKey.objects.select_for_update().get(pk=api_key.pk).revoked_at is None
                done = api_key_revoke(api_key=api_key)
                if was_active:  # revoking a revoked key changes nothing, and is not logged
                    record_staff_action(
                        user=request.user,
                        action="api_key.revoke",
                        obj=done,
                        summary=f"API key {masked_key(done.prefix)} revoked",
                        before={"revoked_at": None},
                        after={"revoked_at": done.revoked_at},
                    )
                    revoked += 1
        self.message_user(request, f"Revoked {revoked} key(s).")


@admin.register(Customer)
class CustomerAdmin(admin.ModelAdmin):
    list_display = ["id", "client_app", "external_id", "email", "name", "created_at"]
    list_filter = ["client_app"]
    search_fields = ["id", "external_id", "email", "name"]
    readonly_fields = ["id", "created_at", "updated_at"]


class AttemptInline(ReadOnlyInline):
    model = PaymentAttempt
    fields = ["number", "operation", "gateway", "outcome", "error_code", "http_status", "duration_ms", "created_at"]
    readonly_fields = fields


class RefundInline(ReadOnlyInline):
    model = Refund
    fields = ["id", "money", "status", "origin", "gateway_refund_id", "reason", "failure_code", "created_at"]
    readonly_fields = fields

    @admin.display(description="Amount")
    def money(self, obj):
        return format_minor_units(obj.amount, obj.currency)


class StrayChargeInline(ReadOnlyInline):
    model = StrayCharge
    fields = ["id", "gateway", "gateway_payment_id", "money", "reason", "status", "created_at"]
    readonly_fields = fields
    show_change_link = True

    @admin.display(description="Amount")
    def money(self, obj):
        return format_minor_units(obj.amount, obj.currency)


@admin.register(Payment)
class PaymentAdmin(RecordAdmin):
    """Money rows are read-only here; the refund action goes through the refund service."""

    list_display = ["id", "client_app", "status", "display_amount", "gateway", "customer", "created_at"]
    list_filter = ["status", "gateway", "currency", "purpose", ("created_at", admin.DateFieldListFilter), "client_app"]
    search_fields = ["id", "gateway_payment_id", "customer__id", "customer__email", "customer__external_id", "email"]
    date_hierarchy = "created_at"
    inlines = [AttemptInline, RefundInline, StrayChargeInline]
    actions = ["refund_in_full"]
    list_select_related = ["client_app", "customer"]

    @admin.display(description="Amount", ordering="amount")
    def display_amount(self, obj):
        return format_minor_units(obj.amount, obj.currency)

    @admin.display(description="Captured")
    def display_captured(self, obj):
        return format_minor_units(obj.amount_captured, obj.currency)

    @admin.display(description="Refunded")
    def display_refunded(self, obj):
        return format_minor_units(obj.amount_refunded, obj.currency)

    MONEY_FIELDS = {
        "amount": "display_amount",
        "amount_captured": "display_captured",
        "amount_refunded": "display_refunded",
    }

    def get_fields(self, request, obj=None):
        """The record's fields, with its amounts shown as money instead of minor units."""
        return [self.MONEY_FIELDS.get(field.name, field.name) for field in self.model._meta.fields]

    def get_readonly_fields(self, request, obj=None):
        return [*super().get_readonly_fields(request, obj), "display_amount", "display_captured", "display_refunded"]

    def has_refund_permission(self, request):
        return request.user.has_perm("payments.refund_payment")

    @admin.action(description="Refund what is left of the selected payments", permissions=["refund"])
    def refund_in_full(self, request, queryset):
        from payments.services.refunds import refund_create

        def audit(refund, payment):  # in the transaction that reserves the refund, before the gateway call
            record_staff_action(
                user=request.user,
                action="refund.create",
                obj=payment,
                summary=f"Refund {refund.id} of {format_minor_units(refund.amount, refund.currency)} requested",
                before={"status": payment.status, "amount_refunded": payment.amount_refunded},
                after={"refund": refund.id, "amount": refund.amount, "currency": refund.currency},
            )

        done = 0
        for payment in queryset:
            try:
                refund = refund_create(
                    payment=payment,
                    reason="refund by staff",
                    actor=f"staff:{request.user}",
                    origin=Refund.ADMIN,
                    on_reserved=audit,
                )
            except ApiError as error:
                self.message_user(request, f"{payment.id}: {error.detail_text}", level=messages.ERROR)
                continue
            level = messages.SUCCESS if refund.status == "succeeded" else messages.WARNING
            self.message_user(request, f"{payment.id}: refund {refund.id} {refund.status}", level=level)
            done += 1
        if not done:
            self.message_user(request, "Nothing was refunded.", level=messages.WARNING)


@admin.register(PaymentMethod)
class PaymentMethodAdmin(RecordAdmin):
    list_display = ["id", "customer", "brand", "last4", "exp_month", "exp_year", "created_at", "deleted_at"]
    search_fields = ["id", "customer__id", "customer__email", "last4"]
    list_filter = ["brand"]


def format_minor_units(amount: int, currency: str) -> str:
    """Display only: integer minor units as '123.45 PEN' without touching floats."""
    sign = "-" if amount < 0 else ""
    whole, cents = divmod(abs(amount), 100)
    return f"{sign}{whole:,}.{cents:02d} {currency}"


@admin.register(WebhookEvent)
class WebhookEventAdmin(RecordAdmin):
    """Deliveries from the gateways. Unmatched ones wait here for reconciliation."""

    list_display = ["id", "gateway", "event_type", "resource_id", "status", "payment", "attempts", "received_at"]
    list_filter = ["status", "gateway", "event_type"]
    search_fields = ["id", "event_id", "resource_id", "payment__id"]
    actions = ["retry_now"]

    def has_retry_permission(self, request):
        return request.user.has_perm("payments.retry_webhookevent")

    @admin.action(description="Retry now", permissions=["retry"])
    def retry_now(self, request, queryset):
        from payments.tasks import process_webhook_event

        count = 0
        for event in queryset.exclude(status=WebhookEvent.PROCESSED):
            WebhookEvent.objects.filter(pk=event.pk).update(status=WebhookEvent.RECEIVED)
            process_webhook_event.delay(event.pk)
            count += 1
        self.message_user(request, f"Queued {count} event(s) for processing.")


@admin.register(RoutingRule)
class RoutingRuleAdmin(AuditedModelAdmin, admin.ModelAdmin):
    list_display = ["currency", "priority", "gateway", "enabled", "min_amount", "max_amount", "breaker_state"]
    list_editable = ["priority", "enabled"]
    list_filter = ["currency", "gateway", "enabled"]

    @admin.display(description="Circuit breaker")
    def breaker_state(self, obj):
        from payments import breaker

        return breaker.state(obj.gateway).state

    # Routing changes land in the audit log, in the same transaction as the change.
    AUDITED_FIELDS = ["currency", "gateway", "priority", "enabled", "min_amount", "max_amount"]

    AUDIT_NAME = "routing_rule"


@admin.register(ReconciliationRun)
class ReconciliationRunAdmin(ImmutableRecordAdmin):
    """What each daily comparison found. Read-only: runs are made by the job or `manage.py reconcile`."""

    list_display = [
        "id",
        "gateway",
        "day",
        "status",
        "gateway_records",
        "our_records",
        "matched",
        "fixed",
        "issues",
        "new_issues",
        "started_at",
        "finished_at",
    ]
    list_filter = ["status", "gateway"]
    date_hierarchy = "day"
    search_fields = ["error"]
    actions = ["run_again"]

    def has_rerun_permission(self, request):
        return request.user.has_perm("payments.rerun_reconciliationrun")

    @admin.action(description="Run again now (same gateway and day)", permissions=["rerun"])
    def run_again(self, request, queryset):
        from payments.tasks import reconcile_yesterday

        for run in queryset:
            reconcile_yesterday.delay(gateways=[run.gateway], day=run.day.isoformat())
        self.message_user(request, f"Queued {queryset.count()} reconciliation run(s).")


class ResolvedFilter(admin.SimpleListFilter):
    title = "resolved"
    parameter_name = "resolved"

    def lookups(self, request, model_admin):
        return [("no", "Open"), ("yes", "Resolved")]

    def queryset(self, request, queryset):
        if self.value() == "no":
            return queryset.filter(resolved_at__isnull=True)
        if self.value() == "yes":
            return queryset.filter(resolved_at__isnull=False)
        return queryset


@admin.register(ReconciliationIssue)
class ReconciliationIssueAdmin(RecordAdmin):
    """Differences reconciliation could not fix safely. Staff look, act, then mark them resolved."""

    list_display = [
        "id",
        "day",
        "gateway",
        "kind",
        "payment",
        "gateway_payment_id",
        "our_status",
        "their_status",
        "display_our_amount",
        "display_their_amount",
        "detail",
        "created_at",
        "resolved_at",
    ]
    list_filter = ["kind", "gateway", ResolvedFilter, "day"]
    search_fields = ["gateway_payment_id", "payment__id", "detail"]
    date_hierarchy = "day"
    list_select_related = ["payment"]
    actions = ["mark_resolved"]

    @admin.display(description="Our amount", ordering="our_amount")
    def display_our_amount(self, obj):
        return "—" if obj.our_amount is None else format_minor_units(obj.our_amount, obj.currency)

    @admin.display(description="Their amount", ordering="their_amount")
    def display_their_amount(self, obj):
        return "—" if obj.their_amount is None else format_minor_units(obj.their_amount, obj.currency)

    @admin.action(description="Mark resolved", permissions=["change"])
    def mark_resolved(self, request, queryset):
        from payments.services.reconciliation import reconciliation_issues_resolve

        count = reconciliation_issues_resolve(issues=queryset, actor=f"staff:{request.user.get_username()}")
        self.message_user(request, f"Marked {count} issue(s) resolved.")


@admin.register(StrayCharge)
class StrayChargeAdmin(RecordAdmin):
    """Money a gateway holds for a payment that does not own it. Duplicates are refunded
    automatically; a charge for a final payment waits here for staff to refund it."""

    list_display = [
        "id",
        "payment_link",
        "gateway",
        "gateway_payment_id",
        "display_amount",
        "reason",
        "status",
        "detected_via",
        "created_at",
    ]
    list_filter = ["status", "reason", "gateway"]
    search_fields = ["id", "payment__id", "gateway_payment_id"]
    list_select_related = ["payment"]
    actions = ["refund_at_gateway"]

    @admin.display(description="Amount", ordering="amount")
    def display_amount(self, obj):
        return format_minor_units(obj.amount, obj.currency)

    @admin.display(description="Payment", ordering="payment")
    def payment_link(self, obj):
        return format_html(
            '<a href="{}">{}</a>', reverse("admin:payments_payment_change", args=[obj.payment_id]), obj.payment_id
        )

    def get_fields(self, request, obj=None):
        return ["display_amount" if f.name == "amount" else f.name for f in self.model._meta.fields]

    def get_readonly_fields(self, request, obj=None):
        return [*super().get_readonly_fields(request, obj), "display_amount"]

    def has_refund_permission(self, request):
        return request.user.has_perm("payments.refund_straycharge")

    @admin.action(description="Refund at the gateway", permissions=["refund"])
    def refund_at_gateway(self, request, queryset):
        from payments.services.strays import stray_charge_refund

        def audit(stray, previous_status):  # in the transaction that claims it, before the gateway call
            record_staff_action(
                user=request.user,
                action="stray_charge.refund",
                obj=stray,
                client_app=stray.payment.client_app_id,
                summary=f"Refund of {format_minor_units(stray.amount, stray.currency)} at {stray.gateway} requested",
                before={"status": previous_status},
                after={"status": stray.status, "amount": stray.amount, "currency": stray.currency},
            )

        for stray in queryset:
            done = stray_charge_refund(
                stray_id=stray.pk, actor=f"staff:{request.user.get_username()}", on_claimed=audit
            )
            level = messages.SUCCESS if done.status == StrayCharge.REFUNDED else messages.WARNING
            self.message_user(request, f"{done.pk}: {done.get_status_display()} {done.last_error}".strip(), level)
