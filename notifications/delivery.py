"""Delivery of outgoing events to client apps: signed POSTs, retries, ordering, one sender at a time.

How one event is sent (`dispatch_due`, run by `notifications.dispatch_events` every 10 s on beat and
queued after each commit that records events):

1. Due events (`pending`, `next_attempt_at <= now`) are read in small batches. Each is then taken
   alone, in its own transaction, with `SELECT … FOR UPDATE SKIP LOCKED`: a row another dispatcher
   is sending is skipped, so two workers never send one event at the same time.
2. With that row lock held, the event is POSTed (connect/read timeouts of 3 s / 5 s, redirects not
   followed) and the attempt and its result are recorded in the same transaction. A worker killed
   mid-send loses nothing: its transaction rolls back, the row stays due, and the next dispatch
   sends it (the app may thus see one event twice: it deduplicates on `SmartPay-Event-Id`).
   Holding a lock over a network call is deliberate here (unlike gateway calls): the lock covers
   one event row that only dispatchers and `event_redeliver` touch, for at most the timeouts.
3. Per (client app, object): an event is not sent while an older event (created_at, then id) of the
   same object is still `pending`; it waits for it (skipped in this pass, sent in a later one).
4. 2xx: `delivered`. Anything else — a non-2xx answer, a redirect, a timeout, a connection error, a
   refused URL — is a failed try, retried on `RETRY_AT` (about a day, ±20 % jitter); after the last
   try the event is `failed` and an alert goes to `smartpay.alerts`. An app without a URL, or with
   delivery disabled, gets its due events `skipped` (they can be redelivered later).

On SQLite (development) there are no row locks: the POST is made outside any transaction (so the
sandbox receiver, in the same database, can write), and the result is recorded only if the event
has not moved meanwhile. One dispatcher at a time there.

Secrets, signatures and bodies are never logged.
"""

from __future__ import annotations

import logging
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

import requests
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Max, Q
from django.utils import timezone

from notifications import signing
from notifications.models import DeliveryAttempt, DeliveryState, OutgoingEvent
from notifications.urls_guard import PinnedAdapter, UnsafeWebhookUrl, resolve_target

logger = logging.getLogger("smartpay.events")
alerts = logging.getLogger("smartpay.alerts")

# When each try is made, counted from the first try of a round (a round starts when the event is
# recorded or redelivered): at once, then about 1 min, 5 min, 30 min, 2 h, 6 h, 12 h and 24 h later.
# So the wait after failed try n is RETRY_AT[n] - RETRY_AT[n-1] (1 min, 4 min, 25 min, 1.5 h, 4 h,
# 6 h, 12 h), each drawn within ±RETRY_JITTER of itself. After the 8th failed try: `failed`.
RETRY_AT = (0, 60, 300, 1800, 7200, 21600, 43200, 86400)
MAX_TRIES = len(RETRY_AT)
RETRY_JITTER = 0.2
BATCH_SIZE = 20
EXCERPT_CHARS = 500
_READ_LIMIT_BYTES = 4096  # of a response body: enough for the excerpt, never a whole download
_jitter = secrets.SystemRandom()


def retry_delay(failed_tries: int) -> timedelta | None:
    """How long to wait after the `failed_tries`-th failed try of a round (None: that was the last)."""
    if failed_tries >= MAX_TRIES:
        return None
    nominal = RETRY_AT[failed_tries] - RETRY_AT[failed_tries - 1]
    return timedelta(seconds=nominal * _jitter.uniform(1 - RETRY_JITTER, 1 + RETRY_JITTER))


@dataclass(frozen=True)
class Outcome:
    """What one POST gave: `ok` is a 2xx; everything else is a failed try described by `error`."""

    url: str
    ok: bool
    status_code: int | None = None
    duration_ms: int | None = None
    excerpt: str = ""
    error: str = ""


# --- One POST ------------------------------------------------------------------------------------


class Sessions:
    """`requests` sessions for one dispatch run, one per checked address set (keep-alive across
    events of one app), each pinned to the addresses the URL guard checked."""

    def __init__(self):
        self._sessions: dict[tuple[str, ...], requests.Session] = {}

    def for_addresses(self, addresses: tuple[str, ...]) -> requests.Session:
        session = self._sessions.get(addresses)
        if session is None:
            session = requests.Session()
            session.trust_env = False  # no proxy from the environment: we connect where we checked
            adapter = PinnedAdapter(addresses, max_retries=0)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            self._sessions[addresses] = session
        return session

    def close(self) -> None:
        for session in self._sessions.values():
            session.close()
        self._sessions.clear()


def _read_excerpt(response: requests.Response) -> str:
    try:
        raw = response.raw.read(_READ_LIMIT_BYTES, decode_content=True) or b""
    except Exception:  # a body cut short or badly encoded says nothing more than the status
        raw = b""
    finally:
        response.close()
    return raw.decode("utf-8", errors="replace")[:EXCERPT_CHARS]


def _describe(error: Exception) -> str:
    """A short, storable description of a transport error (no URL: it may carry a query string)."""
    if isinstance(error, requests.ConnectTimeout):
        return f"connect timeout ({settings.EVENTS_CONNECT_TIMEOUT:g} s)"
    if isinstance(error, requests.ReadTimeout):
        return f"read timeout ({settings.EVENTS_READ_TIMEOUT:g} s)"
    if isinstance(error, requests.exceptions.SSLError):
        return "TLS error: the certificate or handshake failed"
    if isinstance(error, requests.ConnectionError):
        text = str(error)
        if "Connection refused" in text:
            return "connection refused"
        if "Connection reset" in text or "RemoteDisconnected" in text or "Connection aborted" in text:
            return "connection closed without an answer"
        return "connection error"
    return f"{type(error).__name__}"[:300]


def post_event(event: OutgoingEvent, url: str, secrets_: list[str], sessions: Sessions) -> Outcome:
    """POST `event` to `url` once, signed with `secrets_`. Never raises for what the network does."""
    try:
        target = resolve_target(url)
    except UnsafeWebhookUrl as refused:
        return Outcome(url=url, ok=False, error=refused.reason)
    body = signing.event_body(event)
    headers = signing.delivery_headers(event, body, secrets_)
    started = time.monotonic()
    try:
        response = sessions.for_addresses(target.addresses).post(
            target.url,
            data=body,
            headers=headers,
            timeout=(settings.EVENTS_CONNECT_TIMEOUT, settings.EVENTS_READ_TIMEOUT),
            allow_redirects=False,
            stream=True,
        )
        excerpt = _read_excerpt(response)
    except requests.RequestException as error:
        return Outcome(url=url, ok=False, duration_ms=_elapsed_ms(started), error=_describe(error))
    duration = _elapsed_ms(started)
    status = response.status_code
    if 200 <= status < 300:
        return Outcome(url=url, ok=True, status_code=status, duration_ms=duration, excerpt=excerpt)
    if 300 <= status < 400:
        location = response.headers.get("Location", "")[:150]
        error = f"redirect not followed ({status} to {location})" if location else f"redirect not followed ({status})"
    else:
        error = f"HTTP {status}"
    return Outcome(url=url, ok=False, status_code=status, duration_ms=duration, excerpt=excerpt, error=error)


def _elapsed_ms(started: float) -> int:
    return max(0, int((time.monotonic() - started) * 1000))


# --- Recording ------------------------------------------------------------------------------------


def _record(event: OutgoingEvent, outcome: Outcome, *, now: datetime) -> str:
    """Store the attempt and move the event; returns `delivered`, `retry` or `failed`. Runs in the
    transaction that holds the event's row lock (PostgreSQL), or a short one (SQLite)."""
    number = (event.delivery_attempts.aggregate(n=Max("number"))["n"] or 0) + 1
    DeliveryAttempt.objects.create(
        event=event,
        number=number,
        url=outcome.url[:500],
        status_code=outcome.status_code,
        duration_ms=outcome.duration_ms,
        response_excerpt=outcome.excerpt[:EXCERPT_CHARS],
        error=outcome.error[:300],
    )
    event.attempts += 1
    fields = ["attempts", "delivery_state", "next_attempt_at", "delivered_at", "last_error"]
    log = {
        "event_id": event.id,
        "event_type": event.type,
        "client_app": event.client_app_id,
        "attempt": number,
        "http_status": outcome.status_code,
        "duration_ms": outcome.duration_ms,
    }
    if outcome.ok:
        event.delivery_state, event.delivered_at, event.last_error = DeliveryState.DELIVERED, now, ""
        event.save(update_fields=fields)
        logger.info("event delivered", extra=log)
        return "delivered"
    event.last_error = outcome.error[:300]
    delay = retry_delay(event.attempts)
    if delay is None:
        event.delivery_state = DeliveryState.FAILED
        event.save(update_fields=fields)
        alerts.error(
            "event delivery failed: every try of the schedule failed",
            extra={**log, "tries": event.attempts, "error": event.last_error},
        )
        return "failed"
    event.next_attempt_at = now + delay
    event.save(update_fields=fields)
    logger.warning("event delivery failed; retry scheduled", extra={**log, "error": event.last_error})
    return "retry"


def _skip_reason(event: OutgoingEvent) -> str:
    app = event.client_app
    if not app.is_active:
        return "skipped: client app inactive"
    if not app.webhook_enabled:
        return "skipped: delivery disabled"
    if not app.webhook_url:
        return "skipped: no webhook URL"
    return ""


def _waits_for_older(event: OutgoingEvent) -> bool:
    """An older event of the same object for the same app is still pending (ordering per object)."""
    if not event.object_id:
        return False
    older = Q(created_at__lt=event.created_at) | Q(created_at=event.created_at, id__lt=event.id)
    return (
        OutgoingEvent.objects.filter(
            client_app_id=event.client_app_id, object_id=event.object_id, delivery_state=DeliveryState.PENDING
        )
        .filter(older)
        .exists()
    )


def _skip(event: OutgoingEvent, reason: str) -> str:
    event.delivery_state, event.last_error = DeliveryState.SKIPPED, reason
    event.save(update_fields=["delivery_state", "last_error"])
    logger.info("event skipped", extra={"event_id": event.id, "client_app": event.client_app_id, "reason": reason})
    return "skipped"


def _due(now: datetime):
    return OutgoingEvent.objects.filter(delivery_state=DeliveryState.PENDING, next_attempt_at__lte=now)


def _process_locked(event_id: str, sessions: Sessions) -> str:
    """PostgreSQL: lock the event (skip it if another dispatcher has it), send, record, commit."""
    with transaction.atomic():
        now = timezone.now()
        event = (
            _due(now).select_for_update(skip_locked=True, of=("self",)).select_related("client_app").filter(pk=event_id)
        ).first()
        if event is None:
            return "busy"  # being sent by another dispatcher, or no longer due
        reason = _skip_reason(event)
        if reason:
            return _skip(event, reason)
        if _waits_for_older(event):
            return "waiting"
        app = event.client_app
        outcome = post_event(event, app.webhook_url, signing.signing_secrets(app), sessions)
        return _record(event, outcome, now=timezone.now())


def _process_unlocked(event_id: str, sessions: Sessions) -> str:
    """SQLite (development, one dispatcher): send outside any transaction, record if nothing moved."""
    event = _due(timezone.now()).select_related("client_app").filter(pk=event_id).first()
    if event is None:
        return "busy"
    reason = _skip_reason(event)
    if reason:
        with transaction.atomic():
            return _skip(event, reason)
    if _waits_for_older(event):
        return "waiting"
    app = event.client_app
    outcome = post_event(event, app.webhook_url, signing.signing_secrets(app), sessions)
    with transaction.atomic():
        unchanged = _due(timezone.now()).filter(pk=event.pk, attempts=event.attempts).exists()
        if not unchanged:
            return "busy"
        return _record(event, outcome, now=timezone.now())


def dispatch_due(*, max_events: int | None = None, max_seconds: float | None = None) -> dict:
    """Send the events that are due, oldest first (created_at, id), each at most once per run.

    Stops when nothing is left, after `max_events` events sent or skipped, after looking at ten times
    that many, or after `max_seconds` (defaults: EVENTS_DISPATCH_MAX_EVENTS and
    EVENTS_DISPATCH_MAX_SECONDS; a send in progress finishes, so a run may overrun by one timeout).
    Oldest first also means that within one run an object's events are met in their order.

    Returns counts: delivered, retry (failed try, rescheduled), failed (schedule exhausted),
    skipped (no URL / disabled), waiting (an older event of its object is pending), busy (another
    dispatcher has it, or it moved meanwhile)."""
    max_events = settings.EVENTS_DISPATCH_MAX_EVENTS if max_events is None else max_events
    max_seconds = settings.EVENTS_DISPATCH_MAX_SECONDS if max_seconds is None else max_seconds
    deadline = time.monotonic() + max_seconds
    process = _process_locked if connection.features.has_select_for_update_skip_locked else _process_unlocked
    counts = dict.fromkeys(("delivered", "retry", "failed", "skipped", "waiting", "busy"), 0)
    handled = looked = 0
    after: tuple[datetime, str] | None = None  # keyset cursor: the last (created_at, id) looked at
    sessions = Sessions()
    try:
        while handled < max_events and looked < 10 * max_events and time.monotonic() < deadline:
            due = _due(timezone.now())
            if after is not None:
                due = due.filter(Q(created_at__gt=after[0]) | Q(created_at=after[0], id__gt=after[1]))
            batch = list(due.order_by("created_at", "id").values_list("created_at", "id")[:BATCH_SIZE])
            if not batch:
                break
            for created_at, event_id in batch:
                if handled >= max_events or time.monotonic() >= deadline:
                    break
                after = (created_at, event_id)
                looked += 1
                result = process(event_id, sessions)
                counts[result] += 1
                if result not in ("busy", "waiting"):
                    handled += 1
    finally:
        sessions.close()
    return counts
