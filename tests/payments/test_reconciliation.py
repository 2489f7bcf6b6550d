"""Reconciliation of a day: planted differences of each kind are found, and nothing else; behind payments are
fixed; reruns do not duplicate; a gateway failing mid-listing fails the run. The wire is mocked (`responses`)."""

import copy
import io
import json
import logging
import threading
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import pytest
import responses
from celery.schedules import crontab
from django.contrib.auth import get_user_model
from django.core import mail
from django.core.management import CommandError, call_command
from django.db import connection, transaction

from payments import hooks
from payments.enums import AttemptOperation
from payments.gateways import culqi
from payments.gateways.base import ChargeResult, ChargeStatus
from payments.models import (
    Payment,
    PaymentAttempt,
    ReconciliationIssue,
    ReconciliationRecord,
    ReconciliationRun,
    WebhookEvent,
)
from payments.services import reconciliation
from payments.services.payments import payment_apply_gateway_result
from payments.services.reconciliation import ReconciliationAlreadyRunning, day_bounds, reconcile_day
from payments.tasks import reconcile_yesterday
from tests.payments.conftest import CULQI_BASE, MP_BASE

pytestmark = pytest.mark.django_db

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
LIMA = ZoneInfo("America/Lima")
DAY = date(2025, 3, 14)
NOON = datetime(2025, 3, 14, 12, 0, tzinfo=LIMA)
SEARCH = f"{MP_BASE}/v1/payments/search"
CHARGES = f"{CULQI_BASE}/v2/charges"
MP_PAGE = 4  # the mocked search answers 4 a page, so the listing below spans several pages


@pytest.fixture(autouse=True)
def _admins(settings):
    settings.ADMINS = [("Ops", "ops@smartpay.example")]


def make_payment(client_app, *, gateway="mercadopago", gateway_id=None, status="succeeded", amount=1999, at=NOON, **kw):
    captured = amount if status in ("succeeded", "partially_refunded", "refunded") else 0
    payment = Payment.objects.create(
        client_app=client_app,
        amount=amount,
        amount_captured=kw.pop("amount_captured", captured),
        currency="PEN",
        email="ana@example.pe",
        gateway=gateway,
        gateway_payment_id=gateway_id,
        status=status,
        **kw,
    )
    Payment.objects.filter(pk=payment.pk).update(created_at=at)
    payment.refresh_from_db()
    return payment


# --- Mercado Pago on the wire ---------------------------------------------------------------------

MP_APPROVED = json.loads((FIXTURES / "mercadopago" / "payment_approved.json").read_text())


def mp_record(mp_id, *, at=NOON, reference="", status="approved", detail="accredited", amount=19.99, refunded=0):
    record = copy.deepcopy(MP_APPROVED)
    record.update(
        id=mp_id,
        date_created=at.isoformat(timespec="milliseconds"),
        external_reference=reference or None,
        metadata={"smartpay_payment_id": reference} if reference else {},
        status=status,
        status_detail=detail,
        transaction_amount=amount,
        transaction_amount_refunded=refunded,
    )
    return record


def serve_mp_search(mock, records: list[dict]):
    """Mercado Pago's search over `records`: the date range, oldest first, offset pages of MP_PAGE."""

    def search(request):
        params = {key: values[0] for key, values in parse_qs(urlsplit(request.url).query).items()}
        begin, end = datetime.fromisoformat(params["begin_date"]), datetime.fromisoformat(params["end_date"])
        inside = sorted(
            (r for r in records if begin <= datetime.fromisoformat(r["date_created"]) <= end),
            key=lambda r: r["date_created"],
        )
        offset = int(params["offset"])
        page = inside[offset : offset + MP_PAGE]
        return (
            200,
            {},
            json.dumps({"paging": {"total": len(inside), "limit": MP_PAGE, "offset": offset}, "results": page}),
        )

    mock.add_callback(responses.GET, SEARCH, callback=search, content_type="application/json")


def mp_not_found(mock, mp_id):
    body = {"message": "Payment not found", "error": "not_found", "status": 404, "cause": [{"code": 2000}]}
    mock.get(f"{MP_BASE}/v1/payments/{mp_id}", status=404, json=body)


@pytest.fixture
def planted(client_app, gateways):
    """One of each difference kind at Mercado Pago, matching records, two behind payments, and noise."""
    ours = {
        "matched": [make_payment(client_app, gateway_id=str(1000 + n)) for n in range(1, 4)],
        "declined": make_payment(client_app, gateway_id="1004", status="failed"),
        "refunded": make_payment(client_app, gateway_id="1005", status="partially_refunded", amount_refunded=500),
        "behind_by_id": make_payment(client_app, gateway_id="1006", status="processing"),
        "behind_by_reference": make_payment(client_app, status="processing"),
        "missing_theirs": make_payment(client_app, gateway_id="3001"),
        "status": make_payment(client_app, gateway_id="4001"),
        "amount": make_payment(client_app, gateway_id="4002"),
        # Created a minute before midnight; Mercado Pago stamped it just after: listed in the margin.
        "late_stamp": make_payment(client_app, gateway_id="5001", at=datetime(2025, 3, 14, 23, 59, tzinfo=LIMA)),
        # Another gateway's payment and another day's payment: not this run's business.
        "culqi": make_payment(client_app, gateway="culqi", gateway_id="chr_test_other000000001"),
        "yesterday": make_payment(client_app, gateway_id="6001", at=NOON - timedelta(days=1)),
    }
    m = ours
    records = [
        *(mp_record(int(p.gateway_payment_id), reference=p.pk) for p in m["matched"]),
        mp_record(1004, reference=m["declined"].pk, status="rejected", detail="cc_rejected_insufficient_amount"),
        mp_record(1005, reference=m["refunded"].pk, detail="partially_refunded", refunded=5.00),
        mp_record(1006, reference=m["behind_by_id"].pk),
        mp_record(1007, reference=m["behind_by_reference"].pk),
        mp_record(2001, reference="order-77"),  # missing_ours: no payment of ours
        mp_record(4001, reference=m["status"].pk, status="cancelled", detail="by_collector"),
        mp_record(4002, reference=m["amount"].pk, amount=29.99),
        mp_record(5001, reference=m["late_stamp"].pk, at=datetime(2025, 3, 15, 0, 5, tzinfo=LIMA)),
        # Noise: a decline made outside SmartPay holds no money; a record of the previous day's margin.
        mp_record(7001, status="rejected", detail="cc_rejected_high_risk"),
        mp_record(7002, at=datetime(2025, 3, 13, 23, 55, tzinfo=LIMA)),
    ]
    serve_mp_search(gateways, records)
    mp_not_found(gateways, 3001)
    WebhookEvent.objects.create(
        gateway="mercadopago", event_id="wh-2001", event_type="payment", resource_id="2001", status="unmatched"
    )
    return ours


def open_issues():
    return {
        (i.kind, i.gateway_payment_id, i.payment_id)
        for i in ReconciliationIssue.objects.filter(resolved_at__isnull=True)
    }


def test_day_bounds_follow_lima():
    start, end = day_bounds(DAY)
    assert (start.astimezone(UTC), end.astimezone(UTC)) == (
        datetime(2025, 3, 14, 5, tzinfo=UTC),
        datetime(2025, 3, 15, 5, tzinfo=UTC),
    )


def test_mercadopago_day_finds_each_planted_difference_and_nothing_else(planted, gateways, caplog):
    caplog.set_level(logging.ERROR, logger="smartpay.alerts")

    run = reconcile_day(gateway="mercadopago", day=DAY)

    assert run.status == "finished" and run.error == ""
    assert open_issues() == {
        ("missing_ours", "2001", None),
        ("missing_theirs", "3001", planted["missing_theirs"].pk),
        ("status_mismatch", "4001", planted["status"].pk),
        ("amount_mismatch", "4002", planted["amount"].pk),
    }
    # 11 records of the day (7001 counts: it is theirs, just not an issue); 5001 and 7002 are outside it.
    assert (run.gateway_records, run.our_records, run.matched, run.fixed, run.issues, run.new_issues) == (
        11,
        11,
        9,
        2,
        4,
        4,
    )

    by_kind = {i.kind: i for i in ReconciliationIssue.objects.all()}
    assert "whe_" in by_kind["missing_ours"].detail and "unmatched webhook events" in by_kind["missing_ours"].detail
    assert (by_kind["missing_ours"].their_status, by_kind["missing_ours"].their_amount) == ("succeeded", 1999)
    assert by_kind["missing_theirs"].detail.endswith("the gateway does not know this id")
    status = by_kind["status_mismatch"]
    assert (status.our_status, status.their_status) == ("succeeded", "canceled")
    assert "contradict" in status.detail
    amount = by_kind["amount_mismatch"]
    assert (amount.our_amount, amount.their_amount, amount.currency) == (1999, 2999, "PEN")
    assert amount.detail == "captured: 2999 at the gateway, 1999 here"

    for name, gateway_id in (("behind_by_id", "1006"), ("behind_by_reference", "1007")):
        payment = Payment.objects.get(pk=planted[name].pk)
        assert (payment.status, payment.amount_captured, payment.gateway_payment_id) == ("succeeded", 1999, gateway_id)
        sync = PaymentAttempt.objects.get(payment=payment, operation=AttemptOperation.SYNC)
        assert (sync.outcome, sync.gateway_payment_id, sync.raw_response["run"]) == ("succeeded", gateway_id, run.pk)
    untouched = Payment.objects.exclude(pk__in=[planted["behind_by_id"].pk, planted["behind_by_reference"].pk])
    assert not untouched.filter(attempts__isnull=False).exists()

    assert ReconciliationRecord.objects.count() == 0  # staging is dropped after a finished run
    alert = [r for r in caplog.records if r.name == "smartpay.alerts"]
    assert [r.getMessage() for r in alert] == ["Reconciliation mercadopago 2025-03-14: 4 issue(s), 4 new"]
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["ops@smartpay.example"]
    assert "missing_ours 1" in mail.outbox[0].body


def test_rerun_refreshes_open_issues_instead_of_duplicating_them(planted, gateways):
    first = reconcile_day(gateway="mercadopago", day=DAY)
    before = dict(ReconciliationIssue.objects.values_list("dedupe_key", "pk"))

    second = reconcile_day(gateway="mercadopago", day=DAY)

    assert dict(ReconciliationIssue.objects.values_list("dedupe_key", "pk")) == before
    assert (second.issues, second.new_issues, second.fixed) == (4, 0, 0)
    assert set(ReconciliationIssue.objects.values_list("run", flat=True)) == {first.pk}
    assert ReconciliationIssue.objects.filter(last_seen_at__gt=second.started_at).count() == 4


def test_rerun_resolves_what_is_no_longer_found_and_reopens_what_staff_resolved(planted, gateways, client_app):
    reconcile_day(gateway="mercadopago", day=DAY)
    # Staff sorted out the amount (captured in full at MP after all) and marked missing_ours resolved.
    Payment.objects.filter(pk=planted["amount"].pk).update(amount=2999, amount_captured=2999)
    missing_ours = ReconciliationIssue.objects.get(kind="missing_ours")
    reconciliation.reconciliation_issues_resolve(issues=[missing_ours], actor="staff:ana")

    run = reconcile_day(gateway="mercadopago", day=DAY)

    amount = ReconciliationIssue.objects.get(kind="amount_mismatch")
    assert amount.resolved_by == f"reconciliation run {run.pk}: no longer found"
    assert ReconciliationIssue.objects.filter(kind="missing_ours").count() == 2  # still at MP: open again
    assert {k for k, _, _ in open_issues()} == {"missing_ours", "missing_theirs", "status_mismatch"}
    assert (run.issues, run.new_issues) == (3, 1)


def test_refunds_made_outside_smartpay_are_amount_issues_not_fixes(client_app, gateways):
    payment = make_payment(client_app, gateway_id="8001")
    serve_mp_search(gateways, [mp_record(8001, reference=payment.pk, detail="partially_refunded", refunded=9.99)])

    run = reconcile_day(gateway="mercadopago", day=DAY)

    issue = ReconciliationIssue.objects.get()
    assert (issue.kind, issue.our_status, issue.their_status) == ("amount_mismatch", "succeeded", "partially_refunded")
    assert (issue.our_amount_refunded, issue.their_amount_refunded) == (0, 999)
    assert issue.detail == (
        "refunded: 999 at the gateway, 0 here; status succeeded here, partially_refunded at the gateway"
    )
    assert (run.fixed, Payment.objects.get(pk=payment.pk).amount_refunded) == (0, 0)


def test_a_behind_payment_whose_amount_differs_is_not_fixed(client_app, gateways):
    payment = make_payment(client_app, gateway_id="8002", status="authorized")
    serve_mp_search(gateways, [mp_record(8002, reference=payment.pk, amount=9.99)])

    run = reconcile_day(gateway="mercadopago", day=DAY)

    issue = ReconciliationIssue.objects.get()
    assert issue.kind == "amount_mismatch"
    assert issue.detail == (
        "amount: 999 at the gateway, 1999 here; we are behind (authorized here, succeeded at the gateway), "
        "not fixed because the amounts differ"
    )
    assert (run.fixed, Payment.objects.get(pk=payment.pk).status) == (0, "authorized")


def test_a_second_charge_for_one_payment_is_missing_ours(client_app, gateways):
    payment = make_payment(client_app, gateway_id="8003")
    serve_mp_search(gateways, [mp_record(8003, reference=payment.pk), mp_record(8004, reference=payment.pk)])

    reconcile_day(gateway="mercadopago", day=DAY)

    issue = ReconciliationIssue.objects.get()
    assert (issue.kind, issue.gateway_payment_id, issue.payment_id) == ("missing_ours", "8004", payment.pk)
    assert "tied to 8003: a second charge?" in issue.detail


def test_a_listing_that_lacks_a_record_the_gateway_has_fails_the_run(client_app, gateways):
    listed = make_payment(client_app, gateway_id="8005")
    unlisted = make_payment(client_app, gateway_id="8006")
    serve_mp_search(gateways, [mp_record(8005, reference=listed.pk)])
    gateways.get(f"{MP_BASE}/v1/payments/8006", json=mp_record(8006, reference=unlisted.pk))

    run = reconcile_day(gateway="mercadopago", day=DAY)

    assert run.status == "failed"
    assert run.error == (
        "GatewayUnavailable: mercadopago: the listing of the day lacks 8006, which the gateway has; "
        "the listing is incomplete"
    )
    assert ReconciliationIssue.objects.count() == 0
    assert run.records.count() == 1  # kept for inspection


def test_a_payment_the_gateway_created_after_midnight_is_not_missing(client_app, gateways):
    # A hosted checkout opened at noon and paid the next morning: the gateway dates it the next day.
    paid_late = make_payment(client_app, gateway_id="8007")
    serve_mp_search(gateways, [])
    late = mp_record(8007, reference=paid_late.pk, at=datetime(2025, 3, 15, 9, 0, tzinfo=LIMA))
    gateways.get(f"{MP_BASE}/v1/payments/8007", json=late)

    run = reconcile_day(gateway="mercadopago", day=DAY)

    assert (run.status, run.issues, run.our_records, run.gateway_records) == ("finished", 0, 1, 0)


# --- Culqi ------------------------------------------------------------------------------------------


def culqi_charge(charge_id, *, at=NOON, reference="", amount=1999, refunded=0, captured=True, **fields):
    charge = json.loads((FIXTURES / "culqi" / "charge_captured.json").read_text(encoding="utf-8"))
    charge.update(
        id=charge_id,
        creation_date=int(at.timestamp() * 1000),
        amount=amount,
        amount_refunded=refunded,
        current_amount=amount - refunded,
        capture=captured,
        metadata={"smartpay_payment_id": reference} if reference else {},
        **fields,
    )
    return charge


def culqi_page(charges, *, after=None, remaining=0):
    return {
        "data": charges,
        "paging": {
            "previous": None,
            "next": f"{CHARGES}?after={after}" if after else None,
            "cursors": {"before": charges[0]["id"] if charges else None, "after": after},
            "remaining_items": remaining,
        },
    }


def culqi_pages(mock, *pages):
    """Serve `pages` of charges in order (responses hands out matching registrations first to last),
    chained by `after` cursors: the last charge id of each page."""
    for index, charges in enumerate(pages):
        last = index == len(pages) - 1
        mock.get(CHARGES, json=culqi_page(charges, after=None if last else charges[-1]["id"], remaining=int(not last)))


@pytest.fixture
def culqi_day(client_app, gateways):
    ours = {
        "matched": make_payment(client_app, gateway="culqi", gateway_id="chr_test_matched00000001"),
        "behind": make_payment(client_app, gateway="culqi", gateway_id="chr_test_behind000000001", status="processing"),
        "refund": make_payment(client_app, gateway="culqi", gateway_id="chr_test_refund000000001"),
    }
    page1 = [
        culqi_charge("chr_test_matched00000001", reference=ours["matched"].pk),
        culqi_charge("chr_test_behind000000001", reference=ours["behind"].pk),
    ]
    page2 = [
        culqi_charge("chr_test_refund000000001", reference=ours["refund"].pk, refunded=500),
        # Culqi's card validation when a card is saved: no reference of ours, refunded at once. Not an issue.
        culqi_charge("chr_test_validation00001", amount=100, refunded=100, description="Validacion de tarjeta"),
    ]
    return ours, page1, page2


def test_culqi_day_fixes_the_behind_charge_and_reports_the_refund(culqi_day, gateways):
    ours, page1, page2 = culqi_day
    culqi_pages(gateways, page1, page2)

    run = reconcile_day(gateway="culqi", day=DAY)

    assert run.status == "finished"
    assert open_issues() == {("amount_mismatch", "chr_test_refund000000001", ours["refund"].pk)}
    assert (run.gateway_records, run.our_records, run.matched, run.fixed) == (4, 3, 3, 1)
    assert Payment.objects.get(pk=ours["behind"].pk).status == "succeeded"
    listing = [c for c in gateways.calls if c.request.url.startswith(CHARGES)]
    start, end = day_bounds(DAY)
    assert parse_qs(urlsplit(listing[0].request.url).query) == {
        "creation_date_from": [str(int((start - reconciliation.LISTING_MARGIN).timestamp()))],
        "creation_date_to": [str(int((end + reconciliation.LISTING_MARGIN).timestamp()))],
        "limit": ["100"],
    }


def test_gateway_failing_mid_listing_fails_the_run_and_keeps_staging(culqi_day, gateways, monkeypatch, caplog):
    monkeypatch.setattr(culqi.time, "sleep", lambda seconds: None)
    caplog.set_level(logging.ERROR, logger="smartpay.alerts")
    ours, page1, page2 = culqi_day
    gateways.get(CHARGES, json=culqi_page(page1, after=page1[-1]["id"], remaining=2))
    gateways.get(CHARGES, status=500, body="<html>Internal Server Error</html>")
    monkeypatch.setattr(reconciliation, "BATCH_SIZE", 2)  # page 1 is written before page 2 breaks

    run = reconcile_day(gateway="culqi", day=DAY)

    assert run.status == "failed"
    assert run.error.startswith("GatewayUnavailable: culqi: HTTP 500")
    assert sorted(run.records.values_list("gateway_payment_id", flat=True)) == sorted(c["id"] for c in page1)
    assert ReconciliationIssue.objects.count() == 0
    assert Payment.objects.get(pk=ours["behind"].pk).status == "processing"  # nothing fixed from a partial day
    assert [r.getMessage() for r in caplog.records if r.name == "smartpay.alerts"] == [
        "Reconciliation culqi 2025-03-14 failed"
    ]
    assert mail.outbox[0].subject.endswith("Reconciliation culqi 2025-03-14 failed")

    # Run again once Culqi is back: the failed run's staging rows are replaced, then dropped.
    gateways.reset()
    culqi_pages(gateways, page1, page2)
    again = reconcile_day(gateway="culqi", day=DAY)
    assert again.status == "finished" and again.fixed == 1
    assert ReconciliationRecord.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_a_fix_racing_a_webhook_moves_the_payment_once(require_postgres, client_app, gateways, monkeypatch):
    """A webhook holds the payment's row lock when reconciliation comes to fix it: the fix waits, sees the
    payment already up to date under the lock, and does nothing. One status change, one success effect."""
    payment = make_payment(client_app, gateway_id="9001", status="processing")
    serve_mp_search(gateways, [mp_record(9001, reference=payment.pk)])
    effects: list[str] = []
    monkeypatch.setitem(hooks._on_success, payment.purpose, [lambda p: effects.append(p.pk)])
    locked, release = threading.Event(), threading.Event()
    approved = ChargeResult(status=ChargeStatus.SUCCEEDED, gateway_payment_id="9001", amount=1999, currency="PEN")

    def webhook():
        try:
            with transaction.atomic():
                row = Payment.objects.select_for_update().get(pk=payment.pk)
                locked.set()
                release.wait(10)
                payment_apply_gateway_result(row, approved, gateway="mercadopago")
        finally:
            connection.close()

    fix_one = reconciliation._fix_one

    def fix_while_the_webhook_holds_the_lock(run, row):
        threading.Timer(0.3, release.set).start()  # the fix is blocked on the row lock by then
        return fix_one(run, row)

    monkeypatch.setattr(reconciliation, "_fix_one", fix_while_the_webhook_holds_the_lock)
    thread = threading.Thread(target=webhook)
    thread.start()
    assert locked.wait(10)

    run = reconcile_day(gateway="mercadopago", day=DAY)
    thread.join(10)

    assert (run.status, run.fixed, run.issues, run.matched) == ("finished", 0, 0, 1)
    assert effects == [payment.pk]
    assert Payment.objects.get(pk=payment.pk).status == "succeeded"
    assert not PaymentAttempt.objects.filter(payment=payment, operation=AttemptOperation.SYNC).exists()


def test_one_run_per_gateway_and_day_at_a_time(client_app, gateways):
    ReconciliationRun.objects.create(gateway="culqi", day=DAY)

    with pytest.raises(ReconciliationAlreadyRunning):
        reconcile_day(gateway="culqi", day=DAY)
    assert ReconciliationRun.objects.count() == 1


# --- Command, task, schedule, admin -------------------------------------------------------------------


def test_command_prints_a_summary_table_and_exits_zero_with_issues(planted, gateways):
    out, err = io.StringIO(), io.StringIO()

    call_command("reconcile", "--date", "2025-03-14", "--gateway", "mercadopago", stdout=out, stderr=err)

    lines = out.getvalue().splitlines()
    assert lines[0].split() == [
        "gateway",
        "day",
        "status",
        "theirs",
        "ours",
        "matched",
        "fixed",
        "issues",
        "new",
        "seconds",
    ]
    assert lines[1].split()[:9] == ["mercadopago", "2025-03-14", "finished", "11", "11", "9", "2", "4", "4"]
    assert "Reconciliation issues" in lines[2]
    assert "mercadopago 2025-03-14" in err.getvalue() and "records" in err.getvalue()  # the progress bar


def test_command_runs_every_gateway_and_fails_when_one_fails(client_app, gateways):
    serve_mp_search(gateways, [])
    gateways.get(CHARGES, status=401, json={"object": "error", "type": "authentication_error", "merchant_message": "x"})
    out = io.StringIO()

    with pytest.raises(CommandError, match="culqi: GatewayConfigurationError"):
        call_command("reconcile", "--date", "2025-03-14", stdout=out, stderr=io.StringIO())

    rows = [line.split()[:3] for line in out.getvalue().splitlines()[1:]]
    assert rows == [["culqi", "2025-03-14", "failed"], ["mercadopago", "2025-03-14", "finished"]]


def test_daily_task_reconciles_every_gateway_and_is_scheduled_at_six_in_lima(client_app, gateways, settings):
    serve_mp_search(gateways, [])
    culqi_pages(gateways, [])

    result = reconcile_yesterday.apply(kwargs={"day": "2025-03-14"}).get()

    assert result["day"] == "2025-03-14"
    assert {name: r["status"] for name, r in result["gateways"].items()} == {
        "culqi": "finished",
        "mercadopago": "finished",
    }
    entry = settings.CELERY_BEAT_SCHEDULE["payments-reconcile-yesterday"]
    assert entry["task"] == "payments.reconcile_yesterday"
    assert entry["schedule"] == crontab(hour=11, minute=0) and settings.CELERY_TIMEZONE == "UTC"  # 06:00 UTC-5


def test_admin_lists_issues_by_kind_and_staff_mark_them_resolved(planted, gateways, client):
    reconcile_day(gateway="mercadopago", day=DAY)
    staff = get_user_model().objects.create_superuser("ana", "ana@example.com", "pw-ana-123")
    client.force_login(staff)

    listing = client.get("/admin/payments/reconciliationissue/", {"kind": "status_mismatch", "resolved": "no"})
    assert listing.status_code == 200 and "4001" in listing.content.decode()
    assert client.get("/admin/payments/reconciliationrun/").status_code == 200
    issue = ReconciliationIssue.objects.get(kind="status_mismatch")
    client.post(
        "/admin/payments/reconciliationissue/", {"action": "mark_resolved", "_selected_action": [issue.pk]}, follow=True
    )

    issue.refresh_from_db()
    assert issue.resolved_by == "staff:ana" and issue.resolved_at is not None
    assert ReconciliationIssue.objects.filter(resolved_at__isnull=True).count() == 3
