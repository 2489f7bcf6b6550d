"""The summary of a period report: every figure of `reporting.selectors.period_metrics`, laid out
as small sections (a title, column headers, rows) that each format writes its own way.

The summary is a few hundred rows at most (one per day, gateway, code or plan), so it is built in
memory; the detail sheets are the ones streamed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from reporting.reports.rows import Money, Rate, Scope
from reporting.selectors import Metrics, PaymentFigures


@dataclass
class Section:
    title: str
    headers: list[str]
    rows: list[list] = field(default_factory=list)
    pdf_columns: list[int] | None = None  # the columns that fit on an A4 page (None: all)


def _rate(value) -> Rate | str:
    return Rate(value) if value is not None else ""


def _money(value: int | None) -> Money | str:
    return Money(value) if value is not None else ""


def _ms(value: int | None) -> int | str:
    return value if value is not None else ""


# (header, figure -> cell) of the payment table, one row per gateway and one for all of them.
PAYMENT_COLUMNS = [
    ("Gateway", lambda f: f.gateway or "All gateways"),
    ("Share of attempts", lambda f: Rate(f.share)),
    ("Created", lambda f: f.created),
    ("Succeeded", lambda f: f.succeeded),
    ("Failed", lambda f: f.failed),
    ("Canceled", lambda f: f.canceled),
    ("Open", lambda f: f.open),
    ("Checkouts never completed", lambda f: f.checkouts_never_completed),
    ("Failovers in", lambda f: f.failovers_in),
    ("Success rate", lambda f: _rate(f.success_rate)),
    ("Conversion", lambda f: _rate(f.conversion)),
    ("Gross captured", lambda f: Money(f.gross_captured)),
    ("Refunded", lambda f: Money(f.refunded)),
    ("Net", lambda f: Money(f.net)),
    ("Refunds", lambda f: f.refunds),
    ("Average ticket", lambda f: _money(f.average_ticket)),
    ("Attempts", lambda f: f.attempts),
    ("Declined", lambda f: f.declined),
    ("Unavailable", lambda f: f.unavailable),
    ("Unknown outcome", lambda f: f.unknown),
    ("Processing time avg (ms)", lambda f: _ms(f.latency.avg_ms)),
    ("p50 (ms)", lambda f: _ms(f.latency.p50_ms)),
    ("p95 (ms)", lambda f: _ms(f.latency.p95_ms)),
]
PAYMENT_PDF_COLUMNS = [0, 1, 2, 3, 9, 11, 12, 13, 21, 22]


def _figures_row(figures: PaymentFigures) -> list:
    return [getter(figures) for _, getter in PAYMENT_COLUMNS]


def build(
    metrics: Metrics, *, scope: Scope, scope_label: str, generated_at: datetime, report_id: str, counts: dict
) -> list[Section]:
    """The summary sections, in order. `counts`: {detail sheet name: rows} written below."""
    total = metrics.total
    about = Section(
        "Period report",
        ["Item", "Value"],
        [
            ["Report", report_id],
            ["Period (Lima days, inclusive)", f"{scope.start.isoformat()} to {scope.end.isoformat()}"],
            ["Currency", scope.currency],
            ["Scope", scope_label],
            ["Generated at (Lima)", generated_at.strftime("%Y-%m-%d %H:%M:%S")],
            ["Amounts", f"{scope.currency}, major units (two decimals)"],
            *[[f"{name} rows", count] for name, count in counts.items()],
        ],
    )
    totals = Section(
        "Totals",
        ["Figure", "Value"],
        [
            ["Payments created", total.created],
            ["Succeeded", total.succeeded],
            ["Failed", total.failed],
            ["Canceled", total.canceled],
            ["Without final outcome", total.open],
            ["Checkouts never completed", total.checkouts_never_completed],
            ["Success rate (succeeded / final outcomes)", _rate(total.success_rate)],
            ["Conversion (succeeded / created)", _rate(total.conversion)],
            ["Gross captured", Money(total.gross_captured)],
            ["Refunded", Money(total.refunded)],
            ["Net", Money(total.net)],
            ["Refunds (succeeded)", total.refunds],
            ["Average ticket", _money(total.average_ticket)],
            ["Charge attempts", total.attempts],
            ["Declined", total.declined],
            ["Gateway unavailable", total.unavailable],
            ["Timeouts / unknown outcome", total.unknown],
            ["Processing time avg (ms)", _ms(total.latency.avg_ms)],
            ["Processing time p50 (ms)", _ms(total.latency.p50_ms)],
            ["Processing time p95 (ms)", _ms(total.latency.p95_ms)],
        ],
    )
    gateways = Section(
        "By gateway",
        [header for header, _ in PAYMENT_COLUMNS],
        [_figures_row(figures) for figures in metrics.by_gateway] + [_figures_row(total)],
        pdf_columns=PAYMENT_PDF_COLUMNS,
    )
    daily = Section(
        "Daily",
        ["Day", "Created", "Succeeded", "Failed", "Success rate", "Gross captured", "Refunded", "Net"],
        [
            [
                point.day,
                point.created,
                point.succeeded,
                point.failed,
                _rate(point.success_rate),
                Money(point.gross_captured),
                Money(point.refunded),
                Money(point.net),
            ]
            for point in metrics.daily
        ],
    )
    rejections = Section(
        "Errors and rejections",
        ["Kind", "Code", "Gateway", "Count", "Share of kind"],
        [[code.kind, code.code, code.gateway, code.count, Rate(code.share)] for code in metrics.rejections],
    )
    credits = metrics.credits
    credit_totals = Section(
        "Credits (all currencies; credits are not money)",
        ["Figure", "Credits"],
        [
            ["Granted, paid", credits.granted_paid],
            ["Granted, bonus", credits.granted_bonus],
            ["Granted, manual", credits.granted_manual],
            ["Consumed", credits.consumed],
            ["Expired", credits.expired],
            ["Clawed back (refunds)", credits.clawed_back],
            ["Outstanding balance now", credits.outstanding],
            ["Auto-renewals succeeded", credits.renewals_succeeded],
            ["Auto-renewals failed", credits.renewals_failed],
        ],
    )
    plans = Section(
        f"Credit plans sold ({scope.currency})",
        ["Plan", "Name", "Purchases", "Amount", "Paid credits", "Bonus credits"],
        [
            [plan.plan_code, plan.plan_name, plan.purchases, Money(plan.amount), plan.paid_credits, plan.bonus_credits]
            for plan in credits.sold
        ],
    )
    invoices = metrics.invoices
    invoice_totals = Section(
        "Invoices",
        ["Figure", "Value"],
        [
            ["Boletas", invoices.boletas],
            ["Boletas total", Money(invoices.boletas_total)],
            ["Facturas", invoices.facturas],
            ["Facturas total", Money(invoices.facturas_total)],
            ["Credit notes", invoices.credit_notes],
            ["Credit notes total", Money(invoices.credit_notes_total)],
            ["Subtotal (net of credit notes)", Money(invoices.subtotal)],
            ["IGV (net of credit notes)", Money(invoices.igv)],
            ["Total (net of credit notes)", Money(invoices.total)],
            ["Rejected by the PSE / SUNAT", invoices.rejected],
        ],
    )
    return [about, totals, gateways, daily, rejections, credit_totals, plans, invoice_totals]
