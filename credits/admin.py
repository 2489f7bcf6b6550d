"""Credits in the admin: plans are edited here; balances, lots and the ledger are read-only, and
staff corrections go through `credit_adjust` (reason required, kept on the ledger rows and in the
admin log)."""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from credits import selectors, services
from credits.models import (
    CreditAccount,
    CreditAutoRenewal,
    CreditLedgerEntry,
    CreditLot,
    CreditPlan,
    CreditPurchase,
    EntryType,
)
from reporting.audit import AuditedModelAdmin, record_staff_action
from smartpay.admin_base import ImmutableRecordAdmin, ReadOnlyInline, RecordAdmin
from smartpay.api.errors import ApiError

LEDGER_ROWS_SHOWN = 100


@admin.register(CreditPlan)
class CreditPlanAdmin(AuditedModelAdmin, admin.ModelAdmin):
    list_display = [
        "code",
        "name",
        "credits",
        "bonus_percent",
        "bonus_credits",
        "total_credits",
        "price_pen",
        "price_usd",
        "validity_days",
        "is_active",
    ]
    list_filter = ["is_active"]
    search_fields = ["code", "name"]
    readonly_fields = ["id", "bonus_credits", "total_credits", "created_at", "updated_at"]
    fields = [
        "id",
        "code",
        "name",
        "credits",
        "bonus_percent",
        "bonus_credits",
        "total_credits",
        "price_pen",
        "price_usd",
        "validity_days",
        "is_active",
        "created_at",
        "updated_at",
    ]

    def has_delete_permission(self, request, obj=None):
        return False  # purchases refer to plans; retire a plan with "active" instead

    AUDITED_FIELDS = [
        "code",
        "name",
        "credits",
        "bonus_percent",
        "price_pen",
        "price_usd",
        "validity_days",
        "is_active",
    ]

    AUDIT_NAME = "credit_plan"

    @admin.display(description="Bonus credits (computed)")
    def bonus_credits(self, obj):
        return obj.bonus_credits if obj and obj.pk else "—"

    @admin.display(description="Total credits")
    def total_credits(self, obj):
        return obj.total_credits if obj and obj.pk else "—"


class LotInline(ReadOnlyInline):
    model = CreditLot
    fields = ["id", "kind", "granted", "remaining", "expires_at", "expired_at", "purchase", "payment", "created_at"]
    readonly_fields = fields
    ordering = ["-created_at"]


class AdjustmentForm(forms.Form):
    amount = forms.IntegerField(help_text="Credits to add (positive) or take (negative).")
    reason = forms.CharField(max_length=255, widget=forms.Textarea(attrs={"rows": 2}), help_text="Required; audited.")
    validity_days = forms.IntegerField(min_value=1, initial=365, help_text="Expiry of added credits.")

    def clean_amount(self):
        amount = self.cleaned_data["amount"]
        if amount == 0:
            raise forms.ValidationError("Must not be zero.")
        return amount

    def clean_reason(self):
        reason = self.cleaned_data["reason"].strip()
        if not reason:
            raise forms.ValidationError("A reason is required.")
        return reason


@admin.register(CreditAccount)
class CreditAccountAdmin(admin.ModelAdmin):
    """One customer's credits: balance, lots and ledger; 'Adjust credits' is the only way to change them."""

    list_display = ["customer", "client_app", "balance", "available", "updated_at"]
    list_filter = ["client_app"]
    search_fields = ["id", "customer__id", "customer__email", "customer__external_id"]
    list_select_related = ["customer", "client_app"]
    inlines = [LotInline]
    fields = ["id", "client_app", "customer", "balance", "available", "adjust_link", "ledger", "updated_at"]
    readonly_fields = fields

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="Available now")
    def available(self, obj):
        return selectors.credit_available(obj)

    @admin.display(description="Staff adjustment")
    def adjust_link(self, obj):
        return format_html(
            '<a class="button" href="{}">Adjust credits…</a>', reverse("admin:credits_adjust", args=[obj.pk])
        )

    @admin.display(description=f"Ledger (latest {LEDGER_ROWS_SHOWN})")
    def ledger(self, obj):
        rows = obj.entries.select_related("lot").order_by("-seq")[:LEDGER_ROWS_SHOWN]
        body = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{:+d}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (e.seq, e.created_at, e.entry_type, e.amount, e.balance_after, e.lot_id, e.actor, e.description)
                for e in rows
            ),
        )
        return format_html(
            "<table><tr><th>#</th><th>when</th><th>type</th><th>amount</th><th>balance after</th><th>lot</th>"
            "<th>who</th><th>description</th></tr>{}</table>",
            body,
        )

    def get_urls(self):
        custom = [path("<str:pk>/adjust/", self.admin_site.admin_view(self.adjust_view), name="credits_adjust")]
        return custom + super().get_urls()

    def adjust_view(self, request, pk):
        account = get_object_or_404(CreditAccount.objects.select_related("customer"), pk=pk)
        if not request.user.has_perm("credits.change_creditaccount"):
            raise PermissionDenied
        form = AdjustmentForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            try:
                with transaction.atomic():
                    entries = services.credit_adjust(
                        customer=account.customer,
                        amount=data["amount"],
                        reason=data["reason"],
                        actor=f"staff:{request.user.get_username()}",
                        validity_days=data["validity_days"],
                    )
                    adjusted = [entry for entry in entries if entry.entry_type == EntryType.ADJUSTMENT]
                    record_staff_action(
                        user=request.user,
                        action="credits.adjust",
                        obj=account,
                        summary=f"Credits adjusted by {data['amount']:+d}: {data['reason']}",
                        before={"balance": adjusted[0].balance_after - adjusted[0].amount},
                        after={
                            "balance": adjusted[-1].balance_after,
                            "amount": data["amount"],
                            "reason": data["reason"],
                        },
                    )
            except ApiError as error:
                form.add_error("amount", error.detail_text)
            else:
                self.log_change(request, account, f"Adjusted credits by {data['amount']:+d}: {data['reason']}")
                self.message_user(request, f"Adjusted by {data['amount']:+d} credits.", level=messages.SUCCESS)
                return redirect("admin:credits_creditaccount_change", account.pk)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Adjust credits of {account.customer}",
            "account": account,
            "form": form,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/credits/adjust.html", context)


@admin.register(CreditPurchase)
class CreditPurchaseAdmin(RecordAdmin):
    list_display = ["id", "customer", "plan", "source", "status", "amount", "currency", "payment", "created_at"]
    list_filter = ["status", "source", "plan", "currency", "client_app"]
    search_fields = ["id", "customer__id", "customer__email", "payment__id"]
    list_select_related = ["customer", "plan"]


@admin.register(CreditLedgerEntry)
class CreditLedgerEntryAdmin(ImmutableRecordAdmin):
    list_display = ["id", "account", "seq", "entry_type", "amount", "balance_after", "lot", "actor", "created_at"]
    list_filter = ["entry_type"]
    search_fields = ["id", "account__customer__id", "reference", "lot__id"]


@admin.register(CreditAutoRenewal)
class CreditAutoRenewalAdmin(admin.ModelAdmin):
    list_display = ["account", "plan", "currency", "threshold", "renew_on_expiry", "enabled", "consecutive_declines"]
    list_filter = ["enabled", "plan"]
    search_fields = ["account__customer__id", "account__customer__email"]

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in self.model._meta.fields]

    def has_add_permission(self, request):
        return False
