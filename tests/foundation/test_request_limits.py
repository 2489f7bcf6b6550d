"""Request-line and header limits, enforced by gunicorn with the project's gunicorn.conf.py (a real
server in a subprocess), and stated in the OpenAPI description."""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

BASE = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def gunicorn_url(tmp_path_factory):
    port = free_port()
    env = {
        **os.environ,
        "DEBUG": "true",
        "DATABASE_URL": f"sqlite:///{tmp_path_factory.mktemp('gunicorn') / 'db.sqlite3'}",
        "DJANGO_SETTINGS_MODULE": "smartpay.settings",
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "-w", "1", "smartpay.wsgi:application"],
        cwd=BASE,  # gunicorn reads ./gunicorn.conf.py from here, as in the image
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60  # a busy machine may take a while to boot the worker
        while True:
            try:
                requests.get(f"{url}/healthz", timeout=10)
                break
            except requests.RequestException:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.2)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_a_request_line_over_the_limit_is_a_414(gunicorn_url):
    assert requests.get(f"{gunicorn_url}/healthz", timeout=30).status_code == 200
    assert requests.get(f"{gunicorn_url}/healthz?q={'x' * 7000}", timeout=30).status_code == 200  # within
    assert requests.get(f"{gunicorn_url}/healthz?q={'x' * 9000}", timeout=30).status_code == 414


def test_a_header_over_the_limit_is_a_431(gunicorn_url):
    assert requests.get(f"{gunicorn_url}/healthz", headers={"X-Note": "y" * 7000}, timeout=30).status_code == 200
    assert requests.get(f"{gunicorn_url}/healthz", headers={"X-Note": "y" * 9000}, timeout=30).status_code == 431
    many = {f"X-H{n}": "1" for n in range(120)}
    assert requests.get(f"{gunicorn_url}/healthz", headers=many, timeout=30).status_code == 431


def test_the_openapi_description_states_the_limits():
    from django.conf import settings

    description = settings.SPECTACULAR_SETTINGS["DESCRIPTION"]
    assert "**414**" in description and "**431**" in description and "8190" in description
    conf = (BASE / "gunicorn.conf.py").read_text()
    assert "limit_request_line = 8190" in conf and "limit_request_field_size = 8190" in conf
