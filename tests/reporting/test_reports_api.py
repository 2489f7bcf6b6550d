"""`/api/v1/reports`: a client app asks for a report over its own data, follows it, downloads it.
Another app's report is a 404, a report not ready yet is a 409, bad ranges are 400."""

import io
from datetime import date

import pytest
from openpyxl import load_workbook

from reporting.models import Report
from tests.reporting.report_data import lima_dt, make_payment

BODY = {"period_start": "2026-11-01", "period_end": "2026-11-30", "currency": "PEN", "format": "xlsx"}


def sheet_rows(content: bytes, name: str) -> list[tuple]:
    book = load_workbook(io.BytesIO(content), read_only=True)
    return [tuple(row) for row in book[name].iter_rows(values_only=True)]


def test_post_answers_202_then_the_report_gets_ready_and_downloads(
    api, client_app, other_api, django_capture_on_commit_callbacks
):
    mine = make_payment(client_app, amount=5000, created_at=lima_dt(date(2026, 11, 2)))
    theirs = make_payment(other_api.client_app, amount=7000, created_at=lima_dt(date(2026, 11, 2)))
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = api.post("/api/v1/reports", BODY, format="json")
    assert len(callbacks) == 1  # the generation is queued once the request's transaction commits
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["object"] == "report" and body["period_start"] == "2026-11-01" and body["currency"] == "PEN"
    assert response["Location"] == f"http://testserver/api/v1/reports/{body['id']}"
    report = Report.objects.get(pk=body["id"])
    assert report.client_app == client_app and report.requested_via == "api"

    detail = api.get(f"/api/v1/reports/{report.pk}").json()
    assert detail["status"] == "ready" and detail["progress"] == 100
    assert detail["download_url"] == f"http://testserver/api/v1/reports/{report.pk}/download"
    download = api.get(f"/api/v1/reports/{report.pk}/download")
    assert download.status_code == 200
    assert download["Content-Type"] == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    assert 'filename="smartpay-report-PEN-2026-11-01-2026-11-30.xlsx"' in download["Content-Disposition"]
    payments = sheet_rows(b"".join(download.streaming_content), "Payments")
    ids = [row[0] for row in payments[1:]]
    assert ids == [mine.pk] and theirs.pk not in ids


def test_another_apps_report_is_not_found(api, other_api, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        report_id = api.post("/api/v1/reports", BODY, format="json").json()["id"]
    for url in [f"/api/v1/reports/{report_id}", f"/api/v1/reports/{report_id}/download"]:
        response = other_api.get(url)
        assert response.status_code == 404 and response["Content-Type"] == "application/problem+json"
    assert other_api.get("/api/v1/reports").json()["data"] == []
    listing = api.get("/api/v1/reports").json()
    assert [item["id"] for item in listing["data"]] == [report_id] and listing["has_more"] is False


def test_staff_wide_reports_are_not_listed_to_apps(api, db):
    from reporting.services.reports import report_request

    staff_report = report_request(
        period_start=date(2026, 11, 1), period_end=date(2026, 11, 2), currency="PEN", format="pdf"
    )
    assert api.get(f"/api/v1/reports/{staff_report.pk}").status_code == 404
    assert api.get("/api/v1/reports").json()["data"] == []


def test_download_before_ready_is_a_409_problem(api):
    response = api.post("/api/v1/reports", {**BODY, "format": "csv"}, format="json")  # not committed: stays queued
    assert response.status_code == 202 and response.json()["status"] == "queued"
    assert response.json()["download_url"] is None
    download = api.get(f"/api/v1/reports/{response.json()['id']}/download")
    assert download.status_code == 409 and download["Content-Type"] == "application/problem+json"
    problem = download.json()
    assert problem["code"] == "report_not_ready" and problem["report_status"] == "queued"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"period_end": "2026-10-31"}, "period_end"),  # the end before the start
        ({"period_start": "2025-11-01", "period_end": "2026-11-02"}, "period_end"),  # 367 days
        ({"currency": "EUR"}, "currency"),
        ({"format": "docx"}, "format"),
        ({"period_start": "01/11/2026"}, "period_start"),
        ({"client_app": "app_other"}, "client_app"),  # unknown field: no reporting on someone else's data
    ],
)
def test_bad_requests_are_400_and_create_nothing(api, change, field):
    response = api.post("/api/v1/reports", {**BODY, **change}, format="json")
    assert response.status_code == 400 and response["Content-Type"] == "application/problem+json"
    assert field in response.json()["errors"]
    assert not Report.objects.exists()


def test_a_year_of_366_days_is_accepted(api):
    response = api.post(
        "/api/v1/reports", {**BODY, "period_start": "2028-01-01", "period_end": "2028-12-31"}, format="json"
    )
    assert response.status_code == 202


def test_reports_need_an_api_key(db):
    from rest_framework.test import APIClient

    assert APIClient().post("/api/v1/reports", BODY, format="json").status_code == 401


def test_a_failed_report_says_so_and_has_no_download(api, client_app):
    from reporting.services.reports import report_request

    report = report_request(
        period_start=date(2026, 11, 1),
        period_end=date(2026, 11, 30),
        currency="PEN",
        format="xlsx",
        client_app=client_app,
        requested_via="api",
    )
    Report.objects.filter(pk=report.pk).update(status="failed", error="OSError: disk full")
    detail = api.get(f"/api/v1/reports/{report.pk}").json()
    assert detail["status"] == "failed" and detail["error"] == "OSError: disk full" and detail["download_url"] is None
    assert api.get(f"/api/v1/reports/{report.pk}/download").status_code == 409
