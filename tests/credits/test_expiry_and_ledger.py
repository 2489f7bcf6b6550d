"""Expiry job, expiring notices, the ledger check command, staff adjustments in the admin."""

from datetime import timedelta
from io import StringIO

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.utils import timezone

from credits.models import CreditAccount, CreditLedgerEntry, CreditLot, CreditPlan
from credits.selectors import credit_ledger_drift
from credits.services import credit_adjust, credit_consume, credit_expiring_notices_record, credit_lots_expire
from credits.tasks import expire_lots, record_expiring_notices
from notifications.models import OutgoingEvent
from tests.credits.conftest import grant_lot

pytestmark = pytest.mark.django_db


def remaining(*lots) -> list[int]:
    return [CreditLot.objects.get(pk=lot.pk).remaining for lot in lots]


def test_expiry_job_expires_due_lots_with_ledger_rows_and_events(customer):
    now = timezone.now()
    due = grant_lot(customer, 40, kind="bonus", days=1, now=now)
    live = grant_lot(customer, 60, days=20, now=now)
    old = grant_lot(customer, 5, days=2, now=now)
    credit_consume(customer=customer, amount=15)  # from `due`, the first to expire: 25 left in it
    later = now + timedelta(days=3)

    assert credit_lots_expire(now=later) == 30
    assert remaining(due, live, old) == [0, 60, 0]
    assert CreditLot.objects.get(pk=due.pk).expired_at == later
    rows = CreditLedgerEntry.objects.filter(entry_type="expiry").order_by("seq")
    assert [(row.lot_id, row.amount, row.balance_after) for row in rows] == [(due.pk, -25, 65), (old.pk, -5, 60)]
    assert CreditAccount.objects.get(customer=customer).balance == 60
    events = OutgoingEvent.objects.filter(type="credits.expired")
    assert sorted((event.dedupe_key, event.data["credits"]) for event in events) == sorted([(due.pk, 25), (old.pk, 5)])
    assert all(event.client_app_id == customer.client_app_id for event in events)
    assert credit_lots_expire(now=later) == 0  # a second run expires nothing more
    assert OutgoingEvent.objects.filter(type="credits.expired").count() == 2
    assert credit_ledger_drift() == []


def test_expiry_task_uses_the_current_time(customer):
    grant_lot(customer, 7, days=-0.001)
    grant_lot(customer, 3, days=1)
    assert expire_lots.delay().get() == 7
    assert CreditAccount.objects.get(customer=customer).balance == 3


def test_expiring_notices_are_recorded_once_per_lot(customer):
    soon = grant_lot(customer, 10, days=6)
    grant_lot(customer, 10, days=8)
    assert record_expiring_notices.delay().get() == 1
    assert record_expiring_notices.delay().get() == 0
    event = OutgoingEvent.objects.get(type="credits.expiring")
    assert event.dedupe_key == soon.pk
    assert event.delivery_state == "pending"
    assert event.data == {
        "customer": customer.pk,
        "lot": soon.pk,
        "kind": "paid",
        "credits": 10,
        "expires_at": CreditLot.objects.get(pk=soon.pk).expires_at.isoformat(),
    }
    # A week later the other lot is within 7 days.
    assert credit_expiring_notices_record(now=timezone.now() + timedelta(days=2)) == 1


def test_check_command_passes_on_a_clean_ledger_and_exits_1_on_drift(customer):
    grant_lot(customer, 50)
    out = StringIO()
    call_command("check_credit_ledger", stdout=out)
    assert "OK" in out.getvalue()

    CreditAccount.objects.filter(customer=customer).update(balance=49)
    err = StringIO()
    with pytest.raises(CommandError) as raised:
        call_command("check_credit_ledger", stderr=err)
    assert raised.value.returncode == 1
    assert "cached balance 49, ledger sum 50" in err.getvalue()


def test_check_finds_a_lot_that_disagrees_with_its_ledger_rows(customer):
    first = grant_lot(customer, 50, days=5)
    second = grant_lot(customer, 50, days=9)
    credit_consume(customer=customer, amount=10)  # first: 40, second: 50
    CreditLot.objects.filter(pk=first.pk).update(remaining=45)
    CreditLot.objects.filter(pk=second.pk).update(remaining=45)  # the sum still matches the balance of 90
    (drift,) = credit_ledger_drift()
    assert drift.cached_balance == drift.ledger_sum == drift.lots_remaining == 90
    assert drift.lots_off_ledger == sorted([first.pk, second.pk])


def test_staff_adjustment_needs_a_reason_and_is_audited(customer):
    with pytest.raises(ValueError, match="reason"):
        credit_adjust(customer=customer, amount=10, reason="  ", actor="staff:ana")
    credit_adjust(customer=customer, amount=30, reason="goodwill after outage", actor="staff:ana")
    credit_adjust(customer=customer, amount=-5, reason="double grant by support", actor="staff:ana")
    rows = CreditLedgerEntry.objects.filter(entry_type="adjustment").order_by("seq")
    assert [(row.amount, row.balance_after, row.actor, row.description) for row in rows] == [
        (30, 30, "staff:ana", "goodwill after outage"),
        (-5, 25, "staff:ana", "double grant by support"),
    ]
    assert CreditLot.objects.get().kind == "manual"
    assert credit_ledger_drift() == []


def test_admin_adjust_view(client, customer):
    grant_lot(customer, 10)
    account = CreditAccount.objects.get(customer=customer)
    staff = User.objects.create_superuser("boss", "boss@example.com", "pw")
    client.force_login(staff)
    page = client.get(f"/admin/credits/creditaccount/{account.pk}/change/")
    assert page.status_code == 200
    assert b"Adjust credits" in page.content
    url = f"/admin/credits/creditaccount/{account.pk}/adjust/"
    assert client.get(url).status_code == 200
    missing_reason = client.post(url, {"amount": 5, "reason": "", "validity_days": 365})
    assert missing_reason.status_code == 200
    assert CreditAccount.objects.get(pk=account.pk).balance == 10
    too_much = client.post(url, {"amount": -11, "reason": "fix", "validity_days": 365})
    assert too_much.status_code == 200
    assert CreditAccount.objects.get(pk=account.pk).balance == 10
    done = client.post(url, {"amount": -4, "reason": "fix", "validity_days": 365})
    assert done.status_code == 302
    assert CreditAccount.objects.get(pk=account.pk).balance == 6
    assert CreditLedgerEntry.objects.filter(entry_type="adjustment").get().actor == "staff:boss"
    from django.contrib.admin.models import LogEntry

    assert "Adjusted credits by -4: fix" in LogEntry.objects.get().change_message
    assert client.get("/admin/credits/creditplan/").status_code == 200
    assert client.get("/admin/credits/creditledgerentry/").status_code == 200


def test_admin_edits_a_plan_and_the_bonus_follows(client, api):
    staff = User.objects.create_superuser("boss", "boss@example.com", "pw")
    client.force_login(staff)
    plan = CreditPlan.objects.get(code="professional")
    url = f"/admin/credits/creditplan/{plan.pk}/change/"
    assert client.get(url).status_code == 200
    form = {
        "code": "professional",
        "name": "Professional",
        "credits": 600,
        "bonus_percent": 15,
        "price_pen": 14900,
        "price_usd": 4500,
        "validity_days": 180,
        "is_active": "on",
    }
    assert client.post(url, form).status_code == 302
    row = next(p for p in api.get("/api/v1/plans").json() if p["code"] == "professional")
    assert (row["credits"], row["bonus_credits"], row["total_credits"], row["validity_days"]) == (600, 90, 690, 180)
    assert row["prices"] == {"PEN": 14900, "USD": 4500}
    assert client.post(url, {**form, "bonus_percent": 101}).status_code == 200  # refused: at most 100 %
    assert CreditPlan.objects.get(pk=plan.pk).bonus_percent == 15
