"""Alerts: problems staff must not miss, on the admin index and (new ones) by email.

`alert_raise` is called explicitly where a problem is found: by the rules in
`notifications.alert_rules` (beat, every minute) and right where money goes wrong
(`payments.services.recording`, reconciliation). There is no logging handler: the `smartpay.alerts`
log lines stay as they are, and an alert is a row staff see and act on.

* **One row per unresolved problem.** Unresolved alerts are unique per (kind, dedupe_key) (a partial
  unique constraint): raising the same problem again adds 1 to `count`, moves `last_seen_at` and
  refreshes the title, detail, context and severity. The insert decides, not a read before it, so
  concurrent raises make one row.
* **Emailed once.** A new alert (severity warning or critical) is emailed to `ALERT_EMAILS` after
  its transaction commits; the task claims `emailed_at` with a conditional UPDATE first, so it is
  never sent twice, and beat's evaluation queues again alerts whose email a broker outage lost.
* **Resolved alerts are history.** The same problem raised after its alert was resolved is a new
  alert, emailed again.
"""

from __future__ import annotations

import json
import logging
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.urls import reverse
from django.utils import timezone

from notifications.models import Alert, AlertResolution, AlertSeverity, AlertStatus
from smartpay.clock import business_time
from smartpay.queueing import enqueue, enqueue_after_commit

logger = logging.getLogger("smartpay.notifications")


class AlertKind:
    """The kinds raised today (a kind is a plain string: a new one needs no migration)."""

    BREAKER_OPEN = "breaker_open"
    GATEWAY_SUCCESS_RATE_LOW = "gateway_success_rate_low"
    WEBHOOK_PROCESSING_FAILED = "webhook_processing_failed"
    EVENT_DELIVERY_FAILED = "event_delivery_failed"
    RECONCILIATION_FAILED = "reconciliation_failed"
    RECONCILIATION_DIFFERENCES = "reconciliation_differences"
    PSE_REJECTED = "pse_rejected"
    CREDIT_LEDGER_DRIFT = "credit_ledger_drift"
    STRAY_CHARGE = "stray_charge"
    MONEY_MISMATCH = "money_mismatch"


UNRESOLVED = (AlertStatus.OPEN, AlertStatus.ACKNOWLEDGED)
EMAILED_SEVERITIES = (AlertSeverity.WARNING, AlertSeverity.CRITICAL)
EMAIL_SWEEP_AFTER = timedelta(minutes=2)  # a new alert's email not claimed by then was lost: queue it again
EMAIL_SWEEP_WITHIN = timedelta(hours=1)  # older ones are not emailed late (they are on the panel)


def alert_raise(
    kind: str,
    dedupe_key: str,
    severity: str,
    title: str,
    detail: str = "",
    context: dict | None = None,
) -> Alert:
    """Open the alert (kind, dedupe_key), or count one more sighting of the unresolved one.

    Safe inside the caller's transaction (it runs in a savepoint) and against concurrent raises of
    the same problem (the partial unique constraint decides). A new alert is emailed after commit.
    """
    if severity not in AlertSeverity.values:
        raise ValueError(f"unknown alert severity {severity!r}")
    values = {
        "severity": severity,
        "title": title[:200],
        "detail": detail,
        "context": context or {},
    }
    dedupe_key = dedupe_key[:200]
    for _ in range(3):  # a resolve between our read and our update: the next pass opens a new alert
        now = timezone.now()
        with transaction.atomic():
            try:
                alert, created = Alert.objects.get_or_create(
                    kind=kind,
                    dedupe_key=dedupe_key,
                    resolved_at=None,
                    defaults={**values, "first_seen_at": now, "last_seen_at": now},
                )
            except IntegrityError:
                continue  # lost the race to a raise whose row was resolved before we could read it
            if created:
                if severity in EMAILED_SEVERITIES and alert_recipients():
                    from notifications.alert_tasks import send_alert_email

                    enqueue_after_commit(send_alert_email, alert.pk)
                return alert
            bumped = Alert.objects.filter(pk=alert.pk, resolved_at__isnull=True).update(
                count=F("count") + 1, last_seen_at=now, **values
            )
        if bumped:
            alert.refresh_from_db()
            return alert
    raise RuntimeError(f"alert {kind}:{dedupe_key} could not be raised (resolved repeatedly meanwhile)")


def alert_raise_safely(**kwargs) -> Alert | None:
    """`alert_raise` for code that must carry on whatever happens (money paths): an error is logged,
    never raised. The savepoint in `alert_raise` leaves the caller's transaction usable."""
    try:
        return alert_raise(**kwargs)
    except Exception:
        logger.exception("alert not raised", extra={"kind": kwargs.get("kind"), "dedupe_key": kwargs.get("dedupe_key")})
        return None


def alert_resolve(kind: str, dedupe_key: str, resolution: str = AlertResolution.AUTO, *, user=None) -> int:
    """Resolve the unresolved alert (kind, dedupe_key), if any. Returns 1 if one was resolved, else 0."""
    return _resolve(Alert.objects.filter(kind=kind, dedupe_key=dedupe_key[:200]), resolution, user=user)


def alerts_resolve(alerts, *, user) -> int:
    """Staff resolve these alerts (a queryset or iterable). Returns how many were unresolved."""
    ids = [alert.pk for alert in alerts]
    return _resolve(Alert.objects.filter(pk__in=ids), AlertResolution.STAFF, user=user)


def _resolve(queryset, resolution: str, *, user=None) -> int:
    if resolution not in AlertResolution.values:
        raise ValueError(f"unknown alert resolution {resolution!r}")
    return queryset.filter(resolved_at__isnull=True).update(
        status=AlertStatus.RESOLVED, resolved_at=timezone.now(), resolution=resolution, resolved_by=user
    )


def alert_acknowledge(alert: Alert, user) -> bool:
    """`user` is on it: an open alert becomes acknowledged (still listed until resolved). True if it moved."""
    moved = Alert.objects.filter(pk=alert.pk, status=AlertStatus.OPEN).update(
        status=AlertStatus.ACKNOWLEDGED, acknowledged_by=user, acknowledged_at=timezone.now()
    )
    if moved:
        alert.refresh_from_db()
    return bool(moved)


def resolve_all_but(kind: str, keep: set[str] | frozenset[str]) -> int:
    """Auto-resolve unresolved alerts of `kind` whose dedupe key is not in `keep` (the condition cleared)."""
    return _resolve(Alert.objects.filter(kind=kind).exclude(dedupe_key__in=keep), AlertResolution.AUTO)


# --- Email ---------------------------------------------------------------------------------------------


def alert_recipients() -> list[str]:
    return [address.strip() for address in settings.ALERT_EMAILS if address.strip()]


def admin_url(alert: Alert) -> str:
    return settings.PUBLIC_BASE_URL + reverse("admin:notifications_alert_change", args=[alert.pk])


def send_alert_email_now(alert_id: str) -> bool:
    """Email one alert to ALERT_EMAILS, at most once: `emailed_at` is claimed before sending.

    A failure after the claim is logged and not retried (the alert is on the admin panel anyway);
    a second run, or a run for a resolved or acknowledged alert, sends nothing."""
    recipients = alert_recipients()
    if not recipients:
        return False
    claimed = Alert.objects.filter(pk=alert_id, emailed_at__isnull=True, status=AlertStatus.OPEN).update(
        emailed_at=timezone.now()
    )
    if not claimed:
        return False
    alert = Alert.objects.get(pk=alert_id)
    from django.core.mail import send_mail

    subject = f"[SmartPay {alert.severity}] {alert.title}"
    body = "\n".join(
        [
            alert.title,
            "",
            alert.detail or "(no detail)",
            "",
            f"Kind: {alert.kind} ({alert.dedupe_key})",
            f"First seen: {business_time(alert.first_seen_at):%Y-%m-%d %H:%M:%S} (Lima)",
            f"About: {json.dumps(alert.context, ensure_ascii=False, sort_keys=True)}" if alert.context else "",
            f"In the admin: {admin_url(alert)}",
            "",
            "Later sightings of this problem are counted on the same alert and not emailed again until it",
            "is resolved.",
        ]
    )
    try:
        send_mail(subject.replace("\n", " ")[:250], body, settings.DEFAULT_FROM_EMAIL, recipients)
    except Exception:
        logger.exception("alert email not sent; it is not retried", extra={"alert": alert.pk})
        return False
    return True


def requeue_lost_emails(*, now=None) -> int:
    """Queue the email of new alerts whose email was never claimed (a broker outage lost the task)."""
    if not alert_recipients():
        return 0
    now = now or timezone.now()
    lost = Alert.objects.filter(
        status=AlertStatus.OPEN,
        emailed_at__isnull=True,
        severity__in=EMAILED_SEVERITIES,
        first_seen_at__lt=now - EMAIL_SWEEP_AFTER,
        first_seen_at__gte=now - EMAIL_SWEEP_WITHIN,
    ).values_list("pk", flat=True)
    from notifications.alert_tasks import send_alert_email

    queued = 0
    for alert_id in lost:
        queued += enqueue(send_alert_email, alert_id)
    return queued
