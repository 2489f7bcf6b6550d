"""`python manage.py reporting_rollup --from 2025-01-01 --to 2025-03-31`: (re)compute the daily
rollups of a range of Lima days (a backfill, or a repair after a data fix). Without dates: the
last REPORTING_ROLLUP_RECENT_DAYS days, as the hourly job does."""

from datetime import date, timedelta

from django.core.management.base import BaseCommand, CommandError

from reporting.services import rollups
from smartpay.clock import business_date


def _day(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError as error:
        raise CommandError(f"Not a date (YYYY-MM-DD): {value!r}") from error


class Command(BaseCommand):
    help = "Recompute the reporting rollups of the Lima days from --from to --to (included). Today stays live."

    def add_arguments(self, parser):
        parser.add_argument("--from", dest="start", help="First Lima day, YYYY-MM-DD.")
        parser.add_argument("--to", dest="end", help="Last Lima day, YYYY-MM-DD (default: yesterday).")

    def handle(self, *args, start=None, end=None, **options):
        if start is None and end is None:
            rows = rollups.rollup_recent_days()
            self.stdout.write(self.style.SUCCESS(f"Recent days rolled up: {rows} rows."))
            return
        yesterday = business_date() - timedelta(days=1)
        first = _day(start) if start else None
        last = _day(end) if end else yesterday
        if first is None:
            raise CommandError("--from is required with --to.")
        if last < first:
            raise CommandError("--to is before --from.")
        if last > yesterday:
            raise CommandError(
                f"Only days before today can be rolled up (today is read live): --to {yesterday} at most."
            )
        rows = rollups.rollup_range(first, last)
        days = (last - first).days + 1
        self.stdout.write(self.style.SUCCESS(f"{days} day(s) rolled up, {first} to {last}: {rows} rows."))
