"""`POST /api/v1/reports`, `GET /api/v1/reports/{id}` (and its download) for a client app's own data."""

from django.urls import path

from reporting.api import views

urlpatterns = [
    path("reports", views.ReportListCreateView.as_view(), name="report-list"),
    path("reports/<str:report_id>", views.ReportDetailView.as_view(), name="report-detail"),
    path("reports/<str:report_id>/download", views.ReportDownloadView.as_view(), name="report-download"),
]
