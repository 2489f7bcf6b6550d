"""The metrics selectors on the hand-built `dataset` (tests/reporting/conftest.py), every expected
figure worked out by hand from the dataset's description."""

from datetime import date, timedelta
from decimal import Decimal

import pytest

from reporting import selectors
from reporting.aggregation import histogram_percentile
from reporting.selectors import CodeCount, Latency, Period
from tests.reporting.conftest import DAY, attempt, lima


def pen_day(dataset, **extra) -> Period:
    return Period(start=DAY, end=DAY, currency="PEN", client_app_id=dataset.app.pk, **extra)


def test_totals_of_one_day(dataset):
    metrics = selectors.period_metrics(pen_day(dataset))
    total = metrics.total
    # P1 P2 P3 P4 P5 P6 P7 P8 P9 P10: 4 succeeded (P1 P2 P4 P10), 3 failed (P3 P5 P6), P8 canceled, P7 P9 open.
    assert (total.created, total.succeeded, total.failed, total.canceled, total.open) == (10, 4, 3, 1, 2)
    assert total.success_rate == Decimal("0.5714")  # 4 / 7
    assert total.conversion == Decimal("0.4000")  # 4 / 10
    assert total.gross_captured == 75000  # 10000 + 20000 + 30000 + 15000
    assert (total.refunded, total.refunds) == (5000, 1)  # the failed 1000 refund does not count
    assert total.net == 70000
    assert total.average_ticket == 18750  # 75000 / 4
    assert (total.checkouts_never_completed, total.failovers_in) == (1, 1)  # P7; P4
    # Charge attempts: culqi P1 P2 P3 P4 P6 P8 P9 P10, mercadopago P4 P5 (P7's checkout is not a charge).
    assert (total.attempts, total.declined, total.unavailable, total.unknown) == (10, 3, 1, 1)
    assert total.share == Decimal("1.0000")
    # Durations 100 200 300 400 1000: p50 the 3rd; p95 rank 0.95 * 4 = 3.8 -> 400 + 0.8 * 600 = 880.
    assert total.latency == Latency(count=5, avg_ms=400, p50_ms=300, p95_ms=880)
    assert metrics.sources == {"rollup_days": 0, "live_days": 1}


def test_per_gateway(dataset):
    total, by_gateway = selectors.payment_figures(pen_day(dataset))
    assert [g.gateway for g in by_gateway] == ["culqi", "mercadopago"]
    culqi, mercadopago = by_gateway
    assert (culqi.created, culqi.succeeded, culqi.failed, culqi.canceled, culqi.open) == (7, 3, 2, 1, 1)
    assert culqi.success_rate == Decimal("0.6000")  # 3 / 5
    assert culqi.conversion == Decimal("0.4286")  # 3 / 7
    assert (culqi.gross_captured, culqi.refunded, culqi.net, culqi.average_ticket) == (45000, 5000, 40000, 15000)
    assert (culqi.attempts, culqi.declined, culqi.unavailable, culqi.unknown) == (8, 2, 1, 1)
    assert culqi.share == Decimal("0.8000")
    # culqi durations 100 200 300 1000: p50 rank 1.5 -> 250; p95 rank 2.85 -> 300 + 0.85 * 700 = 895.
    assert culqi.latency == Latency(count=4, avg_ms=400, p50_ms=250, p95_ms=895)
    assert culqi.failovers_in == 0

    assert (mercadopago.created, mercadopago.succeeded, mercadopago.failed, mercadopago.open) == (3, 1, 1, 1)
    assert mercadopago.success_rate == Decimal("0.5000")
    assert mercadopago.conversion == Decimal("0.3333")
    assert (mercadopago.failovers_in, mercadopago.checkouts_never_completed) == (1, 1)
    assert (mercadopago.gross_captured, mercadopago.net, mercadopago.average_ticket) == (30000, 30000, 30000)
    assert (mercadopago.attempts, mercadopago.declined, mercadopago.share) == (2, 1, Decimal("0.2000"))
    assert mercadopago.latency == Latency(count=1, avg_ms=400, p50_ms=400, p95_ms=400)
    assert total.created == culqi.created + mercadopago.created


def test_decline_and_error_shares(dataset):
    assert selectors.rejections(pen_day(dataset)) == [
        CodeCount("decline", "insufficient_funds", "culqi", 2, Decimal("0.6667")),  # 2 of 3 declines
        CodeCount("decline", "cc_rejected_call_for_authorize", "mercadopago", 1, Decimal("0.3333")),
        CodeCount("error", "gateway_unavailable", "culqi", 1, Decimal("0.5000")),
        CodeCount("error", "unknown", "culqi", 1, Decimal("0.5000")),  # no code: the outcome's name
    ]


def test_currencies_never_mix(dataset):
    usd = selectors.period_metrics(Period(start=DAY, end=DAY, currency="USD", client_app_id=dataset.app.pk))
    assert (usd.total.created, usd.total.succeeded, usd.total.failed) == (2, 1, 1)
    assert (usd.total.gross_captured, usd.total.net) == (9999, 9999)
    assert usd.total.latency == Latency(count=1, avg_ms=5000, p50_ms=5000, p95_ms=5000)
    assert usd.rejections == [CodeCount("decline", "cc_rejected_other_reason", "mercadopago", 1, Decimal("1.0000"))]
    assert usd.credits.sold[0].amount == 900  # the USD basic plan; the PEN purchase is not here
    assert len(usd.credits.sold) == 1
    assert (usd.invoices.boletas, usd.invoices.total, usd.invoices.igv) == (1, 9999, 1525)
    pen = selectors.period_metrics(pen_day(dataset))
    assert 9999 not in (pen.total.gross_captured, pen.daily[0].gross_captured)
    assert all(code.code != "cc_rejected_other_reason" for code in pen.rejections)


def test_client_app_scope(dataset):
    everyone = selectors.period_metrics(Period(start=DAY, end=DAY, currency="PEN"))
    assert (everyone.total.created, everyone.total.succeeded) == (11, 5)  # + O1 of the other app
    assert everyone.total.gross_captured == 82777  # 75000 + 7777
    # 50 100 200 300 400 1000: p50 rank 2.5 -> 250; p95 rank 4.75 -> 400 + 0.75 * 600 = 850; avg 2050 / 6.
    assert everyone.total.latency == Latency(count=6, avg_ms=342, p50_ms=250, p95_ms=850)
    assert everyone.credits.granted_manual == 47  # 40 + the other app's 7
    assert everyone.credits.outstanding == 597

    other = selectors.period_metrics(Period(start=DAY, end=DAY, currency="PEN", client_app_id=dataset.other_app.pk))
    assert (other.total.created, other.total.gross_captured, other.total.attempts) == (1, 7777, 1)
    assert other.rejections == []
    assert (other.credits.granted_manual, other.credits.outstanding, other.credits.sold) == (7, 7, [])
    assert other.invoices.boletas == 0


def test_daily_series_is_zero_filled_and_follows_lima_days(dataset):
    period = Period(start=DAY, end=DAY + timedelta(days=2), currency="PEN", client_app_id=dataset.app.pk)
    first, second, third = selectors.daily_series(period)
    assert (first.day, first.created, first.succeeded, first.failed) == (DAY, 10, 4, 3)  # P10 at 23:30 included
    assert (first.success_rate, first.gross_captured, first.refunded, first.net) == (
        Decimal("0.5714"),
        75000,
        5000,
        70000,
    )
    # P11 at 00:10 Lima on the next day (05:10 UTC).
    assert (second.day, second.created, second.succeeded, second.success_rate, second.net) == (
        DAY + timedelta(days=1),
        1,
        1,
        Decimal("1.0000"),
        1234,
    )
    assert (third.day, third.created, third.success_rate, third.gross_captured, third.net) == (
        DAY + timedelta(days=2),
        0,
        None,
        0,
        0,
    )


def test_lima_day_boundaries(dataset, make_payment):
    # 23:30 Lima on DAY is 04:30 UTC on DAY + 1, yet belongs to DAY; 00:10 Lima on DAY + 1 does not.
    assert dataset.payments["P10"].created_at.astimezone().date() == DAY
    next_day = Period(start=DAY + timedelta(days=1), end=DAY + timedelta(days=1), currency="PEN")
    assert selectors.payment_figures(next_day)[0].created == 1  # P11 only
    make_payment(amount=500, at=lima(DAY.year, DAY.month, DAY.day, 0, 0))  # midnight opens DAY
    make_payment(amount=600, at=lima(DAY.year, DAY.month, DAY.day, 0, 0) - timedelta(microseconds=1))
    day = selectors.payment_figures(pen_day(dataset))[0]
    assert (day.created, day.gross_captured) == (11, 75500)


def test_credits(dataset):
    credits = selectors.credit_figures(pen_day(dataset))
    assert [(s.plan_code, s.purchases, s.amount, s.paid_credits, s.bonus_credits) for s in credits.sold] == [
        ("professional", 1, 12900, 500, 50)
    ]
    # Grants cover every currency: the PEN professional (500 paid + 50 bonus) and the USD basic (100 paid).
    assert (credits.granted_paid, credits.granted_bonus, credits.granted_manual) == (600, 50, 40)
    assert (credits.consumed, credits.expired, credits.clawed_back) == (30, 50, 20)
    assert credits.outstanding == 590  # 550 - 30 - 50 - 20 + 40 + 100
    assert (credits.renewals_succeeded, credits.renewals_failed) == (0, 1)
    later = selectors.credit_figures(Period(start=DAY + timedelta(days=1), end=DAY + timedelta(days=9), currency="PEN"))
    assert (later.sold, later.granted_paid, later.consumed, later.renewals_failed) == ([], 0, 0, 0)
    assert later.outstanding == 597  # a balance now, not of the period


def test_invoices(dataset):
    invoices = selectors.invoice_figures(pen_day(dataset))
    assert (invoices.boletas, invoices.boletas_total) == (2, 25000)  # P1 10000 + the rejected P10 15000
    assert (invoices.facturas, invoices.facturas_total) == (1, 20000)
    assert (invoices.credit_notes, invoices.credit_notes_total) == (1, 5000)
    assert invoices.subtotal == 33899  # 8475 + 16949 + 12712 - 4237
    assert invoices.igv == 6101  # 1525 + 3051 + 2288 - 763
    assert invoices.total == 40000
    assert invoices.rejected == 1
    next_day = selectors.invoice_figures(
        Period(start=DAY + timedelta(days=1), end=DAY + timedelta(days=1), currency="PEN")
    )
    assert (next_day.boletas, next_day.total, next_day.credit_notes) == (1, 1234, 0)


def test_empty_period(db):
    metrics = selectors.period_metrics(Period(start=date(2024, 1, 1), end=date(2024, 1, 3), currency="PEN"))
    assert (metrics.total.created, metrics.total.success_rate, metrics.total.average_ticket) == (0, None, None)
    assert metrics.total.latency == Latency(count=0, avg_ms=None, p50_ms=None, p95_ms=None)
    assert metrics.by_gateway == [] and metrics.rejections == []
    assert [p.created for p in metrics.daily] == [0, 0, 0]
    assert metrics.total.share == Decimal("0")


def test_period_ending_before_it_starts_is_refused(db):
    with pytest.raises(ValueError, match="before it starts"):
        selectors.period_metrics(Period(start=DAY, end=DAY - timedelta(days=1), currency="PEN"))


def test_never_routed_payments_are_their_own_group(dataset, make_payment):
    at = lima(DAY.year, DAY.month, DAY.day, 9)
    make_payment(amount=700, status="failed", gateway="", at=at)
    total, by_gateway = selectors.payment_figures(pen_day(dataset))
    assert [g.gateway for g in by_gateway] == ["culqi", "mercadopago", ""]
    assert (by_gateway[-1].created, by_gateway[-1].failed, by_gateway[-1].attempts) == (1, 1, 0)
    assert (total.created, total.failed) == (11, 4)


LATENCY_CASES = [
    ([100, 200, 300, 400, 1000], 300, 880),
    ([7], 7, 7),
    ([10, 11], 11, 11),  # p50 10.5 rounds half up; p95 10 + 0.95 = 10.95
    ([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21], 11, 20),  # p95 rank 19
    # sorted 31 31 40 77 120 250 999 1200: p50 rank 3.5 -> 77 + 0.5 * 43 = 98.5 -> 99;
    # p95 rank 0.95 * 7 = 6.65 -> 999 + 0.65 * 201 = 1129.65 -> 1130
    ([250, 120, 999, 31, 31, 40, 1200, 77], 99, 1130),
]


def _latency_dataset(make_payment, durations):
    at = lima(2025, 6, 2, 15)
    make_payment(amount=100, at=at, attempts=[attempt("culqi", "succeeded", d) for d in durations])
    return Period(start=date(2025, 6, 2), end=date(2025, 6, 2), currency="PEN")


@pytest.mark.parametrize(("durations", "p50", "p95"), LATENCY_CASES)
def test_percentiles(make_payment, durations, p50, p95):
    # Hand computed: rank p * (n - 1) (0-based), linear between its two neighbours, rounded half up.
    latency = selectors.payment_figures(_latency_dataset(make_payment, durations))[0].latency
    assert (latency.p50_ms, latency.p95_ms) == (p50, p95)


@pytest.mark.parametrize(("durations", "p50", "p95"), LATENCY_CASES)
def test_percentiles_on_postgresql(require_postgres, make_payment, durations, p50, p95):
    """The same cases through percentile_cont (CI runs the suite on PostgreSQL)."""
    latency = selectors.payment_figures(_latency_dataset(make_payment, durations))[0].latency
    assert (latency.p50_ms, latency.p95_ms) == (p50, p95)


def test_histogram_estimate():
    # 10 values in the (82, 100] bucket: the median rank 4.5 sits mid-bucket.
    assert histogram_percentile({"100": 10}, 0.5) == 91  # 82 + 18 * (4.5 - 0 + 0.5) / 10 = 91
    assert histogram_percentile({}, 0.5) is None
    assert histogram_percentile({"inf": 3}, 0.95) == 100_000


def test_query_count_does_not_grow_with_rows(dataset, make_payment, django_assert_max_num_queries):
    period = Period(start=DAY, end=DAY + timedelta(days=30), currency="PEN")
    with django_assert_max_num_queries(16):
        selectors.period_metrics(period)
    at = lima(DAY.year, DAY.month, DAY.day + 3, 8)
    for n in range(40):
        make_payment(amount=100 + n, at=at + timedelta(hours=n), duration_ms=n, decline_code="")
    with django_assert_max_num_queries(16):
        metrics = selectors.period_metrics(period)
    assert metrics.total.created == 11 + 1 + 40


def test_amounts_are_ints_on_every_backend(dataset):
    """PostgreSQL sums bigints as numeric: the figures must still be ints (JSON, formatting)."""
    metrics = selectors.period_metrics(pen_day(dataset))
    values = [
        metrics.total.gross_captured,
        metrics.total.refunded,
        metrics.total.net,
        metrics.total.latency.count,
        metrics.daily[0].gross_captured,
        metrics.credits.granted_paid,
        metrics.credits.outstanding,
        metrics.credits.sold[0].amount,
        metrics.invoices.igv,
        metrics.invoices.total,
    ]
    assert all(type(value) is int for value in values), [type(v) for v in values]
