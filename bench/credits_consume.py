"""Credit consumptions per second for ONE customer under concurrency, against PostgreSQL.

Every consumption of a customer takes that customer's account row lock, so this measures the
serialised path: how many `credit_consume` calls one customer can do per second however many
callers race. Different customers do not contend.

    createdb -h 127.0.0.1 -U postgres sp_credits_bench
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/sp_credits_bench \
        .venv/bin/python bench/credits_consume.py --threads 16 --seconds 10 [--api]

`--api` goes through the whole HTTP stack in-process (auth, Idempotency-Key record, serializer)
with DRF's test client instead of calling the service. The script migrates the database, creates
its own client app and customer, and checks the ledger against the cached balances at the end.
"""

import argparse
import os
import statistics
import sys
import threading
import time
import uuid
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "smartpay.settings")
os.environ.setdefault("SECRET_KEY", "bench-only-secret-key-not-for-production-0123456789")
os.environ.setdefault("API_RATE_LIMIT_WRITE_PER_MINUTE", "100000000")
os.environ.setdefault("API_RATE_LIMIT_READ_PER_MINUTE", "100000000")
os.environ.setdefault("LOG_LEVEL", "WARNING")
os.environ.setdefault("ALLOWED_HOSTS", "testserver")  # --api uses DRF's test client
os.environ.setdefault("SECURE_SSL_REDIRECT", "false")
warnings.filterwarnings("ignore", message="No directory at")  # WhiteNoise: no collected static files here


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--amount", type=int, default=1, help="credits per consumption")
    parser.add_argument("--api", action="store_true", help="through the HTTP API instead of the service")
    args = parser.parse_args()

    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    if connection.vendor != "postgresql":
        print("Set DATABASE_URL to a PostgreSQL database (row locks are the point of this benchmark).")
        return 2
    call_command("migrate", verbosity=0)

    from credits.selectors import credit_ledger_drift
    from credits.services import credit_adjust, credit_consume
    from payments.models import Customer
    from payments.services.clients import api_key_issue, client_app_create

    app = client_app_create(name=f"bench {uuid.uuid4().hex[:8]}")
    customer = Customer.objects.create(client_app=app, email="bench@example.com")
    for days in (30, 60, 90):  # a few lots, so consumptions walk the expire-first order
        credit_adjust(customer=customer, amount=10_000_000, reason="benchmark", actor="bench", validity_days=days)
    raw_key = api_key_issue(client_app=app, label="bench").raw_key
    connection.close()

    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(args.threads + 1)
    stop_at = [0.0]

    def worker(index: int) -> None:
        client = None
        if args.api:
            from rest_framework.test import APIClient

            client = APIClient()
            client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_key}")
        mine: list[float] = []
        try:
            barrier.wait()
            number = 0
            while time.monotonic() < stop_at[0]:
                number += 1
                started = time.perf_counter()
                if client is None:
                    credit_consume(customer=customer, amount=args.amount)
                else:
                    response = client.post(
                        f"/api/v1/customers/{customer.pk}/credit-consumptions",
                        {"amount": args.amount},
                        format="json",
                        HTTP_IDEMPOTENCY_KEY=f"bench-{index}-{number}-{uuid.uuid4().hex}",
                    )
                    if response.status_code != 201:
                        raise RuntimeError(f"{response.status_code}: {response.content[:200]!r}")
                mine.append(time.perf_counter() - started)
        except Exception as error:  # report and stop this thread; the figure is printed anyway
            with lock:
                errors.append(repr(error))
        finally:
            connection.close()
            with lock:
                latencies.extend(mine)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(args.threads)]
    for thread in threads:
        thread.start()
    stop_at[0] = time.monotonic() + args.seconds
    barrier.wait()
    began = time.monotonic()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - began

    count = len(latencies)
    ordered = sorted(latencies) or [0.0]
    drift = credit_ledger_drift()
    mode = "HTTP API (in-process)" if args.api else "service credit_consume"
    print(f"mode: {mode}; threads: {args.threads}; duration: {elapsed:.1f} s; amount: {args.amount}")
    print(f"consumptions: {count}; errors: {len(errors)}")
    print(
        f"latency ms: p50 {statistics.median(ordered) * 1000:.1f}, "
        f"p99 {ordered[int(len(ordered) * 0.99) - 1 if len(ordered) > 1 else 0] * 1000:.1f}"
    )
    print(f"ledger check: {'OK' if not drift else f'{len(drift)} account(s) drifted'}")
    print(f"CONSUMPTIONS PER SECOND (one customer): {count / elapsed:.0f}")
    for error in errors[:5]:
        print("error:", error)
    return 0 if not errors and not drift else 1


if __name__ == "__main__":
    sys.exit(main())
