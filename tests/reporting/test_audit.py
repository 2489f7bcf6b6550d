"""The audit log: every staff action that moves money or changes configuration writes exactly one
entry (actor, action, object, before/after) in the transaction of the change; a refused action none."""

import json
import re
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
from django.contrib.admin.utils import quote
from django.db import transaction
from django.urls import reverse

from credits.models import CreditAccount, CreditLedgerEntry, CreditPlan
from notifications.alerts import AlertKind, alert_raise
from notifications.models import Alert, AlertStatus
from payments.gateways.base import ChargeResult, ChargeStatus, RefundResult
from payments.models import ApiKey, ClientApp, Customer, Payment, RoutingRule, StrayCharge
from reporting.audit import HIDDEN, NotInTransaction, model_values, record_staff_action
from reporting.models import AuditEntry
from reporting.roles import OPERATIONS, SUPPORT
from tests.reporting.test_roles import role_user

pytestmark = pytest.mark.django_db


class FakeGateway:
    """Answers refunds (and a stray charge's lookup) like a gateway that agrees."""

    def __init__(self):
        self.refunds = []

    def refund(self, request):
        self.refunds.append(request)
        return RefundResult(gateway_refund_id=f"ref_{len(self.refunds)}", status="succeeded", amount=request.amount)

    def retrieve(self, gateway_payment_id):
        return ChargeResult(
            status=ChargeStatus.SUCCEEDED, gateway_payment_id=gateway_payment_id, amount=1999, currency="PEN"
        )


@pytest.fixture
def gateway(monkeypatch):
    fake = FakeGateway()
    monkeypatch.setattr("payments.services.refunds.get_adapter", lambda name: fake)
    monkeypatch.setattr("payments.services.strays.get_adapter", lambda name: fake)
    return fake


@pytest.fixture
def root(client):
    user = role_user(None)
    client.force_login(user)
    return user


def as_role(client, role):
    user = role_user(role)
    client.force_login(user)
    return user


def paid(client_app, **values) -> Payment:
    fields = {
        "amount": 2500,
        "amount_captured": 2500,
        "currency": "PEN",
        "status": "succeeded",
        "gateway": "culqi",
        "gateway_payment_id": "chr_test_audit",
        **values,
    }
    return Payment.objects.create(client_app=client_app, **fields)


def staff_actions():
    """Audit entries of staff actions; sign-in events (auth.*, smartpay/staff_security.py) are
    tested in tests/foundation/test_staff_security.py and come with every test login here."""
    return AuditEntry.objects.exclude(action__startswith="auth.")


def only_entry() -> AuditEntry:
    entries = list(staff_actions().all())
    assert len(entries) == 1, [(e.action, e.object_id) for e in entries]
    return entries[0]


def post_action(client, label: str, action: str, *pks):
    return client.post(reverse(f"admin:{label}_changelist"), {"action": action, "_selected_action": list(pks)})


# --- record_staff_action ---------------------------------------------------------------------------------


def test_an_entry_names_the_actor_the_object_and_its_client_app_and_hides_secrets(client_app, root):
    with transaction.atomic():
        entry = record_staff_action(
            user=root,
            action="client_app.update",
            obj=client_app,
            summary="x" * 400,
            before={"webhook_url": "https://a.example/h", "webhook_secret": "whsec_old"},
            after={"webhook_url": "https://b.example/h", "nested": {"api_token": "t0k3n", "amount": 1250}},
        )
    entry.refresh_from_db()
    assert (entry.actor, entry.actor_username, entry.action) == (root, "root", "client_app.update")
    assert (entry.object_type, entry.object_id, entry.client_app_id) == (
        "payments.clientapp",
        client_app.pk,
        client_app.pk,
    )
    assert entry.before == {"webhook_url": "https://a.example/h", "webhook_secret": HIDDEN}
    assert entry.after == {"webhook_url": "https://b.example/h", "nested": {"api_token": HIDDEN, "amount": 1250}}
    assert len(entry.summary) == 300 and entry.id.startswith("aud_")


@pytest.mark.django_db(transaction=True)
def test_an_entry_outside_the_transaction_of_its_change_is_refused():
    with pytest.raises(NotInTransaction):
        record_staff_action(user=None, action="routing_rule.update", object_type="payments.routingrule", object_id="1")
    assert staff_actions().count() == 0


def test_model_values_keep_amounts_as_integers():
    rule = RoutingRule(currency="PEN", gateway="culqi", priority=5, min_amount=100, max_amount=None)
    assert model_values(rule, ["currency", "priority", "min_amount", "max_amount"]) == {
        "currency": "PEN",
        "priority": 5,
        "min_amount": 100,
        "max_amount": None,
    }


# --- Money: refunds, stray charges, credit adjustments ------------------------------------------------------


def test_a_refund_by_support_writes_one_entry_with_the_payment_before_and_the_refund_after(client, client_app, gateway):
    payment = paid(client_app, amount_refunded=500, status="partially_refunded")
    user = as_role(client, SUPPORT)

    response = post_action(client, "payments_payment", "refund_in_full", payment.pk)

    assert response.status_code == 302
    refund = payment.refunds.get()
    assert (refund.amount, refund.status) == (2000, "succeeded") and len(gateway.refunds) == 1
    entry = only_entry()
    assert (entry.actor, entry.action, entry.object_type, entry.object_id) == (
        user,
        "refund.create",
        "payments.payment",
        payment.pk,
    )
    assert entry.client_app_id == client_app.pk
    assert entry.before == {"status": "partially_refunded", "amount_refunded": 500}
    assert entry.after == {"refund": refund.id, "amount": 2000, "currency": "PEN"}
    assert entry.summary == f"Refund {refund.id} of 20.00 PEN requested"


def test_a_refused_refund_writes_nothing(client, client_app, gateway):
    failed = paid(client_app, status="failed", amount_captured=0, gateway_payment_id=None)
    refunded = paid(client_app, status="refunded", amount_refunded=2500, gateway_payment_id="chr_test_done")
    as_role(client, SUPPORT)

    response = post_action(client, "payments_payment", "refund_in_full", failed.pk, refunded.pk)

    assert response.status_code == 302
    assert staff_actions().count() == 0
    assert gateway.refunds == [] and failed.refunds.count() == 0 and refunded.refunds.count() == 0


def test_refunding_a_stray_charge_writes_one_entry_and_a_second_click_none(client, client_app, gateway):
    payment = paid(client_app, status="failed", amount_captured=0, gateway_payment_id=None)
    stray = StrayCharge.objects.create(
        payment=payment,
        gateway="mercadopago",
        gateway_payment_id="mp-555",
        amount=1999,
        currency="PEN",
        reason=StrayCharge.FINAL_PAYMENT,
    )
    user = as_role(client, OPERATIONS)

    post_action(client, "payments_straycharge", "refund_at_gateway", stray.pk)
    post_action(client, "payments_straycharge", "refund_at_gateway", stray.pk)

    stray.refresh_from_db()
    assert stray.status == StrayCharge.REFUNDED and len(gateway.refunds) == 1
    entry = only_entry()
    assert (entry.actor, entry.action, entry.object_type, entry.object_id, entry.client_app_id) == (
        user,
        "stray_charge.refund",
        "payments.straycharge",
        stray.pk,
        client_app.pk,
    )
    assert entry.before == {"status": "open"}
    assert entry.after == {"status": "refunding", "amount": 1999, "currency": "PEN"}


@pytest.fixture
def account(client_app):
    from credits.services import credit_account_for

    return credit_account_for(customer=Customer.objects.create(client_app=client_app, email="ana@example.com"))


def adjust(client, account, amount, reason="goodwill"):
    url = reverse("admin:credits_adjust", args=[account.pk])
    return client.post(url, {"amount": amount, "reason": reason, "validity_days": 30})


def test_credit_adjustments_write_one_entry_each_with_the_balance_before_and_after(client, root, account):
    assert adjust(client, account, 100, "compensation for outage").status_code == 302
    assert adjust(client, account, -30, "duplicate grant").status_code == 302

    first, second = staff_actions().order_by("created_at", "id")
    assert (first.actor, first.action, first.object_id) == (root, "credits.adjust", account.pk)
    assert first.before == {"balance": 0}
    assert first.after == {"balance": 100, "amount": 100, "reason": "compensation for outage"}
    assert second.before == {"balance": 100}
    assert second.after == {"balance": 70, "amount": -30, "reason": "duplicate grant"}
    assert second.summary == "Credits adjusted by -30: duplicate grant"
    assert CreditAccount.objects.get(pk=account.pk).balance == 70


def test_a_refused_credit_adjustment_writes_nothing(client, root, account):
    response = adjust(client, account, -5)  # nothing to take

    assert response.status_code == 200 and "cannot be taken" in response.content.decode()
    assert staff_actions().count() == 0 and CreditLedgerEntry.objects.count() == 0


def test_when_the_entry_cannot_be_written_the_adjustment_is_undone(client, root, account, monkeypatch):
    def broken(**kwargs):
        raise RuntimeError("audit table unavailable")

    monkeypatch.setattr(AuditEntry.objects, "create", broken)
    with pytest.raises(RuntimeError):
        adjust(client, account, 100)
    assert CreditLedgerEntry.objects.count() == 0 and CreditAccount.objects.get(pk=account.pk).balance == 0


# --- Configuration: routing rules, client apps, API keys, credit plans ---------------------------------------


def rule_form(**values):
    return {
        "currency": "PEN",
        "gateway": "culqi",
        "priority": 10,
        "enabled": "on",
        "min_amount": "",
        "max_amount": "",
    } | values


def test_routing_rule_add_change_and_delete_write_one_entry_each(client):
    user = as_role(client, OPERATIONS)

    client.post(reverse("admin:payments_routingrule_add"), rule_form(min_amount=100))
    rule = RoutingRule.objects.get()
    created = only_entry()
    assert (created.actor, created.action, created.object_id) == (user, "routing_rule.create", str(rule.pk))
    assert created.before is None
    assert created.after == {
        "currency": "PEN",
        "gateway": "culqi",
        "priority": 10,
        "enabled": True,
        "min_amount": 100,
        "max_amount": None,
    }

    change = reverse("admin:payments_routingrule_change", args=[rule.pk])
    client.post(change, rule_form(min_amount=100, priority=3))
    client.post(change, rule_form(min_amount=100, priority=3))  # saved unchanged: nothing to log
    updated = staff_actions().filter(action="routing_rule.update").get()
    assert (updated.before, updated.after) == ({"priority": 10}, {"priority": 3})

    client.post(reverse("admin:payments_routingrule_delete", args=[rule.pk]), {"post": "yes"})
    assert not RoutingRule.objects.exists()
    deleted = staff_actions().filter(action="routing_rule.delete").get()
    assert deleted.after is None
    assert deleted.before == {
        "currency": "PEN",
        "gateway": "culqi",
        "priority": 3,
        "enabled": True,
        "min_amount": 100,
        "max_amount": None,
    }
    assert staff_actions().count() == 3


def test_routing_changes_in_the_list_and_bulk_deletes_are_logged_too(client):
    as_role(client, OPERATIONS)
    culqi = RoutingRule.objects.create(currency="PEN", gateway="culqi", priority=1)
    mp = RoutingRule.objects.create(currency="PEN", gateway="mercadopago", priority=2)
    listing = {
        "form-TOTAL_FORMS": "2",
        "form-INITIAL_FORMS": "2",
        "form-0-id": culqi.pk,
        "form-0-priority": "1",
        "form-0-enabled": "on",
        "form-1-id": mp.pk,
        "form-1-priority": "2",  # enabled unticked: mercadopago switched off
        "_save": "Save",
    }

    client.post(reverse("admin:payments_routingrule_changelist"), listing)
    client.post(
        reverse("admin:payments_routingrule_changelist"),
        {"action": "delete_selected", "_selected_action": [culqi.pk, mp.pk], "post": "yes"},
    )

    switched = staff_actions().get(action="routing_rule.update")
    assert (switched.object_id, switched.before, switched.after) == (str(mp.pk), {"enabled": True}, {"enabled": False})
    deleted = staff_actions().filter(action="routing_rule.delete")
    assert sorted(deleted.values_list("object_id", flat=True)) == sorted([str(culqi.pk), str(mp.pk)])
    assert not RoutingRule.objects.exists() and staff_actions().count() == 3


def client_app_form(app, **values):
    return {
        "name": app.name,
        "is_active": "on",
        "webhook_url": app.webhook_url,
        "webhook_enabled": "on",
        "api_keys-TOTAL_FORMS": "0",
        "api_keys-INITIAL_FORMS": "0",
        **values,
    }


def test_client_app_configuration_changes_are_logged_without_secrets(client, root, client_app):
    change = reverse("admin:payments_clientapp_change", args=[client_app.pk])
    form = client_app_form(client_app, webhook_url="https://acme.example/v2/hooks")
    del form["webhook_enabled"]  # delivery switched off

    assert client.post(change, form).status_code == 302

    entry = only_entry()
    assert (entry.actor, entry.action, entry.object_id, entry.client_app_id) == (
        root,
        "client_app.update",
        client_app.pk,
        client_app.pk,
    )
    assert entry.before == {"webhook_url": "https://acme.example/hooks", "webhook_enabled": True}
    assert entry.after == {"webhook_url": "https://acme.example/v2/hooks", "webhook_enabled": False}


def test_a_new_client_app_is_logged_with_its_first_key_masked(client, root):
    response = client.post(
        reverse("admin:payments_clientapp_add"),
        {
            "name": "Shop Two",
            "is_active": "on",
            "webhook_url": "",
            "api_keys-TOTAL_FORMS": "0",
            "api_keys-INITIAL_FORMS": "0",
        },
        follow=True,
    )
    raw = re.search(r"sk_test_[A-Za-z0-9]+", response.content.decode()).group()
    app = ClientApp.objects.get(name="Shop Two")
    entry = only_entry()
    assert (entry.action, entry.object_id, entry.before) == ("client_app.create", app.pk, None)
    assert entry.after == {
        "name": "Shop Two",
        "is_active": True,
        "webhook_url": "",
        "webhook_enabled": False,
        "rate_limit_write_per_minute": None,
        "rate_limit_read_per_minute": None,
        "api_key": f"issued {raw[:12]}…",
    }
    assert raw not in json.dumps(entry.after)


def test_rotating_the_signing_secret_logs_that_it_was_rotated_not_the_secret(client, root, client_app):
    old = client_app.webhook_secret

    post_action(client, "payments_clientapp", "rotate_signing_secret", client_app.pk)

    client_app.refresh_from_db()
    assert client_app.webhook_secret != old and client_app.previous_webhook_secret == old
    entry = only_entry()
    assert (entry.action, entry.object_id, entry.before, entry.after) == (
        "client_app.rotate_secret",
        client_app.pk,
        None,
        {"webhook_signing": "rotated"},
    )
    stored = json.dumps([entry.before, entry.after, entry.summary])
    assert old not in stored and client_app.webhook_secret not in stored


def test_issuing_and_revoking_api_keys_write_one_entry_each(client, root, client_app):
    response = client.post(
        reverse("admin:payments_clientapp_changelist"),
        {"action": "issue_api_key", "_selected_action": [client_app.pk]},
        follow=True,
    )
    raw = re.search(r"sk_test_[A-Za-z0-9]+", response.content.decode()).group()
    key = ApiKey.objects.get(client_app=client_app)
    issued = only_entry()
    assert (issued.actor, issued.action, issued.object_type, issued.object_id, issued.client_app_id) == (
        root,
        "api_key.issue",
        "payments.apikey",
        key.pk,
        client_app.pk,
    )
    assert issued.after == {"key": f"{raw[:12]}…", "label": "issued by root"}
    assert raw not in json.dumps([issued.after, issued.summary])

    post_action(client, "payments_apikey", "revoke", key.pk)
    post_action(client, "payments_apikey", "revoke", key.pk)  # already revoked: no change, no entry

    key.refresh_from_db()
    revoked = staff_actions().get(action="api_key.revoke")
    assert (revoked.object_id, revoked.before) == (key.pk, {"revoked_at": None})
    assert revoked.after == {"revoked_at": key.revoked_at.isoformat()}
    assert staff_actions().count() == 2


def test_credit_plan_price_bonus_and_validity_changes_are_logged(client, root):
    plan = CreditPlan.objects.create(code="audit-pack", name="Audit pack", credits=100, price_pen=1000, price_usd=300)
    form = {
        "code": "audit-pack",
        "name": "Audit pack",
        "credits": 100,
        "bonus_percent": 10,
        "price_pen": 1200,
        "price_usd": 300,
        "validity_days": 180,
        "is_active": "on",
    }

    assert client.post(reverse("admin:credits_creditplan_change", args=[plan.pk]), form).status_code == 302

    entry = only_entry()
    assert (entry.action, entry.object_type, entry.object_id) == ("credit_plan.update", "credits.creditplan", plan.pk)
    assert entry.before == {"bonus_percent": 0, "price_pen": 1000, "validity_days": 365}
    assert entry.after == {"bonus_percent": 10, "price_pen": 1200, "validity_days": 180}


# --- Alerts -------------------------------------------------------------------------------------------------


def test_acknowledging_an_alert_writes_one_entry_from_the_list_or_the_button(client):
    user = as_role(client, SUPPORT)
    first = alert_raise(
        kind=AlertKind.WEBHOOK_PROCESSING_FAILED, dedupe_key="culqi", severity="warning", title="Webhooks fail"
    )
    second = alert_raise(kind=AlertKind.BREAKER_OPEN, dedupe_key="culqi", severity="critical", title="Breaker open")

    post_action(client, "notifications_alert", "acknowledge", first.pk)
    client.post(reverse("admin:notifications_alert_acknowledge", args=[second.pk]))
    client.post(reverse("admin:notifications_alert_acknowledge", args=[second.pk]))  # already: nothing

    assert set(Alert.objects.values_list("status", flat=True)) == {AlertStatus.ACKNOWLEDGED}
    entries = staff_actions().order_by("object_id")
    assert sorted((e.object_id, e.action, e.actor_id, e.summary) for e in entries) == sorted(
        [
            (str(first.pk), "alert.acknowledge", user.pk, "Webhooks fail"),
            (str(second.pk), "alert.acknowledge", user.pk, "Breaker open"),
        ]
    )
    assert {(e.before["status"], e.after["status"]) for e in entries} == {("open", "acknowledged")}


# --- The audit log's admin pages -------------------------------------------------------------------------------


@pytest.fixture
def logged(client_app):
    staff = role_user(SUPPORT, "luz")
    payment = paid(client_app)
    rule = RoutingRule.objects.create(currency="USD", gateway="culqi")
    with transaction.atomic():
        refund = record_staff_action(
            user=staff,
            action="refund.create",
            obj=payment,
            before={"status": "succeeded", "amount_refunded": 0},
            after={"refund": "re_1", "amount": 2500, "currency": "PEN"},
            summary="Refund re_1 of 25.00 PEN requested",
        )
        routing = record_staff_action(
            user=None, action="routing_rule.delete", obj=rule, before=model_values(rule, ["currency", "gateway"])
        )
    staff_actions().filter(pk=refund.pk).update(created_at=datetime(2026, 3, 14, 3, 4, 5, tzinfo=UTC))
    return SimpleNamespace(refund=refund, routing=routing, payment=payment, staff=staff)


def test_the_audit_list_shows_who_when_in_lima_what_and_links_to_the_object(client, root, logged, client_app):
    response = client.get(reverse("admin:reporting_auditentry_changelist"))

    html = response.content.decode()
    assert response.status_code == 200
    assert "2026-03-13 22:04:05" in html  # 03:04:05 UTC is the evening before in Lima
    assert reverse("admin:payments_payment_change", args=[quote(logged.payment.pk)]) in html
    assert reverse("admin:payments_clientapp_change", args=[quote(client_app.pk)]) in html
    assert "refund.create" in html and "luz" in html and "Refund re_1 of 25.00 PEN requested" in html
    assert f"payments.routingrule {logged.routing.object_id}" in html  # deleted: named, not linked
    assert reverse("admin:payments_routingrule_change", args=[logged.routing.object_id]) not in html
    assert response.context["action_form"] is None  # no actions, no bulk delete


def test_the_audit_list_filters_by_action_and_actor(client, root, logged):
    url = reverse("admin:reporting_auditentry_changelist")
    by_action = client.get(url, {"action": "routing_rule.delete"}).context["cl"].result_list
    by_actor = client.get(url, {"actor": "luz"}).context["cl"].result_list
    assert [e.pk for e in by_action] == [logged.routing.pk]
    assert [e.pk for e in by_actor] == [logged.refund.pk]


def test_an_entry_page_shows_before_and_after_side_by_side_and_cannot_be_changed(client, root, logged):
    page = reverse("admin:reporting_auditentry_change", args=[logged.refund.pk])
    response = client.get(page)

    html = response.content.decode()
    assert response.status_code == 200
    assert re.search(r"<th scope=\"row\">amount_refunded</th><td><code>0</code></td><td><code>—</code></td>", html)
    assert re.search(r"<tr class=\"audit-changed\"[^>]*><th scope=\"row\">refund</th><td><code>—</code></td>", html)
    assert 'name="_save"' not in html
    assert client.post(page, {"summary": "tampered"}).status_code == 403
    assert client.get(reverse("admin:reporting_auditentry_add")).status_code == 403
    assert (
        client.post(reverse("admin:reporting_auditentry_delete", args=[logged.refund.pk]), {"post": "yes"}).status_code
        == 403
    )
    assert staff_actions().get(pk=logged.refund.pk).summary == "Refund re_1 of 25.00 PEN requested"


def test_support_does_not_see_the_audit_log(client, logged):
    as_role(client, SUPPORT)
    assert client.get(reverse("admin:reporting_auditentry_changelist")).status_code == 403
    assert client.get(reverse("admin:reporting_auditentry_change", args=[logged.refund.pk])).status_code == 403
