"""Staff flows in the admin: keys shown once, revocation, read-only money, refunds through the service."""

import re

import pytest
from django.contrib.auth import get_user_model

from payments.models import ApiKey, ClientApp, Payment, hash_api_key

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(client):
    user = get_user_model().objects.create_superuser("staff", "staff@example.com", "pw-staff-123")
    client.force_login(user)
    return client


def test_adding_a_client_app_shows_its_first_key_once(staff):
    response = staff.post(
        "/admin/payments/clientapp/add/",
        {
            "name": "Shop Two",
            "is_active": "on",
            "webhook_url": "",
            "api_keys-TOTAL_FORMS": "0",
            "api_keys-INITIAL_FORMS": "0",
        },
        follow=True,
    )
    assert response.status_code == 200
    text = response.content.decode()
    raw = re.search(r"sk_test_[A-Za-z0-9]+", text).group()
    app = ClientApp.objects.get(name="Shop Two")
    assert ApiKey.objects.get(client_app=app).key_hash == hash_api_key(raw)
    listing = staff.get(f"/admin/payments/clientapp/{app.pk}/change/").content.decode()
    assert raw not in listing  # never shown again


def test_issue_and_revoke_keys_from_the_admin(staff, client_app):
    staff.post(
        "/admin/payments/clientapp/",
        {"action": "issue_api_key", "_selected_action": [client_app.pk]},
        follow=True,
    )
    key = ApiKey.objects.get(client_app=client_app)
    assert key.revoked_at is None
    staff.post("/admin/payments/apikey/", {"action": "revoke", "_selected_action": [key.pk]}, follow=True)
    key.refresh_from_db()
    assert key.revoked_at is not None


def test_payments_are_read_only_and_refusing_a_refund_is_explained(staff, client_app):
    payment = Payment.objects.create(client_app=client_app, amount=1000, currency="PEN", status="failed")
    page = staff.get(f"/admin/payments/payment/{payment.pk}/change/")
    assert page.status_code == 200
    assert 'name="amount"' not in page.content.decode()
    assert staff.get("/admin/payments/payment/add/").status_code == 403
    response = staff.post(
        "/admin/payments/payment/", {"action": "refund_in_full", "_selected_action": [payment.pk]}, follow=True
    )
    assert "cannot be refunded" in response.content.decode()
    assert payment.refunds.count() == 0
    listing = staff.get("/admin/payments/payment/?status__exact=failed&q=" + payment.pk)
    assert payment.pk in listing.content.decode()


def test_a_failed_reconciliation_run_can_be_run_again(staff, monkeypatch):
    from datetime import date

    from payments import tasks
    from payments.models import ReconciliationRun

    run = ReconciliationRun.objects.create(gateway="culqi", day=date(2026, 11, 24), status="failed")
    queued = []
    monkeypatch.setattr(tasks.reconcile_yesterday, "delay", lambda **kwargs: queued.append(kwargs))
    staff.post("/admin/payments/reconciliationrun/", {"action": "run_again", "_selected_action": [run.pk]}, follow=True)
    assert queued == [{"gateways": ["culqi"], "day": "2026-11-24"}]


def test_every_admin_page_lists_without_errors(staff, client_app):
    from django.contrib import admin

    for model in admin.site._registry:
        url = f"/admin/{model._meta.app_label}/{model._meta.model_name}/"
        assert staff.get(url).status_code == 200, url
