"""Reads of the reporting app: the payment, credit and invoice metrics of a period.

THE INTERFACE BELOW IS SHARED by the dashboard, the period reports and /metrics: keep names and
fields; adding fields is fine.

Every figure is computed by SQL aggregation (never by looping over rows in Python), for a range of
Lima days, for one currency (PEN and USD are never summed together), per gateway and in total.
Days before today read `DailyRollup` rows where they exist; today (and any day without rollups)
is computed live from the source rows.

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
  PostgreSQL; the same linear interpolation on SQLite).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal


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
    raise NotImplementedError


def payment_figures(period: Period) -> tuple[PaymentFigures, list[PaymentFigures]]:
    """(total, per gateway) for the period."""
    raise NotImplementedError


def daily_series(period: Period) -> list[DailyPoint]:
    raise NotImplementedError


def rejections(period: Period) -> list[CodeCount]:
    raise NotImplementedError


def credit_figures(period: Period) -> CreditFigures:
    raise NotImplementedError


def invoice_figures(period: Period) -> InvoiceFigures:
    raise NotImplementedError
