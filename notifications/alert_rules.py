"""Alert rules: each looks at one kind of trouble, raises an alert per problem it finds and
auto-resolves the alerts of its kind whose problem is gone. `evaluate_all` runs them all (the
`notifications.evaluate_alerts` task, beat every minute); each is a few grouped queries.

Money going wrong where it happens (a stray charge, a gateway object that does not match its
payment, a reconciliation run) also raises its alert at once from that code; the rules here are what
finds everything else, and what resolves alerts when things are back to normal.

A problem that still holds is raised again at each evaluation: its alert counts it (`count`,
`last_seen_at`), and an alert staff resolved while its problem remains opens again as a new one.
Backlogs that only a person clears (failed webhook events, failed event deliveries, rejected
documents, failed reconciliation runs) are looked for over the last LOOKBACK.

Bouncing email is raised where a bounce or complaint suppresses an address
(`notifications.emails`), and resolved when staff lift the suppression.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta

from django.conf import settings
from django.core.cache import cache
from django.db.models import Count, Max, Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from notifications.alerts import (
    AlertKind,
    alert_raise,
    alert_raise_safely,
    alert_resolve,
    requeue_lost_emails,
    resolve_all_but,
)
from notifications.models import AlertSeverity

logger = logging.getLogger("smartpay.notifications")

LOOKBACK = timedelta(days=7)
CREDIT_LEDGER_EVERY_SECONDS = 3600  # the drift check reads every ledger row: hourly is enough
CREDIT_LEDGER_CACHE_KEY = "alerts:credit_ledger_checked"
LISTED_IDS = 10  # ids kept in an alert's context (the admin link lists them all)


def money(amount: int, currency: str) -> str:
    """Minor units as `1,025.00 PEN` (both currencies have two decimals), as the admin shows them."""
    whole, cents = divmod(abs(amount), 100)
    return f"{'-' if amount < 0 else ''}{whole:,}.{cents:02d} {currency}"


# --- Gateways ----------------------------------------------------------------------------------------


def breaker_open() -> dict:
    """One alert per gateway whose circuit breaker is open; resolved when it closes. Half-open
    (probing) leaves the alert as it is."""
    from payments import breaker
    from payments.gateways.registry import gateway_names

    keep, raised = set(), 0
    for gateway in gateway_names():
        current = breaker.state(gateway)
        if current.state == breaker.CLOSED:
            continue
        keep.add(gateway)
        if current.state == breaker.OPEN:
            alert_raise(
                kind=AlertKind.BREAKER_OPEN,
                dedupe_key=gateway,
                severity=AlertSeverity.CRITICAL,
                title=f"{gateway}: circuit breaker open",
                detail=(
                    f"{gateway} kept failing ({current.consecutive_failures} consecutive failures): new payments "
                    f"go to the next healthy gateway, and tokens for {gateway} get 503 gateway_unavailable. "
                    f"A probe call is let through in {current.retry_after} s; its success closes the breaker."
                ),
                context={"gateway": gateway},
            )
            raised += 1
    resolved = resolve_all_but(AlertKind.BREAKER_OPEN, keep)
    return {"raised": raised, "resolved": resolved}


SUCCESS_OUTCOMES = ("succeeded", "authorized")
FINAL_OUTCOMES = (*SUCCESS_OUTCOMES, "declined", "unavailable", "unknown", "invalid", "error")


def gateway_success_rate(*, now=None) -> dict:
    """Per gateway, the share of charges that took or held money over the last window, in one
    aggregate over attempts. A charge is one idempotency key (its retries are one call); it counts
    once it has a final outcome. Below ALERT_SUCCESS_RATE_MIN_SAMPLE charges the rule says nothing:
    an open alert stays open until a window with enough charges shows the rate back."""
    from payments.enums import AttemptOperation
    from payments.models import PaymentAttempt

    now = now or timezone.now()
    minutes = settings.ALERT_SUCCESS_RATE_WINDOW_MINUTES
    floor, sample = settings.ALERT_SUCCESS_RATE_MIN_PERCENT, settings.ALERT_SUCCESS_RATE_MIN_SAMPLE
    rows = (
        PaymentAttempt.objects.filter(
            operation=AttemptOperation.CHARGE,
            created_at__gte=now - timedelta(minutes=minutes),
            outcome__in=FINAL_OUTCOMES,
        )
        .order_by()
        .values("gateway")
        .annotate(
            charges=Count("idempotency_key", distinct=True),
            succeeded=Count("idempotency_key", distinct=True, filter=Q(outcome__in=SUCCESS_OUTCOMES)),
        )
    )
    raised = resolved = 0
    for row in rows:
        gateway, charges, succeeded = row["gateway"], row["charges"], row["succeeded"]
        if charges < max(1, sample):
            continue
        rate = succeeded * 100 / charges
        if rate >= floor:
            resolved += alert_resolve(AlertKind.GATEWAY_SUCCESS_RATE_LOW, gateway)
            continue
        alert_raise(
            kind=AlertKind.GATEWAY_SUCCESS_RATE_LOW,
            dedupe_key=gateway,
            severity=AlertSeverity.WARNING,
            title=f"{gateway}: {rate:.0f}% of charges succeeded in the last {minutes} min",
            detail=(
                f"{succeeded} of {charges} charges at {gateway} took or held money in the last {minutes} minutes "
                f"(alert below {floor}%). Declines, unavailable and unknown outcomes count against it: look at "
                "the attempts' outcomes and error codes of the gateway's recent payments."
            ),
            context={"gateway": gateway, "charges": charges, "succeeded": succeeded, "window_minutes": minutes},
        )
        raised += 1
    return {"raised": raised, "resolved": resolved}


# --- Webhooks in, events out ---------------------------------------------------------------------------


def webhook_processing_failed(*, now=None) -> dict:
    """One alert per gateway with webhook events `failed` (retries exhausted) received in the last
    LOOKBACK; resolved once none is left (staff's **Retry now** processed them)."""
    from payments.models import WebhookEvent

    now = now or timezone.now()
    rows = (
        WebhookEvent.objects.filter(status=WebhookEvent.FAILED, received_at__gte=now - LOOKBACK)
        .order_by()
        .values("gateway")
        .annotate(failed=Count("pk"), latest=Max("received_at"))
    )
    keep = set()
    for row in rows:
        gateway = row["gateway"]
        keep.add(gateway)
        alert_raise(
            kind=AlertKind.WEBHOOK_PROCESSING_FAILED,
            dedupe_key=gateway,
            severity=AlertSeverity.WARNING,
            title=f"{row['failed']} {gateway} webhook event(s) failed",
            detail=(
                f"{row['failed']} webhook event(s) from {gateway} could not be processed after every retry. "
                "Their payments may be behind the gateway: see Webhook events (status failed) in the admin, "
                "fix the cause, then Retry now."
            ),
            context={"gateway": gateway, "failed": row["failed"]},
        )
    resolved = resolve_all_but(AlertKind.WEBHOOK_PROCESSING_FAILED, keep)
    return {"raised": len(keep), "resolved": resolved}


def event_delivery_failed(*, now=None) -> dict:
    """One alert per client app with outgoing events `failed` (every try of the schedule failed)
    created in the last LOOKBACK; resolved once none is left (redelivered, or delivered)."""
    from notifications.models import DeliveryState, OutgoingEvent

    now = now or timezone.now()
    rows = (
        OutgoingEvent.objects.filter(delivery_state=DeliveryState.FAILED, created_at__gte=now - LOOKBACK)
        .order_by()
        .values("client_app", "client_app__name")
        .annotate(failed=Count("pk"))
    )
    keep = set()
    for row in rows:
        app_id, name = row["client_app"], row["client_app__name"]
        keep.add(app_id)
        alert_raise(
            kind=AlertKind.EVENT_DELIVERY_FAILED,
            dedupe_key=app_id,
            severity=AlertSeverity.WARNING,
            title=f"Events to {name} failed: {row['failed']} undelivered",
            detail=(
                f"{row['failed']} event(s) for {name} ({app_id}) were never accepted by its webhook URL after "
                "every try. Check the URL with the app's owner, then Redeliver them from Outgoing events."
            ),
            context={"client_app": app_id, "failed": row["failed"]},
        )
    resolved = resolve_all_but(AlertKind.EVENT_DELIVERY_FAILED, keep)
    return {"raised": len(keep), "resolved": resolved}


# --- Reconciliation, invoices, credits -------------------------------------------------------------------


def reconciliation(*, now=None) -> dict:
    """`reconciliation_failed`: the latest run of a (gateway, day) of the last LOOKBACK failed;
    resolved when a later run of that day finishes. `reconciliation_differences`: open
    reconciliation issues of a (gateway, day); resolved when none is open (fixed by a rerun, or
    resolved by staff)."""
    from payments.models import ReconciliationIssue, ReconciliationRun

    now = now or timezone.now()
    latest: dict[tuple[str, object], ReconciliationRun] = {}
    runs = ReconciliationRun.objects.filter(day__gte=(now - LOOKBACK).date()).order_by("started_at", "pk")
    for run in runs.only("pk", "gateway", "day", "status", "error", "started_at"):
        latest[(run.gateway, run.day)] = run  # the last one started wins
    failed_keep = set()
    for (gateway, day), run in latest.items():
        key = f"{gateway}:{day}"
        if run.status == ReconciliationRun.FINISHED:
            continue
        failed_keep.add(key)
        if run.status == ReconciliationRun.FAILED:
            alert_raise(
                kind=AlertKind.RECONCILIATION_FAILED,
                dedupe_key=key,
                severity=AlertSeverity.CRITICAL,
                title=f"Reconciliation {gateway} {day} failed",
                detail=(
                    f"The run stopped: {run.error}\nRun the day again "
                    f"(python manage.py reconcile --date {day} --gateway {gateway})."
                ),
                context={"gateway": gateway, "day": str(day), "run": run.pk},
            )
    resolved = resolve_all_but(AlertKind.RECONCILIATION_FAILED, failed_keep)

    differences_keep = set()
    issues = (
        ReconciliationIssue.objects.filter(resolved_at__isnull=True)
        .order_by()
        .values("gateway", "day")
        .annotate(open_issues=Count("pk"))
    )
    for row in issues:
        gateway, day, count = row["gateway"], row["day"], row["open_issues"]
        key = f"{gateway}:{day}"
        differences_keep.add(key)
        alert_raise(
            kind=AlertKind.RECONCILIATION_DIFFERENCES,
            dedupe_key=key,
            severity=AlertSeverity.WARNING,
            title=f"Reconciliation {gateway} {day}: {count} open issue(s)",
            detail=(
                f"{count} difference(s) between {gateway} and SmartPay for {day} need a person: see "
                "Reconciliation issues in the admin; resolve them there once handled."
            ),
            context={"gateway": gateway, "day": str(day), "open_issues": count},
        )
    resolved += resolve_all_but(AlertKind.RECONCILIATION_DIFFERENCES, differences_keep)
    return {"raised": len(differences_keep) + len(failed_keep), "resolved": resolved}


def pse_rejected(*, now=None) -> dict:
    """One alert while documents of the last LOOKBACK are `rejected` by SUNAT or the PSE; resolved
    when none is left (the status moves only by a new submission, so usually by staff)."""
    from billing.enums import InvoiceStatus
    from billing.models import Invoice

    now = now or timezone.now()
    rejected = (
        Invoice.objects.annotate(changed=Coalesce("status_changed_at", "issued_at"))
        .filter(status=InvoiceStatus.REJECTED, changed__gte=now - LOOKBACK)
        .order_by("-changed")
    )
    rows = list(rejected.values_list("pk", "series", "correlative", "sunat_response_code")[: LISTED_IDS + 1])
    if not rows:
        return {"raised": 0, "resolved": alert_resolve(AlertKind.PSE_REJECTED, "all")}
    count = rejected.count() if len(rows) > LISTED_IDS else len(rows)
    numbers = ", ".join(f"{series}-{correlative:08d}" for _, series, correlative, _ in rows[:LISTED_IDS])
    alert_raise(
        kind=AlertKind.PSE_REJECTED,
        dedupe_key="all",
        severity=AlertSeverity.WARNING,
        title=f"{count} document(s) rejected by SUNAT or the PSE",
        detail=(
            f"Rejected in the last {LOOKBACK.days} days: {numbers}{' …' if count > LISTED_IDS else ''}. "
            "A rejected document has no tax value: see its SUNAT code and description in Invoices (status "
            "rejected), correct the cause and issue it again."
        ),
        context={"invoices": [pk for pk, *_ in rows[:LISTED_IDS]], "rejected": count},
    )
    return {"raised": 1, "resolved": 0}


def credit_ledger_drift(*, force: bool = False) -> dict:
    """One alert while credit balances disagree with their ledger (`check_credit_ledger`); at most
    hourly (it reads every ledger row) unless `force`."""
    from credits.selectors import credit_ledger_drift as find_drift

    if not force and not cache.add(CREDIT_LEDGER_CACHE_KEY, 1, timeout=CREDIT_LEDGER_EVERY_SECONDS):
        return {"skipped": True}
    drift = find_drift()
    if not drift:
        return {"raised": 0, "resolved": alert_resolve(AlertKind.CREDIT_LEDGER_DRIFT, "all")}
    alert_raise(
        kind=AlertKind.CREDIT_LEDGER_DRIFT,
        dedupe_key="all",
        severity=AlertSeverity.CRITICAL,
        title=f"Credit ledger drift in {len(drift)} account(s)",
        detail="\n".join(d.describe() for d in drift[:LISTED_IDS])
        + ("\n…" if len(drift) > LISTED_IDS else "")
        + "\nCached balances, ledger rows and lots disagree: run `python manage.py check_credit_ledger`.",
        context={"accounts": [d.account for d in drift[:LISTED_IDS]], "drifting": len(drift)},
    )
    return {"raised": 1, "resolved": 0}


# --- Money the payments do not own ----------------------------------------------------------------------


def stray_charge_alert(stray, *, payment_status: str = "") -> None:
    """Raise the alert of one stray charge (the rule below and `stray_charge_raise` share it)."""
    from payments.models import StrayCharge

    needs_staff = (
        stray.reason == StrayCharge.FINAL_PAYMENT
        or stray.status == StrayCharge.REFUND_FAILED
        or not settings.STRAY_CHARGE_AUTO_REFUND
    )
    if stray.status == StrayCharge.REFUND_FAILED:
        what = f"its automatic refund failed ({stray.last_error or 'no detail'}): refund it from the admin"
    elif needs_staff:
        what = "it waits for staff: refund it with one click on Stray charges in the admin"
    else:
        what = "a duplicate: it is being refunded automatically; the alert resolves once it is"
    payment = f"{stray.payment_id}{f' ({payment_status})' if payment_status else ''}"
    alert_raise(
        kind=AlertKind.STRAY_CHARGE,
        dedupe_key=stray.pk,
        severity=AlertSeverity.CRITICAL if needs_staff else AlertSeverity.WARNING,
        title=f"Stray charge: {stray.gateway} holds {money(stray.amount, stray.currency)} for {stray.payment_id}",
        detail=(
            f"{stray.gateway} charge {stray.gateway_payment_id} holds money for payment {payment}, which does not "
            f"own it ({stray.get_reason_display().lower()}, found via {stray.detected_via or 'unknown'}); {what}."
        ),
        context={
            "stray_charge": stray.pk,
            "payment": stray.payment_id,
            "gateway": stray.gateway,
            "gateway_payment_id": stray.gateway_payment_id,
        },
    )


def stray_charge_raise(stray, *, payment_status: str = "") -> None:
    """For `payments.services.recording`, right where a stray charge is recorded (in its transaction):
    the alert opens with the stray charge. Never raises: an error is logged and the rule raises it
    within a minute."""
    try:
        stray_charge_alert(stray, payment_status=payment_status)
    except Exception:
        logger.exception("stray charge alert not raised", extra={"stray_charge": stray.pk})


def money_mismatch_raise(payment, result, *, gateway: str, source: str) -> None:
    """For `payments.services.recording`: a gateway object that does not fit its payment (amount or
    currency) was refused. Staff resolve it (no rule can tell when it is handled). Never raises."""
    theirs = money(result.amount, (result.currency or "?").upper())
    alert_raise_safely(
        kind=AlertKind.MONEY_MISMATCH,
        dedupe_key=f"{payment.pk}:{gateway}:{result.gateway_payment_id or '-'}",
        severity=AlertSeverity.CRITICAL,
        title=f"{gateway} object does not match payment {payment.pk}",
        detail=(
            f"{gateway} reports {theirs} ({result.gateway_payment_id or 'no id'}, {result.status}) for payment "
            f"{payment.pk} of {money(payment.amount, payment.currency)} ({payment.status}), learned via {source}. "
            "It was not applied: compare both at the gateway and in the admin, then resolve this alert."
        ),
        context={"payment": payment.pk, "gateway": gateway, "gateway_payment_id": result.gateway_payment_id or ""},
    )


def stray_charges() -> dict:
    """One alert per stray charge `open` or `refund_failed`; resolved once it is refunded
    (`refunding` leaves the alert as it is)."""
    from payments.models import StrayCharge

    keep, raised = set(), 0
    pending = StrayCharge.objects.exclude(status=StrayCharge.REFUNDED).order_by("created_at")
    for stray in pending:
        keep.add(stray.pk)
        if stray.status in (StrayCharge.OPEN, StrayCharge.REFUND_FAILED):
            stray_charge_alert(stray)
            raised += 1
    resolved = resolve_all_but(AlertKind.STRAY_CHARGE, keep)
    return {"raised": raised, "resolved": resolved}


# --- All of them ---------------------------------------------------------------------------------------

RULES: dict[str, Callable[[], dict]] = {
    "breaker_open": breaker_open,
    "gateway_success_rate": gateway_success_rate,
    "webhook_processing_failed": webhook_processing_failed,
    "event_delivery_failed": event_delivery_failed,
    "reconciliation": reconciliation,
    "pse_rejected": pse_rejected,
    "credit_ledger_drift": credit_ledger_drift,
    "stray_charges": stray_charges,
}


def evaluate_all() -> dict:
    """Run every rule; one that fails is logged and the others still run. Then queue again the
    emails of new alerts a broker outage lost. Returns what each rule did."""
    report: dict = {}
    for name, rule in RULES.items():
        try:
            report[name] = rule()
        except Exception:
            logger.exception("alert rule failed", extra={"rule": name})
            report[name] = {"error": True}
    try:
        report["emails_requeued"] = requeue_lost_emails()
    except Exception:
        logger.exception("alert emails not re-queued")
    return report
