"""Daily rollups: what a rolled-up day stores, that reading it gives exactly the live figures, that
recomputing is idempotent and picks up late changes, and how mixed ranges are read."""

import dataclasses
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from payments.models import Payment
from reporting import selectors, tasks
from reporting.models import DailyRollup, RollupDay
from reporting.selectors import Latency, Period
from reporting.services.rollups import rollup_day, rollup_range, rollup_recent_days
from smartpay.clock import business_date
from tests.reporting.conftest import DAY, lima


def without_sources(metrics):
    return dataclasses.replace(metrics, sources={})


def periods(dataset):
    app, other = dataset.app.pk, dataset.other_app.pk
    return [
        Period(start=DAY, end=DAY, currency="PEN", client_app_id=app),
        Period(start=DAY, end=DAY, currency="PEN"),
        Period(start=DAY, end=DAY, currency="USD", client_app_id=app),
        Period(start=DAY, end=DAY, currency="PEN", client_app_id=other),
    ]


def test_a_rolled_up_day_reads_exactly_as_live(dataset):
    live = [selectors.period_metrics(period) for period in periods(dataset)]
    assert rollup_day(DAY) == 5  # app: PEN culqi, PEN mercadopago, USD culqi, USD mercadopago; other app: PEN culqi
    rolled = [selectors.period_metrics(period) for period in periods(dataset)]
    for before, after in zip(live, rolled, strict=True):
        assert before.sources == {"rollup_days": 0, "live_days": 1}
        assert after.sources == {"rollup_days": 1, "live_days": 0}
        assert without_sources(after) == without_sources(before)  # every count, amount, share, p50 and p95
    # The figures compared are the hand-checked ones, not two empty results.
    assert rolled[0].total.latency == Latency(count=5, avg_ms=400, p50_ms=300, p95_ms=880)
    assert rolled[1].total.latency == Latency(count=6, avg_ms=342, p50_ms=250, p95_ms=850)
    assert rolled[0].by_gateway[0].latency == Latency(count=4, avg_ms=400, p50_ms=250, p95_ms=895)


def test_what_a_rollup_row_holds(dataset):
    rollup_day(DAY)
    culqi = DailyRollup.objects.get(day=DAY, client_app=dataset.app, currency="PEN", gateway="culqi")
    assert (
        culqi.payments_created,
        culqi.payments_succeeded,
        culqi.payments_failed,
        culqi.payments_canceled,
        culqi.payments_open,
    ) == (7, 3, 2, 1, 1)
    assert (culqi.amount_created, culqi.amount_captured, culqi.refunds_count, culqi.amount_refunded) == (
        68000,  # 10000 + 20000 + 8000 + 4000 + 5000 + 6000 + 15000
        45000,
        1,
        5000,
    )
    assert (culqi.attempts, culqi.attempts_declined, culqi.attempts_unavailable, culqi.attempts_unknown) == (8, 2, 1, 1)
    assert culqi.declines == {"insufficient_funds": 2}
    assert culqi.errors == {"gateway_unavailable": 1, "unknown": 1}
    assert (culqi.latency_count, culqi.latency_sum_ms, culqi.latency_p50_ms, culqi.latency_p95_ms) == (
        4,
        1600,
        250,
        895,
    )
    # 100 -> (82, 100], 200 -> (180, 220], 300 -> (270, 330], 1000 -> (820, 1000]
    assert culqi.latency_histogram == {"100": 1, "220": 1, "330": 1, "1000": 1}

    mercadopago = DailyRollup.objects.get(day=DAY, client_app=dataset.app, currency="PEN", gateway="mercadopago")
    assert (mercadopago.payments_created, mercadopago.failovers_in, mercadopago.checkouts_never_completed) == (3, 1, 1)
    assert mercadopago.amount_created == 67000  # 30000 + 12000 + 25000
    assert mercadopago.declines == {"cc_rejected_call_for_authorize": 1}
    assert mercadopago.latency_histogram == {"470": 1}

    marker = RollupDay.objects.get(day=DAY)
    app = dataset.app.pk
    assert marker.rows == 5
    assert marker.latency[f"PEN|{app}|*"] == [5, 300, 880]
    assert marker.latency["PEN|*|*"] == [6, 250, 850]
    assert marker.latency["PEN|*|mercadopago"] == [1, 400, 400]
    assert marker.latency[f"USD|{app}|culqi"] == [1, 5000, 5000]


def test_recomputing_is_idempotent(dataset):
    rollup_day(DAY)
    first = sorted(DailyRollup.objects.filter(day=DAY).values_list("client_app", "currency", "gateway", "attempts"))
    figures = selectors.period_metrics(periods(dataset)[0])
    assert rollup_day(DAY) == 5
    again = sorted(DailyRollup.objects.filter(day=DAY).values_list("client_app", "currency", "gateway", "attempts"))
    assert again == first
    assert RollupDay.objects.filter(day=DAY).count() == 1
    assert selectors.period_metrics(periods(dataset)[0]) == figures


def test_a_late_change_is_picked_up_by_recomputing(dataset, make_refund):
    period = periods(dataset)[0]
    rollup_day(DAY)
    # P9 (processing at rollup time) succeeds later, and P1 is refunded 2000 later that same day.
    Payment.objects.filter(pk=dataset.payments["P9"].pk).update(status="succeeded", amount_captured=6000)
    make_refund(dataset.payments["P1"], 2000, at=lima(DAY.year, DAY.month, DAY.day, 22))
    stale = selectors.period_metrics(period).total
    assert (stale.succeeded, stale.gross_captured, stale.refunded) == (4, 75000, 5000)  # still the rollup

    rollup_day(DAY)
    fresh = selectors.period_metrics(period).total
    assert (fresh.succeeded, fresh.open, fresh.gross_captured, fresh.refunded, fresh.net) == (5, 1, 81000, 7000, 74000)
    assert fresh.success_rate == Decimal("0.6250")  # 5 / 8
    rolled = selectors.period_metrics(period)
    RollupDay.objects.all().delete()  # unmark the day: read live again
    assert without_sources(selectors.period_metrics(period)) == without_sources(rolled)


def test_a_range_mixing_rollup_and_live_days(dataset):
    period = Period(
        start=DAY - timedelta(days=1), end=DAY + timedelta(days=1), currency="PEN", client_app_id=dataset.app.pk
    )
    live = selectors.period_metrics(period)
    rollup_day(DAY)
    rollup_day(DAY - timedelta(days=1))  # no payments that day: marked, no rows
    assert DailyRollup.objects.filter(day=DAY - timedelta(days=1)).count() == 0
    mixed = selectors.period_metrics(period)
    assert mixed.sources == {"rollup_days": 2, "live_days": 1}
    assert mixed.daily == live.daily
    assert mixed.rejections == live.rejections

    def no_percentiles(figures):
        latency = dataclasses.replace(figures.latency, p50_ms=None, p95_ms=None)
        return dataclasses.replace(figures, latency=latency)

    assert no_percentiles(mixed.total) == no_percentiles(live.total)  # counts, amounts, shares, avg latency
    assert [no_percentiles(g) for g in mixed.by_gateway] == [no_percentiles(g) for g in live.by_gateway]
    # Percentiles over more than one rolled-up day come from the buckets (values spread evenly in each):
    # 100 200 300 400 1000 -> 91, 200, 300, 430, 910; p50 = the 3rd = 300; p95 rank 3.8 -> 430 + 0.8 * 480.
    assert (mixed.total.latency.p50_ms, mixed.total.latency.p95_ms) == (300, 814)
    assert (live.total.latency.p50_ms, live.total.latency.p95_ms) == (300, 880)  # exact when all live
    culqi, mercadopago = mixed.by_gateway
    # culqi 91 200 300 910: p50 rank 1.5 -> 250; p95 rank 2.85 -> 300 + 0.85 * 610 = 818.5 -> 819.
    assert (culqi.latency.p50_ms, culqi.latency.p95_ms) == (250, 819)
    assert (mercadopago.latency.p50_ms, mercadopago.latency.p95_ms) == (430, 430)


def test_today_is_always_read_live(client_app, make_payment):
    today = business_date()
    rollup_day(today)
    make_payment(amount=4200, at=timezone.now())
    metrics = selectors.period_metrics(Period(start=today, end=today, currency="PEN"))
    assert metrics.sources == {"rollup_days": 0, "live_days": 1}
    assert (metrics.total.created, metrics.total.gross_captured) == (1, 4200)


def test_reading_rollups_takes_a_bounded_number_of_queries(dataset, django_assert_max_num_queries):
    rollup_range(DAY - timedelta(days=5), DAY)
    period = Period(start=DAY - timedelta(days=5), end=DAY + timedelta(days=5), currency="PEN")
    with django_assert_max_num_queries(17):
        metrics = selectors.period_metrics(period)
    assert metrics.sources == {"rollup_days": 6, "live_days": 5}
    assert metrics.total.created == 12  # 11 on DAY (both apps) + P11


def test_recent_days_and_the_beat_task(dataset, settings):
    settings.REPORTING_ROLLUP_RECENT_DAYS = 3
    after = DAY + timedelta(days=2)
    # Rolls up DAY - 1, DAY, DAY + 1: 0 + 5 + 1 (P11) rows; today (DAY + 2) stays live.
    assert rollup_recent_days(now=lima(after.year, after.month, after.day, 1)) == 6
    assert sorted(RollupDay.objects.values_list("day", flat=True)) == [
        DAY - timedelta(days=1),
        DAY,
        DAY + timedelta(days=1),
    ]
    assert tasks.rollup_day.delay(DAY.isoformat()).get() == 5


def test_management_command(dataset, capsys):
    call_command("reporting_rollup", "--from", str(DAY - timedelta(days=1)), "--to", str(DAY + timedelta(days=1)))
    assert "3 day(s) rolled up" in capsys.readouterr().out
    assert RollupDay.objects.count() == 3
    assert DailyRollup.objects.count() == 6
    with pytest.raises(CommandError, match="before --from"):
        call_command("reporting_rollup", "--from", str(DAY), "--to", str(DAY - timedelta(days=1)))
    with pytest.raises(CommandError, match="today is read live"):
        call_command("reporting_rollup", "--from", str(DAY), "--to", str(business_date()))
    with pytest.raises(CommandError, match="Not a date"):
        call_command("reporting_rollup", "--from", "yesterday")


def test_rollup_range_refuses_a_reversed_range(db):
    with pytest.raises(ValueError, match="before it starts"):
        rollup_range(DAY, DAY - timedelta(days=1))


@pytest.mark.django_db(transaction=True)
def test_concurrent_rollups_of_one_day_take_turns(require_postgres, dataset):
    """Two workers recompute the same day at once: the advisory lock makes them take turns, so
    neither trips on the other's rows and the day ends with one set of rows."""
    from tests.concurrency import run_at_once

    assert run_at_once(2, lambda _: rollup_day(DAY)) == [5, 5]
    assert DailyRollup.objects.filter(day=DAY).count() == 5
    assert RollupDay.objects.get(day=DAY).rows == 5
