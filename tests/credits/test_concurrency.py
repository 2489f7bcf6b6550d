"""Races on one customer's credits, with real threads and row locks (PostgreSQL only)."""

import pytest
from rest_framework.test import APIClient

from credits.models import CreditAccount, CreditConsumption, CreditLot, CreditPurchase
from credits.selectors import credit_ledger_drift
from credits.services import RenewalSettings, credit_auto_renewal_run, credit_auto_renewal_set
from payments.models import Customer
from tests.concurrency import run_at_once
from tests.credits.conftest import grant_lot, plan

pytestmark = pytest.mark.django_db(transaction=True)


def test_10_concurrent_consumptions_of_20_from_100_exactly_5_succeed(require_postgres, client_app, api_key):
    customer = Customer.objects.create(client_app=client_app, email="race@example.com")
    grant_lot(customer, 20, kind="bonus", days=30)
    grant_lot(customer, 50, days=30)
    grant_lot(customer, 30, days=90)

    def consume(index):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key}")
        response = client.post(
            f"/api/v1/customers/{customer.pk}/credit-consumptions",
            {"amount": 20, "reference": f"job-{index}"},
            format="json",
            HTTP_IDEMPOTENCY_KEY=f"race-{index}",
        )
        return response.status_code, response.json()

    results = run_at_once(10, consume)
    statuses = sorted(status for status, _ in results)
    assert statuses == [201] * 5 + [402] * 5, results
    assert all(body["code"] == "insufficient_credits" for status, body in results if status == 402)
    assert sorted(body["available"] for status, body in results if status == 201) == list(range(0, 100, 20))
    assert CreditAccount.objects.get(customer=customer).balance == 0
    assert CreditConsumption.objects.count() == 5
    assert not CreditLot.objects.filter(remaining__lt=0).exists()
    assert list(CreditLot.objects.values_list("remaining", flat=True)) == [0, 0, 0]
    assert credit_ledger_drift() == []


def test_two_renewals_triggered_at_once_charge_once(require_postgres, client_app, culqi):
    from payments.models import GatewayCard, PaymentMethod

    customer = Customer.objects.create(client_app=client_app, email="renew@example.com")
    card = PaymentMethod.objects.create(client_app=client_app, customer=customer, brand="Visa", last4="1111")
    GatewayCard.objects.create(
        payment_method=card, gateway="culqi", gateway_customer_id="cus_test_r", gateway_card_id="crd_test_r"
    )
    grant_lot(customer, 10)
    renewal = credit_auto_renewal_set(
        customer=customer,
        settings=RenewalSettings(
            plan=plan("basic"),
            currency="PEN",
            payment_method=card,
            threshold=50,
            renew_on_expiry=False,
            max_per_day=5,
        ),
    )
    culqi.delay = 0.3  # the first renewal is still at the gateway when the second one asks

    results = run_at_once(2, lambda _: credit_auto_renewal_run(account_id=renewal.account_id, reason="threshold"))
    assert sorted(result is None for result in results) == [False, True]
    assert len(culqi.charges()) == 1
    assert CreditPurchase.objects.filter(source="auto_renewal").count() == 1
    assert CreditAccount.objects.get(customer=customer).balance == 110
    assert credit_ledger_drift() == []
