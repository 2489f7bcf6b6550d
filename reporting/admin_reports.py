"""Period reports in the admin: the list (status with progress, download link), a form that asks
for one (pre-filled from the dashboard's link), a read-only page that refreshes itself while the
report is generated, the permission-checked download, and "Run again" for failed reports.

Downloading needs `reporting.view_report` (finance has it, support does not); asking for a report
needs `reporting.add_report`. Reports never change in the admin: their page is a view.
"""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import FileResponse, Http404, HttpResponse, HttpResponseRedirect
from django.template.defaultfilters import filesizeformat
from django.urls import path, reverse
from django.utils.html import format_html

from payments.models import ClientApp
from reporting.models import Report, ReportStatus
from reporting.services import reports as services
from smartpay.clock import business_time

ACTIVE = (ReportStatus.QUEUED, ReportStatus.RUNNING)


class ReportRequestForm(forms.ModelForm):
    """What staff choose; the service creates the report (and queues it)."""

    client_app = forms.ModelChoiceField(
        queryset=ClientApp.objects.order_by("name"), required=False, empty_label="All client apps"
    )

    class Meta:
        model = Report
        fields = ["period_start", "period_end", "currency", "format", "client_app"]
        widgets = {
            "period_start": forms.DateInput(attrs={"type": "date"}),
            "period_end": forms.DateInput(attrs={"type": "date"}),
        }

    def clean(self):
        data = super().clean()
        if not self.errors:
            try:
                services.validate_request(
                    period_start=data.get("period_start"),
                    period_end=data.get("period_end"),
                    currency=data.get("currency"),
                    format=data.get("format"),
                )
            except ValidationError as error:
                raise ValidationError(error.message_dict) from None
        return data

    def _post_clean(self):
        # The service validates and creates the report; the instance is never saved from this form.
        pass


@admin.register(Report)
class ReportAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "period",
        "currency_code",
        "format",
        "scope",
        "status_bar",
        "size",
        "created",
        "download_link",
    ]
    list_filter = ["status", "currency", "format", "schedule", "requested_via"]
    search_fields = ["id", "client_app__name", "client_app__id"]
    list_select_related = ["client_app"]
    date_hierarchy = "created_at"
    actions = ["run_again"]
    change_form_template = "admin/reporting/report/change_form.html"
    form = ReportRequestForm
    readonly_fields = [
        "id",
        "period",
        "currency",
        "format",
        "scope",
        "status_bar",
        "rows_written",
        "size",
        "sha256",
        "error",
        "download_link",
        "requested",
        "schedule",
        "runs",
        "created",
        "started",
        "finished",
        "emailed",
    ]

    # --- columns -------------------------------------------------------------------------------

    @admin.display(description="Period", ordering="period_start")
    def period(self, obj):
        return format_html(
            '<span style="white-space: nowrap">{} → {}</span>',
            f"{obj.period_start:%Y-%m-%d}",
            f"{obj.period_end:%Y-%m-%d}",
        )

    @admin.display(description="Currency", ordering="currency")
    def currency_code(self, obj):
        return obj.currency

    @admin.display(description="Scope")
    def scope(self, obj):
        if obj.client_app_id is None:
            return "All client apps"
        url = reverse("admin:payments_clientapp_change", args=[obj.client_app_id])
        return format_html('<a href="{}">{}</a>', url, obj.client_app.name)

    @admin.display(description="Status", ordering="status")
    def status_bar(self, obj):
        if obj.status in ACTIVE:
            return format_html(
                '{} <progress max="100" value="{}" title="{}%">{}%</progress> {}%',
                obj.status,
                obj.progress,
                obj.progress,
                obj.progress,
                obj.progress,
            )
        if obj.status == ReportStatus.FAILED:
            return format_html('<span style="color:#ba2121" title="{}">failed</span>', obj.error)
        return obj.status

    @admin.display(description="Size", ordering="file_size")
    def size(self, obj):
        return filesizeformat(obj.file_size) if obj.file_size is not None else "—"

    @staticmethod
    def _lima(value):
        return business_time(value).strftime("%Y-%m-%d %H:%M:%S") if value else "—"

    @admin.display(description="Created (Lima)", ordering="created_at")
    def created(self, obj):
        return self._lima(obj.created_at)

    @admin.display(description="Started (Lima)")
    def started(self, obj):
        return self._lima(obj.started_at)

    @admin.display(description="Finished (Lima)")
    def finished(self, obj):
        return self._lima(obj.finished_at)

    @admin.display(description="Emailed (Lima)")
    def emailed(self, obj):
        return self._lima(obj.emailed_at)

    @admin.display(description="Requested")
    def requested(self, obj):
        who = obj.requested_by.get_username() if obj.requested_by_id else ""
        return " ".join(part for part in [obj.requested_via, who] if part)

    @admin.display(description="File")
    def download_link(self, obj):
        if obj.status != ReportStatus.READY or not obj.file:
            return "—"
        url = reverse("admin:reporting_report_download", args=[obj.pk])
        return format_html('<a href="{}" download="{}">Download</a>', url, services.report_filename(obj))

    # --- permissions: reports are asked for and read, never edited ----------------------------

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["period_start", "period_end", "currency", "format", "client_app"]
        return self.readonly_fields

    def get_readonly_fields(self, request, obj=None):
        return self.readonly_fields if obj is not None else []

    # --- asking for a report ------------------------------------------------------------------

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        report = services.report_request(
            period_start=data["period_start"],
            period_end=data["period_end"],
            currency=data["currency"],
            format=data["format"],
            client_app=data.get("client_app"),
            requested_by=request.user,
            requested_via="admin",
        )
        # The admin logs and redirects with `obj`: make it the report the service created.
        for field in Report._meta.concrete_fields:
            setattr(obj, field.attname, getattr(report, field.attname))
        obj._state.adding = False

    def save_related(self, request, form, formsets, change):
        pass

    def response_add(self, request, obj, post_url_continue=None):
        self.message_user(request, f"Report {obj.pk} queued; this page follows its progress.", messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:reporting_report_change", args=[obj.pk]))

    def change_view(self, request, object_id, form_url="", extra_context=None):
        report = self.get_object(request, object_id)
        extra = {
            "auto_refresh": report is not None and report.status in ACTIVE,
            "download_url": reverse("admin:reporting_report_download", args=[report.pk])
            if report is not None and report.status == ReportStatus.READY and report.file
            else "",
            "can_run_again": report is not None
            and report.status == ReportStatus.FAILED
            and request.user.has_perm("reporting.add_report"),
        }
        return super().change_view(request, object_id, form_url, {**extra, **(extra_context or {})})

    # --- download and run again ---------------------------------------------------------------

    def get_urls(self):
        extra = [
            path(
                "<path:object_id>/download/",
                self.admin_site.admin_view(self.download_view),
                name="reporting_report_download",
            ),
            path(
                "<path:object_id>/run-again/",
                self.admin_site.admin_view(self.run_again_view),
                name="reporting_report_run_again",
            ),
        ]
        return extra + super().get_urls()

    def download_view(self, request, object_id):
        if not request.user.has_perm("reporting.view_report"):
            raise PermissionDenied
        report = Report.objects.filter(pk=object_id).first()
        if report is None:
            raise Http404("No such report.")
        if report.status != ReportStatus.READY or not report.file:
            return HttpResponse(f"Report {report.pk} is {report.status}: nothing to download yet.", status=409)
        return FileResponse(
            report.file.open("rb"),
            as_attachment=True,
            filename=services.report_filename(report),
            content_type=services.report_content_type(report),
        )

    def run_again_view(self, request, object_id):
        if request.method != "POST":
            return HttpResponse(status=405, headers={"Allow": "POST"})
        if not request.user.has_perm("reporting.add_report"):
            raise PermissionDenied
        report = Report.objects.filter(pk=object_id).first()
        if report is None:
            raise Http404("No such report.")
        self._run_again(request, report)
        return HttpResponseRedirect(reverse("admin:reporting_report_change", args=[report.pk]))

    def _run_again(self, request, report) -> bool:
        try:
            services.report_rerun(report)
        except ValidationError as error:
            self.message_user(request, "; ".join(error.messages), messages.ERROR)
            return False
        return True

    @admin.action(description="Run again (failed reports)", permissions=["add"])
    def run_again(self, request, queryset):
        done = sum(self._run_again(request, report) for report in queryset)
        if done:
            self.message_user(request, f"Queued {done} report(s) again.", messages.SUCCESS)
