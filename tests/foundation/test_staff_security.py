"""Staff accounts: a second factor for those who can move money or change configuration, recovery
codes, failed-login lockout, and every sign-in event in the audit log."""

import re

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client
from django_otp.oath import totp
from django_otp.plugins.otp_static.models import StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from reporting.models import AuditEntry
from smartpay.staff_security import needs_two_factor

pytestmark = pytest.mark.django_db

PASSWORD = "correct horse battery staple 42"


@pytest.fixture
def two_factor(settings):
    settings.STAFF_2FA_REQUIRED = True


def staff(username: str, *, superuser=False, group: str | None = None) -> User:
    user = User.objects.create_user(username, f"{username}@example.pe", PASSWORD, is_staff=True)
    user.is_superuser = superuser
    user.save()
    if group:
        user.groups.add(Group.objects.get(name=group))
    return user


def current_code(device: TOTPDevice) -> str:
    return f"{totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits):0{device.digits}d}"


def wait_out_the_throttle(user: User) -> None:
    """django-otp makes a device wait 2^n seconds after n failures: as if that time had passed."""
    from datetime import timedelta

    from django.utils import timezone
    from django_otp.plugins.otp_static.models import StaticDevice

    past = timezone.now() - timedelta(minutes=5)
    for model in (TOTPDevice, StaticDevice):
        model.objects.filter(user=user).update(throttling_failure_timestamp=past)


def enrol(client: Client, user: User) -> list[str]:
    """Enrol as the user does: open the setup page, type the app's code; returns the recovery codes."""
    client.get("/admin/2fa/setup/")
    device = TOTPDevice.objects.get(user=user, confirmed=False)
    page = client.post("/admin/2fa/setup/", {"token": current_code(device), "next": "/admin/"})
    assert page.status_code == 200
    return re.findall(r"<li>([a-z0-9]{8})</li>", page.content.decode())


def test_who_needs_a_second_factor():
    assert needs_two_factor(staff("root", superuser=True))
    assert needs_two_factor(staff("sam", group="support"))  # refunds
    assert needs_two_factor(staff("olga", group="operations"))  # routing rules, reconciliation
    assert not needs_two_factor(staff("fiona", group="finance"))  # reads, and asks for reports
    assert not needs_two_factor(User.objects.create_user("payer", "p@example.pe", PASSWORD))  # not staff


def test_a_superuser_enrols_an_app_gets_recovery_codes_then_reaches_the_admin(client, two_factor):
    root = staff("root", superuser=True)
    client.force_login(root)
    first = client.get("/admin/payments/payment/")
    assert first.status_code == 302 and first["Location"].startswith("/admin/2fa/setup/?next=/admin/payments/payment/")
    setup = client.get("/admin/2fa/setup/")
    assert b"<svg" in setup.content and re.search(rb'id="totp-secret">[A-Z2-7]{32}<', setup.content)
    wrong = client.post("/admin/2fa/setup/", {"token": "000000"})
    assert b"did not match" in wrong.content
    assert client.get("/admin/").status_code == 302  # still owes the second factor
    device = TOTPDevice.objects.get(user=root)
    throttled = client.post("/admin/2fa/setup/", {"token": current_code(device)})
    assert b"did not match" in throttled.content  # right code, but too soon after a failure
    wait_out_the_throttle(root)
    codes = enrol(client, root)
    assert len(codes) == 10 and len(set(codes)) == 10
    assert client.get("/admin/payments/payment/").status_code == 200
    assert AuditEntry.objects.filter(action="auth.2fa_enrolled", actor=root).count() == 1


def test_the_next_sign_in_asks_for_a_code_and_a_recovery_code_works_once(client, two_factor):
    root = staff("root", superuser=True)
    client.force_login(root)
    codes = enrol(client, root)

    browser = Client()
    browser.force_login(root)
    answer = browser.get("/admin/")
    assert answer.status_code == 302 and answer["Location"].startswith("/admin/2fa/?next=")
    assert b"did not match" in browser.post("/admin/2fa/", {"token": "not-a-code"}).content
    wait_out_the_throttle(root)
    assert browser.post("/admin/2fa/", {"token": codes[0], "next": "/admin/"})["Location"] == "/admin/"
    assert browser.get("/admin/").status_code == 200
    assert StaticToken.objects.filter(device__user=root).count() == 9  # used up

    again = Client()
    again.force_login(root)
    assert b"did not match" in again.post("/admin/2fa/", {"token": codes[0]}).content
    assert again.get("/admin/").status_code == 302
    assert AuditEntry.objects.filter(action="auth.2fa_recovery_code_used").count() == 1
    assert AuditEntry.objects.filter(action="auth.2fa_failed").count() == 2


def test_a_code_from_the_app_verifies_and_cannot_be_replayed(client, two_factor):
    root = staff("root", superuser=True)
    client.force_login(root)
    enrol(client, root)
    device = TOTPDevice.objects.get(user=root, confirmed=True)
    browser = Client()
    browser.force_login(root)
    # The code used at enrolment was this time step's: it does not work twice.
    assert b"did not match" in browser.post("/admin/2fa/", {"token": current_code(device)}).content


def test_finance_signs_in_with_a_password_alone(client, two_factor):
    client.force_login(staff("fiona", group="finance"))
    assert client.get("/admin/").status_code == 200


def test_the_next_url_never_leaves_the_site(client, two_factor):
    root = staff("root", superuser=True)
    client.force_login(root)
    client.get("/admin/2fa/setup/")
    device = TOTPDevice.objects.get(user=root)
    page = client.post("/admin/2fa/setup/", {"token": current_code(device), "next": "https://evil.example/"})
    assert b"https://evil.example/" not in page.content


def test_new_recovery_codes_replace_the_old_ones(client, two_factor):
    root = staff("root", superuser=True)
    client.force_login(root)
    old = enrol(client, root)
    page = client.post("/admin/2fa/recovery-codes/")
    new = re.findall(r"<li>([a-z0-9]{8})</li>", page.content.decode())
    assert len(new) == 10 and not set(new) & set(old)
    assert set(StaticToken.objects.filter(device__user=root).values_list("token", flat=True)) == set(new)


def test_repeated_wrong_passwords_lock_the_account_out_from_that_address(settings):
    settings.AXES_ENABLED = True
    settings.AXES_FAILURE_LIMIT = 3
    staff("sam", group="support")
    browser = Client(REMOTE_ADDR="203.0.113.5")
    for _ in range(3):
        answer = browser.post("/admin/login/", {"username": "sam", "password": "wrong"})
        assert answer.status_code in (200, 429)
    locked = browser.post("/admin/login/", {"username": "sam", "password": PASSWORD})
    assert locked.status_code == 429  # even the right password, while locked out
    assert "_auth_user_id" not in browser.session
    elsewhere = Client(REMOTE_ADDR="198.51.100.20")
    assert elsewhere.post("/admin/login/", {"username": "sam", "password": PASSWORD}).status_code == 302
    assert AuditEntry.objects.filter(action="auth.login_failed", actor_username="sam").count() >= 3
    assert AuditEntry.objects.filter(action="auth.locked_out", actor_username="sam").exists()


def test_every_sign_in_and_out_is_in_the_audit_log_with_its_address(settings):
    settings.AXES_ENABLED = True
    user = staff("fiona", group="finance")
    browser = Client(REMOTE_ADDR="203.0.113.7", HTTP_USER_AGENT="Firefox/140")
    assert browser.post("/admin/login/", {"username": "fiona", "password": PASSWORD}).status_code == 302
    browser.post("/admin/logout/")
    browser.post("/admin/login/", {"username": "nobody", "password": "x"})
    login = AuditEntry.objects.get(action="auth.login")
    assert (login.actor, login.actor_username, login.object_id) == (user, "fiona", str(user.pk))
    assert login.after == {"ip": "203.0.113.7", "user_agent": "Firefox/140"}
    assert AuditEntry.objects.filter(action="auth.logout", actor=user).count() == 1
    failed = AuditEntry.objects.get(action="auth.login_failed")
    assert (failed.actor, failed.actor_username) == (None, "nobody")
    assert PASSWORD not in str(list(AuditEntry.objects.values()))
