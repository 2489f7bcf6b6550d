"""Period reports for finance: request one, generate its file, run a failed one again.

Life of a report: `queued` (created by `report_request`, its task queued after commit) ->
`running` (claimed by `report_generate` under a row lock) -> `ready` (file stored, size and
sha256 recorded) or `failed` (error kept, no file). A failed report, or a running one whose
worker died (its lease of RUN_LEASE ran out), can be run again.

The file is written to a temporary file on local disk, rows streamed from the database a chunk
at a time, progress saved every PROGRESS_EVERY rows in short transactions of their own. Only when
the file is complete is it saved to the default storage and attached, in one step: no half-written
file is ever offered. Each run carries a number (`runs`), and only the current run may attach its
file or record a failure, so a run that outlived its lease cannot overwrite a newer one.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from datetime import date, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files import File
from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone

from payments.enums import Currency
from payments.models import ClientApp
from reporting import selectors
from reporting.models import Report, ReportFormat, ReportStatus
from reporting.reports import csv_zip, pdf, rows, summary, xlsx
from smartpay.clock import business_time
from smartpay.queueing import enqueue_after_commit

logger = logging.getLogger("smartpay.reporting")

RUN_LEASE = timedelta(minutes=30)  # a run not finished by then is taken to be dead
PROGRESS_EVERY = 5000  # rows between two progress updates

CONTENT_TYPES = {
    ReportFormat.XLSX: "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ReportFormat.CSV: "application/zip",
    ReportFormat.PDF: "application/pdf",
}
EXTENSIONS = {ReportFormat.XLSX: "xlsx", ReportFormat.CSV: "zip", ReportFormat.PDF: "pdf"}


def report_filename(report: Report) -> str:
    """smartpay-report-PEN-2026-11-01-2026-11-30.xlsx (the CSV format is a zip)."""
    return (
        f"smartpay-report-{report.currency}-{report.period_start.isoformat()}-{report.period_end.isoformat()}"
        f".{EXTENSIONS[report.format]}"
    )


def report_content_type(report: Report) -> str:
    return CONTENT_TYPES[report.format]


def validate_request(*, period_start, period_end, currency, format) -> None:
    errors: dict[str, list[str]] = {}
    if not isinstance(period_start, date):
        errors["period_start"] = ["A date (YYYY-MM-DD) is required."]
    if not isinstance(period_end, date):
        errors["period_end"] = ["A date (YYYY-MM-DD) is required."]
    if not errors:
        if period_end < period_start:
            errors["period_end"] = ["The period ends before it starts."]
        elif (period_end - period_start).days + 1 > settings.REPORT_MAX_DAYS:
            errors["period_end"] = [f"A report covers at most {settings.REPORT_MAX_DAYS} days."]
    if currency not in Currency.values:
        errors["currency"] = [f"One of {', '.join(Currency.values)}."]
    if format not in ReportFormat.values:
        errors["format"] = [f"One of {', '.join(ReportFormat.values)}."]
    if errors:
        raise ValidationError(errors)


def report_request(
    *,
    period_start: date,
    period_end: date,
    currency: str,
    format: str,
    client_app: ClientApp | None = None,
    requested_by=None,
    requested_via: str = "admin",
    schedule: str = "",
) -> Report:
    """Create a queued report and queue its generation once this transaction commits.

    Raises `ValidationError` ({field: [messages]}) for an end before the start, a range of more
    than REPORT_MAX_DAYS days, or an unknown currency or format; nothing is created then."""
    validate_request(period_start=period_start, period_end=period_end, currency=currency, format=format)
    from reporting.tasks import generate_report

    with transaction.atomic():
        report = Report.objects.create(
            client_app=client_app,
            requested_by=requested_by,
            requested_via=requested_via,
            period_start=period_start,
            period_end=period_end,
            currency=currency,
            format=format,
            schedule=schedule,
        )
        enqueue_after_commit(generate_report, report.id)
    return report


def report_rerun(report: Report) -> Report:
    """Queue a failed report again (or one whose run or queued task was lost: running or queued for
    longer than RUN_LEASE). Raises `ValidationError` for a ready report or one still in its lease."""
    from reporting.tasks import generate_report

    with transaction.atomic():
        locked = Report.objects.select_for_update().get(pk=report.pk)
        lost = locked.status == ReportStatus.QUEUED and locked.created_at < timezone.now() - RUN_LEASE
        if not (lost or (_claimable(locked) and locked.status != ReportStatus.QUEUED)):
            raise ValidationError(f"Report {locked.id} is {locked.status}: only a failed report can run again.")
        Report.objects.filter(pk=locked.pk).update(status=ReportStatus.QUEUED, progress=0, error="")
        enqueue_after_commit(generate_report, locked.id)
    report.refresh_from_db()
    return report


def _claimable(report: Report) -> bool:
    if report.status in (ReportStatus.QUEUED, ReportStatus.FAILED):
        return True
    if report.status == ReportStatus.RUNNING:
        return report.started_at is None or report.started_at < timezone.now() - RUN_LEASE
    return False


def _claim(report_id: str) -> tuple[Report, int] | None:
    """Take the report for this run (queued/failed/stale running -> running). None: not ours to run."""
    with transaction.atomic():
        report = Report.objects.select_for_update().filter(pk=report_id).first()
        if report is None or not _claimable(report):
            return None
        run = report.runs + 1
        Report.objects.filter(pk=report.pk).update(
            status=ReportStatus.RUNNING,
            runs=run,
            progress=0,
            rows_written=0,
            error="",
            file="",
            file_size=None,
            sha256="",
            started_at=timezone.now(),
            finished_at=None,
        )
    report.refresh_from_db()
    return report, run


class _Progress:
    """Counts rows and saves the percentage every PROGRESS_EVERY rows (capped at 99 until ready)."""

    def __init__(self, report_id: str, run: int, total: int):
        self.report_id, self.run, self.total = report_id, run, max(total, 1)
        self.done = 0

    def tick(self) -> None:
        self.done += 1
        if self.done % PROGRESS_EVERY == 0:
            with transaction.atomic():
                Report.objects.filter(pk=self.report_id, runs=self.run).update(
                    progress=min(99, self.done * 100 // self.total), rows_written=self.done
                )


def _scope_label(report: Report) -> str:
    if report.client_app_id is None:
        return "All client apps"
    return f"{report.client_app.name} ({report.client_app_id})"


def _write(report: Report, path: str, progress_for) -> int:
    """Write the report's file at `path`; returns the number of detail rows written."""
    scope = rows.Scope(report.period_start, report.period_end, report.currency, report.client_app_id)
    metrics = selectors.period_metrics(
        selectors.Period(start=scope.start, end=scope.end, currency=scope.currency, client_app_id=scope.client_app_id)
    )
    sheets = rows.DETAIL_SHEETS if report.format != ReportFormat.PDF else []
    counts = {sheet.name: sheet.count(scope) for sheet in sheets}
    sections = summary.build(
        metrics,
        scope=scope,
        scope_label=_scope_label(report),
        generated_at=business_time().replace(tzinfo=None),
        report_id=report.id,
        counts=counts,
    )
    progress = progress_for(1 + sum(counts.values()))
    details = [(sheet, sheet.rows(scope)) for sheet in sheets]
    if report.format == ReportFormat.XLSX:
        xlsx.write(path, summary=sections, details=details, tick=progress.tick)
    elif report.format == ReportFormat.CSV:
        csv_zip.write(path, summary=sections, details=details, tick=progress.tick)
    else:
        pdf.write(path, summary=sections, details=details, tick=progress.tick, currency=report.currency)
    return max(progress.done - 1, 0)


def _digest(path: str) -> tuple[int, str]:
    sha = hashlib.sha256()
    size = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            sha.update(chunk)
            size += len(chunk)
    return size, sha.hexdigest()


def _storage_name(report: Report) -> str:
    now = business_time()
    return f"reports/{now:%Y/%m}/{report.id}-{report_filename(report)}"


def report_generate(*, report_id: str) -> str:
    """Generate the report's file; returns its status afterwards.

    Lock: the report row (select_for_update) only while claiming it and while attaching the file.
    Idempotent: a ready report, or one another worker is running within its lease, is left alone.
    Any error marks the run failed with the error, deletes the temporary (and any stored) file,
    and attaches nothing; `report_rerun` runs it again."""
    claimed = _claim(report_id)
    if claimed is None:
        return Report.objects.filter(pk=report_id).values_list("status", flat=True).first() or "missing"
    report, run = claimed
    handle, path = tempfile.mkstemp(prefix=f"smartpay-{report.id}-", suffix=f".{EXTENSIONS[report.format]}")
    os.close(handle)
    stored = ""
    try:
        written = _write(report, path, lambda total: _Progress(report.id, run, total))
        size, sha = _digest(path)
        with open(path, "rb") as source:
            stored = default_storage.save(_storage_name(report), File(source))
        with transaction.atomic():
            attached = Report.objects.filter(pk=report.id, runs=run, status=ReportStatus.RUNNING).update(
                status=ReportStatus.READY,
                progress=100,
                rows_written=written,
                file=stored,
                file_size=size,
                sha256=sha,
                finished_at=timezone.now(),
            )
        if not attached:  # a newer run took over: its file is the one that counts
            default_storage.delete(stored)
            logger.warning("report run superseded; its file discarded", extra={"report": report.id, "run": run})
            return Report.objects.values_list("status", flat=True).get(pk=report.id)
    except Exception as error:
        logger.exception("report generation failed", extra={"report": report.id, "run": run})
        if stored:
            default_storage.delete(stored)
        with transaction.atomic():
            Report.objects.filter(pk=report.id, runs=run).update(
                status=ReportStatus.FAILED,
                error=f"{type(error).__name__}: {error}"[:500],
                file="",
                file_size=None,
                sha256="",
                finished_at=timezone.now(),
            )
        return ReportStatus.FAILED
    finally:
        if os.path.exists(path):
            os.unlink(path)
    return ReportStatus.READY
