from django.urls import reverse
from rest_framework import serializers

from payments.enums import Currency
from reporting.models import Report, ReportFormat, ReportStatus
from smartpay.api.base import StrictSerializer


class ReportCreateSerializer(StrictSerializer):
    period_start = serializers.DateField(help_text="First day of the period (America/Lima), YYYY-MM-DD.")
    period_end = serializers.DateField(
        help_text="Last day of the period, included (America/Lima). At most REPORT_MAX_DAYS (366) days in all."
    )
    currency = serializers.ChoiceField(choices=Currency.choices)
    format = serializers.ChoiceField(choices=ReportFormat.choices, default=ReportFormat.XLSX)


class ReportSerializer(serializers.ModelSerializer):
    object = serializers.SerializerMethodField()
    status = serializers.ChoiceField(choices=ReportStatus.choices, read_only=True)
    format = serializers.ChoiceField(choices=ReportFormat.choices, read_only=True)
    currency = serializers.ChoiceField(choices=Currency.choices, read_only=True)
    progress = serializers.IntegerField(read_only=True, help_text="Percent of the rows written (100 when ready).")
    file_size = serializers.IntegerField(read_only=True, allow_null=True, help_text="Bytes, once ready.")
    sha256 = serializers.CharField(read_only=True, help_text="Hex digest of the file, once ready.")
    error = serializers.CharField(read_only=True, help_text="Why the last run failed (empty otherwise).")
    download_url = serializers.SerializerMethodField()

    class Meta:
        model = Report
        fields = [
            "id",
            "object",
            "period_start",
            "period_end",
            "currency",
            "format",
            "status",
            "progress",
            "rows_written",
            "file_size",
            "sha256",
            "error",
            "download_url",
            "created_at",
            "started_at",
            "finished_at",
        ]
        read_only_fields = fields

    def get_object(self, obj) -> str:
        return "report"

    def get_download_url(self, obj) -> str | None:
        """Absolute URL of the file (`GET`, same API key) once `status` is `ready`; null before."""
        if obj.status != ReportStatus.READY or not obj.file:
            return None
        path = reverse("report-download", kwargs={"report_id": obj.id})
        request = self.context.get("request")
        if request is not None:
            return request.build_absolute_uri(path)
        from django.conf import settings

        return f"{settings.PUBLIC_BASE_URL}{path}"
