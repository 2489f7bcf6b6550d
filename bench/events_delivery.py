"""How fast outgoing events leave: one dispatcher's throughput, and the delay from commit to delivery.

1. Throughput: N pending events of one app, one `dispatch_due()` run in this process, against a
   local receiver (a threaded HTTP server on 127.0.0.1 that answers 200 at once): events/s.
2. Commit to delivery: events recorded one at a time with `event_record` in their own transaction,
   at a steady rate; each commit queues `notifications.dispatch_events`. With CELERY_BROKER_URL set,
   a real worker (`celery -A smartpay worker`, prefork, 2 processes, no beat) runs the dispatches on
   its own queue; without one the dispatch runs inline after the commit (eager, as in `make run`).
   The delay is from the moment the transaction committed to the moment the receiver read the POST.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/smartpay_bench \\
    CELERY_BROKER_URL=redis://127.0.0.1:6379/9 .venv/bin/python bench/events_delivery.py --events 500 --timed 200

Runs in a throwaway test database (`test_<name>`), created and dropped here.
"""

import argparse
import os
import secrets
import statistics
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "smartpay.test_settings")
os.environ.setdefault("EVENTS_ALLOW_PRIVATE_URLS", "true")  # the receiver is on 127.0.0.1
os.environ.setdefault("EVENTS_REQUIRE_HTTPS", "false")
os.environ.setdefault("LOG_LEVEL", "WARNING")  # not one line per delivered event

import django

django.setup()

from django.conf import settings  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.test.utils import setup_databases, setup_test_environment, teardown_databases  # noqa: E402

from notifications.delivery import dispatch_due  # noqa: E402
from notifications.models import DeliveryState, OutgoingEvent  # noqa: E402
from notifications.services import event_record  # noqa: E402
from payments.services.clients import client_app_create  # noqa: E402
from smartpay.celery import app as celery_app  # noqa: E402

BASE_DIR = Path(__file__).resolve().parent.parent


class Receiver:
    """Answers 200 to every POST and notes when each event id arrived (time.monotonic())."""

    def __init__(self):
        self.arrivals: dict[str, float] = {}
        self.count = 0
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # else each keep-alive answer waits ~40 ms for a delayed ACK

            def log_message(self, *args):
                pass

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                now = time.monotonic()
                with receiver.lock:
                    receiver.count += 1
                    receiver.arrivals.setdefault(self.headers.get("SmartPay-Event-Id", ""), now)
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]


def throughput(receiver: Receiver, count: int) -> None:
    app = client_app_create(name="Bench throughput", webhook_url=receiver.url)
    OutgoingEvent.objects.bulk_create(
        [
            OutgoingEvent(
                client_app=app, type="payment.succeeded", data={"id": f"pay_{n}", "amount": 2500}, object_id=f"pay_{n}"
            )
            for n in range(count)
        ]
    )
    started = time.perf_counter()
    counts = dispatch_due(max_events=count, max_seconds=3600)
    elapsed = time.perf_counter() - started
    delivered = OutgoingEvent.objects.filter(client_app=app, delivery_state=DeliveryState.DELIVERED).count()
    assert delivered == count == counts["delivered"], counts
    print(
        f"throughput: {count} events delivered by one dispatcher in {elapsed:.2f} s = {count / elapsed:.0f} events/s "
        f"({elapsed / count * 1000:.2f} ms each, on {connection.vendor})"
    )


def database_url() -> str:
    db = connection.settings_dict
    credentials = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    return f"postgres://{credentials}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def start_worker(broker: str, queue: str, log_path: Path) -> subprocess.Popen:
    env = {
        **os.environ,
        "CELERY_BROKER_URL": broker,
        "DATABASE_URL": database_url(),
        "DJANGO_SETTINGS_MODULE": "smartpay.test_settings",
        "PYTHONPATH": str(BASE_DIR),
        "LOG_LEVEL": "WARNING",
    }
    command = [
        str(Path(sys.executable).parent / "celery"),
        "-A",
        "smartpay",
        "worker",
        "--concurrency=2",
        "-Q",
        queue,
        "--without-heartbeat",
        "--without-gossip",
        "--without-mingle",
        "--loglevel=INFO",
        f"--hostname=bench-events-{secrets.token_hex(4)}@%h",
    ]
    with log_path.open("w") as log:
        worker = subprocess.Popen(command, cwd=BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while "ready." not in log_path.read_text():
        if worker.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"the worker did not start:\n{log_path.read_text()}")
        time.sleep(0.2)
    return worker


def commit_to_delivery(receiver: Receiver, count: int, rate: float) -> None:
    broker = settings.TEST_CELERY_BROKER_URL
    queue = f"bench-events-{secrets.token_hex(4)}"
    worker = None
    if broker:
        celery_app.conf.update(task_always_eager=False, broker_url=broker, task_default_queue=queue)
        log_path = Path(f"/tmp/{queue}.log")  # noqa: S108 — a bench's scratch file
        worker = start_worker(broker, queue, log_path)
        mode = f"queued on {broker}, a worker with 2 processes"
    else:
        mode = "no broker: the dispatch runs inline after each commit (eager)"
    app = client_app_create(name="Bench latency", webhook_url=receiver.url)
    committed: dict[str, float] = {}
    try:
        for n in range(count):
            stamp: dict[str, float] = {}
            with transaction.atomic():
                # Registered before event_record's dispatch: runs first, right after the commit.
                transaction.on_commit(lambda stamp=stamp: stamp.setdefault("at", time.monotonic()))
                event = event_record(
                    client_app=app, type="credits.low_balance", data={"id": f"cus_{n}", "available": n}
                )
            committed[event.id] = stamp["at"]
            time.sleep(1 / rate)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not set(committed) <= set(receiver.arrivals):
            time.sleep(0.05)
    finally:
        if worker is not None:
            worker.terminate()
            worker.wait(timeout=30)
            client = celery_app.connection_for_write().default_channel.client
            client.delete(queue, f"_kombu.binding.{queue}", f"_kombu.binding_permanent.{queue}")
    missing = set(committed) - set(receiver.arrivals)
    delays = [(receiver.arrivals[i] - at) * 1000 for i, at in committed.items() if i in receiver.arrivals]
    print(
        f"commit to delivery: {count} events at {rate:g}/s, {mode}: "
        f"p50 {statistics.median(delays):.1f} ms, p95 {percentile(delays, 0.95):.1f} ms, max {max(delays):.1f} ms"
        + (f"; {len(missing)} not delivered within 60 s" if missing else "")
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=500, help="events for the throughput run")
    parser.add_argument("--timed", type=int, default=200, help="events for the commit-to-delivery run")
    parser.add_argument("--rate", type=float, default=20.0, help="events recorded per second in the timed run")
    args = parser.parse_args()
    setup_test_environment()
    old_config = setup_databases(verbosity=0, interactive=False)
    receiver = Receiver()
    try:
        throughput(receiver, args.events)
        commit_to_delivery(receiver, args.timed, args.rate)
    finally:
        receiver.stop()
        connection.close()
        teardown_databases(old_config, verbosity=0)


if __name__ == "__main__":
    main()
