"""Reads of period reports (the API's and the admin's)."""

from django.db.models import QuerySet

from payments.models import ClientApp
from reporting.models import Report


def report_list(*, client_app: ClientApp) -> QuerySet[Report]:
    """The app's own reports (never the staff-wide ones, whose client_app is empty)."""
    return Report.objects.filter(client_app=client_app)


def report_get(*, client_app: ClientApp, report_id: str) -> Report:
    """Raises Report.DoesNotExist for another app's report, as for a missing one."""
    return report_list(client_app=client_app).get(pk=report_id)
