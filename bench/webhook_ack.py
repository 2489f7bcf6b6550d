"""How long a gateway waits for SmartPay to acknowledge a webhook.

Posts N signed Mercado Pago notifications through the full Django stack (middleware, signature
check, insert under the unique constraint, queueing for the worker) and prints the median and p95.
Processing is not part of the acknowledgement: with CELERY_BROKER_URL set the task is queued on
the real broker; without one, queueing is replaced by a no-op and the output says so.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/smartpay_bench \\
    CELERY_BROKER_URL=redis://127.0.0.1:6379/9 .venv/bin/python bench/webhook_ack.py 1000
"""

import hashlib
import hmac
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "smartpay.test_settings")

import django

django.setup()

from django.conf import settings  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import setup_databases, setup_test_environment, teardown_databases  # noqa: E402

from payments.models import WebhookEvent  # noqa: E402
from payments.services import webhooks  # noqa: E402
from smartpay.celery import app  # noqa: E402


def main(count: int) -> None:
    setup_test_environment()
    old_config = setup_databases(verbosity=0, interactive=False)
    secret = "bench-secret"
    settings.MERCADOPAGO_WEBHOOK_SECRET = secret
    broker = settings.TEST_CELERY_BROKER_URL
    if broker:
        app.conf.update(task_always_eager=False, broker_url=broker)
        queueing = f"queued on {broker}"
    else:
        webhooks._enqueue = lambda event_pk: None
        queueing = "queueing skipped (no CELERY_BROKER_URL)"
    client = Client()
    timings = []
    try:
        for index in range(count):
            data_id, request_id, ts = str(10_000_000 + index), f"req-{index}", str(int(time.time()))
            manifest = f"id:{data_id};request-id:{request_id};ts:{ts};"
            signature = hmac.new(secret.encode(), manifest.encode(), hashlib.sha256).hexdigest()
            body = json.dumps(
                {"id": 5_000_000 + index, "type": "payment", "action": "payment.created", "data": {"id": data_id}}
            )
            started = time.perf_counter()
            response = client.post(
                f"/webhooks/mercadopago?data.id={data_id}&type=payment",
                body,
                content_type="application/json",
                HTTP_X_REQUEST_ID=request_id,
                HTTP_X_SIGNATURE=f"ts={ts},v1={signature}",
            )
            timings.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, response.content
        assert WebhookEvent.objects.count() == count
        timings.sort()
        print(f"{count} webhooks acknowledged on {connection.vendor}, {queueing}")
        print(
            f"median {statistics.median(timings):.2f} ms, p95 {timings[int(len(timings) * 0.95) - 1]:.2f} ms, "
            f"max {timings[-1]:.2f} ms"
        )
    finally:
        if broker:
            app.connection_for_write().default_channel.client.flushdb()
        teardown_databases(old_config, verbosity=0)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1000)
