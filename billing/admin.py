"""Billing in the admin: billing profiles are edited here (validated like the API); documents are
read-only (they never change once issued), with PDF/XML downloads and two actions that call
services: re-send the email, and queue the SUNAT submission again."""

from django.contrib import admin, messages
from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils.html import format_html

from billing import services, tasks
from billing.enums import InvoiceStatus
from billing.models import BillingProfile, Invoice, InvoiceLine
from billing.pse.registry import pse_configured
from billing.taxes import format_money


@admin.register(BillingProfile)
class BillingProfileAdmin(admin.ModelAdmin):
    list_display = ["customer", "document_type", "document_number", "legal_name", "preferred_document", "updated_at"]
    list_filter = ["document_type", "preferred_document"]
    search_fields = ["customer__id", "customer__email", "document_number", "legal_name"]
    raw_id_fields = ["customer"]
    readonly_fields = ["created_at", "updated_at"]

    def save_model(self, request, obj, form, change):
        services.billing_profile_set(
            customer=obj.customer,
            document_type=obj.document_type,
            document_number=obj.document_number,
            legal_name=obj.legal_name,
            address=obj.address,
            invoice_email=obj.invoice_email,
            preferred_document=obj.preferred_document,
        )


class InvoiceLineInline(admin.TabularInline):
    model = InvoiceLine
    extra = 0
    can_delete = False
    fields = [
        "position",
        "description",
        "quantity",
        "unit_code",
        "unit_value",
        "unit_price",
        "subtotal",
        "tax",
        "total",
    ]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Invoice)
class InvoiceAdmin(admin.ModelAdmin):
    list_display = [
        "number",
        "document_type",
        "client_app",
        "customer",
        "payment",
        "total_display",
        "status",
        "email_status",
        "issued_at",
        "downloads",
    ]
    list_filter = ["document_type", "status", "email_status", "currency", "buyer_unidentified_over_limit", "client_app"]
    search_fields = ["id", "series", "payment__id", "customer__id", "customer__email", "buyer_document_number"]
    list_select_related = ["client_app", "customer", "payment"]
    inlines = [InvoiceLineInline]
    actions = ["resend_email", "submit_again"]
    exclude = ["xml"]

    def get_readonly_fields(self, request, obj=None):
        return ["downloads"] + [field.name for field in self.model._meta.fields if field.name != "xml"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False  # issued documents never change

    def has_delete_permission(self, request, obj=None):
        return False  # a credit note corrects a document; nothing deletes one

    def has_resend_permission(self, request):
        return request.user.has_perm("billing.resend_invoice")  # staff roles: reporting/roles.py

    @admin.display(description="Total")
    def total_display(self, obj):
        return format_money(obj.total, obj.currency)

    @admin.display(description="Files")
    def downloads(self, obj):
        return format_html(
            '<a href="{}">PDF</a> · <a href="{}">XML</a>',
            reverse("admin:billing_invoice_pdf", args=[obj.pk]),
            reverse("admin:billing_invoice_xml", args=[obj.pk]),
        )

    def get_urls(self):
        custom = [
            path("<str:pk>/pdf/", self.admin_site.admin_view(self.pdf_view), name="billing_invoice_pdf"),
            path("<str:pk>/xml/", self.admin_site.admin_view(self.xml_view), name="billing_invoice_xml"),
        ]
        return custom + super().get_urls()

    def _download(self, request, pk, *, render, content_type: str, extension: str):
        invoice = get_object_or_404(Invoice, pk=pk)
        if not self.has_view_permission(request, invoice):
            return HttpResponse(status=403)
        response = HttpResponse(render(invoice=invoice), content_type=content_type)
        filename = f"{invoice.issuer_ruc}-{invoice.sunat_code}-{invoice.number}.{extension}"
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        return response

    def pdf_view(self, request, pk):
        return self._download(request, pk, render=services.invoice_pdf, content_type="application/pdf", extension="pdf")

    def xml_view(self, request, pk):
        return self._download(request, pk, render=services.invoice_xml, content_type="application/xml", extension="xml")

    @admin.action(description="Re-send the email (PDF + XML) to the invoice address", permissions=["resend"])
    def resend_email(self, request, queryset):
        actor = f"staff:{request.user.get_username()}"
        for invoice in queryset:
            status = services.invoice_email_resend(invoice=invoice, actor=actor)
            self.log_change(request, invoice, f"Email re-sent: {status}")
            level = messages.SUCCESS if status == "sent" else messages.WARNING
            self.message_user(request, f"{invoice.number}: email {status}.", level=level)

    @admin.action(description="Submit to SUNAT again (through the PSE)", permissions=["resend"])
    def submit_again(self, request, queryset):
        if not pse_configured():
            self.message_user(request, "No PSE is configured (BILLING_PSE).", level=messages.WARNING)
            return
        queued = 0
        for invoice in queryset.filter(status__in=[InvoiceStatus.ISSUED, InvoiceStatus.SUBMITTED]):
            tasks.submit_invoice.delay(invoice.pk)
            self.log_change(request, invoice, "Submission queued")
            queued += 1
        self.message_user(request, f"{queued} document(s) queued for submission.", level=messages.SUCCESS)
