"""Reconciliation: a day of a gateway's records compared with our payments, in SQL.

`reconcile_day` streams the gateway's listing for the day (widened by LISTING_MARGIN on both sides,
so clock skew at midnight cannot make a record look missing) into a staging table in batches, then
matches and compares in the database, reading results with `.iterator(chunk_size=...)`. Memory stays
bounded by one gateway page plus one batch, whatever the size of the day.

What it finds, per (gateway, day) in settings.TIME_ZONE:

* **missing_ours**: a record the gateway created that day that matches no payment of ours, neither
  by the gateway's id nor by the reference we sent (our payment id). A record that carries no
  reference of ours and holds no money (declined, canceled, fully refunded: e.g. Culqi's card
  validation charges) is not an issue. A record whose reference names a payment already tied to
  another charge, or named by several records, is not matched: it may be a second charge.
* **missing_theirs**: a payment of ours at that gateway, created that day, that reached the gateway
  (it has a gateway id), which the listing does not contain and a direct `retrieve` does not find.
* **status_mismatch**: we are ahead of the gateway, or the two contradict each other (ours
  succeeded, theirs failed).
* **amount_mismatch**: currency, amount (captured amount once captured) or refunded total differ.

**Fixed, not reported**: a payment that is *behind* (ours pending, processing, requires_action or
authorized; the gateway's status is a move the status machine allows from there, refunds included)
with the same amount and currency is brought up to date like a webhook would: row locked, a `sync`
attempt row written (the audit), then the one writer (`services.recording`). A captured payment
whose refunds are *behind* the gateway's (a refund made in the gateway's dashboard, a refund whose
answer was lost) is fixed the same way: the gateway's object is fetched and its refunds recorded,
each as one `Refund` row with its claw-back and credit note. What is still different after the
fixes (we are ahead, amounts contradict) is an issue for a person.

Idempotency: open issues are unique per dedupe key; a rerun of the day refreshes them, and open
issues of that day that a finished rerun no longer finds are resolved by it. One run per
(gateway, day) at a time (partial unique constraint). The gateway is never called inside a
transaction or under a row lock.
"""

from __future__ import annotations

import logging
import operator
import time
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import date, datetime, timedelta
from datetime import time as dt_time
from functools import reduce
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.mail import mail_admins
from django.db import IntegrityError, transaction
from django.db.models import Case, CharField, Exists, F, OuterRef, Q, QuerySet, Subquery, Value, When
from django.utils import timezone

from payments import state
from payments.enums import PaymentStatus as S
from payments.gateways.base import (
    ChargeResult,
    ChargeStatus,
    GatewayAdapter,
    GatewayError,
    GatewayNotFound,
    GatewayUnavailable,
)
from payments.gateways.registry import get_adapter
from payments.models import Payment, ReconciliationIssue, ReconciliationRecord, ReconciliationRun, WebhookEvent
from payments.services import recording
from payments.services.operations import payment_record_sync
from smartpay.clock import business_date

logger = logging.getLogger("smartpay.reconciliation")
alerts = logging.getLogger("smartpay.alerts")

BATCH_SIZE = 1000  # staging rows and issues per INSERT
CHUNK_SIZE = 2000  # rows per fetch while comparing
FIX_PAGE_SIZE = 500
LISTING_MARGIN = timedelta(minutes=15)  # listed beyond the day on both sides, for matching only
STALE_RUN_AFTER = timedelta(hours=6)  # a `running` run older than this died with its process
CONFIRM_MISSING_MAX = 200  # `retrieve` calls per run to confirm missing_theirs; past that, unconfirmed

PRE_CAPTURE = (S.PENDING, S.PROCESSING, S.REQUIRES_ACTION, S.AUTHORIZED)
CAPTURED = (S.SUCCEEDED, S.PARTIALLY_REFUNDED, S.REFUNDED)
# Where a gateway may take a payment that is behind: the status machine's moves, plus refunds
# (the one writer records the capture they imply first).
GATEWAY_MOVES: dict[str, frozenset[str]] = {
    status: state.ALLOWED[status] | {S.REFUNDED, S.PARTIALLY_REFUNDED} for status in PRE_CAPTURE
}
NO_MONEY = (ChargeStatus.FAILED, ChargeStatus.CANCELED)

# The gateway's status (ChargeStatus) in our words (PaymentStatus): only `pending` differs.
THEIRS_AS_OURS = Case(
    When(status=ChargeStatus.PENDING, then=Value(S.PROCESSING)), default=F("status"), output_field=CharField()
)


class ReconciliationAlreadyRunning(Exception):
    """Another run of the same gateway and day has not finished."""


def day_bounds(day: date) -> tuple[datetime, datetime]:
    """[start, end) of `day` in settings.TIME_ZONE, timezone-aware."""
    zone = ZoneInfo(settings.TIME_ZONE)
    return datetime.combine(day, dt_time.min, tzinfo=zone), datetime.combine(day + timedelta(days=1), dt_time.min, zone)


def yesterday() -> date:
    return business_date() - timedelta(days=1)


def _their_status(status: str) -> str:
    return S.PROCESSING if status == ChargeStatus.PENDING else status


def _is_behind(ours: str, theirs: str) -> bool:
    return ours in GATEWAY_MOVES and theirs in GATEWAY_MOVES[ours]


# --- The run ----------------------------------------------------------------------------------------


def reconcile_day(*, gateway: str, day: date, progress: Callable[[int], Any] | None = None) -> ReconciliationRun:
    """Reconcile one gateway's records of `day` with ours; returns the run (finished or failed).

    `progress(n)` is called after each staged batch with the number of records it held.
    A gateway error while listing (or a listing proven incomplete) marks the run failed (staging kept
    for inspection) and alerts;
    any other error does the same and is raised. Raises ReconciliationAlreadyRunning when another
    run of the day is in progress.
    """
    adapter = get_adapter(gateway)
    run = _start_run(gateway, day)
    start, end = day_bounds(day)
    logger.info("reconciliation started", extra={"gateway": gateway, "day": str(day), "run": run.pk})
    try:
        _stage(run, adapter, start - LISTING_MARGIN, end + LISTING_MARGIN, progress)
    except GatewayError as error:
        return _fail(run, f"{type(error).__name__}: {error.message}")
    except BaseException as error:
        _fail(run, f"{type(error).__name__}: {error}")
        raise
    try:
        return _compare(run, adapter, start, end)
    except GatewayError as error:
        return _fail(run, f"{type(error).__name__}: {error.message}")
    except BaseException as error:
        _fail(run, f"{type(error).__name__}: {error}")
        raise


def _start_run(gateway: str, day: date) -> ReconciliationRun:
    now = timezone.now()
    ReconciliationRun.objects.filter(
        gateway=gateway, day=day, status=ReconciliationRun.RUNNING, started_at__lt=now - STALE_RUN_AFTER
    ).update(status=ReconciliationRun.FAILED, finished_at=now, error="abandoned: its process stopped")
    try:
        with transaction.atomic():
            run = ReconciliationRun.objects.create(gateway=gateway, day=day)
    except IntegrityError:
        raise ReconciliationAlreadyRunning(f"a reconciliation of {gateway} for {day} is already running") from None
    # A rerun replaces the staging rows an earlier (failed) run of the day left for inspection.
    ReconciliationRecord.objects.filter(run__gateway=gateway, run__day=day).exclude(run=run).delete()
    return run


def _stage(
    run: ReconciliationRun,
    adapter: GatewayAdapter,
    start: datetime,
    end: datetime,
    progress: Callable[[int], Any] | None,
) -> None:
    """Stream the gateway's listing into the staging table, BATCH_SIZE rows per INSERT."""
    batch: list[ReconciliationRecord] = []
    for result in adapter.list_charges(day_start=start, day_end=end):
        if not result.gateway_payment_id:
            continue
        batch.append(
            ReconciliationRecord(
                run=run,
                gateway_payment_id=result.gateway_payment_id[:120],
                reference=(result.reference or "")[:120],
                status=str(result.status),
                gateway_status=(result.gateway_status or "")[:40],
                decline_code=(result.decline_code or "")[:60],
                amount=result.amount,
                amount_refunded=result.amount_refunded,
                currency=result.currency[:3],
                created_at=result.created_at,
            )
        )
        if len(batch) >= BATCH_SIZE:
            _write_records(batch, progress)
            batch = []
    _write_records(batch, progress)


def _write_records(batch: list[ReconciliationRecord], progress: Callable[[int], Any] | None) -> None:
    if not batch:
        return
    ReconciliationRecord.objects.bulk_create(batch, batch_size=BATCH_SIZE, ignore_conflicts=True)
    if progress is not None:
        progress(len(batch))


def _compare(run: ReconciliationRun, adapter: GatewayAdapter, start: datetime, end: datetime) -> ReconciliationRun:
    gateway = run.gateway
    seen_at = timezone.now()
    records = ReconciliationRecord.objects.filter(run=run)
    in_day = Q(created_at__gte=start, created_at__lt=end) | Q(created_at__isnull=True)

    _match(run)
    fixed = _fix_behind(run, records.filter(in_day))
    fixed += _fix_refunds(run, adapter, records.filter(in_day))
    issues = _IssueWriter(run, seen_at)
    _missing_ours(run, records.filter(in_day), issues, start)
    _missing_theirs(run, adapter, start, end, issues)
    _differences(records.filter(in_day), issues)
    issues.flush()

    ours = Payment.objects.filter(gateway=gateway, created_at__gte=start, created_at__lt=end)
    run.gateway_records = records.filter(in_day).count()
    run.matched = records.filter(in_day, payment__isnull=False).count()
    run.our_records = ours.filter(gateway_payment_id__isnull=False).count()
    run.fixed = fixed
    run.issues = issues.found
    run.new_issues = issues.new
    run.status = ReconciliationRun.FINISHED
    run.finished_at = timezone.now()
    run.save()

    resolved = ReconciliationIssue.objects.filter(
        gateway=gateway, day=run.day, resolved_at__isnull=True, last_seen_at__lt=seen_at
    ).update(resolved_at=run.finished_at, resolved_by=f"reconciliation run {run.pk}: no longer found")
    records.delete()  # only the counts and the issues are kept
    logger.info(
        "reconciliation finished",
        extra={
            "gateway": gateway,
            "day": str(run.day),
            "run": run.pk,
            "gateway_records": run.gateway_records,
            "our_records": run.our_records,
            "matched": run.matched,
            "fixed": run.fixed,
            "issues": run.issues,
            "auto_resolved": resolved,
        },
    )
    if run.issues:
        kinds = ", ".join(f"{kind} {count}" for kind, count in sorted(issues.kinds.items()))
        _alert(
            f"Reconciliation {gateway} {run.day}: {run.issues} issue(s), {run.new_issues} new",
            f"{run.issues} difference(s) need a person ({kinds}); {run.new_issues} first found now.\n"
            f"Gateway records {run.gateway_records}, ours {run.our_records}, matched {run.matched}, "
            f"fixed {run.fixed}.\nSee Reconciliation issues in the admin (run {run.pk}).",
            run,
        )
    return run


def _fail(run: ReconciliationRun, error: str) -> ReconciliationRun:
    run.status = ReconciliationRun.FAILED
    run.error = error[:500]
    run.finished_at = timezone.now()
    run.save(update_fields=["status", "error", "finished_at"])
    _alert(
        f"Reconciliation {run.gateway} {run.day} failed",
        f"The run stopped: {run.error}\nIts staging rows are kept for inspection; run the day again "
        f"(python manage.py reconcile --date {run.day} --gateway {run.gateway}).",
        run,
    )
    return run


def _alert(subject: str, message: str, run: ReconciliationRun) -> None:
    alerts.error(
        "%s",
        subject,
        extra={
            "gateway": run.gateway,
            "day": str(run.day),
            "run": run.pk,
            "run_status": run.status,
            "issues": run.issues,
            "new_issues": run.new_issues,
            "fixed": run.fixed,
        },
    )
    from notifications.alerts import AlertKind, alert_raise_safely

    failed = run.status == ReconciliationRun.FAILED
    alert_raise_safely(  # the admin index panel; emailed once to ALERT_EMAILS while it is new
        kind=AlertKind.RECONCILIATION_FAILED if failed else AlertKind.RECONCILIATION_DIFFERENCES,
        dedupe_key=f"{run.gateway}:{run.day}",
        severity="critical" if failed else "warning",
        title=subject,
        detail=message,
        context={"gateway": run.gateway, "day": str(run.day), "run": run.pk},
    )
    if not settings.ALERT_EMAILS:  # one email, not two: the alert's when ALERT_EMAILS is set, else ADMINS'
        mail_admins(subject, message, fail_silently=True)


# --- Matching ---------------------------------------------------------------------------------------


def _match(run: ReconciliationRun) -> None:
    """Tie staging rows to our payments in two UPDATEs: by the gateway's id, else by our reference.

    A reference match needs our payment to have no gateway id yet (it would otherwise be another
    charge for the same payment) and the reference to be on this record only.
    """
    records = ReconciliationRecord.objects.filter(run=run)
    ours = Payment.objects.filter(gateway=run.gateway)
    by_id = ours.filter(gateway_payment_id=OuterRef("gateway_payment_id"))
    records.filter(Exists(by_id)).update(
        payment_id=Subquery(by_id.values("pk")[:1]), matched_by=ReconciliationRecord.MATCHED_BY_ID
    )
    shared = ReconciliationRecord.objects.filter(run=run, reference=OuterRef("reference")).exclude(pk=OuterRef("pk"))
    records.filter(payment__isnull=True).exclude(reference="").filter(
        Exists(ours.filter(pk=OuterRef("reference"), gateway_payment_id__isnull=True)), ~Exists(shared)
    ).update(payment_id=F("reference"), matched_by=ReconciliationRecord.MATCHED_BY_REFERENCE)


# --- Fixing what is behind ----------------------------------------------------------------------------

_PAIR_FIELDS = (
    "pk",
    "gateway_payment_id",
    "reference",
    "status",
    "gateway_status",
    "decline_code",
    "amount",
    "amount_refunded",
    "currency",
    "created_at",
    "matched_by",
    "payment_id",
    "payment__status",
    "payment__amount",
    "payment__amount_captured",
    "payment__amount_refunded",
    "payment__currency",
    "payment__gateway_payment_id",
)


def _fix_behind(run: ReconciliationRun, records: QuerySet) -> int:
    """Bring behind payments up to the gateway's status. Keyset pages, so fixing never disturbs the read."""
    behind = reduce(
        operator.or_, (Q(payment__status=ours, theirs__in=sorted(moves)) for ours, moves in GATEWAY_MOVES.items())
    )
    candidates = (
        records.filter(payment__isnull=False)
        .annotate(theirs=THEIRS_AS_OURS)
        .filter(behind, currency=F("payment__currency"), amount=F("payment__amount"))
        .order_by("pk")
    )
    fixed, last = 0, 0
    while page := list(candidates.filter(pk__gt=last).values(*_PAIR_FIELDS)[:FIX_PAGE_SIZE]):
        for row in page:
            fixed += _fix_one(run, row)
        last = page[-1]["pk"]
    return fixed


def _fix_one(run: ReconciliationRun, row: dict[str, Any]) -> bool:
    result = ChargeResult(
        status=ChargeStatus(row["status"]),
        gateway_payment_id=row["gateway_payment_id"],
        amount=row["amount"],
        currency=row["currency"],
        amount_refunded=row["amount_refunded"],
        decline_code=row["decline_code"] or None,
        gateway_status=row["gateway_status"] or None,
        reference=row["reference"] or None,
        created_at=row["created_at"],
        raw={"source": "reconciliation", "run": run.pk, "gateway_status": row["gateway_status"]},
    )
    started = time.monotonic()
    with transaction.atomic():
        payment = Payment.objects.select_for_update().get(pk=row["payment_id"])
        # Checked again under the lock: a webhook or the settle job may have moved it since the read.
        if (
            not _is_behind(payment.status, _their_status(result.status))
            or payment.gateway_payment_id not in (None, result.gateway_payment_id)
            or (payment.currency, payment.amount) != (result.currency, result.amount)
        ):
            return False
        before = payment.status
        if result.amount_refunded and result.refunds is None:
            return False  # refunds need the gateway's list: `_fix_refunds` fetches it
        payment_record_sync(payment, result, started=started, source=recording.RECONCILIATION)
        changed = payment.recorded_change
    if changed:
        logger.info(
            "reconciliation brought a payment up to date",
            extra={"payment": payment.pk, "gateway": run.gateway, "from_status": before, "to_status": payment.status},
        )
    return changed


def _fix_refunds(run: ReconciliationRun, adapter: GatewayAdapter, records: QuerySet) -> int:
    """Record refunds the gateway has and we do not, from the gateway's own object (its refund list)."""
    candidates = (
        records.filter(
            payment__isnull=False,
            payment__status__in=[*CAPTURED, *PRE_CAPTURE],
            currency=F("payment__currency"),
            amount_refunded__gt=F("payment__amount_refunded"),
        )
        .exclude(gateway_payment_id="")
        .order_by("pk")
        .values_list("payment_id", "gateway_payment_id")[:CONFIRM_MISSING_MAX]
    )
    fixed = 0
    for payment_id, gateway_payment_id in list(candidates):
        started = time.monotonic()
        try:
            result = adapter.retrieve(gateway_payment_id)
        except GatewayError as error:
            logger.warning("refund fix skipped", extra={"payment": payment_id, "error_code": error.code})
            continue
        with transaction.atomic():
            payment = Payment.objects.select_for_update().get(pk=payment_id)
            if payment.gateway_payment_id != result.gateway_payment_id:
                continue
            before = payment.amount_refunded
            payment_record_sync(payment, result, started=started, source=recording.RECONCILIATION)
            fixed += payment.amount_refunded != before
    return fixed


# --- Issues -----------------------------------------------------------------------------------------


class _IssueWriter:
    """Buffers issues and writes them BATCH_SIZE at a time; an open issue with the same key is refreshed."""

    REFRESHED = (
        "payment",
        "gateway_payment_id",
        "our_status",
        "their_status",
        "our_amount",
        "their_amount",
        "our_amount_refunded",
        "their_amount_refunded",
        "currency",
        "detail",
        "last_seen_at",
    )

    def __init__(self, run: ReconciliationRun, seen_at: datetime):
        self.run = run
        self.seen_at = seen_at
        self.buffer: dict[str, ReconciliationIssue] = {}
        self.found = 0
        self.new = 0
        self.kinds: Counter[str] = Counter()

    def add(self, kind: str, *, gateway_payment_id: str = "", payment_id: str | None = None, **fields: Any) -> None:
        key = ReconciliationIssue.key_for(
            gateway=self.run.gateway, kind=kind, gateway_payment_id=gateway_payment_id, payment_id=payment_id or ""
        )
        fields["detail"] = fields.get("detail", "")[:500]
        self.buffer[key] = ReconciliationIssue(
            run=self.run,
            gateway=self.run.gateway,
            day=self.run.day,
            kind=kind,
            gateway_payment_id=gateway_payment_id,
            payment_id=payment_id,
            dedupe_key=key,
            last_seen_at=self.seen_at,
            **fields,
        )
        if len(self.buffer) >= BATCH_SIZE:
            self.flush()

    def flush(self) -> None:
        if not self.buffer:
            return
        with transaction.atomic():
            known = dict(
                ReconciliationIssue.objects.filter(dedupe_key__in=list(self.buffer), resolved_at__isnull=True)
                .select_for_update()
                .values_list("dedupe_key", "pk")
            )
            refreshed, fresh = [], []
            for key, issue in self.buffer.items():
                if key in known:
                    issue.pk = known[key]
                    refreshed.append(issue)
                else:
                    fresh.append(issue)
            ReconciliationIssue.objects.bulk_update(refreshed, self.REFRESHED, batch_size=BATCH_SIZE)
            # The partial unique index is the guard; a concurrent writer's copy is skipped, not doubled.
            ReconciliationIssue.objects.bulk_create(fresh, batch_size=BATCH_SIZE, ignore_conflicts=True)
        self.found += len(self.buffer)
        self.new += len(fresh)
        self.kinds.update(issue.kind for issue in self.buffer.values())
        self.buffer = {}


def _missing_ours(run: ReconciliationRun, records: QuerySet, issues: _IssueWriter, start: datetime) -> None:
    gateway = run.gateway
    by_reference = Payment.objects.filter(pk=OuterRef("reference"))
    webhooks = WebhookEvent.objects.filter(
        gateway=gateway,
        status=WebhookEvent.UNMATCHED,
        received_at__gte=start - LISTING_MARGIN,
        resource_id=OuterRef("gateway_payment_id"),
    )
    shared = ReconciliationRecord.objects.filter(run=run, reference=OuterRef("reference")).exclude(pk=OuterRef("pk"))
    orphans = (
        records.filter(payment__isnull=True)
        .exclude(Q(reference="") & (Q(status__in=NO_MONEY) | Q(amount_refunded__gte=F("amount"))))
        .annotate(
            ref_gateway=Subquery(by_reference.values("gateway")[:1]),
            ref_gateway_payment_id=Subquery(by_reference.values("gateway_payment_id")[:1]),
            reference_shared=Exists(shared),
            has_webhook=Exists(webhooks),
        )
        .order_by("pk")
        .values(
            "gateway_payment_id",
            "reference",
            "status",
            "gateway_status",
            "amount",
            "amount_refunded",
            "currency",
            "created_at",
            "ref_gateway",
            "ref_gateway_payment_id",
            "reference_shared",
            "has_webhook",
        )
    )
    for row in orphans.iterator(chunk_size=CHUNK_SIZE):
        theirs = _their_status(row["status"])
        notes = [
            f"{theirs} {row['amount']} {row['currency']} at {gateway} ({row['gateway_status'] or '-'}), "
            f"created {row['created_at'] or 'at an unknown time'}; no payment of ours"
        ]
        reference, payment_id = row["reference"], None
        if reference:
            if row["ref_gateway"] is None:
                notes.append(f"its reference {reference} names no payment of ours")
            else:
                payment_id = reference
                if row["ref_gateway"] != gateway:
                    notes.append(f"its reference names our payment {reference} at {row['ref_gateway']}: two gateways?")
                elif row["ref_gateway_payment_id"]:
                    notes.append(
                        f"its reference names our payment {reference}, tied to {row['ref_gateway_payment_id']}: "
                        "a second charge?"
                    )
                elif row["reference_shared"]:
                    notes.append(f"several records carry the reference {reference}: a second charge?")
        if row["has_webhook"]:
            event_ids = WebhookEvent.objects.filter(
                gateway=gateway, status=WebhookEvent.UNMATCHED, resource_id=row["gateway_payment_id"]
            ).values_list("pk", flat=True)[:5]
            notes.append(f"unmatched webhook events: {', '.join(event_ids)}")
        issues.add(
            ReconciliationIssue.MISSING_OURS,
            gateway_payment_id=row["gateway_payment_id"],
            payment_id=payment_id,
            their_status=theirs,
            their_amount=row["amount"],
            their_amount_refunded=row["amount_refunded"],
            currency=row["currency"],
            detail="; ".join(notes),
        )


def _missing_theirs(
    run: ReconciliationRun, adapter: GatewayAdapter, start: datetime, end: datetime, issues: _IssueWriter
) -> None:
    """Our payments of the day that the listing lacks, each confirmed by `retrieve` (up to a limit).

    Found at the gateway, created outside the day: not missing. Found, created inside the day: the
    listing is incomplete, and the run fails (GatewayUnavailable) rather than report from it.

    A payment without a gateway id never reached the gateway (3-D Secure not completed, checkout not
    paid, unknown outcome: the settle job's work), so only payments with one are looked for.
    """
    listed = ReconciliationRecord.objects.filter(run=run, payment=OuterRef("pk"))
    absent = (
        Payment.objects.filter(
            gateway=run.gateway, created_at__gte=start, created_at__lt=end, gateway_payment_id__isnull=False
        )
        .filter(~Exists(listed))
        .order_by("created_at", "pk")
        .values("pk", "status", "amount", "amount_captured", "amount_refunded", "currency", "gateway_payment_id")
    )
    confirmations = 0
    for row in absent.iterator(chunk_size=CHUNK_SIZE):
        note = "not in the gateway's listing of the day"
        if confirmations < CONFIRM_MISSING_MAX:
            confirmations += 1
            try:
                found = adapter.retrieve(row["gateway_payment_id"])
            except GatewayNotFound:
                note += "; the gateway does not know this id"
            except GatewayError as error:
                note += f"; could not confirm ({error.code})"
            else:
                if found.created_at is None or start <= found.created_at < end:
                    # The gateway has it, created that day, yet its listing of the day lacked it: nothing
                    # the listing said can be trusted as complete (missing_ours included).
                    raise GatewayUnavailable(
                        f"{run.gateway}: the listing of the day lacks {row['gateway_payment_id']}, which the "
                        "gateway has; the listing is incomplete",
                        gateway=run.gateway,
                    )
                continue  # created outside the day (e.g. a checkout paid after midnight): compared on its day
        else:
            note += "; not confirmed (too many to look up one by one)"
        issues.add(
            ReconciliationIssue.MISSING_THEIRS,
            gateway_payment_id=row["gateway_payment_id"],
            payment_id=row["pk"],
            our_status=row["status"],
            our_amount=row["amount"],
            our_amount_refunded=row["amount_refunded"],
            currency=row["currency"],
            detail=note,
        )


def _differences(records: QuerySet, issues: _IssueWriter) -> None:
    """Matched pairs that still differ after the fixes, found in SQL and classified here."""
    captured = Q(payment__status__in=CAPTURED)
    differs = (
        ~Q(theirs=F("payment__status"))
        | ~Q(currency=F("payment__currency"))
        | (captured & ~Q(amount=F("payment__amount_captured")))
        | (~captured & ~Q(amount=F("payment__amount")))
        | (captured & ~Q(amount_refunded=F("payment__amount_refunded")))
    )
    pairs = (
        records.filter(payment__isnull=False)
        .annotate(theirs=THEIRS_AS_OURS)
        .filter(differs)
        .order_by("pk")
        .values(*_PAIR_FIELDS)
    )
    for row in pairs.iterator(chunk_size=CHUNK_SIZE):
        for kind, detail in classify(row):
            issues.add(
                kind,
                gateway_payment_id=row["gateway_payment_id"],
                payment_id=row["payment_id"],
                our_status=row["payment__status"],
                their_status=_their_status(row["status"]),
                our_amount=row["payment__amount"],
                their_amount=row["amount"],
                our_amount_refunded=row["payment__amount_refunded"],
                their_amount_refunded=row["amount_refunded"],
                currency=row["payment__currency"],
                detail=detail,
            )


def classify(row: dict[str, Any]) -> list[tuple[str, str]]:
    """The issues one matched pair raises: [(kind, detail)], empty when they agree.

    Refund-only differences on a captured payment are amount issues (money moved outside SmartPay),
    not status issues. A behind payment reaches here only when its amounts differ (it was not fixed).
    """
    ours, theirs = row["payment__status"], _their_status(row["status"])
    captured = ours in CAPTURED
    money: list[str] = []
    if row["currency"] != row["payment__currency"]:
        money.append(f"currency {row['currency']} at the gateway, {row['payment__currency']} here")
    expected = row["payment__amount_captured"] if captured else row["payment__amount"]
    if row["amount"] != expected:
        what = "captured" if captured else "amount"
        money.append(f"{what}: {row['amount']} at the gateway, {expected} here")
    if captured and row["amount_refunded"] != row["payment__amount_refunded"]:
        money.append(f"refunded: {row['amount_refunded']} at the gateway, {row['payment__amount_refunded']} here")

    found: list[tuple[str, str]] = []
    if ours != theirs:
        refund_only = captured and theirs in CAPTURED
        if _is_behind(ours, theirs):
            note = f"we are behind ({ours} here, {theirs} at the gateway)"
            if money:
                money.append(f"{note}, not fixed because the amounts differ")
            else:
                found.append((ReconciliationIssue.STATUS_MISMATCH, f"{note} and the fix could not be applied"))
        elif refund_only and money:
            money.append(f"status {ours} here, {theirs} at the gateway")
        else:
            how = "we are ahead of the gateway" if state.can_move(theirs, ours) else "they contradict each other"
            found.append((ReconciliationIssue.STATUS_MISMATCH, f"{ours} here, {theirs} at the gateway: {how}"))
    if money:
        found.insert(0, (ReconciliationIssue.AMOUNT_MISMATCH, "; ".join(money)))
    return found


# --- Staff ------------------------------------------------------------------------------------------


def reconciliation_issues_resolve(*, issues: Iterable[ReconciliationIssue] | QuerySet, actor: str) -> int:
    """Mark open issues resolved by `actor` (e.g. "staff:ana"). Returns how many were open."""
    ids = [issue.pk for issue in issues]
    return ReconciliationIssue.objects.filter(pk__in=ids, resolved_at__isnull=True).update(
        resolved_at=timezone.now(), resolved_by=actor[:150]
    )
