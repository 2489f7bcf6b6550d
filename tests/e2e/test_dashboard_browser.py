"""A real browser (Playwright driving Debian's chromium) against the live server: a finance user logs
in, sees the dashboard with the numbers of the seeded payments, changes the period, then follows
"Download period report" to the report form, asks for the report and downloads an XLSX that opens.

Without chromium (or Playwright) the test is skipped on a developer machine and fails in CI
(REQUIRE_POSTGRES is set there), so the browser check cannot silently disappear.
A screenshot of the dashboard is written to /tmp/dashboard.png (outside the checkout).
"""

import os
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from django.contrib.auth.models import Group, Permission, User
from openpyxl import load_workbook

from payments.models import Payment
from payments.services.clients import client_app_create
from smartpay.clock import business_date, business_zone

CHROMIUM = "/usr/bin/chromium"
SCREENSHOT = Path("/tmp/dashboard.png")  # noqa: S108 - a file to look at, never part of the checkout
FINANCE_PERMISSIONS = [
    ("reporting", "view_dashboard"),
    ("reporting", "view_report"),
    ("reporting", "add_report"),
    ("billing", "view_invoice"),
]


def _unavailable(reason: str):
    if os.environ.get("REQUIRE_POSTGRES"):
        pytest.fail(f"the real-browser test must run in CI: {reason}")
    pytest.skip(reason)


@pytest.fixture
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as error:  # pragma: no cover - depends on the machine
        _unavailable(f"Playwright is not installed ({error})")
    if not Path(CHROMIUM).exists():
        _unavailable(f"no chromium at {CHROMIUM}")
    with sync_playwright() as playwright:
        try:
            chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"], headless=True)
        except Exception as error:
            _unavailable(f"chromium did not start: {error}")
        yield chromium
        chromium.close()


def finance_user() -> User:
    """A user in the `finance` group (made by the roles migration; made here too if it is missing)."""
    group, _ = Group.objects.get_or_create(name="finance")
    for app_label, codename in FINANCE_PERMISSIONS:
        group.permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
    user = User.objects.create_user("fiona", password="finance-pass-123", is_staff=True)
    user.groups.add(group)
    return user


def seed_payments():
    """Today: PEN 3 succeeded (S/ 100.00, 50.00, 25.50) and 1 failed; USD 1 succeeded, 1 failed.
    Twelve days ago: PEN 3 failed and 1 succeeded (S/ 80.00).
    Last 30 days, PEN: 4 of 8 final = 50.0%, S/ 255.50. Last 7 days, PEN: 3 of 4 = 75.0%, S/ 175.50."""
    app = client_app_create(name="Tienda Lima")
    today = business_date()
    rows = [
        (10_000, "PEN", "succeeded", 0),
        (5_000, "PEN", "succeeded", 0),
        (2_550, "PEN", "succeeded", 0),
        (9_900, "PEN", "failed", 0),
        (4_000, "USD", "succeeded", 0),
        (1_500, "USD", "failed", 0),
        (3_000, "PEN", "failed", 12),
        (3_000, "PEN", "failed", 12),
        (6_000, "PEN", "failed", 12),
        (8_000, "PEN", "succeeded", 12),
    ]
    for amount, currency, status, days_ago in rows:
        payment = Payment.objects.create(
            client_app=app,
            amount=amount,
            amount_captured=amount if status == "succeeded" else 0,
            currency=currency,
            status=status,
            gateway="culqi" if currency == "PEN" else "mercadopago",
            failure_code="card_declined" if status == "failed" else "",
            decline_code="insufficient_funds" if status == "failed" else "",
        )
        day = today - timedelta(days=days_ago)
        created = datetime(day.year, day.month, day.day, 11, 30, tzinfo=business_zone())
        Payment.objects.filter(pk=payment.pk).update(created_at=created)


def kpi(page, key: str) -> str:
    return page.locator(f"#kpi-{key} .rd-card-value").inner_text().strip()


@pytest.fixture
def seeded(transactional_db):
    """Written before the browser starts: the ORM then runs in the test's own thread context (inside
    Playwright's sync API a connection opened here would outlive the test and block the database's
    teardown on PostgreSQL)."""
    finance_user()
    seed_payments()


def test_finance_user_sees_the_dashboard_changes_the_period_and_downloads_an_xlsx(
    live_server, seeded, browser, tmp_path
):
    # No ORM call below: everything goes through the browser (so Django's async check never trips
    # on Playwright's event loop).
    page = browser.new_page(viewport={"width": 1366, "height": 900}, accept_downloads=True)
    page.set_default_timeout(15_000)
    page.goto(f"{live_server.url}/admin/login/?next=/admin/")
    page.fill("#id_username", "fiona")
    page.fill("#id_password", "finance-pass-123")
    page.click("input[type=submit]")
    page.wait_for_selector("#reporting-dashboard")

    # The landing page: the last 30 days in soles.
    assert kpi(page, "success-rate") == "50.0%"
    assert kpi(page, "volume") == "S/ 255.50"
    assert page.locator("#period-30d").get_attribute("aria-current") == "true"
    assert page.locator("#alerts-panel").is_visible()
    assert page.locator("#chart-success-rate svg.chart").count() == 1
    page.screenshot(path=str(SCREENSHOT), full_page=True)

    # 7 days: the older payments drop out.
    page.click("#period-7d")
    page.wait_for_selector("#period-7d[aria-current=true]")
    assert kpi(page, "success-rate") == "75.0%"
    assert kpi(page, "volume") == "S/ 175.50"
    assert kpi(page, "average-ticket") == "S/ 58.50"

    # Dollars: only the USD payments.
    page.click("#currency-USD")
    page.wait_for_selector("#currency-USD[aria-current=true]")
    assert kpi(page, "success-rate") == "50.0%"
    assert kpi(page, "volume") == "US$ 40.00"

    # A custom range through the form: only the day twelve days ago, in soles.
    day = (business_date() - timedelta(days=12)).isoformat()
    page.click("#currency-PEN")
    page.wait_for_selector("#currency-PEN[aria-current=true]")
    page.fill("#rd-from", day)
    page.fill("#rd-to", day)
    page.click("#rd-apply")
    page.wait_for_selector(f"#rd-period:has-text('{day} (1 day')")
    assert kpi(page, "success-rate") == "25.0%"
    assert kpi(page, "volume") == "S/ 80.00"

    # Back to 30 days, then the period report.
    page.click("#period-30d")
    page.wait_for_selector("#period-30d[aria-current=true]")
    page.click("#rd-download-xlsx")
    page.wait_for_selector("#id_period_start")
    start = (business_date() - timedelta(days=29)).isoformat()
    assert page.input_value("#id_period_start") == start
    assert page.input_value("#id_period_end") == business_date().isoformat()
    assert page.input_value("#id_currency") == "PEN"
    assert page.input_value("#id_format") == "xlsx"
    page.click("input[name=_save]")

    # The report's page (it refreshes itself until the file is ready), then the download.
    download_link = page.locator(".report-actions a", has_text="Download")
    download_link.wait_for(timeout=30_000)
    with page.expect_download() as info:
        download_link.click()
    target = tmp_path / info.value.suggested_filename
    info.value.save_as(target)
    assert target.suffix == ".xlsx"

    workbook = load_workbook(target, read_only=True)
    assert "Summary" in workbook.sheetnames
    summary = [
        tuple(cell for cell in row if cell is not None) for row in workbook["Summary"].iter_rows(values_only=True)
    ]
    flat = [cell for row in summary for cell in row]
    assert any("PEN" in str(cell) for cell in flat)
    payments_sheet = next(name for name in workbook.sheetnames if name.lower().startswith("payments"))
    payment_rows = list(workbook[payments_sheet].iter_rows(values_only=True))
    assert len(payment_rows) - 1 == 8  # header + the eight PEN payments of the last 30 days
    workbook.close()
