"""The staff dashboard on the admin index: who sees it, its controls, and figures that match the data.

Two kinds of tests: the page over real payments (the figures come from reporting.selectors), and
the page over a hand-built `Metrics` (formatting, tables, charts) where every number is chosen here.
"""

import re
import time
import xml.etree.ElementTree as ET
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission, User
from django.core.cache import cache
from django.utils.html import escape

from payments.models import ClientApp, Payment, ReconciliationRun
from payments.services.clients import client_app_create
from reporting import dashboard as dashboard_module
from reporting.dashboard import parse_controls
from reporting.selectors import (
    CodeCount,
    CreditFigures,
    DailyPoint,
    InvoiceFigures,
    Latency,
    Metrics,
    PaymentFigures,
    Period,
    PlanSales,
)
from smartpay.clock import business_date, business_zone
from tests.reporting.conftest import lima

INDEX = "/admin/"


# --- Users ----------------------------------------------------------------------------------------


def staff_user(username: str, *perms: str) -> User:
    user = User.objects.create_user(username, password="pw-" + username, is_staff=True)
    for perm in perms:
        app_label, codename = perm.split(".")
        user.user_permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
    return user


@pytest.fixture
def admin_client(client, db):
    client.force_login(User.objects.create_superuser("root", password="pw-root"))
    return client


@pytest.fixture
def viewer_client(client, db):
    """A staff user whose only permission is the dashboard."""
    client.force_login(staff_user("viewer", "reporting.view_dashboard"))
    return client


def dashboard_of(response):
    assert response.status_code == 200
    return response.context["reporting_dashboard"]


def card_value(response, key: str) -> str:
    html = response.content.decode()
    match = re.search(
        rf'id="kpi-{key}">\s*<div class="rd-card-label">[^<]*</div>\s*<div class="rd-card-value">([^<]*)<', html
    )
    assert match, f"no KPI card {key}"
    return match.group(1)


# --- Real payments --------------------------------------------------------------------------------


def lima_noon(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, 12, 0, tzinfo=business_zone())


def add_payment(app: ClientApp, *, amount: int, currency: str = "PEN", status: str = "succeeded", days_ago: int = 0):
    captured = amount if status in {"succeeded", "partially_refunded", "refunded"} else 0
    payment = Payment.objects.create(
        client_app=app,
        amount=amount,
        amount_captured=captured,
        currency=currency,
        status=status,
        gateway="culqi",
        failure_code="card_declined" if status == "failed" else "",
        decline_code="insufficient_funds" if status == "failed" else "",
    )
    Payment.objects.filter(pk=payment.pk).update(created_at=lima_noon(business_date() - timedelta(days=days_ago)))
    return payment


@pytest.fixture
def seeded(client_app):
    """Today: 3 succeeded PEN (S/ 10.00, 20.00, 30.00) and 1 failed PEN (S/ 40.00);
    1 succeeded USD (US$ 5.00). Ten days ago: 1 failed PEN (S/ 50.00) and 1 succeeded PEN (S/ 7.00)."""
    for amount in (10_00, 20_00, 30_00):
        add_payment(client_app, amount=amount)
    add_payment(client_app, amount=40_00, status="failed")
    add_payment(client_app, amount=5_00, currency="USD")
    add_payment(client_app, amount=50_00, status="failed", days_ago=10)
    add_payment(client_app, amount=7_00, days_ago=10)
    return client_app


def test_superuser_sees_the_figures_of_the_seeded_payments(admin_client, seeded):
    response = admin_client.get(INDEX, {"period": "7d", "currency": "PEN"})
    board = dashboard_of(response)
    assert (board.controls.start, board.controls.end) == (business_date() - timedelta(days=6), business_date())
    assert card_value(response, "success-rate") == "75.0%"  # 3 of 4 final
    assert card_value(response, "volume") == "S/ 60.00"  # 10 + 20 + 30
    assert card_value(response, "net") == "S/ 60.00"
    assert card_value(response, "average-ticket") == "S/ 20.00"
    assert card_value(response, "created") == "4"
    # The daily chart has today's point with its hover title.
    today = business_date().isoformat()
    assert f"<title>{today}: 75.0% (3 of 4)</title>" in response.content.decode()


def test_a_user_with_only_view_dashboard_sees_the_same_figures(viewer_client, seeded):
    response = viewer_client.get(INDEX, {"period": "7d"})
    assert card_value(response, "success-rate") == "75.0%"
    assert card_value(response, "volume") == "S/ 60.00"
    html = response.content.decode()
    assert 'id="alerts-panel"' in html  # the alerts panel stays on the page
    # No add_report permission: no download links; no reconciliation permission: no links to runs.
    assert "Download period report" not in html


def test_the_currency_switch_shows_usd_figures_only(admin_client, seeded):
    response = admin_client.get(INDEX, {"period": "7d", "currency": "USD"})
    assert dashboard_of(response).controls.currency == "USD"
    assert card_value(response, "success-rate") == "100.0%"
    assert card_value(response, "volume") == "US$ 5.00"
    assert card_value(response, "created") == "1"
    assert "S/ 60.00" not in response.content.decode()


def test_the_period_controls_change_the_figures(admin_client, seeded):
    today = business_date()
    week = admin_client.get(INDEX, {"period": "7d"})
    month = admin_client.get(INDEX, {"period": "30d"})
    assert card_value(week, "success-rate") == "75.0%"
    assert card_value(month, "success-rate") == "66.7%"  # 4 of 6
    assert card_value(month, "volume") == "S/ 67.00"
    assert (dashboard_of(month).controls.start, dashboard_of(month).controls.end) == (today - timedelta(days=29), today)
    only_today = admin_client.get(INDEX, {"period": "today"})
    assert (dashboard_of(only_today).controls.start, dashboard_of(only_today).controls.end) == (today, today)
    ten_days_ago = (today - timedelta(days=10)).isoformat()
    custom = admin_client.get(INDEX, {"period": "custom", "from": ten_days_ago, "to": ten_days_ago})
    assert card_value(custom, "success-rate") == "50.0%"
    assert card_value(custom, "volume") == "S/ 7.00"
    # The default (no parameters) is the last 30 days.
    assert dashboard_of(admin_client.get(INDEX)).controls.preset == "30d"


def test_one_client_app_or_all(admin_client, seeded):
    other = client_app_create(name="Other Shop")
    add_payment(other, amount=99_00, status="failed")
    everyone = admin_client.get(INDEX, {"period": "today"})
    assert card_value(everyone, "success-rate") == "60.0%"  # 3 of 5
    one = admin_client.get(INDEX, {"period": "today", "app": seeded.pk})
    assert dashboard_of(one).controls.client_app_id == seeded.pk
    assert card_value(one, "success-rate") == "75.0%"
    html = everyone.content.decode()
    assert f'<option value="{other.pk}">Other Shop</option>' in html


def gateway_cells(html: str, gateway: str) -> list[str]:
    row = re.search(rf'<tr id="gateway-{gateway}">(.*?)</tr>', html, re.S).group(1)
    return [re.sub(r"<[^>]+>", "", cell).strip() for cell in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, re.S)]


def test_gateway_analysis_latency_and_refunds_from_attempt_rows(admin_client, make_payment, make_refund):
    """2025-03-10: Culqi 2 succeeded (S/ 100.00 in 100 ms, S/ 50.00 in 300 ms) and 1 declined
    (insufficient_funds, 200 ms); Mercado Pago 1 succeeded (S/ 20.00, 500 ms); S/ 30.00 refunded."""
    at = lima(2025, 3, 10, 12)
    first = make_payment(amount=100_00, at=at, duration_ms=100)
    make_payment(amount=50_00, at=at, duration_ms=300)
    make_payment(amount=70_00, status="failed", decline_code="insufficient_funds", at=at, duration_ms=200)
    make_payment(amount=20_00, gateway="mercadopago", at=at, duration_ms=500)
    make_refund(first, 30_00, at=lima(2025, 3, 10, 15))
    response = admin_client.get(INDEX, {"period": "custom", "from": "2025-03-10", "to": "2025-03-10"})
    assert card_value(response, "success-rate") == "75.0%"
    assert card_value(response, "volume") == "S/ 170.00"
    assert card_value(response, "refunded") == "S/ 30.00"
    assert card_value(response, "net") == "S/ 140.00"
    assert card_value(response, "average-ticket") == "S/ 56.67"  # 17000 / 3 = 5666.67, half up
    # Linear interpolation over 100, 200, 300, 500 ms: p50 = 250, p95 = 300 + 0.85 x 200 = 470.
    assert card_value(response, "latency") == "250 ms / 470 ms"
    html = response.content.decode()
    assert gateway_cells(html, "culqi") == [
        "Culqi",
        "75.0%",  # 3 of the 4 charge attempts
        "66.7%",
        "66.7%",
        "S/ 150.00",
        "200 ms / 290 ms",  # 100, 200, 300: p95 = 200 + 0.9 x 100
        "1 · 0 · 0",
        "insufficient_funds (1)",
        "0",
        "closed",
    ]
    assert gateway_cells(html, "mercadopago")[:6] == [
        "Mercado Pago",
        "25.0%",
        "100.0%",
        "100.0%",
        "S/ 20.00",
        "500 ms / 500 ms",
    ]
    assert "insufficient_funds · Culqi" in html  # the decline-mix chart


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"period": "custom", "from": "2025-03-10", "to": "2025-03-01"}, "ends before it starts"),
        ({"period": "custom", "from": "2023-01-01", "to": "2024-12-31"}, "at most 366 days"),
        ({"period": "custom", "from": "yesterday", "to": "2025-03-01"}, "must be a date like"),
        ({"period": "custom", "from": "2025-03-01"}, "needs both"),
        ({"period": "custom"}, "needs a “from” and a “to” date"),
        ({"period": "custom", "from": "2025-03-01", "to": "2999-01-01"}, "ends after today"),
        ({"period": "fortnight"}, "Unknown period"),
    ],
)
def test_a_bad_period_gives_a_message_and_the_default_period(admin_client, seeded, params, message):
    response = admin_client.get(INDEX, params)
    board = dashboard_of(response)
    assert board.controls.preset == "30d"
    assert board.controls.end == business_date()
    assert any(message in error for error in board.controls.errors)
    html = response.content.decode()
    assert 'id="rd-errors"' in html
    assert escape(message) in html or message in html
    assert card_value(response, "success-rate") == "66.7%"  # the default period's figures


def test_bad_currency_and_client_app_fall_back_without_an_error_page(admin_client, seeded):
    response = admin_client.get(INDEX, {"period": "7d", "currency": "EUR", "app": "app_nope<script>"})
    board = dashboard_of(response)
    assert (board.controls.currency, board.controls.client_app_id) == ("PEN", None)
    assert len(board.controls.errors) == 2
    html = response.content.decode()
    assert "app_nope&lt;script&gt;" in html and "app_nope<script>" not in html
    assert card_value(response, "success-rate") == "75.0%"


@pytest.mark.parametrize(
    "params",
    [
        {"from": "abc", "to": "2025-13-45"},
        {"period": "custom", "from": "9999-12-31", "to": "0001-01-01"},
        {"currency": "x" * 5000},
        {"period": ["7d", "30d"], "app": ""},
        {"from": "2025-01-01", "to": ""},
    ],
)
def test_garbage_parameters_never_give_a_500(admin_client, seeded, params):
    response = admin_client.get(INDEX, params)
    assert response.status_code == 200
    assert dashboard_of(response) is not None


def test_a_staff_user_without_the_permission_gets_the_normal_index(client, seeded):
    client.force_login(staff_user("support-person", "payments.view_payment"))
    response = client.get(INDEX, {"period": "7d"})
    assert response.status_code == 200
    assert response.context["reporting_dashboard"] is None
    html = response.content.decode()
    assert 'id="reporting-dashboard"' not in html
    assert 'id="alerts-panel"' in html
    assert "Payments" in html  # the app list


def test_a_staff_user_without_any_permission_gets_200(client, db):
    client.force_login(staff_user("nobody"))
    response = client.get(INDEX, {"period": "custom", "from": "bad"})
    assert response.status_code == 200
    assert 'id="reporting-dashboard"' not in response.content.decode()


def test_an_inactive_or_non_staff_user_is_sent_to_the_login(client, db):
    user = User.objects.create_user("outsider", password="pw")
    user.user_permissions.add(Permission.objects.get(codename="view_dashboard"))
    client.force_login(user)
    response = client.get(INDEX)
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def test_download_links_carry_the_period_for_users_who_may_add_reports(client, seeded):
    client.force_login(staff_user("finance", "reporting.view_dashboard", "reporting.add_report"))
    today = business_date()
    start = (today - timedelta(days=20)).isoformat()
    response = client.get(INDEX, {"period": "custom", "from": start, "to": today.isoformat(), "currency": "USD"})
    links = {link["format"]: link["url"] for link in dashboard_of(response).report_links}
    assert links["xlsx"] == (
        f"/admin/reporting/report/add/?period_start={start}&period_end={today.isoformat()}&currency=USD&format=xlsx"
    )
    assert links["csv"].endswith("&format=csv") and links["pdf"].endswith("&format=pdf")
    html = response.content.decode()
    assert "Download period report" in html
    assert escape(links["xlsx"]) in html


# --- A hand-built Metrics -------------------------------------------------------------------------


def figures(gateway: str, **values) -> PaymentFigures:
    base = dict(
        gateway=gateway,
        created=0,
        succeeded=0,
        failed=0,
        canceled=0,
        open=0,
        checkouts_never_completed=0,
        failovers_in=0,
        success_rate=None,
        conversion=None,
        share=Decimal(0),
        gross_captured=0,
        refunded=0,
        net=0,
        refunds=0,
        average_ticket=None,
        attempts=0,
        declined=0,
        unavailable=0,
        unknown=0,
        latency=Latency(0, None, None, None),
    )
    return PaymentFigures(**{**base, **values})


def hand_built_metrics(period: Period) -> Metrics:
    days = [period.start + timedelta(days=i) for i in range((period.end - period.start).days + 1)]
    culqi = figures(
        "culqi",
        created=10,
        succeeded=7,
        failed=2,
        canceled=1,
        failovers_in=1,
        success_rate=Decimal(7) / Decimal(9),
        conversion=Decimal("0.7"),
        share=Decimal("0.625"),
        gross_captured=1_234_50,
        refunded=34_50,
        net=1_200_00,
        refunds=1,
        average_ticket=176_36,
        attempts=10,
        declined=2,
        unavailable=1,
        unknown=0,
        latency=Latency(10, 300, 250, 900),
    )
    mercadopago = figures(
        "mercadopago",
        created=5,
        succeeded=5,
        success_rate=Decimal(1),
        conversion=Decimal(1),
        share=Decimal("0.375"),
        gross_captured=500_00,
        net=500_00,
        average_ticket=100_00,
        attempts=6,
        unknown=1,
        latency=Latency(6, 150, 120, 480),
    )
    total = figures(
        "",
        created=15,
        succeeded=12,
        failed=2,
        canceled=1,
        success_rate=Decimal(12) / Decimal(14),
        conversion=Decimal("0.8"),
        share=Decimal(1),
        gross_captured=1_734_50,
        refunded=34_50,
        net=1_700_00,
        refunds=1,
        average_ticket=144_54,
        attempts=16,
        declined=2,
        unavailable=1,
        unknown=1,
        latency=Latency(16, 244, 200, 850),
    )
    daily = [DailyPoint(day, 0, 0, 0, None, 0, 0, 0) for day in days]
    daily[-1] = DailyPoint(days[-1], 15, 12, 2, Decimal(12) / Decimal(14), 1_734_50, 34_50, 1_700_00)
    return Metrics(
        period=period,
        total=total,
        by_gateway=[culqi, mercadopago],
        daily=daily,
        rejections=[
            CodeCount("decline", "insufficient_funds", "culqi", 1, Decimal("0.5")),
            CodeCount("decline", "stolen_card", "culqi", 1, Decimal("0.5")),
            CodeCount("error", "gateway_unavailable", "culqi", 1, Decimal("0.5")),
            CodeCount("error", "timeout<&>", "mercadopago", 1, Decimal("0.5")),
        ],
        credits=CreditFigures(
            sold=[PlanSales("professional", "Professional", 2, 200_00, 2000, 200)],
            granted_paid=2000,
            granted_bonus=200,
            granted_manual=50,
            consumed=640,
            expired=30,
            clawed_back=100,
            outstanding=1480,
            renewals_succeeded=3,
            renewals_failed=1,
        ),
        invoices=InvoiceFigures(
            boletas=4,
            boletas_total=118_00,
            facturas=1,
            facturas_total=1_180_00,
            credit_notes=1,
            credit_notes_total=11_80,
            subtotal=1_090_00,
            igv=196_20,
            total=1_286_20,
            rejected=1,
        ),
    )


@pytest.fixture
def hand_built(monkeypatch):
    calls = []

    def fake(period):
        calls.append(period)
        return hand_built_metrics(period)

    monkeypatch.setattr(dashboard_module, "period_metrics", fake)
    return calls


def test_hand_built_figures_are_formatted_as_money_percent_and_milliseconds(admin_client, hand_built):
    response = admin_client.get(INDEX, {"period": "7d", "currency": "PEN"})
    assert len(hand_built) == 1  # one read of the figures per page
    assert hand_built[0] == Period(business_date() - timedelta(days=6), business_date(), "PEN", None)
    assert card_value(response, "success-rate") == "85.7%"  # 12 / 14 = 0.857142…
    assert card_value(response, "volume") == "S/ 1,734.50"
    assert card_value(response, "net") == "S/ 1,700.00"
    assert card_value(response, "refunded") == "S/ 34.50"
    assert card_value(response, "average-ticket") == "S/ 144.54"
    assert card_value(response, "latency") == "200 ms / 850 ms"
    html = response.content.decode()
    assert gateway_cells(html, "culqi") == [
        "Culqi",
        "62.5%",
        "77.8%",  # 7 / 9
        "70.0%",
        "S/ 1,234.50",
        "250 ms / 900 ms",
        "2 · 1 · 0",
        "insufficient_funds (1), stolen_card (1)",
        "1",
        "closed",
    ]
    assert 'id="credits-outstanding">1480<' in html
    assert 'id="invoices-igv">S/ 196.20<' in html
    assert "S/ 1,286.20" in html
    assert "timeout&lt;&amp;&gt; · Mercado Pago" in html  # escaped in the decline-mix chart


def test_charts_in_the_page_are_well_formed_svg(admin_client, hand_built):
    html = admin_client.get(INDEX, {"period": "7d"}).content.decode()
    svgs = re.findall(r'<svg xmlns="http://www.w3.org/2000/svg" class="chart .*?</svg>', html, re.S)
    assert len(svgs) == 3
    for svg in svgs:
        ET.fromstring(svg)  # noqa: S314 - our own markup
    assert "chart-success-rate" in svgs[0] and "chart-volume" in svgs[1] and "chart-decline-mix" in svgs[2]
    assert "cdn" not in html.lower()


def test_an_open_breaker_is_shown_with_its_wait(admin_client, hand_built):
    cache.set("breaker:mercadopago:open_until", time.time() + 42)
    try:
        html = admin_client.get(INDEX).content.decode()
    finally:
        cache.delete("breaker:mercadopago:open_until")
    row = re.search(r'<tr id="gateway-mercadopago">(.*?)</tr>', html, re.S).group(1)
    assert 'rd-breaker-open">open<' in row
    assert re.search(r"probe in 4[12] s", row)


def test_latest_reconciliation_per_gateway_with_links_for_those_allowed(client, admin_client, hand_built):
    old = ReconciliationRun.objects.create(gateway="culqi", day=date(2025, 3, 1), status="finished", matched=5)
    new = ReconciliationRun.objects.create(
        gateway="culqi", day=date(2025, 3, 2), status="finished", matched=9, fixed=1, issues=2, new_issues=1
    )
    finished = datetime(2025, 3, 3, 6, 5, tzinfo=UTC)  # 01:05 in Lima
    ReconciliationRun.objects.filter(pk=new.pk).update(finished_at=finished)
    html = admin_client.get(INDEX).content.decode()
    section = re.search(r'id="rd-reconciliation">(.*?)</div>', html, re.S).group(1)
    assert f'href="/admin/payments/reconciliationrun/{new.pk}/change/">2025-03-02</a>' in section
    assert f"/reconciliationrun/{old.pk}/" not in section
    assert "2025-03-03 01:05" in section
    assert "2 (1)" in section
    assert "No run yet." in section  # mercadopago
    client.force_login(staff_user("viewer", "reporting.view_dashboard"))
    section = re.search(r'id="rd-reconciliation">(.*?)</div>', client.get(INDEX).content.decode(), re.S).group(1)
    assert "2025-03-02" in section and "href=" not in section


def test_no_per_row_queries(admin_client, hand_built, django_assert_max_num_queries):
    for index in range(3):
        client_app_create(name=f"App {index}")
        ReconciliationRun.objects.create(gateway="culqi", day=date(2025, 3, 1 + index), status="finished")
        ReconciliationRun.objects.create(gateway="mercadopago", day=date(2025, 3, 1 + index), status="finished")
    admin_client.get(INDEX)  # warm the content types and permission caches
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as few:
        admin_client.get(INDEX)
    for index in range(10):
        client_app_create(name=f"More {index}")
        ReconciliationRun.objects.create(gateway="culqi", day=date(2025, 4, 1 + index), status="finished")
    with django_assert_max_num_queries(len(few.captured_queries)):
        admin_client.get(INDEX)


def test_the_figures_failing_leaves_the_admin_usable(admin_client, monkeypatch, caplog):
    def broken(period):
        raise RuntimeError("database on fire")

    monkeypatch.setattr(dashboard_module, "period_metrics", broken)
    response = admin_client.get(INDEX)
    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="rd-unavailable"' in html and 'id="kpi-success-rate"' not in html
    assert "database on fire" in caplog.text


# --- The controls alone ---------------------------------------------------------------------------

TODAY = date(2025, 3, 18)


def controls(**params):
    return parse_controls(params, today=TODAY, client_app_ids={"app_1"})


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, ("30d", date(2025, 2, 17), TODAY)),
        ({"period": "today"}, ("today", TODAY, TODAY)),
        ({"period": "7d"}, ("7d", date(2025, 3, 12), TODAY)),
        ({"period": "30d"}, ("30d", date(2025, 2, 17), TODAY)),
        ({"period": "month"}, ("month", date(2025, 3, 1), TODAY)),
        (
            {"period": "custom", "from": "2025-01-01", "to": "2025-01-31"},
            ("custom", date(2025, 1, 1), date(2025, 1, 31)),
        ),
        ({"from": "2025-01-01", "to": "2025-01-31"}, ("custom", date(2025, 1, 1), date(2025, 1, 31))),
        # The form sends the preset with the dates it showed: unchanged dates keep the preset ...
        ({"period": "7d", "from": "2025-03-12", "to": "2025-03-18"}, ("7d", date(2025, 3, 12), TODAY)),
        # ... edited dates make the period custom.
        ({"period": "7d", "from": "2025-03-01", "to": "2025-03-18"}, ("custom", date(2025, 3, 1), TODAY)),
        # The longest allowed custom period: 366 days.
        ({"period": "custom", "from": "2024-03-18", "to": "2025-03-18"}, ("custom", date(2024, 3, 18), TODAY)),
    ],
)
def test_periods(params, expected):
    parsed = controls(**params)
    assert (parsed.preset, parsed.start, parsed.end) == expected
    assert parsed.errors == ()


def test_one_day_more_than_the_maximum_is_refused():
    parsed = controls(period="custom", **{"from": "2024-03-17", "to": "2025-03-18"})
    assert parsed.errors == ("A custom period covers at most 366 days.",)
    assert (parsed.preset, parsed.start, parsed.end) == ("30d", date(2025, 2, 17), TODAY)


def test_currency_and_client_app():
    assert (controls(currency="usd").currency, controls(app="app_1").client_app_id) == ("USD", "app_1")
    parsed = controls(currency="BTC", app="app_2", period="7d")
    assert (parsed.currency, parsed.client_app_id, parsed.preset) == ("PEN", None, "7d")
    assert len(parsed.errors) == 2
