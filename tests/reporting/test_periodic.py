"""Weekly and monthly finance reports: the right period, one report row per period and currency,
one email (XLSX attached) however often the job runs, nothing sent without recipients."""

import io
from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest
from django.core import mail
from openpyxl import load_workbook

from reporting.models import Report
from reporting.services import periodic
from reporting.services.periodic import previous_period, send_periodic_reports
from tests.reporting.report_data import lima_dt, make_payment

LIMA = ZoneInfo("America/Lima")
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
# Monday 9 November 2026, 07:00 in Lima (12:00 UTC), when beat runs the weekly job.
MONDAY = datetime(2026, 11, 9, 7, 0, tzinfo=LIMA)


@pytest.fixture
def finance(settings):
    settings.FINANCE_REPORT_EMAILS = ["finanzas@example.pe", "contador@example.pe"]
    settings.FINANCE_REPORT_CURRENCIES = ["PEN", "USD"]
    return settings


@pytest.mark.parametrize(
    ("schedule", "today", "start", "end"),
    [
        ("weekly", date(2026, 11, 9), date(2026, 11, 2), date(2026, 11, 8)),  # a Monday: the week before
        ("weekly", date(2026, 11, 15), date(2026, 11, 2), date(2026, 11, 8)),  # a Sunday: still the last full week
        ("weekly", date(2027, 1, 4), date(2026, 12, 28), date(2027, 1, 3)),  # across the new year
        ("monthly", date(2026, 12, 1), date(2026, 11, 1), date(2026, 11, 30)),
        ("monthly", date(2028, 3, 1), date(2028, 2, 1), date(2028, 2, 29)),  # leap February
        ("monthly", date(2027, 1, 15), date(2026, 12, 1), date(2026, 12, 31)),
    ],
)
def test_previous_period(schedule, today, start, end):
    assert previous_period(schedule, today) == (start, end)


def test_the_period_is_the_lima_calendars():
    # 03:00 UTC on Monday is still Sunday 22:00 in Lima: the last full week is the one before.
    monday_utc = datetime(2026, 11, 9, 3, 0, tzinfo=ZoneInfo("UTC"))
    from smartpay.clock import business_date

    assert previous_period("weekly", business_date(monday_utc)) == (date(2026, 10, 26), date(2026, 11, 1))


def test_running_twice_makes_one_report_and_one_email_per_currency(client_app, finance):
    make_payment(client_app, amount=15000, created_at=lima_dt(date(2026, 11, 4)))
    make_payment(client_app, amount=990, currency="USD", created_at=lima_dt(date(2026, 11, 8), 23, 30))
    make_payment(client_app, amount=7777, created_at=lima_dt(date(2026, 11, 9), 0, 30))  # this week: not in it

    assert send_periodic_reports(schedule="weekly", now=MONDAY) == 2
    assert send_periodic_reports(schedule="weekly", now=MONDAY) == 0

    reports = Report.objects.order_by("currency")
    assert [(r.schedule, r.currency, r.period_start, r.period_end, r.format, r.status) for r in reports] == [
        ("weekly", "PEN", date(2026, 11, 2), date(2026, 11, 8), "xlsx", "ready"),
        ("weekly", "USD", date(2026, 11, 2), date(2026, 11, 8), "xlsx", "ready"),
    ]
    assert all(r.emailed_at is not None and r.client_app_id is None and r.requested_via == "schedule" for r in reports)
    assert len(mail.outbox) == 2
    by_currency = {("PEN" if " PEN " in m.subject else "USD"): m for m in mail.outbox}
    pen = by_currency["PEN"]
    assert pen.to == ["finanzas@example.pe", "contador@example.pe"]
    assert pen.subject == "SmartPay weekly report PEN 2026-11-02 to 2026-11-08"
    [(filename, content, mimetype)] = pen.attachments
    assert filename == "smartpay-report-PEN-2026-11-02-2026-11-08.xlsx" and mimetype == XLSX
    book = load_workbook(io.BytesIO(content), read_only=True)
    payments = [row for row in book["Payments"].iter_rows(values_only=True)][1:]
    assert [(row[9], row[12]) for row in payments] == [(150, "PEN")]
    [(_, usd_content, _)] = by_currency["USD"].attachments
    usd_rows = list(load_workbook(io.BytesIO(usd_content), read_only=True)["Payments"].iter_rows(values_only=True))
    assert len(usd_rows) == 2 and usd_rows[1][12] == "USD"


def test_monthly_and_weekly_are_different_reports(db, finance):
    finance.FINANCE_REPORT_CURRENCIES = ["PEN"]
    assert send_periodic_reports(schedule="weekly", now=datetime(2026, 12, 1, 7, 30, tzinfo=LIMA)) == 1
    assert send_periodic_reports(schedule="monthly", now=datetime(2026, 12, 1, 7, 30, tzinfo=LIMA)) == 1
    assert sorted(Report.objects.values_list("schedule", "period_start", "period_end")) == [
        ("monthly", date(2026, 11, 1), date(2026, 11, 30)),
        ("weekly", date(2026, 11, 23), date(2026, 11, 29)),
    ]
    assert len(mail.outbox) == 2


def test_without_recipients_the_report_is_made_but_not_sent(db, settings):
    settings.FINANCE_REPORT_EMAILS = []
    settings.FINANCE_REPORT_CURRENCIES = ["PEN"]
    assert send_periodic_reports(schedule="monthly", now=MONDAY) == 0
    report = Report.objects.get()
    assert report.status == "ready" and report.emailed_at is None and mail.outbox == []


def test_a_send_that_certainly_failed_is_tried_again_next_run(db, finance, monkeypatch):
    from anymail.exceptions import AnymailAPIError

    finance.FINANCE_REPORT_CURRENCIES = ["PEN"]
    real_send = periodic.EmailMessage.send

    def refused(self, *args, **kwargs):
        error = AnymailAPIError("Postmark answered 500")
        error.status_code = 500
        raise error

    monkeypatch.setattr(periodic.EmailMessage, "send", refused)
    assert send_periodic_reports(schedule="weekly", now=MONDAY) == 0
    assert Report.objects.get().emailed_at is None  # the claim was released

    monkeypatch.setattr(periodic.EmailMessage, "send", real_send)
    assert send_periodic_reports(schedule="weekly", now=MONDAY) == 1
    assert len(mail.outbox) == 1 and Report.objects.count() == 1


def test_a_send_with_an_unknown_outcome_is_never_repeated(db, finance, monkeypatch):
    from anymail.exceptions import AnymailAPIError

    finance.FINANCE_REPORT_CURRENCIES = ["PEN"]

    def timed_out(self, *args, **kwargs):
        raise AnymailAPIError("read timed out")  # no status: the request may have reached Postmark

    monkeypatch.setattr(periodic.EmailMessage, "send", timed_out)
    assert send_periodic_reports(schedule="weekly", now=MONDAY) == 0
    assert Report.objects.get().emailed_at is not None  # claimed: at most once
    monkeypatch.undo()
    assert send_periodic_reports(schedule="weekly", now=MONDAY) == 0
    assert mail.outbox == []


def test_a_report_that_failed_is_generated_again_by_the_next_run(db, finance, monkeypatch):
    from reporting.reports import xlsx

    finance.FINANCE_REPORT_CURRENCIES = ["PEN"]
    real_write = xlsx.write

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(xlsx, "write", broken)
    assert send_periodic_reports(schedule="weekly", now=MONDAY) == 0
    assert Report.objects.get().status == "failed" and mail.outbox == []
    monkeypatch.setattr(xlsx, "write", real_write)
    assert send_periodic_reports(schedule="weekly", now=MONDAY) == 1
    report = Report.objects.get()
    assert report.status == "ready" and report.runs == 2 and len(mail.outbox) == 1


def test_the_beat_task_runs_the_service(db, finance):
    from reporting.tasks import send_periodic_reports as task

    finance.FINANCE_REPORT_CURRENCIES = ["USD"]
    assert task.apply(kwargs={"schedule": "monthly"}).get() == 1
    assert Report.objects.get().schedule == "monthly" and len(mail.outbox) == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_jobs_at_once_send_one_email(require_postgres, settings):
    """Beat fired twice (two workers): the scheduled row is created once, generated by one worker,
    and the email claimed by one of them."""
    from tests.concurrency import run_at_once

    settings.FINANCE_REPORT_EMAILS = ["finanzas@example.pe"]
    settings.FINANCE_REPORT_CURRENCIES = ["PEN"]
    results = run_at_once(3, lambda _: send_periodic_reports(schedule="weekly", now=MONDAY))
    assert Report.objects.count() == 1
    # A job that found the report still being generated by another sends nothing; the next run
    # would, but the generating job emails it as soon as it is ready.
    assert sum(results) == 1 and len(mail.outbox) == 1
    assert send_periodic_reports(schedule="weekly", now=MONDAY) == 0 and len(mail.outbox) == 1
