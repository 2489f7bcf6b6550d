"""The SQL that turns source rows (payments, refunds, charge attempts) into metric groups.

Shared by the live reads (`reporting.selectors`) and the daily rollups (`reporting.services.rollups`),
so a figure read from a rollup row and the same figure computed live cannot drift apart: both are
these queries, grouped by different dimensions.

A *group* is a dict of the `DailyRollup` column names below (counts and sums that add across groups)
keyed by a tuple of dimension values, dimensions taken from `DIMENSIONS` in the order given.
Every function filters by a `Scope`: runs of Lima days, a currency (or all), a client app (or all).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal

from django.db import connection
from django.db.models import Case, CharField, Count, Exists, F, OuterRef, Q, QuerySet, Sum, Value, When
from django.db.models.functions import Coalesce, TruncDate

from payments.enums import AttemptOperation, AttemptOutcome, PaymentStatus
from payments.models import Payment, PaymentAttempt, Refund
from smartpay.clock import business_zone

DIMENSIONS = ("client_app", "currency", "gateway", "day")

SUCCEEDED = (PaymentStatus.SUCCEEDED, PaymentStatus.PARTIALLY_REFUNDED, PaymentStatus.REFUNDED)
OPEN = (PaymentStatus.PENDING, PaymentStatus.PROCESSING, PaymentStatus.REQUIRES_ACTION, PaymentStatus.AUTHORIZED)
# A hosted checkout in one of these states was never paid (abandoned, expired, declined, still waiting).
CHECKOUT_UNFINISHED = (
    PaymentStatus.PENDING,
    PaymentStatus.REQUIRES_ACTION,
    PaymentStatus.FAILED,
    PaymentStatus.CANCELED,
)
ERROR_OUTCOMES = (AttemptOutcome.UNAVAILABLE, AttemptOutcome.UNKNOWN, AttemptOutcome.INVALID, AttemptOutcome.ERROR)

PAYMENT_FIELDS = (
    "payments_created",
    "payments_succeeded",
    "payments_failed",
    "payments_canceled",
    "payments_open",
    "checkouts_never_completed",
    "failovers_in",
    "amount_created",
    "amount_captured",
)
REFUND_FIELDS = ("refunds_count", "amount_refunded")
ATTEMPT_FIELDS = (
    "attempts",
    "attempts_declined",
    "attempts_unavailable",
    "attempts_unknown",
    "attempts_error",
    "latency_count",
    "latency_sum_ms",
)
# Every DailyRollup column that adds across rows (days, client apps).
SUM_FIELDS = PAYMENT_FIELDS + REFUND_FIELDS + ATTEMPT_FIELDS

# Latency histogram: upper bounds (ms, inclusive) of fixed log-spaced buckets (the E12 series from
# 10 ms to 100 s, ~20% wide), then "inf". Keys of `DailyRollup.latency_histogram` are these, as text.
E12 = (1.0, 1.2, 1.5, 1.8, 2.2, 2.7, 3.3, 3.9, 4.7, 5.6, 6.8, 8.2)
HISTOGRAM_BOUNDS = (1, 2, 3, 5, 7, *(round(m * 10**e) for e in range(1, 5) for m in E12), 100_000)
OVERFLOW_BUCKET = "inf"


@dataclass(frozen=True)
class Scope:
    runs: tuple[tuple[date, date], ...]  # contiguous Lima day runs, each (first, last) included
    currency: str | None = None  # None: every currency (rollups group by it)
    client_app_id: str | None = None


def day_runs(days: list[date]) -> tuple[tuple[date, date], ...]:
    """Sorted days as contiguous (first, last) runs: [1, 2, 3, 5] -> ((1, 3), (5, 5))."""
    runs: list[list[date]] = []
    for day in sorted(days):
        if runs and runs[-1][1] + timedelta(days=1) == day:
            runs[-1][1] = day
        else:
            runs.append([day, day])
    return tuple((first, last) for first, last in runs)


def day_bounds(first: date, last: date) -> tuple[datetime, datetime]:
    """[first 00:00 Lima, last + 1 00:00 Lima) as aware datetimes."""
    zone = business_zone()
    return datetime.combine(first, time.min, zone), datetime.combine(last + timedelta(days=1), time.min, zone)


def in_runs(field: str, runs) -> Q:
    """`field` within any of the runs (callers never pass no runs: they skip the query instead)."""
    condition = Q()
    for first, last in runs:
        start, end = day_bounds(first, last)
        condition |= Q(**{f"{field}__gte": start, f"{field}__lt": end})
    return condition


def lima_day(field: str) -> TruncDate:
    return TruncDate(field, tzinfo=business_zone())


def round_half_up(value) -> int | None:
    """An int, rounded half up (a float is first rounded to 6 places, so 879.9999999999999 is 880)."""
    if value is None:
        return None
    exact = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    return int(exact.quantize(Decimal("0.000001"), rounding=ROUND_HALF_UP).to_integral_value(rounding=ROUND_HALF_UP))


def _dimension_columns(dims, *, app: str, currency: str, gateway: str, created: str) -> dict:
    columns = {"client_app": F(app), "currency": F(currency), "gateway": F(gateway), "day": lima_day(created)}
    return {f"k_{name}": columns[name] for name in dims}


def _grouped(queryset: QuerySet, dims, columns: dict, aggregates: dict) -> dict[tuple, dict]:
    rows = queryset.annotate(**columns).values(*columns).annotate(**aggregates).order_by()
    # int(): PostgreSQL sums bigints as numeric (Decimal); every figure here is a whole number.
    return {tuple(row[f"k_{name}"] for name in dims): {f: int(row[f] or 0) for f in aggregates} for row in rows}


def payments_in(scope: Scope) -> QuerySet:
    queryset = Payment.objects.filter(in_runs("created_at", scope.runs))
    if scope.currency:
        queryset = queryset.filter(currency=scope.currency)
    if scope.client_app_id:
        queryset = queryset.filter(client_app_id=scope.client_app_id)
    return queryset


def refunds_in(scope: Scope) -> QuerySet:
    queryset = Refund.objects.filter(in_runs("created_at", scope.runs), status="succeeded")
    if scope.currency:
        queryset = queryset.filter(currency=scope.currency)
    if scope.client_app_id:
        queryset = queryset.filter(payment__client_app_id=scope.client_app_id)
    return queryset


def charge_attempts_in(scope: Scope) -> QuerySet:
    """Charge attempts made in the scope's days, of payments in its currency and client app."""
    queryset = PaymentAttempt.objects.filter(in_runs("created_at", scope.runs), operation=AttemptOperation.CHARGE)
    if scope.currency:
        queryset = queryset.filter(payment__currency=scope.currency)
    if scope.client_app_id:
        queryset = queryset.filter(payment__client_app_id=scope.client_app_id)
    return queryset


def payment_groups(scope: Scope, dims) -> dict[tuple, dict]:
    """Counts and amounts of the payments created in the scope, by the gateway they ended at."""
    checkout_tried = Exists(PaymentAttempt.objects.filter(payment=OuterRef("pk"), operation=AttemptOperation.CHECKOUT))
    failed_over = Exists(
        PaymentAttempt.objects.filter(payment=OuterRef("pk"), operation=AttemptOperation.CHARGE).exclude(
            gateway=OuterRef("gateway")
        )
    )
    aggregates = {
        "payments_created": Count("pk"),
        "payments_succeeded": Count("pk", filter=Q(status__in=SUCCEEDED)),
        "payments_failed": Count("pk", filter=Q(status=PaymentStatus.FAILED)),
        "payments_canceled": Count("pk", filter=Q(status=PaymentStatus.CANCELED)),
        "payments_open": Count("pk", filter=Q(status__in=OPEN)),
        "checkouts_never_completed": Count(
            "pk", filter=Q(status__in=CHECKOUT_UNFINISHED) & (~Q(gateway_checkout_id="") | Q(checkout_tried))
        ),
        "failovers_in": Count("pk", filter=~Q(gateway="") & Q(failed_over)),
        "amount_created": Coalesce(Sum("amount"), 0),
        "amount_captured": Coalesce(Sum("amount_captured"), 0),
    }
    columns = _dimension_columns(
        dims, app="client_app_id", currency="currency", gateway="gateway", created="created_at"
    )
    return _grouped(payments_in(scope), dims, columns, aggregates)


def refund_groups(scope: Scope, dims) -> dict[tuple, dict]:
    """Succeeded refunds created in the scope, by their payment's gateway."""
    aggregates = {"refunds_count": Count("pk"), "amount_refunded": Coalesce(Sum("amount"), 0)}
    columns = _dimension_columns(
        dims, app="payment__client_app_id", currency="currency", gateway="payment__gateway", created="created_at"
    )
    return _grouped(refunds_in(scope), dims, columns, aggregates)


def attempt_groups(scope: Scope, dims) -> dict[tuple, dict]:
    """Charge attempts by the gateway they were made at: outcomes and the latency count and sum."""
    aggregates = {
        "attempts": Count("pk"),
        "attempts_declined": Count("pk", filter=Q(outcome=AttemptOutcome.DECLINED)),
        "attempts_unavailable": Count("pk", filter=Q(outcome=AttemptOutcome.UNAVAILABLE)),
        "attempts_unknown": Count("pk", filter=Q(outcome=AttemptOutcome.UNKNOWN)),
        "attempts_error": Count("pk", filter=Q(outcome__in=(AttemptOutcome.INVALID, AttemptOutcome.ERROR))),
        "latency_count": Count("duration_ms"),
        "latency_sum_ms": Coalesce(Sum("duration_ms"), 0),
    }
    columns = _dimension_columns(
        dims, app="payment__client_app_id", currency="payment__currency", gateway="gateway", created="created_at"
    )
    return _grouped(charge_attempts_in(scope), dims, columns, aggregates)


def metric_groups(scope: Scope, dims) -> dict[tuple, dict]:
    """Every SUM_FIELDS figure of the scope by `dims` (three queries), zeros where a source had none."""
    if not scope.runs:
        return {}
    merged: dict[tuple, dict] = defaultdict(lambda: dict.fromkeys(SUM_FIELDS, 0))
    for groups in (payment_groups(scope, dims), refund_groups(scope, dims), attempt_groups(scope, dims)):
        for key, figures in groups.items():
            merged[key].update(figures)
    return dict(merged)


def rejection_groups(scope: Scope, dims) -> dict[tuple, int]:
    """{(dims..., kind, code): count} of charge attempts that did not go through.

    kind "decline": outcome declined, code = the decline code the gateway gave (`error_code`, as
    `finish_attempt` stores it). kind "error": unavailable, unknown, invalid or error, code = its
    `error_code`. Either way the outcome's name stands in for an empty code."""
    if not scope.runs:
        return {}
    kind = Case(When(outcome=AttemptOutcome.DECLINED, then=Value("decline")), default=Value("error"))
    code = Case(When(error_code="", then=F("outcome")), default=F("error_code"), output_field=CharField())
    columns = _dimension_columns(
        dims, app="payment__client_app_id", currency="payment__currency", gateway="gateway", created="created_at"
    )
    columns |= {"k_kind": kind, "k_code": code}
    queryset = charge_attempts_in(scope).filter(outcome__in=(AttemptOutcome.DECLINED, *ERROR_OUTCOMES))
    rows = queryset.annotate(**columns).values(*columns).annotate(n=Count("pk")).order_by()
    return {tuple(row[f"k_{name}"] for name in (*dims, "kind", "code")): row["n"] for row in rows}


def _bucket_expression() -> Case:
    whens = [When(duration_ms__lte=bound, then=Value(str(bound))) for bound in HISTOGRAM_BOUNDS]
    return Case(*whens, default=Value(OVERFLOW_BUCKET), output_field=CharField())


def histogram_groups(scope: Scope, dims) -> dict[tuple, dict[str, int]]:
    """{dims: {bucket: count}} of the charge attempts' durations (only non-empty buckets)."""
    if not scope.runs:
        return {}
    columns = _dimension_columns(
        dims, app="payment__client_app_id", currency="payment__currency", gateway="gateway", created="created_at"
    )
    columns["k_bucket"] = _bucket_expression()
    queryset = charge_attempts_in(scope).filter(duration_ms__isnull=False)
    rows = queryset.annotate(**columns).values(*columns).annotate(n=Count("pk")).order_by()
    histograms: dict[tuple, dict[str, int]] = defaultdict(dict)
    for row in rows:
        histograms[tuple(row[f"k_{name}"] for name in dims)][row["k_bucket"]] = row["n"]
    return dict(histograms)


def latency_percentiles(scope: Scope, dims) -> dict[tuple, tuple[int, int | None, int | None]]:
    """{dims: (count, p50, p95)} of charge attempt durations, exact (ms, rounded half up).

    PostgreSQL: percentile_cont(0.5 | 0.95) WITHIN GROUP (ORDER BY duration_ms). SQLite: the same
    linear interpolation in SQL: rank r = p * (n - 1), the rows at floor(r) and floor(r) + 1 (by
    ROW_NUMBER over the ordered durations), value = low + (high - low) * (r - floor(r))."""
    if not scope.runs:
        return {}
    columns = _dimension_columns(
        dims, app="payment__client_app_id", currency="payment__currency", gateway="gateway", created="created_at"
    )
    queryset = charge_attempts_in(scope).filter(duration_ms__isnull=False)
    base, params = (
        queryset.annotate(**columns, d=F("duration_ms")).values(*columns, "d").order_by().query.sql_with_params()
    )
    keys = ", ".join(columns)
    select_keys = f"{keys}, " if keys else ""
    if connection.vendor == "postgresql":
        sql = (
            f"SELECT {select_keys}COUNT(*), percentile_cont(0.5) WITHIN GROUP (ORDER BY d), "  # noqa: S608
            f"percentile_cont(0.95) WITHIN GROUP (ORDER BY d) FROM ({base}) AS base"
            + (f" GROUP BY {keys}" if keys else "")
        )
    else:
        over = f"PARTITION BY {keys}" if keys else ""
        picks = []
        for name, p in (("50", "0.5"), ("95", "0.95")):
            floor = f"CAST({p} * (n - 1) AS INTEGER)"
            picks.append(f"MAX(CASE WHEN rn = {floor} THEN d END) AS lo{name}")
            picks.append(f"MAX(CASE WHEN rn = {floor} + 1 THEN d END) AS hi{name}")
            picks.append(f"{p} * (n - 1) - {floor} AS frac{name}")
        sql = (
            f"WITH base AS ({base}), ranked AS (SELECT {select_keys}d, "  # noqa: S608
            f"ROW_NUMBER() OVER ({over} ORDER BY d) - 1 AS rn, COUNT(*) OVER ({over}) AS n "
            f"FROM base), picked AS (SELECT {select_keys}n, {', '.join(picks)} FROM ranked GROUP BY {select_keys}n) "
            f"SELECT {select_keys}n, lo50 + (COALESCE(hi50, lo50) - lo50) * frac50, "
            f"lo95 + (COALESCE(hi95, lo95) - lo95) * frac95 FROM picked"
        )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    width = len(dims)
    return {
        tuple(row[:width]): (int(row[width]), round_half_up(row[width + 1]), round_half_up(row[width + 2]))
        for row in rows
        if row[width]
    }


def histogram_percentile(histogram: dict[str, int], p: float) -> int | None:
    """Estimate of the p-quantile from bucket counts, shaped like percentile_cont: the values of a
    bucket are spread evenly inside it (the k-th of c at lower + width * (k + 0.5) / c; the overflow
    bucket's at its lower bound), then rank p * (n - 1) is interpolated between its two neighbours."""
    lowers = dict(zip([str(b) for b in HISTOGRAM_BOUNDS], (0, *HISTOGRAM_BOUNDS[:-1]), strict=True))
    buckets = [(bucket, histogram.get(bucket, 0)) for bucket in (*lowers, OVERFLOW_BUCKET)]
    total = sum(count for _, count in buckets)
    if not total:
        return None

    def value_at(index: int) -> float:
        seen = 0
        for bucket, count in buckets:
            if index < seen + count:
                if bucket == OVERFLOW_BUCKET:
                    return float(HISTOGRAM_BOUNDS[-1])
                low = lowers[bucket]
                return low + (int(bucket) - low) * (index - seen + 0.5) / count
            seen += count
        raise AssertionError("index beyond the histogram")  # pragma: no cover

    rank = p * (total - 1)
    first = int(rank)
    low_value = value_at(first)
    high_value = value_at(first + 1) if first + 1 < total else low_value
    return round_half_up(low_value + (high_value - low_value) * (rank - first))
