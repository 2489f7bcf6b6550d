"""Thin Celery wrappers around reporting services (rollups on beat, reports queued after commit)."""

from celery import shared_task


@shared_task(name="reporting.rollup_recent_days", acks_late=True)
def rollup_recent_days() -> int:
    """Recompute the rollups of the last REPORTING_ROLLUP_RECENT_DAYS Lima days (not today)."""
    from reporting.services import rollups

    return rollups.rollup_recent_days()


@shared_task(name="reporting.rollup_day", acks_late=True)
def rollup_day(day: str) -> int:
    """Recompute one Lima day's rollups (ISO date)."""
    from datetime import date

    from reporting.services import rollups

    return rollups.rollup_day(date.fromisoformat(day))


@shared_task(name="reporting.generate_report", acks_late=True)
def generate_report(report_id: str) -> str:
    from reporting.services import reports

    return reports.report_generate(report_id=report_id)


@shared_task(name="reporting.send_periodic_reports", acks_late=True)
def send_periodic_reports(schedule: str) -> int:
    """Create (once per period) and email last week's or last month's report."""
    from reporting.services import periodic

    return periodic.send_periodic_reports(schedule=schedule)
