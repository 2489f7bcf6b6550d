"""The Celery application. With no broker configured, tasks run eagerly in-process."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "smartpay.settings")

app = Celery("smartpay")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.task(name="smartpay.ping", ignore_result=False)
def ping(value: str) -> str:
    """Round-trip check used by readiness probes and the worker test (the one task whose result is kept)."""
    return f"pong:{value}"
