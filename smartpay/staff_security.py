"""Staff accounts: two-factor login for staff who can move money or change configuration, and an
audit trail of logins.

- **Who needs a second factor** (`needs_two_factor`): superusers, and any staff user holding a
  permission other than viewing (refunds, routing rules, reconciliation, credit adjustments, client
  apps and keys, …). Finance's read-only role, whose only non-view permission is asking for a
  report, logs in with a password alone.
- **How** (django-otp): after the password, `StaffTwoFactorMiddleware` sends such a user to
  `/admin/2fa/` until the session is verified. The first time, they enrol an authenticator app
  (TOTP, RFC 6238: a QR code and the secret) and receive ten one-time recovery codes, shown once.
  Afterwards they type a code from the app, or a recovery code (used up). TOTP verification is
  throttled by django-otp after failures.
- **Lockout** (django-axes, settings `AXES_*`): repeated failed passwords for one username from one
  address lock that pair out for a while (429).
- **Audit** (`reporting.AuditEntry`): every login, logout, failed login, lockout, enrolment, and use
  of a recovery code, with the address (REMOTE_ADDR) and never a password or code.

Required when STAFF_2FA_REQUIRED (default: whenever DEBUG is off).
"""

from __future__ import annotations

import base64
import io
from urllib.parse import quote

from django.conf import settings
from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.db import transaction
from django.shortcuts import redirect, render
from django.urls import path, reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_http_methods

RECOVERY_CODES = 10
# Admin paths a user who still owes a second factor may open.
_OPEN_PATHS = ("/admin/login/", "/admin/logout/", "/admin/2fa/", "/admin/jsi18n/")
_HARMLESS_PERMISSIONS = frozenset({"reporting.add_report"})  # asking for a report moves nothing


def client_ip(request) -> str:
    """The peer address, never a forwarded header a client could set (django-axes and the audit)."""
    return request.META.get("REMOTE_ADDR", "") if request is not None else ""


def needs_two_factor(user) -> bool:
    if not (user.is_authenticated and user.is_active and user.is_staff):
        return False
    if user.is_superuser:
        return True
    return any(
        not perm.split(".", 1)[-1].startswith("view_") and perm not in _HARMLESS_PERMISSIONS
        for perm in user.get_all_permissions()
    )


class StaffTwoFactorMiddleware:
    """Sends staff who need a second factor to /admin/2fa/ until their session is verified."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if (
            settings.STAFF_2FA_REQUIRED
            and request.path.startswith("/admin/")
            and not request.path.startswith(_OPEN_PATHS)
        ):
            user = getattr(request, "user", None)
            if user is not None and needs_two_factor(user) and not user.is_verified():
                from django_otp import user_has_device

                target = "two_factor_verify" if user_has_device(user) else "two_factor_setup"
                return redirect(f"{reverse(target)}?next={quote(request.get_full_path())}")
        return self.get_response(request)


# --- Views -------------------------------------------------------------------------------------------


def _next_url(request) -> str:
    target = request.POST.get("next") or request.GET.get("next") or reverse("admin:index")
    if url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        return target
    return reverse("admin:index")


def _qr_svg(data: str) -> str:
    import qrcode
    import qrcode.image.svg

    image = qrcode.make(data, image_factory=qrcode.image.svg.SvgPathImage, box_size=8)
    out = io.BytesIO()
    image.save(out)
    return out.getvalue().decode()


def _new_recovery_codes(user) -> list[str]:
    """Replace the user's recovery codes with ten new ones; returns them (shown once)."""
    from django_otp.plugins.otp_static.models import StaticDevice, StaticToken

    device, _ = StaticDevice.objects.get_or_create(user=user, name="Recovery codes", defaults={"confirmed": True})
    device.token_set.all().delete()
    codes = [StaticToken.random_token() for _ in range(RECOVERY_CODES)]
    StaticToken.objects.bulk_create([StaticToken(device=device, token=code) for code in codes])
    return codes


def _show_codes(request, codes: list[str]):
    context = _context(request, codes=codes, title="Recovery codes")
    return render(request, "admin/two_factor/recovery_codes.html", context)


def _context(request, **extra) -> dict:
    from django.contrib import admin

    return {**admin.site.each_context(request), "next": _next_url(request), **extra}


@staff_member_required
@require_http_methods(["GET", "POST"])
def setup_view(request):
    """Enrol an authenticator app: QR code and secret, then a code from the app confirms it."""
    from django_otp import login as otp_login
    from django_otp import user_has_device
    from django_otp.plugins.otp_totp.models import TOTPDevice

    user = request.user
    if user_has_device(user):
        return redirect(f"{reverse('two_factor_verify')}?next={quote(_next_url(request))}")
    device = TOTPDevice.objects.filter(user=user, confirmed=False).first() or TOTPDevice.objects.create(
        user=user, name="Authenticator app", confirmed=False
    )
    error = ""
    if request.method == "POST":
        token = (request.POST.get("token") or "").strip().replace(" ", "")
        with transaction.atomic():
            device = TOTPDevice.objects.select_for_update().get(pk=device.pk)
            if device.verify_token(token):
                device.confirmed = True
                device.save(update_fields=["confirmed"])
                codes = _new_recovery_codes(user)
                record_login_event(request, user, "auth.2fa_enrolled", "Authenticator app enrolled")
                otp_login(request, device)
                return _show_codes(request, codes)
        error = "That code did not match. Check the time on your phone and type the current 6-digit code."
    secret = base64.b32encode(device.bin_key).decode().rstrip("=")
    return render(
        request,
        "admin/two_factor/setup.html",
        _context(request, qr_svg=_qr_svg(device.config_url), secret=secret, error=error, title="Two-factor sign-in"),
    )


@staff_member_required
@require_http_methods(["GET", "POST"])
def verify_view(request):
    """Type a code from the authenticator app, or one recovery code (used up)."""
    from django_otp import devices_for_user, user_has_device
    from django_otp import login as otp_login
    from django_otp.plugins.otp_static.models import StaticDevice

    user = request.user
    if not user_has_device(user):
        return redirect(f"{reverse('two_factor_setup')}?next={quote(_next_url(request))}")
    error = ""
    if request.method == "POST":
        token = (request.POST.get("token") or "").strip().replace(" ", "")
        matched = None
        with transaction.atomic():
            for device in devices_for_user(user, for_verify=True):
                if token and device.verify_token(token):
                    matched = device
                    break
        if matched is not None:
            otp_login(request, matched)
            if isinstance(matched, StaticDevice):
                left = matched.token_set.count()
                record_login_event(request, user, "auth.2fa_recovery_code_used", f"{left} recovery codes left")
                messages.warning(request, f"Signed in with a recovery code; {left} left. Make new ones if few remain.")
            return redirect(_next_url(request))
        error = "That code did not match (a recovery code works once)."
        record_login_event(request, user, "auth.2fa_failed", "A second-factor code did not match")
    return render(request, "admin/two_factor/verify.html", _context(request, error=error, title="Two-factor sign-in"))


@staff_member_required
@require_http_methods(["GET", "POST"])
def recovery_codes_view(request):
    """New recovery codes (the old ones stop working), for a user verified in this session."""
    if not request.user.is_verified():
        here = reverse("two_factor_recovery_codes")
        return redirect(f"{reverse('two_factor_verify')}?next={quote(here)}")
    if request.method == "GET":
        return render(request, "admin/two_factor/renew.html", _context(request, title="Recovery codes"))
    codes = _new_recovery_codes(request.user)
    record_login_event(request, request.user, "auth.2fa_recovery_codes_renewed", "Recovery codes replaced")
    return _show_codes(request, codes)


urlpatterns = [
    path("", verify_view, name="two_factor_verify"),
    path("setup/", setup_view, name="two_factor_setup"),
    path("recovery-codes/", recovery_codes_view, name="two_factor_recovery_codes"),
]


# --- Login audit -------------------------------------------------------------------------------------


def record_login_event(request, user, action: str, summary: str = "", username: str = "") -> None:
    """One audit entry (reporting.AuditEntry) for a sign-in event; never a password or a code."""
    from reporting.models import AuditEntry

    real_user = user if getattr(user, "pk", None) else None
    name = (real_user.get_username() if real_user else username or "(unknown)")[:150]
    agent = (request.META.get("HTTP_USER_AGENT", "") if request is not None else "")[:120]
    address = client_ip(request)
    with transaction.atomic():
        AuditEntry.objects.create(
            actor=real_user,
            actor_username=name,
            action=action,
            object_type="auth.user",
            object_id=str(real_user.pk) if real_user else "",
            summary=f"{summary} from {address or 'unknown address'}".strip()[:300],
            after={"ip": address, "user_agent": agent} if address or agent else None,
        )


def _on_login(sender, request, user, **kwargs):
    record_login_event(request, user, "auth.login", "Signed in")


def _on_logout(sender, request, user, **kwargs):
    if user is not None:
        record_login_event(request, user, "auth.logout", "Signed out")


def _on_login_failed(sender, credentials, request=None, **kwargs):
    username = str((credentials or {}).get("username") or "")
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.filter(username=username).first() if username else None
    record_login_event(request, user, "auth.login_failed", "Wrong username or password", username=username)


def _on_locked_out(sender, request, username=None, ip_address=None, **kwargs):
    record_login_event(request, None, "auth.locked_out", "Locked out after repeated failures", username=username or "")


def connect_signals() -> None:
    from axes.signals import user_locked_out
    from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed

    user_logged_in.connect(_on_login, dispatch_uid="smartpay.audit_login")
    user_logged_out.connect(_on_logout, dispatch_uid="smartpay.audit_logout")
    user_login_failed.connect(_on_login_failed, dispatch_uid="smartpay.audit_login_failed")
    user_locked_out.connect(_on_locked_out, dispatch_uid="smartpay.audit_locked_out")
