"""The staff dashboard on the admin index: controls, KPI cards, charts and tables for one period.

Why plain admin templates and not django-unfold: the dashboard is a few server-rendered blocks
inside Django's own admin, so it needs no extra dependency, no second theme to keep in step with
Django upgrades, and no JavaScript; its charts are SVG drawn on the server (reporting/charts.py),
so nothing is fetched from a CDN and the page works offline and in tests. Every other admin page
keeps the look staff already know.

Reads only: the figures come from one `reporting.selectors.period_metrics` call; the breaker
states, the latest reconciliation run per gateway and the client apps for the picker are one
small read each. `reporting/admin_dashboard.py` puts the result into the admin index's context.

The controls are GET parameters, so a view can be bookmarked or shared:
`period` (today, 7d, 30d, month, custom), `from` and `to` (custom, YYYY-MM-DD, Lima days),
`currency` (PEN, USD) and `app` (a client app id; empty: all). The form sends the current preset
with the dates it shows: dates edited away from the preset's range make the period custom. A bad
value gives a message and that control's default, never an error page.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from urllib.parse import urlencode

from django.conf import settings
from django.db.models import OuterRef, Subquery
from django.urls import NoReverseMatch, reverse
from django.utils.safestring import mark_safe

from billing.taxes import CURRENCY_SYMBOL, format_money
from payments import breaker
from payments.enums import Currency
from payments.gateways import registry
from payments.models import ClientApp, ReconciliationRun
from reporting import charts
from reporting.selectors import Metrics, Period, period_metrics
from smartpay.clock import business_date, business_time

logger = logging.getLogger(__name__)

PERMISSION = "reporting.view_dashboard"
PRESETS = [("today", "Today"), ("7d", "7 days"), ("30d", "30 days"), ("month", "This month"), ("custom", "Custom")]
DEFAULT_PRESET = "30d"
DEFAULT_CURRENCY = Currency.PEN.value
GATEWAY_LABELS = {"culqi": "Culqi", "mercadopago": "Mercado Pago", "": "Not routed"}
TOP_DECLINES_PER_GATEWAY = 3
DECLINE_MIX_ROWS = 8
NONE = "—"


def can_view(user) -> bool:
    return bool(user and user.is_active and user.is_staff and user.has_perm(PERMISSION))


# --- Controls -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Controls:
    preset: str
    start: date
    end: date
    currency: str
    client_app_id: str | None
    errors: tuple[str, ...] = ()

    def query(self, **changes) -> str:
        """The GET parameters of this view, with some changed (for links)."""
        params = {"period": self.preset, "currency": self.currency}
        if self.preset == "custom":
            params.update({"from": self.start.isoformat(), "to": self.end.isoformat()})
        if self.client_app_id:
            params["app"] = self.client_app_id
        params.update(changes)
        return urlencode({key: value for key, value in params.items() if value})


def preset_range(preset: str, today: date) -> tuple[date, date]:
    if preset == "today":
        return today, today
    if preset == "7d":
        return today - timedelta(days=6), today
    if preset == "month":
        return today.replace(day=1), today
    return today - timedelta(days=29), today  # 30d


def _parse_day(raw: str, name: str, errors: list[str]) -> date | None:
    try:
        return date.fromisoformat(raw.strip())
    except ValueError:
        errors.append(f"“{name}” must be a date like 2025-03-31 (got “{raw[:40]}”).")
        return None


def _quiet_range(params: Mapping[str, str]) -> tuple[date, date] | None:
    try:
        return date.fromisoformat(params.get("from", "").strip()), date.fromisoformat(params.get("to", "").strip())
    except ValueError:
        return None


def parse_controls(params: Mapping[str, str], *, today: date, client_app_ids: set[str]) -> Controls:
    """Read the GET parameters; any bad one gives a message and that control's default."""
    errors: list[str] = []
    preset = params.get("period", "").strip()
    if not preset:
        preset = "custom" if params.get("from") or params.get("to") else DEFAULT_PRESET
    if preset not in dict(PRESETS):
        errors.append(f"Unknown period “{preset[:40]}”: showing the last 30 days.")
        preset = DEFAULT_PRESET
    elif (
        # The form sends the current preset with the dates shown; dates edited away from it are custom.
        preset != "custom"
        and (params.get("from") or params.get("to"))
        and _quiet_range(params) != preset_range(preset, today)
    ):
        preset = "custom"

    if preset == "custom":
        start = _parse_day(params.get("from", ""), "From", errors) if params.get("from") else None
        end = _parse_day(params.get("to", ""), "To", errors) if params.get("to") else None
        if start is None and end is None and not errors:
            errors.append("A custom period needs a “from” and a “to” date.")
        elif (start is None) != (end is None) and not errors:
            errors.append("A custom period needs both a “from” and a “to” date.")
        if start is not None and end is not None:
            max_days = settings.REPORT_MAX_DAYS
            if end < start:
                errors.append("The custom period ends before it starts.")
            elif end > today:
                errors.append(f"The custom period ends after today ({today.isoformat()}).")
            elif (end - start).days + 1 > max_days:
                errors.append(f"A custom period covers at most {max_days} days.")
        if errors or start is None or end is None:
            preset = DEFAULT_PRESET
    if preset != "custom":
        start, end = preset_range(preset, today)

    currency = params.get("currency", "").strip().upper() or DEFAULT_CURRENCY
    if currency not in Currency.values:
        errors.append(f"Unknown currency “{currency[:10]}”: showing {DEFAULT_CURRENCY}.")
        currency = DEFAULT_CURRENCY

    client_app_id = params.get("app", "").strip() or None
    if client_app_id is not None and client_app_id not in client_app_ids:
        errors.append(f"No client app “{client_app_id[:40]}”: showing all client apps.")
        client_app_id = None

    return Controls(preset, start, end, currency, client_app_id, tuple(errors))


# --- Formatting ---------------------------------------------------------------------------------


def money(amount: int | None, currency: str) -> str:
    """Minor units as money: 123450, "PEN" -> "S/ 1,234.50" (exact: no float on the way)."""
    return NONE if amount is None else format_money(amount, currency)


def axis_money(value, currency: str) -> str:
    """An axis tick: whole major units without decimals when they are whole (S/ 1,200)."""
    minor = int(Decimal(value).to_integral_value(rounding=ROUND_HALF_UP))
    if minor % 100 == 0:
        return f"{CURRENCY_SYMBOL.get(currency, currency)} {minor // 100:,}"
    return format_money(minor, currency)


def percent(rate: Decimal | None) -> str:
    """Decimal("0.75") -> "75.0%"; None -> "—"."""
    if rate is None:
        return NONE
    return f"{(Decimal(rate) * 100).quantize(Decimal('0.1'), rounding=ROUND_HALF_UP)}%"


def millis(value: int | None) -> str:
    return NONE if value is None else f"{value:,} ms"


def gateway_label(name: str) -> str:
    return GATEWAY_LABELS.get(name, name)


# --- Sections -----------------------------------------------------------------------------------


@dataclass
class Card:
    key: str
    label: str
    value: str
    detail: str = ""


def kpi_cards(metrics: Metrics) -> list[Card]:
    total, currency = metrics.total, metrics.period.currency
    finals = total.succeeded + total.failed
    return [
        Card("success-rate", "Success rate", percent(total.success_rate), f"{total.succeeded:,} of {finals:,} final"),
        Card("volume", "Gross captured", money(total.gross_captured, currency), f"{total.succeeded:,} payments"),
        Card("net", "Net amount", money(total.net, currency), "captured minus refunded"),
        Card("refunded", "Refunded", money(total.refunded, currency), f"{total.refunds:,} refunds"),
        Card("average-ticket", "Average ticket", money(total.average_ticket, currency), "per succeeded payment"),
        Card(
            "latency",
            "Processing time p50 / p95",
            f"{millis(total.latency.p50_ms)} / {millis(total.latency.p95_ms)}",
            f"{total.latency.count:,} charge attempts",
        ),
        Card(
            "created",
            "Payments created",
            f"{total.created:,}",
            f"{total.failed:,} failed, {total.canceled:,} canceled, {total.open:,} open",
        ),
    ]


def day_label(day: date) -> str:
    return f"{day:%b} {day.day}"


def daily_charts(metrics: Metrics) -> dict[str, str]:
    currency = metrics.period.currency
    labels = [day_label(point.day) for point in metrics.daily]
    rate_titles = [
        f"{p.day.isoformat()}: {percent(p.success_rate)} ({p.succeeded} of {p.succeeded + p.failed})"
        for p in metrics.daily
    ]
    success = charts.line_chart(
        title="Success rate per day",
        labels=labels,
        series=[
            charts.Series("Success rate", [p.success_rate for p in metrics.daily], "series-rate", titles=rate_titles)
        ],
        fmt=percent_axis,
        y_max=Decimal(1),
        css_class="chart-success-rate",
        empty_message="No payment reached a final outcome in this period",
    )
    volume = charts.bar_chart(
        title=f"Gross captured and net per day ({currency})",
        labels=labels,
        bars=charts.Series(
            "Gross captured",
            [p.gross_captured for p in metrics.daily],
            "series-gross",
            titles=[f"{p.day.isoformat()}: {money(p.gross_captured, currency)} captured" for p in metrics.daily],
        ),
        line=charts.Series(
            "Net",
            [p.net for p in metrics.daily],
            "series-net",
            titles=[
                f"{p.day.isoformat()}: {money(p.net, currency)} net ({money(p.refunded, currency)} refunded)"
                for p in metrics.daily
            ],
        ),
        fmt=lambda value: axis_money(value, currency),
        css_class="chart-volume",
        empty_message=f"Nothing captured in {currency} in this period",
    )
    rows = [
        charts.BarRow(f"{row.code} · {gateway_label(row.gateway)}", row.count, f"{percent(row.share)} of {row.kind}s")
        for row in metrics.rejections[:DECLINE_MIX_ROWS]
    ]
    mix = charts.hbar_chart(
        title="Declines and errors", rows=rows, css_class="chart-decline-mix", empty_message="No declines or errors"
    )
    # Every text in the markup was escaped by reporting.charts.
    return {
        "success_rate": mark_safe(success),  # noqa: S308
        "volume": mark_safe(volume),  # noqa: S308
        "decline_mix": mark_safe(mix),  # noqa: S308
    }


def percent_axis(value) -> str:
    return f"{int(Decimal(value) * 100)}%"


def gateway_rows(metrics: Metrics) -> list[dict]:
    """One row per known gateway (and any other gateway the period's payments ended at)."""
    figures = {row.gateway: row for row in metrics.by_gateway}
    names = registry.gateway_names()
    names += [name for name in figures if name not in names]
    declines: dict[str, list[str]] = {}
    for row in metrics.rejections:
        if row.kind == "decline" and len(declines.setdefault(row.gateway, [])) < TOP_DECLINES_PER_GATEWAY:
            declines[row.gateway].append(f"{row.code} ({row.count})")
    rows = []
    for name in names:
        row = figures.get(name)
        state = breaker.state(name) if name in registry.ADAPTERS else None
        rows.append(
            {
                "name": name,
                "label": gateway_label(name),
                "figures": row,
                "share": percent(row.share) if row else NONE,
                "success_rate": percent(row.success_rate) if row else NONE,
                "conversion": percent(row.conversion) if row else NONE,
                "p50": millis(row.latency.p50_ms) if row else NONE,
                "p95": millis(row.latency.p95_ms) if row else NONE,
                "gross": money(row.gross_captured, metrics.period.currency) if row else NONE,
                "top_declines": ", ".join(declines.get(name, [])) or NONE,
                "breaker": state.state.replace("_", "-") if state else "",
                "breaker_retry": state.retry_after if state else 0,
            }
        )
    return rows


def credit_section(metrics: Metrics) -> dict:
    credits, currency = metrics.credits, metrics.period.currency
    return {
        "plans": [
            {
                "name": plan.plan_name or plan.plan_code,
                "code": plan.plan_code,
                "purchases": plan.purchases,
                "amount": money(plan.amount, currency),
                "paid": plan.paid_credits,
                "bonus": plan.bonus_credits,
            }
            for plan in credits.sold
        ],
        "sold_amount": money(sum(plan.amount for plan in credits.sold), currency),
        "purchases": sum(plan.purchases for plan in credits.sold),
        "figures": credits,
    }


def invoice_section(metrics: Metrics) -> dict:
    invoices, currency = metrics.invoices, metrics.period.currency
    return {
        "figures": invoices,
        "boletas_total": money(invoices.boletas_total, currency),
        "facturas_total": money(invoices.facturas_total, currency),
        "credit_notes_total": money(invoices.credit_notes_total, currency),
        "subtotal": money(invoices.subtotal, currency),
        "igv": money(invoices.igv, currency),
        "total": money(invoices.total, currency),
    }


def latest_reconciliations(user) -> list[dict]:
    """The latest run per gateway, in one query (a correlated subquery picks each gateway's newest)."""
    newest = ReconciliationRun.objects.filter(gateway=OuterRef("gateway")).order_by("-started_at", "-pk").values("pk")
    runs = {run.gateway: run for run in ReconciliationRun.objects.filter(pk=Subquery(newest[:1]))}
    may_open = user.has_perm("payments.view_reconciliationrun")
    rows = []
    for name in registry.gateway_names() + sorted(set(runs) - set(registry.gateway_names())):
        run = runs.get(name)
        url = reverse("admin:payments_reconciliationrun_change", args=[run.pk]) if run and may_open else ""
        rows.append(
            {
                "gateway": gateway_label(name),
                "run": run,
                "url": url,
                "finished_lima": business_time(run.finished_at) if run and run.finished_at else None,
            }
        )
    return rows


def report_links(controls: Controls, user) -> list[dict]:
    """'Download period report' links: the report add form, pre-filled, one per format."""
    if not user.has_perm("reporting.add_report"):
        return []
    try:
        add_url = reverse("admin:reporting_report_add")
    except NoReverseMatch:  # the Report admin is not registered on this site
        return []
    params = {
        "period_start": controls.start.isoformat(),
        "period_end": controls.end.isoformat(),
        "currency": controls.currency,
    }
    if controls.client_app_id:
        params["client_app"] = controls.client_app_id
    return [
        {"format": fmt, "label": label, "url": f"{add_url}?{urlencode({**params, 'format': fmt})}"}
        for fmt, label in (("xlsx", "XLSX"), ("csv", "CSV"), ("pdf", "PDF"))
    ]


@dataclass
class Dashboard:
    controls: Controls
    presets: list[tuple[str, str, str]]  # (value, label, url query)
    currencies: list[tuple[str, str, str]]  # (code, symbol, url query)
    client_apps: list[tuple[str, str]]
    generated_at: object
    metrics: Metrics | None = None
    unavailable: str = ""
    cards: list[Card] = field(default_factory=list)
    charts: dict[str, str] = field(default_factory=dict)
    gateways: list[dict] = field(default_factory=list)
    credits: dict = field(default_factory=dict)
    invoices: dict = field(default_factory=dict)
    reconciliations: list[dict] = field(default_factory=list)
    report_links: list[dict] = field(default_factory=list)

    @property
    def period_label(self) -> str:
        start, end = self.controls.start, self.controls.end
        days = (end - start).days + 1
        span = start.isoformat() if start == end else f"{start.isoformat()} to {end.isoformat()}"
        return f"{span} ({days} day{'s' if days != 1 else ''}, Lima)"


def build_dashboard(request) -> Dashboard | None:
    """The dashboard for this request's user and GET parameters; None if they may not see it."""
    user = request.user
    if not can_view(user):
        return None
    client_apps = list(ClientApp.objects.order_by("name").values_list("id", "name"))
    today = business_date()
    controls = parse_controls(request.GET, today=today, client_app_ids={pk for pk, _ in client_apps})
    dashboard = Dashboard(
        controls=controls,
        presets=[
            (value, label, controls.query(period=value, **{"from": "", "to": ""})) for value, label in PRESETS[:-1]
        ],
        currencies=[(code, CURRENCY_SYMBOL.get(code, code), controls.query(currency=code)) for code in Currency.values],
        client_apps=client_apps,
        generated_at=business_time(),
        report_links=report_links(controls, user),
    )
    period = Period(controls.start, controls.end, controls.currency, controls.client_app_id)
    try:
        metrics = period_metrics(period)
    except Exception:
        # The admin's landing page must stay usable if the figures cannot be read; the error is logged.
        logger.exception("reporting dashboard: period_metrics failed for %s", period)
        dashboard.unavailable = "The figures could not be computed right now; the error was logged."
        metrics = None
    if metrics is not None:
        dashboard.metrics = metrics
        dashboard.cards = kpi_cards(metrics)
        dashboard.charts = daily_charts(metrics)
        dashboard.gateways = gateway_rows(metrics)
        dashboard.credits = credit_section(metrics)
        dashboard.invoices = invoice_section(metrics)
    dashboard.reconciliations = latest_reconciliations(user)
    return dashboard
