"""Reconciling a day of 100,000 payments (`reconcile_day`), against PostgreSQL.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/smartpay_bench .venv/bin/python bench/reconcile_100k.py

The script creates a throwaway database with the test runner (`test_<name>`: migrated, dropped at
the end), bulk-creates N payments spread over one day in Lima (5,000 per INSERT), and swaps in a
fake adapter whose `list_charges` yields N ChargeResults lazily, without HTTP, with a handful of
planted differences: records we lack, payments the gateway lacks (its `retrieve` answers 404),
contradicting statuses, different amounts, and payments that are behind (fixed, not reported).

It prints the time of one `reconcile_day` (listing consumed, staged, compared, fixed, reported),
the process's peak RSS, and the Python heap peak of a second run of the same day measured with
tracemalloc (timed apart, since tracing slows Python down). It checks that exactly the planted
differences were found.
"""

import argparse
import os
import resource
import sys
import time
import tracemalloc
import warnings
from collections import Counter
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "smartpay.settings")
os.environ.setdefault("SECRET_KEY", "bench-only-secret-key-not-for-production-0123456789")
os.environ.setdefault("LOG_LEVEL", "WARNING")
os.environ["DEBUG"] = "false"  # DEBUG keeps every SQL statement in memory
warnings.filterwarnings("ignore", message="No directory at")

PLANT = 5  # of each difference kind
CREATE_BATCH = 5_000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--payments", type=int, default=100_000)
    parser.add_argument("--date", default="2025-03-14")
    args = parser.parse_args()

    import django

    django.setup()
    from django.db import connection
    from django.test.utils import setup_databases, teardown_databases

    if connection.vendor != "postgresql":
        print("Set DATABASE_URL to a PostgreSQL database (the figure is for production's database).")
        return 2
    old_config = setup_databases(verbosity=0, interactive=False, serialized_aliases=set())
    try:
        return bench(args)
    finally:
        connection.close()
        teardown_databases(old_config, verbosity=0)


def bench(args) -> int:
    from datetime import date

    from payments.gateways.base import ChargeResult, ChargeStatus, GatewayNotFound
    from payments.models import Payment, ReconciliationIssue
    from payments.services import reconciliation
    from payments.services.clients import client_app_create

    count, day = args.payments, date.fromisoformat(args.date)
    start, _ = reconciliation.day_bounds(day)
    step = timedelta(days=1) / count
    app = client_app_create(name="reconciliation bench")

    # Planted: which payment indexes get which difference (spread over the day).
    stride = count // (4 * PLANT + 1)
    picks = iter(range(stride, count, stride))
    missing_theirs = {next(picks) for _ in range(PLANT)}
    status_differs = {next(picks) for _ in range(PLANT)}
    amount_differs = {next(picks) for _ in range(PLANT)}
    behind = {next(picks) for _ in range(PLANT)}

    def payment_id(i: int) -> str:
        return f"pay_bench{i:021d}"

    def gateway_id(i: int) -> str:
        return str(50_000_000_000 + i)

    print(f"creating {count:,} payments for {day} …", flush=True)
    began = time.monotonic()
    created_at = Payment._meta.get_field("created_at")
    created_at.auto_now_add = False  # the bench sets the day's timestamps itself
    try:
        for first in range(0, count, CREATE_BATCH):
            Payment.objects.bulk_create(
                [
                    Payment(
                        id=payment_id(i),
                        client_app=app,
                        amount=1000 + i % 5000,
                        amount_captured=0 if i in behind else 1000 + i % 5000,
                        currency="PEN",
                        email="bench@example.pe",
                        gateway="mercadopago",
                        gateway_payment_id=gateway_id(i),
                        status="processing" if i in behind else "succeeded",
                        created_at=start + step * i,
                    )
                    for i in range(first, min(first + CREATE_BATCH, count))
                ]
            )
    finally:
        created_at.auto_now_add = True
    print(f"created in {time.monotonic() - began:.1f} s", flush=True)

    class FakeMercadoPago:
        """`list_charges` without HTTP: one ChargeResult at a time, like a paged listing."""

        name = "mercadopago"

        def list_charges(self, *, day_start, day_end):
            for i in range(count):
                if i in missing_theirs:
                    continue
                amount = 1000 + i % 5000
                yield ChargeResult(
                    status=ChargeStatus.FAILED if i in status_differs else ChargeStatus.SUCCEEDED,
                    gateway_payment_id=gateway_id(i),
                    amount=amount + 100 if i in amount_differs else amount,
                    currency="PEN",
                    gateway_status="rejected" if i in status_differs else "approved",
                    reference=payment_id(i),
                    created_at=start + step * i + timedelta(milliseconds=1),  # the gateway stamps a moment later
                )
            for n in range(PLANT):  # charges made outside SmartPay
                yield ChargeResult(
                    status=ChargeStatus.SUCCEEDED,
                    gateway_payment_id=str(90_000_000_000 + n),
                    amount=2500,
                    currency="PEN",
                    gateway_status="approved",
                    created_at=start + timedelta(hours=n + 1),
                )

        def retrieve(self, gateway_payment_id):
            raise GatewayNotFound("mercadopago: Payment not found", gateway=self.name, http_status=404)

    reconciliation.get_adapter = lambda name: FakeMercadoPago()

    streamed = [0]
    began = time.monotonic()
    day_run = reconciliation.reconcile_day(
        gateway="mercadopago", day=day, progress=lambda n: streamed.__setitem__(0, streamed[0] + n)
    )
    elapsed = time.monotonic() - began
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux

    tracemalloc.start()
    began = time.monotonic()
    rerun = reconciliation.reconcile_day(gateway="mercadopago", day=day)
    traced_seconds = time.monotonic() - began
    _, heap_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    found = Counter(ReconciliationIssue.objects.filter(resolved_at__isnull=True).values_list("kind", flat=True))
    expected = {"missing_ours": PLANT, "missing_theirs": PLANT, "status_mismatch": PLANT, "amount_mismatch": PLANT}
    ok = (
        day_run.status == rerun.status == "finished"
        and dict(found) == expected
        and day_run.fixed == PLANT
        and day_run.issues == rerun.issues == 4 * PLANT
        and rerun.new_issues == 0
        and day_run.matched == count - PLANT
    )
    print(f"streamed records: {streamed[0]:,}; run: {day_run.status}")
    print(
        f"gateway records {day_run.gateway_records:,}, ours {day_run.our_records:,}, matched {day_run.matched:,}, "
        f"fixed {day_run.fixed}, issues {day_run.issues} {dict(sorted(found.items()))}"
    )
    print(f"RECONCILE {count:,} PAYMENTS: {elapsed:.1f} s; peak RSS of the process {peak_rss_mb:.0f} MiB")
    print(f"rerun of the day under tracemalloc: {traced_seconds:.1f} s; Python heap peak {heap_peak / 2**20:.1f} MiB")
    print(f"planted differences found exactly: {'yes' if ok else 'NO'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
