"""Reporting over a large history (seed it first with bench/seed_reporting.py), on PostgreSQL.

    export DATABASE_URL=postgres://postgres@127.0.0.1:5432/smartpay_bench_reporting
    .venv/bin/python bench/seed_reporting.py --payments 1000000 --days 90
    .venv/bin/python bench/reporting_bench.py

Measures, against the seeded database itself (nothing is dropped; the rollup tables are rewritten):
(a) the staff dashboard, GET /admin/ as a superuser through Django's test client, for "30 days"
    and "This month" in PEN, cold (first request of a fresh process state) and warm (repeated),
    without rollups (every day computed live) and with them (after `rollup_range` over the period,
    which is timed too);
(b) one XLSX period report over the whole seeded period (`report_generate`), run in a child process;
(c) that child's peak memory (VmHWM from /proc, and ru_maxrss of RUSAGE_CHILDREN).
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time
import warnings
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "smartpay.settings")
os.environ.setdefault("SECRET_KEY", "bench-only-secret-key-not-for-production-0123456789")
os.environ.setdefault("LOG_LEVEL", "WARNING")
os.environ["DEBUG"] = "false"  # DEBUG keeps every SQL statement in memory
warnings.filterwarnings("ignore", message="No directory at")

PRESETS = {"30 days": "30d", "This month": "month"}


def vm_hwm_kib() -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def child_report(report_id: str) -> int:
    """Run in a fresh process: generate one report, print its time, rows and peak memory as JSON."""
    import django

    django.setup()
    from reporting.models import Report
    from reporting.services.reports import report_generate

    started = time.monotonic()
    status = report_generate(report_id=report_id)
    seconds = time.monotonic() - started
    report = Report.objects.get(pk=report_id)
    print(
        json.dumps(
            {
                "status": status,
                "seconds": seconds,
                "rows": report.rows_written,
                "bytes": report.file_size,
                "vm_hwm_kib": vm_hwm_kib(),
                "error": report.error,
            }
        )
    )
    return 0 if status == "ready" else 1


def timed_get(client, url: str) -> tuple[float, int, int]:
    from django.db import connection, reset_queries

    reset_queries()
    started = time.monotonic()
    response = client.get(url)
    seconds = time.monotonic() - started
    return seconds, response.status_code, len(connection.queries)


def dashboard_round(client, label: str, rows: list) -> None:
    from django.core.cache import cache

    for name, preset in PRESETS.items():
        url = f"/admin/?period={preset}&currency=PEN"
        cache.clear()  # cold: nothing the dashboard may have cached
        cold, status, queries = timed_get(client, url)
        warm = min(timed_get(client, url)[0] for _ in range(3))
        rows.append((f"dashboard {name}, {label}", f"{cold * 1000:,.0f} ms cold", f"{warm * 1000:,.0f} ms warm",
                     f"HTTP {status}, {queries} queries"))  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--child-report", help=argparse.SUPPRESS)
    parser.add_argument("--skip-report", action="store_true", help="Only the dashboard.")
    args = parser.parse_args()
    if args.child_report:
        return child_report(args.child_report)

    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.db.models import Max, Min
    from django.test import Client
    from django.test.utils import override_settings

    from payments.models import Payment
    from reporting.models import DailyRollup, Report, RollupDay
    from reporting.services.rollups import rollup_range
    from smartpay.clock import business_date

    if connection.vendor != "postgresql":
        print("Set DATABASE_URL to the PostgreSQL database seeded by bench/seed_reporting.py.")
        return 2
    payments = Payment.objects.count()
    if not payments:
        print("No payments: run bench/seed_reporting.py first.")
        return 2
    span = Payment.objects.aggregate(first=Min("created_at"), last=Max("created_at"))
    first_day, last_day = business_date(span["first"]), business_date(span["last"])
    today = business_date()
    print(f"{payments:,} payments from {first_day} to {last_day} (Lima) in {connection.settings_dict['NAME']}\n")

    user, _ = get_user_model().objects.get_or_create(
        username="bench-admin", defaults={"is_staff": True, "is_superuser": True, "email": "bench@example.com"}
    )
    rows: list[tuple] = []
    with override_settings(ALLOWED_HOSTS=["testserver"], SECURE_SSL_REDIRECT=False, DEBUG=True):
        client = Client()
        client.force_login(user)
        DailyRollup.objects.all().delete()
        RollupDay.objects.all().delete()
        dashboard_round(client, "no rollups", rows)
        started = time.monotonic()
        written = rollup_range(first_day, today - timedelta(days=1))
        rollup_seconds = time.monotonic() - started
        rows.append((f"rollup_range {first_day}..yesterday", f"{rollup_seconds:,.1f} s", f"{written:,} rows", ""))
        dashboard_round(client, "with rollups", rows)

    if not args.skip_report:
        report = Report.objects.create(
            period_start=first_day, period_end=last_day, currency="PEN", format="xlsx", requested_via="admin"
        )
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        started = time.monotonic()
        child = subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), "--child-report", report.id],
            capture_output=True,
            text=True,
            cwd=ROOT,
            env=os.environ,
        )
        wall = time.monotonic() - started
        maxrss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        lines = [line for line in child.stdout.splitlines() if line.startswith("{")]
        if child.returncode != 0 or not lines:
            print(child.stdout[-2000:], child.stderr[-4000:])
            rows.append(("XLSX report", "FAILED", "", (json.loads(lines[-1])["error"] if lines else "")[:80]))
        else:
            result = json.loads(lines[-1])
            size = f"{result['rows']:,} rows, {result['bytes'] / 1e6:,.1f} MB"
            rows.append((f"XLSX report {first_day}..{last_day} PEN", f"{result['seconds']:,.1f} s", size,
                         f"{wall:,.1f} s with start-up"))  # fmt: skip
            rows.append(("report process peak memory", f"{(result['vm_hwm_kib'] or 0) / 1024:,.0f} MiB VmHWM",
                         f"{max(maxrss, before) / 1024:,.0f} MiB ru_maxrss", ""))  # fmt: skip

    widths = [max(len(str(row[i])) for row in rows) for i in range(4)]
    print("\n".join("  ".join(str(cell).ljust(widths[i]) for i, cell in enumerate(row)) for row in rows))
    print(f"\nPython {sys.version.split()[0]}, PostgreSQL {connection.pg_version // 10000}, {settings.TIME_ZONE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
