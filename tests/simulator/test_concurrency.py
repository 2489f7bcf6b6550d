"""Real concurrency against PostgreSQL: duplicates with one idempotency key, racing refunds and captures."""

import threading
from decimal import Decimal

import pytest
from django.db import connection
from django.test import Client

from payments.gateways.simulator import wire
from payments.gateways.simulator.models import SimCharge, SimIdempotencyKey, SimRefund
from tests.simulator.conftest import CULQI_SK, MP_TOKEN, Culqi, MercadoPago

pytestmark = pytest.mark.django_db(transaction=True)


def _together(count: int, work) -> list:
    """Run `work(i)` in `count` threads released at the same moment; return their results."""
    barrier = threading.Barrier(count)
    results: list = [None] * count
    errors: list = []

    def run(index: int) -> None:
        try:
            barrier.wait(timeout=10)
            results[index] = work(index)
        except Exception as exc:  # surfaced below; a thread cannot fail the test by itself
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    return results


def test_concurrent_duplicates_with_one_key_make_one_payment(require_postgres):
    token = MercadoPago(Client()).token()
    body = wire.dumps(
        {
            "transaction_amount": Decimal("25.00"),
            "token": token,
            "installments": 1,
            "payment_method_id": "visa",
            "payer": {"email": "comprador@example.pe"},
            "external_reference": "pay_concurrent",
        }
    )

    def post(_index):
        response = Client().post(
            "/sandbox/mercadopago/v1/payments",
            data=body,
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {MP_TOKEN}",
            HTTP_X_IDEMPOTENCY_KEY="same-key",
        )
        return response.status_code, response.json()["id"]

    results = _together(6, post)
    assert {status for status, _ in results} == {201}
    assert len({payment_id for _, payment_id in results}) == 1
    assert SimCharge.objects.count() == 1
    assert SimIdempotencyKey.objects.count() == 1


def test_concurrent_culqi_refunds_never_exceed_the_charge(require_postgres):
    charge_id = Culqi(Client()).charge(amount=1000).json()["id"]

    def refund(_index):
        return (
            Client()
            .post(
                "/sandbox/culqi/v2/refunds",
                data=wire.dumps({"amount": 300, "charge_id": charge_id, "reason": "solicitud_comprador"}),
                content_type="application/json",
                HTTP_AUTHORIZATION=f"Bearer {CULQI_SK}",
            )
            .status_code
        )

    statuses = _together(6, refund)
    assert sorted(statuses) == [201, 201, 201, 400, 400, 400]
    charge = SimCharge.objects.get(public_id=charge_id)
    assert charge.amount_refunded == 900 == sum(SimRefund.objects.values_list("amount", flat=True))


def test_concurrent_captures_capture_once(require_postgres):
    charge_id = Culqi(Client()).charge(capture=False).json()["id"]

    def capture(_index):
        return (
            Client()
            .post(f"/sandbox/culqi/v2/charges/{charge_id}/capture", HTTP_AUTHORIZATION=f"Bearer {CULQI_SK}")
            .status_code
        )

    assert sorted(_together(5, capture)) == [201, 400, 400, 400, 400]


def test_one_token_spent_by_one_of_many_concurrent_charges(require_postgres):
    culqi = Culqi(Client())
    token_id = culqi.token()

    def charge(_index):
        return Culqi(Client()).charge(token_id).status_code

    assert sorted(_together(5, charge)) == [201, 400, 400, 400, 400]
    assert SimCharge.objects.count() == 1
