"""Reads of the reporting app: the payment, credit and invoice metrics of a period.

THE INTERFACE BELOW IS SHARED by the dashboard, the period reports and /metrics: keep names and
fields; adding fields is fine.

Every figure is computed by SQL aggregation (never by looping over rows in Python), for a range of
Lima days ([start 00:00, end + 1 00:00) in America/Lima), for one currency (PEN and USD are never
summed together), per gateway and in total, for one client app or all of them.

Where figures come from: days before today that have been rolled up (a `RollupDay` row, written by
`reporting.services.rollups.rollup_day`, even for a day without payments) read their `DailyRollup`
rows; today and every day not rolled up are computed live from the source rows, by the same queries
(`reporting.aggregation`). The two parts are added by SQL sums (counts, amounts, latency count and
sum; decline/error codes and latency buckets summed per key from the rows' JSON). `sources` says how
many days came from each. Latency percentiles:
- a range read entirely live: exact (percentile_cont on PostgreSQL, the same interpolation on SQLite);
- a single rolled-up day: exact (the day's percentiles kept on `RollupDay.latency` when it was rolled up);
- any other range with rolled-up days: estimated from the merged latency histogram (log-spaced
  buckets ~20% wide, `aggregation.HISTOGRAM_BOUNDS`), values spread evenly inside each bucket and
  interpolated like percentile_cont; expect an error up to about a bucket's width.
A rolled-up day reflects the data when it was computed; the hourly job recomputes the last
REPORTING_ROLLUP_RECENT_DAYS days, and `manage.py reporting_rollup --from --to` any others.

Definitions (also in the README's Reporting section):
- A payment belongs to the Lima day it was created. Refunds belong to the day they were created
  (and count once they succeeded).
- "succeeded" = status succeeded, partially_refunded or refunded. Final outcomes = succeeded +
  failed. Success rate = succeeded ÷ (succeeded + failed); canceled payments (voided
  authorizations, expired or abandoned checkouts) are counted apart, not as gateway failures.
- Conversion = succeeded ÷ created (every payment created, checkouts never completed included).
- Gross captured = Σ amount_captured of the period's payments; refunded = Σ succeeded refunds
  created in the period; net = gross captured - refunded; average ticket = gross captured ÷
  succeeded (integer minor units, rounded half up).
- Processing time = PaymentAttempt.duration_ms of charge attempts (p50/p95 by percentile_cont on
  PostgreSQL; the same linear interpolation on SQLite), in whole ms rounded half up; avg = sum ÷ count.
- Gateway of a payment = the one it ended at (`Payment.gateway`; "" = never routed, listed only when
  such payments exist). Attempt figures (attempts, declined, unavailable, unknown, latency, share)
  belong to the gateway each charge attempt was made at, on the Lima day the attempt was created, for
  payments of the period's currency and client app. share = the gateway's charge attempts ÷ all.
- failovers_in = payments ending at a gateway whose charge attempts include another gateway;
  checkouts_never_completed = payments with a hosted checkout (gateway_checkout_id or a checkout
  attempt) that are pending, requires_action, failed or canceled.
- Rejections: declined charge attempts (kind "decline", code = the decline code) and unavailable,
  unknown, invalid or error ones (kind "error", code = error_code); the outcome name when no code.
  share = count ÷ all attempts of that kind in the period.
- Rates and shares are Decimals to 4 places (half up); a rate is None when its denominator is 0.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal

from django.db import connection
from django.db.models import Count, Q, Sum
from django.db.models.functions import Coalesce

from billing.enums import DocumentType, InvoiceStatus
from billing.models import Invoice
from credits.models import (
    CreditAccount,
    CreditKind,
    CreditLedgerEntry,
    CreditPurchase,
    EntryType,
    PurchaseSource,
    PurchaseStatus,
)
from reporting.aggregation import (
    SUM_FIELDS,
    Scope,
    day_bounds,
    day_runs,
    histogram_groups,
    histogram_percentile,
    latency_percentiles,
    metric_groups,
    rejection_groups,
    round_half_up,
)
from reporting.models import DailyRollup, RollupDay
from smartpay.clock import business_date


@dataclass(frozen=True)
class Period:
    start: date  # first Lima day, included
    end: date  # last Lima day, included
    currency: str  # "PEN" or "USD"
    client_app_id: str | None = None  # None: every client app (staff)


@dataclass(frozen=True)
class Latency:
    count: int
    avg_ms: int | None
    p50_ms: int | None
    p95_ms: int | None


@dataclass(frozen=True)
class CodeCount:
    kind: str  # "decline" (the gateway said no) or "error" (unavailable, timeout, invalid, config)
    code: str
    gateway: str
    count: int
    share: Decimal  # of all attempts of the period that ended in this kind, 0..1


@dataclass(frozen=True)
class PaymentFigures:
    """One gateway's figures (gateway "" in `Metrics.total` means all gateways)."""

    gateway: str
    created: int
    succeeded: int
    failed: int
    canceled: int
    open: int  # no final outcome yet
    checkouts_never_completed: int
    failovers_in: int  # payments that ended at this gateway after another was tried
    success_rate: Decimal | None  # None when nothing reached a final outcome
    conversion: Decimal | None  # succeeded ÷ created
    share: Decimal  # this gateway's share of the period's charge attempts, 0..1
    gross_captured: int
    refunded: int
    net: int
    refunds: int
    average_ticket: int | None
    attempts: int
    declined: int
    unavailable: int
    unknown: int  # timeouts and answers lost after the request left
    latency: Latency


@dataclass(frozen=True)
class DailyPoint:
    day: date
    created: int
    succeeded: int
    failed: int
    success_rate: Decimal | None
    gross_captured: int
    refunded: int
    net: int


@dataclass(frozen=True)
class PlanSales:
    plan_code: str
    plan_name: str
    purchases: int
    amount: int  # minor units of the period's currency
    paid_credits: int
    bonus_credits: int


@dataclass(frozen=True)
class CreditFigures:
    """Credits are not money: their counts cover every currency; `sold` is in the period's."""

    sold: list[PlanSales]
    granted_paid: int
    granted_bonus: int
    granted_manual: int
    consumed: int
    expired: int
    clawed_back: int  # refund reversals
    outstanding: int  # balance of every account now (not per period)
    renewals_succeeded: int
    renewals_failed: int


@dataclass(frozen=True)
class InvoiceFigures:
    boletas: int
    boletas_total: int
    facturas: int
    facturas_total: int
    credit_notes: int
    credit_notes_total: int
    subtotal: int  # boletas + facturas - credit notes
    igv: int  # same netting
    total: int
    rejected: int  # by the PSE / SUNAT


@dataclass(frozen=True)
class Metrics:
    period: Period
    total: PaymentFigures
    by_gateway: list[PaymentFigures]
    daily: list[DailyPoint]  # one point per day of the period, zeros included
    rejections: list[CodeCount]  # most frequent first
    credits: CreditFigures
    invoices: InvoiceFigures
    sources: dict = field(default_factory=dict)  # {"rollup_days": n, "live_days": m}: how it was read


def period_metrics(period: Period) -> Metrics:
    """Every figure of the period (the dashboard and the report's summary sheet)."""
    read = _read_payments(period)
    total, by_gateway = _payment_figures(read)
    return Metrics(
        period=period,
        total=total,
        by_gateway=by_gateway,
        daily=_daily_series(period, read),
        rejections=_rejections(read),
        credits=credit_figures(period),
        invoices=invoice_figures(period),
        sources={"rollup_days": len(read.rollup_days), "live_days": read.live_days},
    )


def payment_figures(period: Period) -> tuple[PaymentFigures, list[PaymentFigures]]:
    """(total, per gateway) for the period."""
    return _payment_figures(_read_payments(period))


def daily_series(period: Period) -> list[DailyPoint]:
    return _daily_series(period, _read_payments(period))


def rejections(period: Period) -> list[CodeCount]:
    return _rejections(_read_payments(period))


def credit_figures(period: Period) -> CreditFigures:
    """Credits sold (granted purchases in the period's currency, by plan), ledger movements of the
    period by type (grants by lot kind), the outstanding balance now and auto-renewals of the period
    (granted by `granted_at`, failed by the time they were marked failed)."""
    start, end = day_bounds(period.start, period.end)
    purchases = CreditPurchase.objects.all()
    ledger = CreditLedgerEntry.objects.filter(created_at__gte=start, created_at__lt=end)
    accounts = CreditAccount.objects.all()
    if period.client_app_id:
        purchases = purchases.filter(client_app_id=period.client_app_id)
        ledger = ledger.filter(account__client_app_id=period.client_app_id)
        accounts = accounts.filter(client_app_id=period.client_app_id)
    granted_in_period = Q(status=PurchaseStatus.GRANTED, granted_at__gte=start, granted_at__lt=end)
    sold = (
        purchases.filter(granted_in_period, currency=period.currency)
        .values("plan__code", "plan__name")
        .annotate(n=Count("pk"), amount=Sum("amount"), paid=Sum("paid_credits"), bonus=Sum("bonus_credits"))
        .order_by("-amount", "plan__code")
    )
    grant = Q(entry_type=EntryType.GRANT)
    moves = _ints(
        ledger.aggregate(
            paid=Coalesce(Sum("amount", filter=grant & Q(lot__kind=CreditKind.PAID)), 0),
            bonus=Coalesce(Sum("amount", filter=grant & Q(lot__kind=CreditKind.BONUS)), 0),
            manual=Coalesce(Sum("amount", filter=grant & Q(lot__kind=CreditKind.MANUAL)), 0),
            consumed=Coalesce(Sum("amount", filter=Q(entry_type=EntryType.CONSUMPTION)), 0),
            expired=Coalesce(Sum("amount", filter=Q(entry_type=EntryType.EXPIRY)), 0),
            clawed_back=Coalesce(Sum("amount", filter=Q(entry_type=EntryType.REFUND_REVERSAL)), 0),
        )
    )
    renewals = purchases.filter(source=PurchaseSource.AUTO_RENEWAL).aggregate(
        succeeded=Count("pk", filter=granted_in_period),
        failed=Count("pk", filter=Q(status=PurchaseStatus.FAILED, updated_at__gte=start, updated_at__lt=end)),
    )
    return CreditFigures(
        sold=[
            PlanSales(
                plan_code=row["plan__code"],
                plan_name=row["plan__name"],
                purchases=row["n"],
                amount=int(row["amount"]),
                paid_credits=int(row["paid"]),
                bonus_credits=int(row["bonus"]),
            )
            for row in sold
        ],
        granted_paid=moves["paid"],
        granted_bonus=moves["bonus"],
        granted_manual=moves["manual"],
        consumed=-moves["consumed"],
        expired=-moves["expired"],
        clawed_back=-moves["clawed_back"],
        outstanding=int(accounts.aggregate(total=Coalesce(Sum("balance"), 0))["total"]),
        renewals_succeeded=renewals["succeeded"],
        renewals_failed=renewals["failed"],
    )


def invoice_figures(period: Period) -> InvoiceFigures:
    """Documents issued in the period (by their Lima `issue_date`) in its currency, whatever their
    SUNAT status; `rejected` counts those among them that SUNAT or the PSE refused."""
    invoices = Invoice.objects.filter(
        currency=period.currency, issue_date__gte=period.start, issue_date__lte=period.end
    )
    if period.client_app_id:
        invoices = invoices.filter(client_app_id=period.client_app_id)
    sale = Q(document_type__in=(DocumentType.BOLETA, DocumentType.FACTURA))
    note = Q(document_type=DocumentType.CREDIT_NOTE)
    sums = {}
    for name, condition in (
        ("boleta", Q(document_type=DocumentType.BOLETA)),
        ("factura", Q(document_type=DocumentType.FACTURA)),
    ):
        sums[f"{name}_n"] = Count("pk", filter=condition)
        sums[f"{name}_total"] = Coalesce(Sum("total", filter=condition), 0)
    figures = _ints(
        invoices.aggregate(
            **sums,
            note_n=Count("pk", filter=note),
            note_total=Coalesce(Sum("total", filter=note), 0),
            sale_subtotal=Coalesce(Sum("subtotal", filter=sale), 0),
            note_subtotal=Coalesce(Sum("subtotal", filter=note), 0),
            sale_tax=Coalesce(Sum("tax", filter=sale), 0),
            note_tax=Coalesce(Sum("tax", filter=note), 0),
            rejected=Count("pk", filter=Q(status=InvoiceStatus.REJECTED)),
        )
    )
    return InvoiceFigures(
        boletas=figures["boleta_n"],
        boletas_total=figures["boleta_total"],
        facturas=figures["factura_n"],
        facturas_total=figures["factura_total"],
        credit_notes=figures["note_n"],
        credit_notes_total=figures["note_total"],
        subtotal=figures["sale_subtotal"] - figures["note_subtotal"],
        igv=figures["sale_tax"] - figures["note_tax"],
        total=figures["boleta_total"] + figures["factura_total"] - figures["note_total"],
        rejected=figures["rejected"],
    )


def _ints(figures: dict) -> dict[str, int]:
    """PostgreSQL sums bigints as numeric (Decimal): every figure here is a whole number."""
    return {name: int(value) for name, value in figures.items()}


# --- reading: rollup days + live days, merged ------------------------------------------------------


@dataclass
class _PaymentRead:
    days: list[date]
    groups: dict[tuple[str, date], dict]  # (gateway, day) -> SUM_FIELDS
    codes: dict[tuple[str, str, str], int]  # (gateway, kind, code) -> count
    latency: dict[str, tuple[int | None, int | None]]  # gateway ("" = total) -> (p50, p95)
    rollup_days: list[date]
    live_days: int


def period_days(period: Period) -> list[date]:
    if period.end < period.start:
        raise ValueError("The period ends before it starts.")
    return [period.start + timedelta(days=n) for n in range((period.end - period.start).days + 1)]


def _read_payments(period: Period) -> _PaymentRead:
    days = period_days(period)
    yesterday = business_date() - timedelta(days=1)
    marked = dict(
        RollupDay.objects.filter(day__gte=period.start, day__lte=min(period.end, yesterday)).values_list(
            "day", "latency"
        )
    )
    live = Scope(day_runs([d for d in days if d not in marked]), period.currency, period.client_app_id)
    groups = metric_groups(live, ("gateway", "day"))
    codes = rejection_groups(live, ("gateway",))
    histograms: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    if marked:
        _add_rollups(period, sorted(marked), groups, codes, histograms)
    if not marked:
        latency = {key[0] if key else "": (p50, p95) for key, (_, p50, p95) in _exact_latency(live).items()}
    elif len(days) == 1:
        # One rolled-up day: its exact percentiles, kept when it was rolled up.
        prefix = f"{period.currency}|{period.client_app_id or '*'}|"
        latency = {
            ("" if name[len(prefix) :] == "*" else name[len(prefix) :]): (values[1], values[2])
            for name, values in marked[days[0]].items()
            if name.startswith(prefix)
        }
    else:
        for (gateway,), histogram in histogram_groups(live, ("gateway",)).items():
            for bucket, count in histogram.items():
                histograms[gateway][bucket] += count
        overall: dict[str, int] = defaultdict(int)
        for histogram in histograms.values():
            for bucket, count in histogram.items():
                overall[bucket] += count
        histograms[""] = overall
        latency = {
            gateway: (histogram_percentile(h, 0.5), histogram_percentile(h, 0.95)) for gateway, h in histograms.items()
        }
    return _PaymentRead(
        days=days,
        groups=groups,
        codes=codes,
        latency=latency,
        rollup_days=sorted(marked),
        live_days=len(days) - len(marked),
    )


def _exact_latency(scope: Scope) -> dict[tuple, tuple]:
    return {**latency_percentiles(scope, ("gateway",)), **latency_percentiles(scope, ())}


def _add_rollups(period: Period, days: list[date], groups: dict, codes: dict, histograms: dict) -> None:
    """Add the rollup rows of `days` (summed by SQL per gateway and day; their decline, error and
    latency-bucket JSON summed by SQL per gateway and key) into the live figures."""
    rows = DailyRollup.objects.filter(currency=period.currency, day__in=days)
    if period.client_app_id:
        rows = rows.filter(client_app_id=period.client_app_id)
    sums = rows.values("gateway", "day").annotate(**{f"s_{f}": Sum(f) for f in SUM_FIELDS}).order_by()
    for row in sums:
        target = groups.setdefault((row["gateway"], row["day"]), dict.fromkeys(SUM_FIELDS, 0))
        for name in SUM_FIELDS:
            target[name] += int(row[f"s_{name}"] or 0)  # PostgreSQL sums bigints as numeric
    base, params = rows.values("gateway", "declines", "errors", "latency_histogram").query.sql_with_params()
    if connection.vendor == "postgresql":
        each, value = "jsonb_each_text", "CAST(j.value AS BIGINT)"
    else:
        each, value = "json_each", "CAST(j.value AS INTEGER)"
    parts = [
        f"SELECT '{label}', b.gateway, j.key, SUM({value}) FROM ({base}) b CROSS JOIN {each}(b.{column}) j "  # noqa: S608
        "GROUP BY b.gateway, j.key"
        for label, column in (("decline", "declines"), ("error", "errors"), ("bucket", "latency_histogram"))
    ]
    with connection.cursor() as cursor:
        cursor.execute(" UNION ALL ".join(parts), params * 3)
        merged = cursor.fetchall()
    for label, gateway, key, total in merged:
        count = int(total)
        if label == "bucket":
            histograms[gateway][key] += count
        else:
            codes[(gateway, label, key)] = codes.get((gateway, label, key), 0) + count


# --- shaping the figures -----------------------------------------------------------------------------


def ratio(part: int, whole: int) -> Decimal | None:
    """part ÷ whole to 4 decimal places (half up); None when whole is 0."""
    if not whole:
        return None
    return (Decimal(part) / Decimal(whole)).quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP)


def _add(into: dict, figures: dict) -> None:
    for name in SUM_FIELDS:
        into[name] += figures[name]


def _figures(gateway: str, sums: dict, all_attempts: int, latency: tuple) -> PaymentFigures:
    succeeded, failed, refunded = sums["payments_succeeded"], sums["payments_failed"], sums["amount_refunded"]
    gross = sums["amount_captured"]
    count = sums["latency_count"]
    p50, p95 = latency
    return PaymentFigures(
        gateway=gateway,
        created=sums["payments_created"],
        succeeded=succeeded,
        failed=failed,
        canceled=sums["payments_canceled"],
        open=sums["payments_open"],
        checkouts_never_completed=sums["checkouts_never_completed"],
        failovers_in=sums["failovers_in"],
        success_rate=ratio(succeeded, succeeded + failed),
        conversion=ratio(succeeded, sums["payments_created"]),
        share=ratio(sums["attempts"], all_attempts) or Decimal("0"),
        gross_captured=gross,
        refunded=refunded,
        net=gross - refunded,
        refunds=sums["refunds_count"],
        average_ticket=round_half_up(Decimal(gross) / succeeded) if succeeded else None,
        attempts=sums["attempts"],
        declined=sums["attempts_declined"],
        unavailable=sums["attempts_unavailable"],
        unknown=sums["attempts_unknown"],
        latency=Latency(
            count=count,
            avg_ms=round_half_up(Decimal(sums["latency_sum_ms"]) / count) if count else None,
            p50_ms=p50 if count else None,
            p95_ms=p95 if count else None,
        ),
    )


def _payment_figures(read: _PaymentRead) -> tuple[PaymentFigures, list[PaymentFigures]]:
    per_gateway: dict[str, dict] = defaultdict(lambda: dict.fromkeys(SUM_FIELDS, 0))
    total = dict.fromkeys(SUM_FIELDS, 0)
    for (gateway, _day), figures in read.groups.items():
        _add(per_gateway[gateway], figures)
        _add(total, figures)
    shown = [g for g, sums in per_gateway.items() if any(sums.values()) and (g or sums["payments_created"])]
    shown.sort(key=lambda g: (g == "", g))  # by name, never-routed payments ("") last
    no_latency = (None, None)
    return (
        _figures("", total, total["attempts"], read.latency.get("", no_latency)),
        [_figures(g, per_gateway[g], total["attempts"], read.latency.get(g, no_latency)) for g in shown],
    )


def _daily_series(period: Period, read: _PaymentRead) -> list[DailyPoint]:
    per_day: dict[date, dict] = defaultdict(lambda: dict.fromkeys(SUM_FIELDS, 0))
    for (_gateway, day), figures in read.groups.items():
        _add(per_day[day], figures)
    points = []
    for day in read.days:
        sums = per_day.get(day) or dict.fromkeys(SUM_FIELDS, 0)
        succeeded, failed = sums["payments_succeeded"], sums["payments_failed"]
        points.append(
            DailyPoint(
                day=day,
                created=sums["payments_created"],
                succeeded=succeeded,
                failed=failed,
                success_rate=ratio(succeeded, succeeded + failed),
                gross_captured=sums["amount_captured"],
                refunded=sums["amount_refunded"],
                net=sums["amount_captured"] - sums["amount_refunded"],
            )
        )
    return points


def _rejections(read: _PaymentRead) -> list[CodeCount]:
    per_kind: dict[str, int] = defaultdict(int)
    for (_gateway, kind, _code), count in read.codes.items():
        per_kind[kind] += count
    found = [
        CodeCount(kind=kind, code=code, gateway=gateway, count=count, share=ratio(count, per_kind[kind]))
        for (gateway, kind, code), count in read.codes.items()
        if count
    ]
    return sorted(found, key=lambda c: (-c.count, c.kind, c.gateway, c.code))
