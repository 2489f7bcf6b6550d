"""A real Celery worker is killed (SIGKILL) while it is sending an event: nothing is lost.

The worker (`celery -A smartpay worker --pool=solo`, against the test database and the real broker)
runs `notifications.dispatch_events`; the local receiver holds the request open, so the worker is
mid-send, holding the event's row lock inside its transaction. `kill -9`: PostgreSQL rolls that
transaction back when the connection drops, so the event is still due with no attempt recorded,
and a fresh dispatch delivers it, once.
"""

import json
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

import pytest
from celery import Celery
from django.conf import settings
from django.db import connection

from notifications.delivery import dispatch_due
from notifications.models import DeliveryAttempt, DeliveryState
from tests.notifications.delivery_helpers import make_app, make_event, serve, use_local_receiver

BASE_DIR = Path(__file__).resolve().parents[2]
WAIT_SECONDS = 90

pytestmark = [pytest.mark.postgres, pytest.mark.broker, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def receiver():
    yield from serve()


@pytest.fixture(autouse=True)
def _local_receiver_settings(settings):
    use_local_receiver(settings)


@pytest.fixture
def broker_url() -> str:
    url = settings.TEST_CELERY_BROKER_URL
    if not url:
        if os.environ.get("CI") or os.environ.get("REQUIRE_POSTGRES"):
            pytest.fail("CI/REQUIRE_POSTGRES is set but CELERY_BROKER_URL is not: the worker test cannot run")
        pytest.skip("no CELERY_BROKER_URL: set one (e.g. redis://127.0.0.1:6379/13) to run a real worker")
    return url


def test_database_url() -> str:
    """The test database (pytest-django's `test_…`), as a URL for the worker process."""
    db = connection.settings_dict
    credentials = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    return f"postgres://{credentials}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


test_database_url.__test__ = False  # a helper, not a test


@pytest.fixture
def queue_name(broker_url):
    """A queue of this test's own; afterwards the killed worker's unacknowledged message is removed
    from the broker, so no later worker runs it again after the visibility timeout."""
    import redis

    name = f"events-killed-{secrets.token_hex(4)}"
    yield name
    client = redis.Redis.from_url(broker_url)
    try:
        for tag, payload in client.hgetall("unacked").items():
            if name.encode() in payload:
                client.hdel("unacked", tag)
                client.zrem("unacked_index", tag)
        client.delete(name, f"_kombu.binding.{name}", f"_kombu.binding_permanent.{name}")
    finally:
        client.close()


def start_worker(broker_url: str, queue: str, log_path: Path) -> subprocess.Popen:
    env = {
        **os.environ,
        "CELERY_BROKER_URL": broker_url,
        "CELERY_RESULT_BACKEND": broker_url,
        "DATABASE_URL": test_database_url(),
        "DJANGO_SETTINGS_MODULE": "smartpay.test_settings",
        "PYTHONPATH": str(BASE_DIR),
        "EVENTS_ALLOW_PRIVATE_URLS": "true",
        "EVENTS_REQUIRE_HTTPS": "false",
        "EVENTS_READ_TIMEOUT": "60",  # it stays mid-send until it is killed
    }
    command = [
        str(Path(sys.executable).parent / "celery"),
        "-A",
        "smartpay",
        "worker",
        "--pool=solo",  # the task runs in this very process: SIGKILL hits the sender
        "-Q",
        queue,
        "--without-heartbeat",
        "--without-gossip",
        "--without-mingle",
        "--loglevel=INFO",
        f"--hostname=pytest-events-{secrets.token_hex(4)}@%h",
    ]
    with log_path.open("w") as log:
        return subprocess.Popen(command, cwd=BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT)


def test_a_worker_killed_mid_send_loses_nothing(require_postgres, broker_url, queue_name, receiver, tmp_path):
    app = make_app(receiver.url("/ok"))
    event = make_event(app)  # committed, due now; no dispatch queued (make_event is a plain insert)
    receiver.behaviour.hang_event_ids = {event.id}  # the first POST of it hangs

    log_path = tmp_path / "worker.log"
    worker = start_worker(broker_url, queue_name, log_path)
    # Not the current app: tasks of later tests must stay bound to SmartPay's app (eager in tests).
    client = Celery("pytest-client", broker=broker_url, set_as_current=False)
    client.conf.update(task_always_eager=False, task_serializer="json")
    try:
        client.send_task("notifications.dispatch_events", queue=queue_name)
        if not receiver.hung.wait(WAIT_SECONDS):
            alive = "running" if worker.poll() is None else f"exited with {worker.returncode}"
            pytest.fail(f"the worker never sent the event in {WAIT_SECONDS}s; worker {alive}:\n{log_path.read_text()}")
        # Mid-send: the worker holds the row (a skip-locked dispatch here finds it busy).
        assert dispatch_due()["busy"] == 1
        worker.kill()  # SIGKILL: no cleanup, no rollback by the worker itself
        worker.wait(timeout=30)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait(timeout=30)
        client.close()

    event.refresh_from_db()
    assert (event.delivery_state, event.attempts) == (DeliveryState.PENDING, 0)
    assert not DeliveryAttempt.objects.filter(event=event).exists()

    # A fresh dispatch delivers it (once PostgreSQL has seen the connection drop and rolled back).
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if dispatch_due()["delivered"]:
            break
        time.sleep(0.2)
    event.refresh_from_db()
    assert event.delivery_state == DeliveryState.DELIVERED
    assert list(DeliveryAttempt.objects.filter(event=event).values_list("number", "status_code")) == [(1, 200)]
    # The receiver saw the interrupted POST and the good one: one event, delivered once more (the
    # app deduplicates on SmartPay-Event-Id), and answered 200 exactly once.
    assert receiver.event_ids() == [event.id, event.id]
    assert json.loads(receiver.requests[1].body)["id"] == event.id
    assert dispatch_due()["delivered"] == 0
