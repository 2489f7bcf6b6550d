"""Reports API: a client app's period reports over its own data. Parse, call one service, serialize."""

from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import FileResponse, Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.generics import GenericAPIView
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.renderers import BaseRenderer
from rest_framework.response import Response

from payments.api.idempotency import idempotency_parameter, idempotent
from reporting.api.serializers import ReportCreateSerializer, ReportSerializer
from reporting.models import Report, ReportStatus
from reporting.reports import selectors as selectors_reports
from reporting.services import reports as services
from smartpay.api.base import CursorPagination, TenantScopedMixin
from smartpay.api.errors import Conflict

PROBLEM = OpenApiResponse(description="application/problem+json")


class ReportNotReady(Conflict):
    code = "report_not_ready"
    title = "The report is not ready"


class ReportLookupMixin(TenantScopedMixin):
    def get_report(self, report_id: str) -> Report:
        try:
            return selectors_reports.report_get(client_app=self.client_app, report_id=report_id)
        except Report.DoesNotExist:
            raise Http404 from None


class ReportListCreateView(TenantScopedMixin, GenericAPIView):
    serializer_class = ReportSerializer
    pagination_class = CursorPagination

    def get_queryset(self):
        return selectors_reports.report_list(client_app=self.client_app)

    @extend_schema(
        operation_id="reports_list",
        responses=ReportSerializer(many=True),
        description="This app's period reports, newest first.",
    )
    def get(self, request):
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(ReportSerializer(page, many=True, context={"request": request}).data)

    @extend_schema(
        operation_id="reports_create",
        request=ReportCreateSerializer,
        responses={202: ReportSerializer, 400: PROBLEM},
        parameters=[
            idempotency_parameter(False),
            OpenApiParameter(
                "Location",
                OpenApiTypes.URI,
                OpenApiParameter.HEADER,
                response=[202],
                description="The report's URL (`GET` it to follow the progress).",
            ),
        ],
        description="Ask for a period report over this app's own data: Lima days `period_start` to "
        "`period_end` (included, at most 366 days; an end before the start is a 400), one `currency`, "
        "`format` `xlsx` (summary and detail sheets: payments, refunds, invoices, credit notes, credit "
        "movements), `csv` (a zip of one CSV per sheet) or `pdf` (the summary). Answers 202 with the "
        "report `queued` and a `Location` header; follow it with `GET /api/v1/reports/{id}` until "
        "`status` is `ready` (then `download_url`) or `failed`. Posting again asks for a new report.",
    )
    @idempotent(required=False)
    def post(self, request):
        payload = ReportCreateSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        try:
            report = services.report_request(**payload.validated_data, client_app=self.client_app, requested_via="api")
        except DjangoValidationError as error:
            raise serializers.ValidationError(error.message_dict) from None
        report.refresh_from_db()  # generated already when tasks run eagerly
        response = Response(
            ReportSerializer(report, context={"request": request}).data, status=status.HTTP_202_ACCEPTED
        )
        response["Location"] = request.build_absolute_uri(f"{request.path.rstrip('/')}/{report.id}")
        return response


class ReportDetailView(ReportLookupMixin, GenericAPIView):
    serializer_class = ReportSerializer

    @extend_schema(
        operation_id="reports_retrieve",
        responses={200: ReportSerializer, 404: PROBLEM},
        description="The report's `status` (`queued`, `running`, `ready`, `failed`), `progress` (percent) "
        "and, when ready, `download_url`. Another app's report is a 404.",
    )
    def get(self, request, report_id: str):
        return Response(ReportSerializer(self.get_report(report_id), context={"request": request}).data)


class _FileRenderer(BaseRenderer):
    media_type = "application/octet-stream"
    format = "file"
    charset = None

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return data


class ServeTheFile(BaseContentNegotiation):
    """A file endpoint has one representation; errors are problem+json whatever Accept says."""

    def select_parser(self, request, parsers):
        return parsers[0] if parsers else None

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


class ReportDownloadView(ReportLookupMixin, GenericAPIView):
    renderer_classes = [_FileRenderer]
    content_negotiation_class = ServeTheFile

    @extend_schema(
        operation_id="reports_download",
        responses={
            (200, "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"): OpenApiTypes.BINARY,
            (200, "application/zip"): OpenApiTypes.BINARY,
            (200, "application/pdf"): OpenApiTypes.BINARY,
            404: PROBLEM,
            409: PROBLEM,
        },
        description="The report's file (attachment): XLSX, a zip of CSVs, or PDF. 409 `report_not_ready` "
        "while it is queued or running, or when it failed.",
    )
    def get(self, request, report_id: str):
        report = self.get_report(report_id)
        if report.status != ReportStatus.READY or not report.file:
            raise ReportNotReady(f"Report {report.id} is {report.status}.", report_status=report.status)
        return FileResponse(
            report.file.open("rb"),
            as_attachment=True,
            filename=services.report_filename(report),
            content_type=services.report_content_type(report),
        )
