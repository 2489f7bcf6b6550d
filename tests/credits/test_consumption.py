"""Spending credits: order of the lots, all or nothing, idempotency, the ledger API."""

import pytest
from django.utils import timezone

from credits.models import CreditAccount, CreditConsumption, CreditLedgerEntry, CreditLot
from credits.selectors import credit_ledger_drift
from payments.models import IdempotencyRecord
from tests.credits.conftest import grant_lot

pytestmark = pytest.mark.django_db


def consume(api, customer, amount, key, **extra):
    return api.post(
        f"/api/v1/customers/{customer.pk}/credit-consumptions",
        {"amount": amount, **extra},
        format="json",
        HTTP_IDEMPOTENCY_KEY=key,
    )


def remaining(*lots) -> list[int]:
    return [CreditLot.objects.get(pk=lot.pk).remaining for lot in lots]


def test_consumption_takes_from_the_lots_that_expire_first(api, customer):
    late = grant_lot(customer, 100, days=300)
    early = grant_lot(customer, 30, days=10)
    middle = grant_lot(customer, 50, days=100)

    response = consume(api, customer, 60, "c1", reference="job-1", description="report")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["object"] == "credit_consumption"
    assert (body["amount"], body["available"], body["reference"]) == (60, 120, "job-1")
    assert body["lots"] == [
        {"lot": early.pk, "kind": "paid", "amount": 30},
        {"lot": middle.pk, "kind": "paid", "amount": 30},
    ]
    assert remaining(early, middle, late) == [0, 20, 100]
    assert CreditAccount.objects.get(customer=customer).balance == 120
    assert credit_ledger_drift() == []


def test_bonus_is_spent_before_paid_when_they_expire_together(api, customer):
    now = timezone.now()
    paid = grant_lot(customer, 500, kind="paid", days=365, now=now)
    bonus = grant_lot(customer, 50, kind="bonus", days=365, now=now)
    consume(api, customer, 40, "c1")
    assert remaining(bonus, paid) == [10, 500]
    consume(api, customer, 40, "c2")
    assert remaining(bonus, paid) == [0, 470]


def test_not_enough_credits_is_402_and_changes_nothing(api, customer):
    lots = [grant_lot(customer, 30, days=5), grant_lot(customer, 40, days=50)]
    entries_before = list(CreditLedgerEntry.objects.values_list("pk", flat=True))

    response = consume(api, customer, 71, "too-much", reference="job-9")
    assert response.status_code == 402
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["code"] == "insufficient_credits"
    assert (body["available"], body["requested"]) == (70, 71)

    assert remaining(*lots) == [30, 40]
    assert CreditAccount.objects.get(customer=customer).balance == 70
    assert list(CreditLedgerEntry.objects.values_list("pk", flat=True)) == entries_before
    assert CreditConsumption.objects.count() == 0
    assert not IdempotencyRecord.objects.filter(key="too-much").exists()  # the caller may retry with the key
    # ...and the reference was not used up either.
    assert consume(api, customer, 70, "enough", reference="job-9").status_code == 201


def test_expired_lots_are_never_spent(api, customer):
    expired = grant_lot(customer, 100, days=-1)
    fresh = grant_lot(customer, 10, days=5)
    assert api.get(f"/api/v1/customers/{customer.pk}/credits").json()["available"] == 10
    assert consume(api, customer, 11, "c1").status_code == 402
    assert consume(api, customer, 10, "c2").status_code == 201
    assert remaining(expired, fresh) == [0, 0]
    assert CreditLedgerEntry.objects.filter(entry_type="expiry", lot=expired).get().amount == -100
    assert credit_ledger_drift() == []


def test_the_same_key_replays_and_the_same_reference_is_spent_once(api, customer):
    grant_lot(customer, 100)
    first = consume(api, customer, 10, "k1", reference="order-7")
    replay = consume(api, customer, 10, "k1", reference="order-7")
    assert replay.json() == first.json()
    assert replay["Idempotent-Replayed"] == "true"
    again = consume(api, customer, 10, "k2", reference="order-7")
    assert again.status_code == 409
    assert again.json()["code"] == "consumption_reference_used"
    assert again.json()["consumption"] == first.json()["id"]
    assert CreditAccount.objects.get(customer=customer).balance == 90
    # Without a reference, two keys are two consumptions.
    assert consume(api, customer, 10, "k3").status_code == 201
    assert consume(api, customer, 10, "k4").status_code == 201
    assert CreditAccount.objects.get(customer=customer).balance == 70


@pytest.mark.parametrize("amount", [0, -5, "10", 1.5, True, None])
def test_invalid_amounts_are_400(api, customer, amount):
    grant_lot(customer, 100)
    response = consume(api, customer, amount, "bad")
    assert response.status_code == 400
    assert "amount" in response.json()["errors"]
    assert CreditAccount.objects.get(customer=customer).balance == 100


def test_consumption_requires_an_idempotency_key_and_refuses_unknown_fields(api, customer):
    grant_lot(customer, 100)
    path = f"/api/v1/customers/{customer.pk}/credit-consumptions"
    no_key = api.post(path, {"amount": 1}, format="json")
    assert no_key.status_code == 400
    assert no_key.json()["code"] == "idempotency_key_required"
    unknown = consume(api, customer, 1, "k", lot="cl_x")
    assert unknown.status_code == 400
    assert "lot" in unknown.json()["errors"]


def test_another_apps_customer_is_404_and_nothing_is_spent(api, other_api, customer):
    grant_lot(customer, 100)
    assert consume(other_api, customer, 10, "k").status_code == 404
    assert other_api.get(f"/api/v1/customers/{customer.pk}/credit-ledger").status_code == 404
    assert CreditAccount.objects.get(customer=customer).balance == 100


def test_balance_lists_live_lots_and_what_expires_within_7_days(api, customer):
    soon = grant_lot(customer, 25, kind="bonus", days=3)
    later = grant_lot(customer, 100, days=30)
    grant_lot(customer, 5, days=-2)  # past its expiry: not available, even before the job runs
    body = api.get(f"/api/v1/customers/{customer.pk}/credits").json()
    assert body["object"] == "credit_balance"
    assert (body["customer"], body["available"], body["expiring_soon"]) == (customer.pk, 125, 25)
    assert [(lot["id"], lot["kind"], lot["granted"], lot["remaining"]) for lot in body["lots"]] == [
        (soon.pk, "bonus", 25, 25),
        (later.pk, "paid", 100, 100),
    ]


def test_balance_of_a_customer_without_credits_is_zero(api, customer):
    body = api.get(f"/api/v1/customers/{customer.pk}/credits").json()
    assert (body["available"], body["expiring_soon"], body["lots"]) == (0, 0, [])


def test_ledger_is_newest_first_with_the_balance_after_each_row(api, customer):
    grant_lot(customer, 10, kind="bonus", days=5)
    grant_lot(customer, 100, days=50)
    consume(api, customer, 15, "c1", reference="r1")  # spans two lots: two rows
    page = api.get(f"/api/v1/customers/{customer.pk}/credit-ledger?limit=3").json()
    assert page["has_more"] is True
    rows = page["data"]
    assert [(row["type"], row["amount"], row["balance_after"]) for row in rows] == [
        ("consumption", -5, 95),
        ("consumption", -10, 100),
        ("grant", 100, 110),
    ]
    assert rows[0]["reference"] == "r1"
    assert rows[0]["consumption"] == rows[1]["consumption"]
    rest = api.get(
        f"/api/v1/customers/{customer.pk}/credit-ledger?limit=3&starting_after={page['next_starting_after']}"
    ).json()
    assert [(row["type"], row["amount"], row["balance_after"]) for row in rest["data"]] == [("grant", 10, 10)]
    assert rest["has_more"] is False
