"""Idempotency-Key handling, enforced by a unique constraint on (client app, key).

The first request with a key inserts an `in_progress` record in its own committed transaction;
concurrent requests with the same key collide on the constraint and wait briefly for the first
one to finish, then replay its response. Same key with a different body (method + path + body
fingerprint) is refused. Responses of requests that changed nothing (4xx) are not kept, so the
caller can fix the request and retry with the same key.
"""

import hashlib
import json
import time
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from payments.models import ClientApp, IdempotencyRecord
from smartpay.api.errors import ApiError, Conflict

MAX_KEY_LENGTH = 255


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


def fingerprint(method: str, path: str, body) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(f"{method.upper()}\n{path}\n{canonical}".encode()).hexdigest()


def _validate_key(key: str) -> None:
    if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise IdempotencyKeyInvalid(f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} printable characters.")


def begin(*, client_app: ClientApp, key: str, request_fingerprint: str) -> IdempotencyRecord | Replay:
    """Claim `key` for this request, or return the stored response of the request that owns it."""
    _validate_key(key)
    try:
        with transaction.atomic():
            return IdempotencyRecord.objects.create(client_app=client_app, key=key, fingerprint=request_fingerprint)
    except IntegrityError:
        pass
    deadline = time.monotonic() + settings.IDEMPOTENCY_WAIT_SECONDS
    while True:
        existing = IdempotencyRecord.objects.filter(client_app=client_app, key=key).first()
        if existing is None:  # the owner failed with a 4xx and released the key: claim it again
            return begin(client_app=client_app, key=key, request_fingerprint=request_fingerprint)
        if existing.fingerprint != request_fingerprint:
            raise IdempotencyKeyReused(
                "This Idempotency-Key was used with a different request (method, path or body). Use a new key."
            )
        if existing.state == IdempotencyRecord.COMPLETED:
            return Replay(status=existing.response_status, body=existing.response_body)
        if time.monotonic() >= deadline:
            raise IdempotencyKeyInUse("Retry after the first request finishes.", headers={"Retry-After": "1"})
        time.sleep(0.05)


def finish(*, record: IdempotencyRecord, status: int, body) -> None:
    """Store the response for replay, or release the key when the request changed nothing."""
    if 400 <= status < 500:
        IdempotencyRecord.objects.filter(pk=record.pk).delete()
        return
    IdempotencyRecord.objects.filter(pk=record.pk).update(
        state=IdempotencyRecord.COMPLETED, response_status=status, response_body=body, completed_at=timezone.now()
    )


def release(*, record: IdempotencyRecord) -> None:
    IdempotencyRecord.objects.filter(pk=record.pk, state=IdempotencyRecord.IN_PROGRESS).delete()


def purge_expired(*, now=None) -> int:
    """Delete records older than the retention window (at least 24 h). Returns how many."""
    cutoff = (now or timezone.now()) - timedelta(hours=settings.IDEMPOTENCY_RETENTION_HOURS)
    deleted, _ = IdempotencyRecord.objects.filter(created_at__lt=cutoff).delete()
    return deleted
