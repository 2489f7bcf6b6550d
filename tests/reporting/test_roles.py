"""Staff roles: the groups the migration makes, and every admin page and action checked against them.

The tables below are the expectations, written by hand: a model registered in the admin, or an
action added, without a row here fails `test_every_admin_page_*` / `test_every_admin_action_*` until
someone decides which roles get it.
"""

import importlib
from types import SimpleNamespace

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.core.files.base import ContentFile
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.test import Client
from django.urls import reverse

from payments.models import ClientApp, Payment
from reporting.models import Report, ReportStatus
from reporting.roles import FINANCE, OPERATIONS, ROLE_PERMISSIONS, ROLES, SUPPORT, sync_staff_groups

pytestmark = pytest.mark.django_db

F, S, OPS = FINANCE, SUPPORT, OPERATIONS
NOBODY: frozenset = frozenset()
ALL = frozenset({F, S, OPS})

# Which roles open each admin changelist (superusers open all of them).
ADMIN_PAGES = {
    "auth.group": NOBODY,
    "auth.user": NOBODY,
    "payments.clientapp": NOBODY,  # webhook secrets and keys: superusers only
    "payments.apikey": NOBODY,
    "payments.customer": {S},
    "payments.payment": {S, OPS},
    "payments.paymentmethod": {S},
    "payments.webhookevent": {OPS},
    "payments.routingrule": {OPS},
    "payments.reconciliationrun": {OPS},
    "payments.reconciliationissue": {OPS},
    "payments.straycharge": {S, OPS},
    "simulator.simcharge": {OPS},
    "simulator.simrefund": {OPS},
    "simulator.simtoken": {OPS},
    "simulator.simcustomer": {OPS},
    "simulator.simcard": {OPS},
    "simulator.simcheckout": {OPS},
    "simulator.gatewaycontrol": {OPS},
    "simulator.receivedevent": {OPS},
    "credits.creditplan": {S},
    "credits.creditaccount": {S},
    "credits.creditpurchase": {S},
    "credits.creditledgerentry": {S},
    "credits.creditautorenewal": {S},
    "billing.billingprofile": {F, S},
    "billing.invoice": {F, S},
    "notifications.outgoingevent": {S, OPS},
    "notifications.alert": ALL,  # every staff user sees and acknowledges alerts
    "notifications.sentemail": {S},
    "notifications.suppressedaddress": {S},
    "reporting.report": {F},
    "reporting.auditentry": {F, OPS},
    # Two-factor devices (their secrets) and the failed-login records: superusers only.
    "otp_totp.totpdevice": NOBODY,
    "otp_static.staticdevice": NOBODY,
    "axes.accessattempt": NOBODY,
    "axes.accesslog": NOBODY,
    "axes.accessfailurelog": NOBODY,
}

# Which roles are offered each admin action (superusers: all). delete_selected only where listed.
ADMIN_ACTIONS = {
    ("axes.accessattempt", "cleanup_expired_attempts"): NOBODY,
    ("payments.clientapp", "issue_api_key"): NOBODY,
    ("payments.clientapp", "rotate_signing_secret"): NOBODY,
    ("payments.apikey", "revoke"): NOBODY,
    ("payments.payment", "refund_in_full"): {S},
    ("payments.webhookevent", "retry_now"): {OPS},
    ("payments.routingrule", "delete_selected"): {OPS},
    ("payments.reconciliationrun", "run_again"): {OPS},
    ("payments.reconciliationissue", "mark_resolved"): {OPS},
    ("payments.straycharge", "refund_at_gateway"): {S, OPS},
    ("billing.invoice", "resend_email"): {S},
    ("billing.invoice", "submit_again"): {S},
    ("notifications.outgoingevent", "redeliver"): {S, OPS},
    ("notifications.alert", "acknowledge"): ALL,
    ("notifications.alert", "resolve"): {OPS},
    ("reporting.report", "run_again"): {F},
}


def role_user(role: str | None, username: str | None = None):
    """An active staff user in the role's group (None: a superuser)."""
    users = get_user_model().objects
    if role is None:
        return users.create_superuser(username or "root", "root@example.com", "pw-root-12345")
    user = users.create_user(username or role, password=f"pw-{role}-12345", is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    return user


@pytest.fixture
def people():
    return {role: role_user(role) for role in (*ROLES, None)}


def changelist(label: str) -> str:
    app_label, model_name = label.split(".")
    return reverse(f"admin:{app_label}_{model_name}_changelist")


def registered() -> dict[str, admin.ModelAdmin]:
    return {model._meta.label_lower: model_admin for model, model_admin in admin.site._registry.items()}


def perms(group: Group) -> set[str]:
    return {f"{app}.{code}" for app, code in group.permissions.values_list("content_type__app_label", "codename")}


# --- The groups --------------------------------------------------------------------------------------


def test_the_three_groups_hold_exactly_their_permissions():
    assert sorted(Group.objects.values_list("name", flat=True)) == ["finance", "operations", "support"]
    for role in ROLES:
        assert perms(Group.objects.get(name=role)) == set(ROLE_PERMISSIONS[role]), role
    finance, support, operations = (perms(Group.objects.get(name=role)) for role in (F, S, OPS))
    assert {"reporting.view_dashboard", "reporting.view_report", "reporting.add_report"} <= finance
    assert not {p for p in finance if p.startswith("payments.")}  # no payments, no client apps, no keys
    assert not {p for p in finance if not p.startswith(("reporting.view", "billing.view"))} - {"reporting.add_report"}
    assert "reporting.view_report" not in support and "reporting.view_dashboard" not in support
    assert {"payments.refund_payment", "payments.refund_straycharge", "billing.resend_invoice"} <= support
    assert {
        "payments.change_routingrule",
        "notifications.change_alert",
        "payments.rerun_reconciliationrun",
    } <= operations
    assert "payments.refund_payment" not in operations
    for granted in (finance, support, operations):
        assert not granted & {"payments.view_clientapp", "payments.change_clientapp", "payments.view_apikey"}


def test_syncing_again_restores_the_table_and_changes_nothing_else():
    finance = Group.objects.get(name=F)
    finance.permissions.add(Permission.objects.get(codename="view_clientapp"))
    Group.objects.get(name=S).delete()

    counts = sync_staff_groups(strict=True)

    assert counts == {F: 8, S: 25, OPS: 31}
    assert Group.objects.count() == 3
    assert "payments.view_clientapp" not in perms(finance)
    assert perms(Group.objects.get(name=S)) == set(ROLE_PERMISSIONS[S])


def test_the_data_migration_creates_the_custom_permissions_and_the_groups_from_nothing():
    """As on a fresh database, where permissions only appear after migrate: none exist yet."""
    Group.objects.filter(name__in=ROLES).delete()
    custom = ["refund_payment", "refund_straycharge", "resend_invoice", "redeliver_outgoingevent", "view_dashboard"]
    Permission.objects.filter(codename__in=custom).delete()
    migration = importlib.import_module("reporting.migrations.0002_staff_groups")
    state_apps = MigrationExecutor(connection).loader.project_state(("reporting", "0002_staff_groups")).apps

    migration.create_staff_groups(state_apps, SimpleNamespace(connection=connection))

    for role in ROLES:
        assert perms(Group.objects.get(name=role)) == set(ROLE_PERMISSIONS[role]), role
    assert Permission.objects.get(codename="refund_payment").name == "Can refund payments"


# --- Every admin page ----------------------------------------------------------------------------------


def test_every_registered_admin_has_its_roles_decided():
    assert set(registered()) == set(ADMIN_PAGES), "add the new admin to ADMIN_PAGES (and its permissions to roles)"


def test_every_admin_page_opens_exactly_for_its_roles(client, people):
    for label in registered():
        url = changelist(label)
        for role, user in people.items():
            client.force_login(user)
            expected = 200 if role is None or role in ADMIN_PAGES[label] else 403
            assert client.get(url).status_code == expected, (label, role or "superuser")


def test_the_admin_index_lists_only_what_the_role_opens(client, people):
    for role in ROLES:
        client.force_login(people[role])
        response = client.get(reverse("admin:index"))
        assert response.status_code == 200
        shown = {
            f"{app['app_label']}.{m['object_name'].lower()}"
            for app in response.context["app_list"]
            for m in app["models"]
        }
        assert shown == {label for label, roles in ADMIN_PAGES.items() if role in roles}, role


# --- Every admin action ---------------------------------------------------------------------------------


def test_every_admin_action_has_its_roles_decided():
    actions = {
        (label, name)
        for label, model_admin in registered().items()
        for _func, name, _description in model_admin._get_base_actions()
        if name != "delete_selected"
    }
    assert actions == {key for key in ADMIN_ACTIONS if key[1] != "delete_selected"}


def test_each_role_is_offered_exactly_its_actions(client, people):
    for label, model_admin in registered().items():
        base = {name for _func, name, _description in model_admin._get_base_actions()}
        for role, user in people.items():
            if role is not None and role not in ADMIN_PAGES[label]:
                continue  # the page itself is closed (403, above)
            client.force_login(user)
            response = client.get(changelist(label))
            form = response.context["action_form"]
            offered = {name for name, _ in form.fields["action"].choices if name} if form else set()
            expected = {
                name
                for name in base
                if (
                    role is None
                    and (name != "delete_selected" or model_admin.has_delete_permission(response.wsgi_request))
                )
                or role in ADMIN_ACTIONS.get((label, name), NOBODY)
            }
            assert offered == expected, (label, role or "superuser")


def test_an_action_not_offered_is_refused_when_posted_directly(people):
    """Posted by hand, a denied action runs nothing: 403 where the page is closed, else Django's
    "No action selected." and a redirect."""
    for (label, name), allowed in ADMIN_ACTIONS.items():
        for role in set(ROLES) - set(allowed):
            client = Client()  # a fresh session: messages of one post only
            client.force_login(people[role])
            response = client.post(changelist(label), {"action": name, "_selected_action": ["x_1"]})
            messages = [str(m) for m in response.wsgi_request._messages]
            if role not in ADMIN_PAGES[label]:
                assert response.status_code == 403, (label, name, role)
            elif any(role in roles for (page, _), roles in ADMIN_ACTIONS.items() if page == label):
                assert (response.status_code, messages) == (302, ["No action selected."]), (label, name, role)
            else:  # no action at all for the role: the post just shows the list again
                assert response.status_code == 200 and response.context["action_form"] is None, (label, name, role)
                assert messages == [], (label, name, role)


def test_operations_cannot_refund_a_payment_it_can_see(client, people, client_app):
    payment = Payment.objects.create(
        client_app=client_app,
        amount=2500,
        amount_captured=2500,
        currency="PEN",
        status="succeeded",
        gateway="culqi",
        gateway_payment_id="chr_test_ops",
    )
    client.force_login(people[OPS])
    assert client.get(reverse("admin:payments_payment_change", args=[payment.pk])).status_code == 200
    response = client.post(
        changelist("payments.payment"), {"action": "refund_in_full", "_selected_action": [payment.pk]}
    )
    assert response.status_code == 200 and response.context["action_form"] is None
    payment.refresh_from_db()
    assert (payment.refunds.count(), payment.amount_refunded, payment.status) == (0, 0, "succeeded")


# --- Custom admin views ------------------------------------------------------------------------------


@pytest.fixture
def ready_report(db):
    report = Report.objects.create(
        period_start="2026-10-01", period_end="2026-10-31", currency="PEN", status=ReportStatus.READY, progress=100
    )
    report.file.save("finance-2026-10.xlsx", ContentFile(b"PK\x03\x04 report bytes"))
    return report


def test_support_cannot_download_reports_and_finance_can(client, people, ready_report):
    url = reverse("admin:reporting_report_download", args=[ready_report.pk])
    expected = {F: 200, S: 403, OPS: 403, None: 200}
    for role, user in people.items():
        client.force_login(user)
        response = client.get(url)
        assert response.status_code == expected[role], role or "superuser"
        if response.status_code == 200:
            assert b"".join(response.streaming_content) == b"PK\x03\x04 report bytes"
    client.force_login(people[S])
    assert client.get(reverse("admin:reporting_report_change", args=[ready_report.pk])).status_code == 403


def test_credit_adjustments_are_for_superusers_only(client, people, client_app):
    from credits.services import credit_account_for
    from payments.models import Customer

    account = credit_account_for(customer=Customer.objects.create(client_app=client_app, email="ana@example.com"))
    url = reverse("admin:credits_adjust", args=[account.pk])
    for role, user in people.items():
        client.force_login(user)
        assert client.get(url).status_code == (200 if role is None else 403), role or "superuser"


# --- Finance never sees a client app's secrets -------------------------------------------------------------


def test_no_page_finance_can_open_shows_a_client_apps_secret(client, people, client_app):
    from notifications.services import webhook_secret_rotate
    from payments.services.clients import api_key_issue
    from reporting.audit import record_staff_action

    issued = api_key_issue(client_app=client_app, label="finance must not see")
    rotated = webhook_secret_rotate(client_app=client_app)  # a current and a previous secret
    record_staff_action(
        user=people[None], action="client_app.rotate_secret", obj=rotated, after={"secret": rotated.webhook_secret}
    )
    secrets = [rotated.webhook_secret, rotated.previous_webhook_secret, issued.raw_key, issued.api_key.key_hash]
    assert all(secrets) and ClientApp.objects.count() == 1

    client.force_login(people[F])
    pages = [reverse("admin:index")]
    for label, model_admin in registered().items():
        if F in ADMIN_PAGES[label]:
            pages.append(changelist(label))
            pages += [
                reverse(f"admin:{label.replace('.', '_')}_change", args=[pk])
                for pk in model_admin.model.objects.values_list("pk", flat=True)[:5]
            ]
    opened = 0
    for url in pages:
        response = client.get(url)
        assert response.status_code == 200, url
        text = response.content.decode()
        assert not [secret for secret in secrets if secret in text], url
        opened += 1
    assert opened >= 6  # index, 4 changelists, the audit entry's page
    for url in (changelist("payments.clientapp"), reverse("admin:payments_clientapp_change", args=[client_app.pk])):
        assert client.get(url).status_code == 403
    assert client.get(changelist("payments.apikey")).status_code == 403
