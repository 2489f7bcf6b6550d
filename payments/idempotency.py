"""Idempotency-Key handling, enforced by a unique constraint on (client app, key).

The first request with a key inserts an `in_progress` record in its own committed transaction;
concurrent requests with the same key collide on the constraint and wait briefly for the first
one to finish, then replay its response. Same key with a different body (method + path + body
fingerprint) is refused. Responses of requests that changed nothing (4xx) are not kept, so the
caller can fix the request and retry with the same key.

Crashes and failures. While a request runs, its record is the active one (`active`), and the
service that creates the request's object (payment, refund) calls `link(obj)` inside the
transaction that creates it, so the record names the object exactly when the object exists.
A repeat whose first request failed with an unexpected error (500), or died and left its record `in_progress` longer
than the lease (`IDEMPOTENCY_LEASE_SECONDS`), gets `Linked`: it is answered with the object's
current state and never runs again (the settle job brings an unknown payment up to date). A repeat
of a dead request that created nothing takes its record over with a conditional UPDATE, so of
several repeats exactly one runs. Records linked to a payment (or refund) whose outcome is not
final are never purged: that would let the key charge again while the first charge may succeed.
"""

import hashlib
import json
import time
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, models, transaction
from django.utils import timezone

from payments.enums import PaymentStatus, RefundStatus
from payments.models import ClientApp, IdempotencyRecord, Payment, Refund
from smartpay.api.errors import ApiError, Conflict

MAX_KEY_LENGTH = 255

# What a record can be linked to. The API layer says which one each endpoint creates.
RESOURCE_MODELS: dict[str, type[models.Model]] = {"payment": Payment, "refund": Refund}

# Payment statuses whose outcome is known for good; any other one may still become a charge.
SETTLED_PAYMENT_STATUSES = (
    PaymentStatus.SUCCEEDED,
    PaymentStatus.FAILED,
    PaymentStatus.CANCELED,
    PaymentStatus.PARTIALLY_REFUNDED,
    PaymentStatus.REFUNDED,
)


class IdempotencyKeyRequired(ApiError):
    code = "idempotency_key_required"
    title = "Idempotency-Key header required"


class IdempotencyKeyInvalid(ApiError):
    code = "idempotency_key_invalid"
    title = "Invalid Idempotency-Key"


class IdempotencyKeyReused(ApiError):
    status_code = 422
    code = "idempotency_key_reused"
    title = "Idempotency-Key reused with a different request"


class IdempotencyKeyInUse(Conflict):
    code = "idempotency_key_in_use"
    title = "A request with this Idempotency-Key is still being processed"


@dataclass(frozen=True)
class Replay:
    status: int
    body: dict


@dataclass(frozen=True)
class Linked:
    """The first request created this object, then failed (5xx) or died: answer the object's current state.

    `stored` is its stored response, None when it never finished."""

    resource_type: str
    resource_id: str
    stored: Replay | None

    def get_object(self) -> models.Model | None:
        model = RESOURCE_MODELS.get(self.resource_type)
        return model.objects.filter(pk=self.resource_id).first() if model else None


@dataclass
class _Claim:
    record: IdempotencyRecord
    resource_type: str | None
    linked: bool = False


_active: ContextVar[_Claim | None] = ContextVar("idempotency_claim", default=None)


def fingerprint(method: str, path: str, body) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(f"{method.upper()}\n{path}\n{canonical}".encode()).hexdigest()


def _validate_key(key: str) -> None:
    if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise IdempotencyKeyInvalid(f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} printable characters.")


def begin(*, client_app: ClientApp, key: str, request_fingerprint: str) -> IdempotencyRecord | Replay | Linked:
    """Claim `key` for this request, or say how to answer it from the request that owns it.

    Returns the claimed record (run the request), a `Replay` (the stored response), or `Linked`
    (the first request created an object and then failed or died: answer the object's state).
    """
    _validate_key(key)
    try:
        with transaction.atomic():
            return IdempotencyRecord.objects.create(client_app=client_app, key=key, fingerprint=request_fingerprint)
    except IntegrityError:
        pass
    deadline = time.monotonic() + settings.IDEMPOTENCY_WAIT_SECONDS
    lease = timedelta(seconds=settings.IDEMPOTENCY_LEASE_SECONDS)
    while True:
        existing = IdempotencyRecord.objects.filter(client_app=client_app, key=key).first()
        if existing is None:  # the owner failed with a 4xx and released the key: claim it again
            return begin(client_app=client_app, key=key, request_fingerprint=request_fingerprint)
        if existing.fingerprint != request_fingerprint:
            raise IdempotencyKeyReused(
                "This Idempotency-Key was used with a different request (method, path or body). Use a new key."
            )
        if existing.state == IdempotencyRecord.COMPLETED:
            stored = Replay(status=existing.response_status, body=existing.response_body)
            # Only an unexpected failure (500) is answered from the object: a deliberate 5xx answer
            # (503 gateway_unavailable, 504 gateway_timeout) is the response, replayed as it was.
            if existing.response_status == 500 and existing.resource_id:
                return Linked(resource_type=existing.resource_type, resource_id=existing.resource_id, stored=stored)
            return stored
        if timezone.now() - existing.created_at >= lease:
            # Its owner died (a live request never holds the key this long).
            if existing.resource_id:  # it created its object: never run again, answer the object
                return Linked(resource_type=existing.resource_type, resource_id=existing.resource_id, stored=None)
            if _take_over(existing):  # it created nothing: this request runs in its place
                return existing
            continue  # another repeat took it over first: it is in progress again
        if time.monotonic() >= deadline:
            raise IdempotencyKeyInUse("Retry after the first request finishes.", headers={"Retry-After": "1"})
        time.sleep(0.05)


def _take_over(record: IdempotencyRecord) -> bool:
    """Claim an abandoned, unlinked record. Conditional on the lease start we read, so of several
    repeats racing past the lease exactly one updates the row; the others see a fresh lease."""
    now = timezone.now()
    taken = IdempotencyRecord.objects.filter(
        pk=record.pk,
        state=IdempotencyRecord.IN_PROGRESS,
        created_at=record.created_at,
        resource_id__isnull=True,
    ).update(created_at=now)
    if taken:
        record.created_at = now
    return bool(taken)


def _owned(record: IdempotencyRecord):
    """The record row while `record`'s claim still owns it (not taken over by a repeat since)."""
    return IdempotencyRecord.objects.filter(
        pk=record.pk, state=IdempotencyRecord.IN_PROGRESS, created_at=record.created_at
    )


@contextmanager
def active(record: IdempotencyRecord, *, resource_type: str | None):
    """Make `record` the one `link` links, for the duration of its request.

    `resource_type`: what this endpoint creates and can answer a replay with (None: never link)."""
    token = _active.set(_Claim(record=record, resource_type=resource_type))
    try:
        yield
    finally:
        _active.reset(token)


def link(obj: models.Model) -> None:
    """Link the active record to `obj`, which its request has just created.

    Call it inside the transaction that creates `obj`, so the link exists exactly when the object
    does. A no-op without an active record, once the record is linked (the first object wins), and
    for objects that are not what the endpoint creates (e.g. a payment made by a task that runs
    inside another endpoint's request).
    """
    claim = _active.get()
    if claim is None or claim.linked or claim.resource_type is None:
        return
    model = RESOURCE_MODELS.get(claim.resource_type)
    if model is None or not isinstance(obj, model):
        return
    _owned(claim.record).filter(resource_id__isnull=True).update(resource_type=claim.resource_type, resource_id=obj.pk)
    claim.linked = True


def finish(*, record: IdempotencyRecord, status: int, body) -> None:
    """Store the response for replay, or release the key when the request changed nothing.

    Does nothing when a repeat took the record over (this request outlived its lease)."""
    owned = _owned(record)
    # A refusal (4xx) releases the key, unless the request had created its object: then it is kept.
    if 400 <= status < 500 and owned.filter(resource_id__isnull=True).delete()[0]:
        return
    owned.update(
        state=IdempotencyRecord.COMPLETED, response_status=status, response_body=body, completed_at=timezone.now()
    )


def release(*, record: IdempotencyRecord) -> None:
    IdempotencyRecord.objects.filter(pk=record.pk, state=IdempotencyRecord.IN_PROGRESS).delete()


def purge_expired(*, now=None) -> int:
    """Delete records older than the retention window (at least 24 h), except those linked to a
    payment (or a refund) whose outcome is not final yet. One DELETE statement. Returns how many."""
    cutoff = (now or timezone.now()) - timedelta(hours=settings.IDEMPOTENCY_RETENTION_HOURS)
    unsettled_payments = Payment.objects.exclude(status__in=SETTLED_PAYMENT_STATUSES).values("pk")
    pending_refunds = Refund.objects.filter(status=RefundStatus.PENDING).values("pk")
    deleted, _ = (
        IdempotencyRecord.objects.filter(created_at__lt=cutoff)
        .exclude(resource_type="payment", resource_id__in=unsettled_payments)
        .exclude(resource_type="refund", resource_id__in=pending_refunds)
        .delete()
    )
    return deleted
