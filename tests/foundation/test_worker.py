"""A real Celery worker process consumes from the real broker and answers `smartpay.ping`.

The suite itself runs tasks eagerly; this test proves the deployed path (broker, worker, result
backend) works. Its broker is settings.TEST_CELERY_BROKER_URL, taken from CELERY_BROKER_URL.
"""

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from celery import Celery
from celery.result import allow_join_result
from django.conf import settings

BASE_DIR = Path(__file__).resolve().parents[2]
WAIT_SECONDS = 30

pytestmark = pytest.mark.broker


@pytest.fixture
def broker_url() -> str:
    url = settings.TEST_CELERY_BROKER_URL
    if not url:
        if os.environ.get("CI") or os.environ.get("REQUIRE_POSTGRES"):
            pytest.fail("CI/REQUIRE_POSTGRES is set but CELERY_BROKER_URL is not: the worker test cannot run")
        pytest.skip("no CELERY_BROKER_URL: set one (e.g. redis://127.0.0.1:6379/13) to run a real worker")
    return url


@pytest.fixture
def worker(broker_url, tmp_path):
    """`celery -A smartpay worker` in its own process, stopped (then killed if need be) afterwards."""
    env = {
        **os.environ,
        "CELERY_BROKER_URL": broker_url,
        "CELERY_RESULT_BACKEND": broker_url,
        "DJANGO_SETTINGS_MODULE": "smartpay.test_settings",
        "PYTHONPATH": str(BASE_DIR),
    }
    command = [
        str(Path(sys.executable).parent / "celery"),
        "-A",
        "smartpay",
        "worker",
        "--pool=solo",
        "--concurrency=1",
        "-Q",
        "celery",
        "--without-heartbeat",
        "--without-gossip",
        "--without-mingle",
        "--loglevel=INFO",
        f"--hostname=pytest-{secrets.token_hex(4)}@%h",
    ]
    log_path = tmp_path / "worker.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(command, cwd=BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            yield process, log_path
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


def test_real_worker_answers_ping_through_the_broker(broker_url, worker):
    process, log_path = worker
    client = Celery("pytest-client", broker=broker_url, backend=broker_url)
    client.conf.update(task_always_eager=False, task_serializer="json", result_serializer="json")
    value = secrets.token_hex(6)
    try:
        result = client.send_task("smartpay.ping", args=[value], queue="celery")
        try:
            # Eager tasks run from many threads elsewhere in the suite can leave Celery's process-wide
            # "inside a task" flag set (it is not thread-safe); this test is not a task.
            with allow_join_result():
                answer = result.get(timeout=WAIT_SECONDS)
        except Exception as exc:  # show the worker's own log with whatever went wrong
            alive = "running" if process.poll() is None else f"exited with {process.returncode}"
            pytest.fail(f"no answer in {WAIT_SECONDS}s ({type(exc).__name__}); worker {alive}:\n{log_path.read_text()}")
        assert answer == f"pong:{value}"
        assert result.status == "SUCCESS"
        assert process.poll() is None, "the worker exited"
    finally:
        client.close()
