"""Period reports: the files (XLSX, CSV zip, PDF) add up against their detail rows on random data,
stay in their currency and client app, validate their range, and a crashed run leaves nothing
behind and can run again. The admin: the add form, the read-only page, the download permission."""

import csv
import io
import itertools
import os
import random
import tempfile
import zipfile
from datetime import date
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission, User
from django.core.exceptions import ValidationError
from openpyxl import load_workbook

from payments.services.clients import client_app_create
from reporting.models import Report
from reporting.reports import xlsx
from reporting.services.reports import report_generate, report_request, report_rerun
from tests.reporting.report_data import lima_dt, make_payment, make_refund, random_dataset

START, END = date(2026, 11, 1), date(2026, 11, 30)


def generate(**kwargs) -> Report:
    params = {"period_start": START, "period_end": END, "currency": "PEN", "format": "xlsx", **kwargs}
    report = report_request(**params)
    assert report_generate(report_id=report.id) == "ready", Report.objects.get(pk=report.id).error
    report.refresh_from_db()
    return report


def read_xlsx(report: Report) -> dict[str, list[tuple]]:
    with report.file.open("rb") as handle:
        book = load_workbook(io.BytesIO(handle.read()), read_only=True)
    return {ws.title: [tuple(row) for row in ws.iter_rows(values_only=True)] for ws in book.worksheets}


def summary_value(sheets, label):
    values = [row[1] for row in sheets["Summary"] if row and row[0] == label]
    assert len(values) == 1, f"{label!r} appears {len(values)} times"
    return values[0]


def column(rows: list[tuple], header: str) -> list:
    index = rows[0].index(header)
    return [row[index] for row in rows[1:]]


def dec(value) -> Decimal:
    """A number read back from the sheet as an exact decimal (values were written as Decimal)."""
    return Decimal(str(value))


def major(minor: int) -> Decimal:
    return Decimal(minor).scaleb(-2)


@pytest.fixture
def apps(db):
    return [client_app_create(name="Tienda Lima"), client_app_create(name="Otra App")]


# --- amounts add up on random data ---------------------------------------------------------------


@pytest.mark.parametrize("seed", [7, 2026, 31337])
def test_xlsx_totals_equal_detail_rows_on_random_data(apps, seed):
    expected = random_dataset(random.Random(seed), apps, START, END, n=45)
    sheets = read_xlsx(generate(currency="PEN"))

    payments = sheets["Payments"]
    assert set(column(payments, "Currency")) <= {"PEN"}
    assert set(column(payments, "Payment")) == set(expected.of("payments", "PEN"))
    captured = sum(dec(v) for v in column(payments, "Captured"))
    assert captured == major(sum(expected.of("payments", "PEN").values()))
    assert dec(summary_value(sheets, "Gross captured")) == captured

    refunds = sheets["Refunds"]
    assert set(column(refunds, "Currency")) <= {"PEN"}
    assert set(column(refunds, "Refund")) == set(expected.of("refunds", "PEN"))
    succeeded = [
        dec(amount)
        for amount, st in zip(column(refunds, "Amount"), column(refunds, "Status"), strict=True)
        if st == "succeeded"
    ]
    want_refunded = sum(a for s, a in expected.of("refunds", "PEN").values() if s == "succeeded")
    assert sum(succeeded, Decimal(0)) == major(want_refunded)
    assert dec(summary_value(sheets, "Refunded")) == major(want_refunded)
    assert dec(summary_value(sheets, "Net")) == captured - major(want_refunded)

    invoices = sheets["Invoices"]
    assert set(column(invoices, "Currency")) <= {"PEN"}
    invoice_total = sum((dec(v) for v in column(invoices, "Total")), Decimal(0))
    assert invoice_total == major(sum(expected.of("invoices", "PEN").values()))
    assert dec(summary_value(sheets, "Boletas total")) + dec(summary_value(sheets, "Facturas total")) == invoice_total
    for subtotal, igv, total in zip(
        column(invoices, "Subtotal"), column(invoices, "IGV"), column(invoices, "Total"), strict=True
    ):
        assert dec(subtotal) + dec(igv) == dec(total)

    notes = sheets["Credit notes"]
    notes_total = sum((dec(v) for v in column(notes, "Total")), Decimal(0))
    assert notes_total == major(sum(expected.of("credit_notes", "PEN").values()))
    assert dec(summary_value(sheets, "Credit notes total")) == notes_total
    assert all(number.startswith("B001-") or number.startswith("F001-") for number in column(notes, "Credited invoice"))


def test_usd_report_holds_only_usd_rows(apps):
    expected = random_dataset(random.Random(11), apps, START, END, n=30)
    sheets = read_xlsx(generate(currency="USD"))
    assert set(column(sheets["Payments"], "Payment")) == set(expected.of("payments", "USD"))
    assert set(column(sheets["Payments"], "Currency")) <= {"USD"}
    assert summary_value(sheets, "Currency") == "USD"


def test_a_client_apps_report_holds_none_of_another_apps_rows(apps):
    mine, other = apps
    expected = random_dataset(random.Random(5), apps, START, END, n=40)
    sheets = read_xlsx(generate(client_app=mine))
    assert set(column(sheets["Payments"], "Payment")) == set(expected.of("payments", "PEN", mine.pk))
    for name in ["Payments", "Refunds", "Invoices", "Credit notes"]:
        assert other.pk not in column(sheets[name], "Client app id"), name
    assert dec(summary_value(sheets, "Gross captured")) == major(sum(expected.of("payments", "PEN", mine.pk).values()))


def test_lima_day_boundaries_and_amount_format(apps):
    app = apps[0]
    late = make_payment(app, amount=12345, created_at=lima_dt(END, 23, 30))  # 04:30 UTC on Dec 1
    make_payment(app, amount=999, created_at=lima_dt(START, 0, 0))  # the first minute of the period
    make_payment(app, amount=500, created_at=lima_dt(date(2026, 10, 31), 23, 59))  # before the period
    report = generate()
    with report.file.open("rb") as handle:
        book = load_workbook(io.BytesIO(handle.read()))
    ws = book["Payments"]
    rows = list(ws.iter_rows(min_row=2))
    ids = [row[0].value for row in rows]
    assert late.id in ids and len(ids) == 2
    late_row = rows[ids.index(late.id)]
    assert late_row[1].value.strftime("%Y-%m-%d %H:%M") == "2026-11-30 23:30"  # shown in Lima
    assert dec(late_row[10].value) == Decimal("123.45")
    assert late_row[10].number_format == xlsx.MONEY_FORMAT


# --- empty ranges, formats ---------------------------------------------------------------------


def test_empty_range_gives_valid_empty_files(apps):
    sheets = read_xlsx(generate())
    assert list(sheets) == ["Summary", "Payments", "Refunds", "Invoices", "Credit notes", "Credit movements"]
    for name in ["Payments", "Refunds", "Invoices", "Credit notes", "Credit movements"]:
        assert len(sheets[name]) == 1 and sheets[name][0][0], name  # the header row only
    assert dec(summary_value(sheets, "Gross captured")) == 0

    report = generate(format="csv")
    with report.file.open("rb") as handle, zipfile.ZipFile(io.BytesIO(handle.read())) as archive:
        assert sorted(archive.namelist()) == sorted(
            ["summary.csv", "payments.csv", "refunds.csv", "invoices.csv", "credit_notes.csv", "credit_movements.csv"]
        )
        payments = list(csv.reader(io.TextIOWrapper(archive.open("payments.csv"), encoding="utf-8-sig")))
    assert payments == [
        [
            "Payment",
            "Created (Lima)",
            "Client app id",
            "Client app",
            "Customer",
            "Email",
            "Gateway",
            "Gateway id",
            "Status",
            "Amount",
            "Captured",
            "Refunded",
            "Currency",
            "Failure code",
            "Decline code",
        ]
    ]

    report = generate(format="pdf")
    with report.file.open("rb") as handle:
        assert handle.read(5) == b"%PDF-"
    assert report.file.name.endswith(".pdf") and report.file_size > 500


def test_csv_zip_sums_match_and_amounts_are_plain_decimals(apps):
    app = apps[0]
    paid = make_payment(app, amount=250050, created_at=lima_dt(date(2026, 11, 3)))
    make_refund(paid, amount=50, created_at=lima_dt(date(2026, 11, 4)))
    make_refund(paid, amount=70, status="failed", created_at=lima_dt(date(2026, 11, 4)))
    report = generate(format="csv")
    with report.file.open("rb") as handle, zipfile.ZipFile(io.BytesIO(handle.read())) as archive:
        payments = list(csv.DictReader(io.TextIOWrapper(archive.open("payments.csv"), encoding="utf-8-sig")))
        refunds = list(csv.DictReader(io.TextIOWrapper(archive.open("refunds.csv"), encoding="utf-8-sig")))
        summary = list(csv.reader(io.TextIOWrapper(archive.open("summary.csv"), encoding="utf-8-sig")))
    assert [row["Captured"] for row in payments] == ["2500.50"]
    assert sorted((row["Status"], row["Amount"]) for row in refunds) == [("failed", "0.70"), ("succeeded", "0.50")]
    figures = {row[0]: row[1] for row in summary if len(row) >= 2}
    assert figures["Gross captured"] == "2500.50" and figures["Refunded"] == "0.50" and figures["Net"] == "2500.00"


def test_ready_report_records_size_and_digest(apps):
    import hashlib

    make_payment(apps[0], amount=1000, created_at=lima_dt(date(2026, 11, 5)))
    report = generate()
    with report.file.open("rb") as handle:
        content = handle.read()
    assert report.status == "ready" and report.progress == 100 and report.rows_written == 1
    assert report.file_size == len(content) and report.sha256 == hashlib.sha256(content).hexdigest()
    assert report.file.name.startswith("reports/") and report.runs == 1


# --- validation --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "end", "field"),
    [(date(2026, 11, 2), date(2026, 11, 1), "period_end"), (date(2025, 1, 1), date(2026, 1, 2), "period_end")],
)
def test_bad_ranges_are_refused_and_create_nothing(db, start, end, field):
    with pytest.raises(ValidationError) as caught:
        report_request(period_start=start, period_end=end, currency="PEN", format="xlsx")
    assert field in caught.value.message_dict
    assert not Report.objects.exists()


def test_a_full_leap_year_is_allowed_and_one_day_more_is_not(db, settings):
    assert settings.REPORT_MAX_DAYS == 366
    report_request(period_start=date(2028, 1, 1), period_end=date(2028, 12, 31), currency="PEN", format="pdf")
    with pytest.raises(ValidationError):
        report_request(period_start=date(2028, 1, 1), period_end=date(2029, 1, 1), currency="PEN", format="pdf")
    with pytest.raises(ValidationError) as caught:
        report_request(period_start=START, period_end=END, currency="EUR", format="docx")
    assert set(caught.value.message_dict) == {"currency", "format"}


# --- a crash mid-generation --------------------------------------------------------------------


def test_a_crash_mid_generation_fails_cleanly_and_runs_again(
    apps, settings, monkeypatch, tmp_path, django_capture_on_commit_callbacks
):
    for n in range(5):
        make_payment(apps[0], amount=1000 + n, created_at=lima_dt(date(2026, 11, 10 + n)))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # every temporary file of the run lands here
    real_cells, calls = xlsx._cells, []

    def crashing_cells(ws, values):
        if values and str(values[0]).startswith("pay_"):
            calls.append(values[0])
            if len(calls) == 3:  # the summary and two payment rows are written
                raise OSError("disk full")
        return real_cells(ws, values)

    monkeypatch.setattr(xlsx, "_cells", crashing_cells)
    report = report_request(period_start=START, period_end=END, currency="PEN", format="xlsx")
    assert report_generate(report_id=report.id) == "failed"
    report.refresh_from_db()
    assert report.status == "failed" and "OSError: disk full" in report.error
    assert not report.file and report.file_size is None and report.sha256 == ""
    assert os.listdir(tmp_path) == []  # neither our file nor openpyxl's per-sheet files
    stored = [name for _, _, names in os.walk(settings.MEDIA_ROOT) for name in names if report.id in name]
    assert stored == []

    monkeypatch.setattr(xlsx, "_cells", real_cells)
    with django_capture_on_commit_callbacks(execute=True):
        report_rerun(report)
    report.refresh_from_db()
    assert report.status == "ready" and report.runs == 2 and report.error == ""
    assert len(read_xlsx(report)["Payments"]) == 1 + 5
    assert os.listdir(tmp_path) == []


def test_only_failed_reports_run_again(apps):
    report = generate()
    with pytest.raises(ValidationError):
        report_rerun(report)
    assert report_generate(report_id=report.id) == "ready"  # a repeat of the task leaves it alone
    report.refresh_from_db()
    assert report.runs == 1


def test_a_running_report_within_its_lease_is_left_to_its_worker(apps):
    from django.utils import timezone

    report = report_request(period_start=START, period_end=END, currency="PEN", format="xlsx")
    Report.objects.filter(pk=report.pk).update(status="running", started_at=timezone.now(), runs=1)
    assert report_generate(report_id=report.id) == "running"
    Report.objects.filter(pk=report.pk).update(started_at=timezone.now() - timezone.timedelta(hours=1))
    assert report_generate(report_id=report.id) == "ready"  # its worker died: the lease ran out
    assert Report.objects.get(pk=report.pk).runs == 2


# --- admin -------------------------------------------------------------------------------------


_users = itertools.count(1)


def staff(*perms: str) -> User:
    user = User.objects.create_user(f"staff{next(_users)}", password="x", is_staff=True)
    for perm in perms:
        app_label, codename = perm.split(".")
        user.user_permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
    return user


def test_admin_add_form_is_prefilled_and_creates_the_report(apps, client, django_capture_on_commit_callbacks):
    client.force_login(staff("reporting.view_report", "reporting.add_report"))
    page = client.get(
        "/admin/reporting/report/add/?period_start=2026-11-01&period_end=2026-11-30&currency=PEN&format=xlsx"
    )
    assert page.status_code == 200
    html = page.content.decode()
    assert 'value="2026-11-01"' in html and 'value="2026-11-30"' in html
    make_payment(apps[0], amount=4200, created_at=lima_dt(date(2026, 11, 7)))
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/admin/reporting/report/add/",
            {
                "period_start": "2026-11-01",
                "period_end": "2026-11-30",
                "currency": "PEN",
                "format": "xlsx",
                "client_app": apps[0].pk,
            },
        )
    report = Report.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/admin/reporting/report/{report.pk}/change/"
    assert report.client_app == apps[0] and report.requested_via == "admin" and report.requested_by is not None
    report.refresh_from_db()
    assert report.status == "ready"

    page = client.get(response["Location"]).content.decode()
    assert "Download" in page and 'name="_save"' not in page and 'http-equiv="refresh"' not in page
    download = client.get(f"/admin/reporting/report/{report.pk}/download/")
    assert download.status_code == 200
    assert download["Content-Disposition"] == 'attachment; filename="smartpay-report-PEN-2026-11-01-2026-11-30.xlsx"'
    book = load_workbook(io.BytesIO(b"".join(download.streaming_content)), read_only=True)
    assert book.sheetnames[0] == "Summary"

    listing = client.get("/admin/reporting/report/").content.decode()
    assert report.pk in listing and "smartpay-report-PEN-2026-11-01-2026-11-30.xlsx" in listing


def test_admin_form_refuses_a_bad_range(apps, client):
    client.force_login(staff("reporting.view_report", "reporting.add_report"))
    response = client.post(
        "/admin/reporting/report/add/",
        {"period_start": "2026-11-30", "period_end": "2026-11-01", "currency": "PEN", "format": "xlsx"},
    )
    assert response.status_code == 200 and "The period ends before it starts." in response.content.decode()
    assert not Report.objects.exists()


def test_admin_page_refreshes_while_running_and_download_needs_view_report(apps, client):
    report = report_request(period_start=START, period_end=END, currency="PEN", format="xlsx")
    admin_user = staff("reporting.view_report")
    client.force_login(admin_user)
    page = client.get(f"/admin/reporting/report/{report.pk}/change/").content.decode()
    assert 'http-equiv="refresh" content="2"' in page and "<progress" in page
    assert client.get(f"/admin/reporting/report/{report.pk}/download/").status_code == 409

    report_generate(report_id=report.id)
    assert client.get(f"/admin/reporting/report/{report.pk}/download/").status_code == 200
    client.force_login(staff("payments.view_payment"))  # support-like: no reporting.view_report
    assert client.get(f"/admin/reporting/report/{report.pk}/download/").status_code == 403
    assert client.get("/admin/reporting/report/").status_code == 403


def test_admin_run_again_action_queues_failed_reports(apps, client, django_capture_on_commit_callbacks):
    report = report_request(period_start=START, period_end=END, currency="PEN", format="csv")
    Report.objects.filter(pk=report.pk).update(status="failed", error="OSError: disk full", runs=1)
    client.force_login(staff("reporting.view_report", "reporting.add_report"))
    assert "Run again" in client.get(f"/admin/reporting/report/{report.pk}/change/").content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/admin/reporting/report/", {"action": "run_again", "_selected_action": [report.pk]})
    assert response.status_code == 302
    report.refresh_from_db()
    assert report.status == "ready" and report.runs == 2
