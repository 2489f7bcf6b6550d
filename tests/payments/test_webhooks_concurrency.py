"""50 copies of one webhook at once, on PostgreSQL: one stored event, one status change, one effect."""

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection
from django.test import Client

from payments import hooks
from payments.models import Payment, WebhookEvent
from tests.payments.conftest import MP_BASE
from tests.payments.test_webhooks import make_payment, mp_payment, sign

pytestmark = pytest.mark.django_db(transaction=True)


def _deliver_many(count: int, *, same_event: bool):
    barrier = threading.Barrier(count)

    def deliver(index):
        try:
            barrier.wait(timeout=10)
            notification = 1000 if same_event else 1000 + index
            body = json.dumps(
                {"id": notification, "type": "payment", "action": "payment.updated", "data": {"id": "1319840012"}}
            )
            return (
                Client()
                .post(
                    "/webhooks/mercadopago?data.id=1319840012&type=payment",
                    body,
                    content_type="application/json",
                    HTTP_X_REQUEST_ID=f"req-{index}",
                    HTTP_X_SIGNATURE=sign("1319840012", f"req-{index}", ts),
                )
                .status_code
            )
        finally:
            connection.close()

    ts = str(int(time.time()))
    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(deliver, range(count)))


@pytest.mark.parametrize("same_event", [True, False], ids=["same-notification", "distinct-notifications"])
def test_ten_concurrent_copies_change_the_payment_once(require_postgres, client_app, gateways, monkeypatch, same_event):
    payment = make_payment(client_app)
    gateways.get(f"{MP_BASE}/v1/payments/1319840012", json=mp_payment(payment.id))
    effects = []
    lock = threading.Lock()

    def effect(p):
        with lock:
            effects.append(p.id)

    monkeypatch.setitem(hooks._on_success, "generic", [effect])
    statuses = _deliver_many(10, same_event=same_event)
    assert statuses == [200] * 10
    payment.refresh_from_db()
    assert payment.status == "succeeded"
    assert effects == [payment.id]  # one downstream effect, whatever the number of deliveries
    assert WebhookEvent.objects.count() == (1 if same_event else 10)
    assert Payment.objects.get(pk=payment.pk).amount_captured == 1999
