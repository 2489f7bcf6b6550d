import sys
import time
from datetime import date

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from payments.gateways.registry import gateway_names
from payments.models import ReconciliationRun
from payments.services.reconciliation import ReconciliationAlreadyRunning, reconcile_day, yesterday

COLUMNS = ("gateway", "day", "status", "theirs", "ours", "matched", "fixed", "issues", "new", "seconds")


class Command(BaseCommand):
    help = (
        "Compare a day of the gateways' records with our payments: fix what is safely behind, report the rest "
        "as reconciliation issues. Progress on stderr, a summary table on stdout; exit 1 if a run failed."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--date",
            dest="day",
            type=date.fromisoformat,
            default=None,
            metavar="YYYY-MM-DD",
            help="The day, in settings.TIME_ZONE (default: yesterday).",
        )
        parser.add_argument("--gateway", choices=gateway_names(), help="One gateway (default: all of them).")

    def handle(self, *args, day=None, gateway=None, **options):
        day = day or yesterday()
        runs: list[tuple[ReconciliationRun, float]] = []
        problems: list[str] = []
        for name in [gateway] if gateway else gateway_names():
            started = time.monotonic()
            # The bar writes to the real stderr stream: Django's wrapper would add a newline per refresh.
            with tqdm(desc=f"{name} {day}", unit=" records", file=getattr(self.stderr, "_out", sys.stderr)) as bar:
                try:
                    run = reconcile_day(gateway=name, day=day, progress=bar.update)
                except ReconciliationAlreadyRunning as error:
                    problems.append(str(error))
                    continue
            runs.append((run, time.monotonic() - started))
            if run.status == ReconciliationRun.FAILED:
                problems.append(f"{name}: {run.error}")

        rows = [COLUMNS] + [
            (
                run.gateway,
                str(run.day),
                run.status,
                str(run.gateway_records),
                str(run.our_records),
                str(run.matched),
                str(run.fixed),
                str(run.issues),
                str(run.new_issues),
                f"{seconds:.1f}",
            )
            for run, seconds in runs
        ]
        widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
        for row in rows:
            self.stdout.write("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
        if any(run.issues for run, _ in runs):
            self.stdout.write("Open issues: admin → Payments → Reconciliation issues.")
        if problems:
            raise CommandError("reconciliation failed: " + "; ".join(problems))
