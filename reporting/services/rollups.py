"""Daily rollups: the payment metrics of one Lima day per (client app, currency, gateway), stored in
`DailyRollup` so that long periods read a few rows per day instead of every payment.

A day is recomputed whole (its rows deleted and written again in one transaction) by the same SQL
the live reads use (`reporting.aggregation`), so a rolled-up day and the same day computed live give
the same figures. `RollupDay` marks the day as rolled up (even when it had no payments) and keeps
its exact latency percentiles, which do not add across rows.

Recomputing is idempotent and safe to repeat at any time: late changes (a payment that succeeds or
a refund made after the day was rolled up) are picked up by recomputing the day, which the beat job
does for the last REPORTING_ROLLUP_RECENT_DAYS days every hour.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from reporting.aggregation import (
    SUM_FIELDS,
    Scope,
    histogram_groups,
    latency_percentiles,
    metric_groups,
    rejection_groups,
)
from reporting.models import DailyRollup, RollupDay
from smartpay.clock import business_date

logger = logging.getLogger("smartpay.reporting")

ROW_DIMS = ("client_app", "currency", "gateway")
# The percentile groupings kept on RollupDay: per row, per client app, per gateway (all apps), overall.
PERCENTILE_DIMS = (("client_app", "gateway"), ("client_app",), ("gateway",), ())
ADVISORY_LOCK_NAMESPACE = 0x5250  # "RP": reporting rollups (first key of the two-key advisory lock)


def rollup_day(day: date) -> int:
    """Recompute every `DailyRollup` row of one Lima day; returns the number of rows written.

    One transaction: the day's lock (a PostgreSQL advisory lock; SQLite serializes writers anyway),
    the reads, the delete, the inserts and the `RollupDay` marker. Readers see the old rows or the
    new ones, never half a day, and two runs of the same day at once take turns."""
    with transaction.atomic():
        _lock_day(day)
        rows, latency = _compute(day)
        DailyRollup.objects.filter(day=day).delete()
        DailyRollup.objects.bulk_create(rows)
        RollupDay.objects.update_or_create(
            day=day, defaults={"rows": len(rows), "latency": latency, "computed_at": timezone.now()}
        )
    logger.info("reporting rollup", extra={"day": day.isoformat(), "rows": len(rows)})
    return len(rows)


def _lock_day(day: date) -> None:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [ADVISORY_LOCK_NAMESPACE, day.toordinal()])


def _compute(day: date) -> tuple[list[DailyRollup], dict[str, list]]:
    """The day's rows (one per client app, currency and gateway with any figure) and its exact
    percentiles for RollupDay.latency."""
    scope = Scope(runs=((day, day),))
    groups = metric_groups(scope, ROW_DIMS)
    codes = rejection_groups(scope, ROW_DIMS)
    histograms = histogram_groups(scope, ROW_DIMS)
    latency: dict[str, list] = {}
    row_percentiles: dict[tuple, tuple] = {}
    for dims in PERCENTILE_DIMS:
        for key, (count, p50, p95) in latency_percentiles(scope, ("currency", *dims)).items():
            values = dict(zip(("currency", *dims), key, strict=True))
            name = f"{values['currency']}|{values.get('client_app', '*')}|{values.get('gateway', '*')}"
            latency[name] = [count, p50, p95]
            if dims == ("client_app", "gateway"):
                row_percentiles[(values["client_app"], values["currency"], values["gateway"])] = (p50, p95)
    now = timezone.now()
    rows = []
    for key in sorted(set(groups) | set(histograms) | {code_key[:3] for code_key in codes}):
        client_app_id, currency, gateway = key
        p50, p95 = row_percentiles.get(key, (None, None))
        rows.append(
            DailyRollup(
                day=day,
                client_app_id=client_app_id,
                currency=currency,
                gateway=gateway,
                **(groups.get(key) or dict.fromkeys(SUM_FIELDS, 0)),
                declines=_codes(codes, key, "decline"),
                errors=_codes(codes, key, "error"),
                latency_p50_ms=p50,
                latency_p95_ms=p95,
                latency_histogram=histograms.get(key, {}),
                computed_at=now,
            )
        )
    return rows, latency


def _codes(codes: dict, key: tuple, kind: str) -> dict[str, int]:
    return {code_key[4]: count for code_key, count in codes.items() if code_key[:3] == key and code_key[3] == kind}


def rollup_range(start: date, end: date) -> int:
    """Backfill: recompute every day from `start` to `end` (included), one transaction per day."""
    if end < start:
        raise ValueError("The range ends before it starts.")
    written = 0
    day = start
    while day <= end:
        written += rollup_day(day)
        day += timedelta(days=1)
    return written


def rollup_recent_days(now: datetime | None = None) -> int:
    """Recompute the REPORTING_ROLLUP_RECENT_DAYS Lima days before today (today is always read live)."""
    today = business_date(now)
    days = settings.REPORTING_ROLLUP_RECENT_DAYS
    if days < 1:
        return 0
    return rollup_range(today - timedelta(days=days), today - timedelta(days=1))
