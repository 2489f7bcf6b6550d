"""Per-gateway circuit breakers, fed by attempt outcomes, shared by all processes through the cache.

closed → open: `CIRCUIT_FAILURE_THRESHOLD` consecutive failures, or an error rate of at least
`CIRCUIT_ERROR_RATE_PERCENT` over the last `CIRCUIT_WINDOW_SECONDS` once `CIRCUIT_MIN_CALLS` calls
were seen. open → half-open after `CIRCUIT_COOL_DOWN_SECONDS`: one probe call is let through; its
success closes the breaker, its failure opens it again.

Failures are outcomes that say the gateway is unwell (unavailable, unknown, configuration error).
Declines and invalid requests are the gateway working normally.

Only real gateway calls count: a local step (canceling what never reached the gateway) records
nothing. A success that closes an open or half-open breaker must come from a call started after the
breaker opened (the probe): a late answer to an old call says nothing about the gateway now.
Planning a route asks `may_call` (no side effect); the single half-open probe is claimed by
`allow_request` right before the call is made, so a gateway that was planned but not called does
not use it up.
"""

import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache

from payments.enums import AttemptOutcome
from smartpay.cache import count as shared_counter

FAILURE_OUTCOMES = {AttemptOutcome.UNAVAILABLE, AttemptOutcome.UNKNOWN, AttemptOutcome.ERROR}
NEUTRAL_OUTCOMES = {AttemptOutcome.STARTED}

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"


@dataclass(frozen=True)
class BreakerState:
    gateway: str
    state: str
    retry_after: int  # seconds until a probe is allowed (0 unless open)
    consecutive_failures: int


def _key(gateway: str, name: str) -> str:
    return f"breaker:{gateway}:{name}"


def _bucket(now: float) -> int:
    return int(now // settings.CIRCUIT_WINDOW_SECONDS)


def _incr(key: str, timeout: int) -> int:
    return shared_counter(key, timeout)  # one round trip on Redis (smartpay/cache.py)


def state(gateway: str) -> BreakerState:
    now = time.time()
    opened_until = cache.get(_key(gateway, "open_until"))
    consecutive = cache.get(_key(gateway, "consecutive")) or 0
    if opened_until is None:
        return BreakerState(gateway, CLOSED, 0, consecutive)
    if now < opened_until:
        return BreakerState(gateway, OPEN, max(1, int(opened_until - now + 0.999)), consecutive)
    return BreakerState(gateway, HALF_OPEN, 0, consecutive)


def may_call(gateway: str) -> bool:
    """Could a call go to this gateway now? Planning only: claims nothing."""
    current = state(gateway)
    if current.state == CLOSED:
        return True
    if current.state == OPEN:
        return False
    return cache.get(_key(gateway, "probe")) is None


def allow_request(gateway: str) -> bool:
    """May a call go to this gateway now? In half-open, only one caller gets the probe."""
    current = state(gateway)
    if current.state == CLOSED:
        return True
    if current.state == OPEN:
        return False
    return cache.add(_key(gateway, "probe"), 1, timeout=settings.CIRCUIT_COOL_DOWN_SECONDS)


def is_healthy(gateway: str) -> bool:
    return state(gateway).state == CLOSED


def record(gateway: str, outcome: str, *, since=None) -> None:
    """Count one call's outcome. `since` (when the call started) lets a late success be ignored."""
    if outcome in NEUTRAL_OUTCOMES:
        return
    if outcome in FAILURE_OUTCOMES:
        record_failure(gateway)
        return
    opened_at = cache.get(_key(gateway, "opened_at"))
    if opened_at is not None and since is not None and since.timestamp() < opened_at:
        # An answer to a call made before the breaker opened: it proves nothing about the gateway now.
        _incr(_key(gateway, f"calls:{_bucket(time.time())}"), settings.CIRCUIT_WINDOW_SECONDS * 2)
        return
    record_success(gateway)


def record_success(gateway: str) -> None:
    window = settings.CIRCUIT_WINDOW_SECONDS
    _incr(_key(gateway, f"calls:{_bucket(time.time())}"), window * 2)
    cache.delete_many(
        [_key(gateway, "consecutive"), _key(gateway, "open_until"), _key(gateway, "probe"), _key(gateway, "opened_at")]
    )


def record_failure(gateway: str) -> None:
    now = time.time()
    window = settings.CIRCUIT_WINDOW_SECONDS
    bucket = _bucket(now)
    calls = _incr(_key(gateway, f"calls:{bucket}"), window * 2)
    failures = _incr(_key(gateway, f"failures:{bucket}"), window * 2)
    consecutive = _incr(_key(gateway, "consecutive"), window * 10)
    current = state(gateway).state
    rate_tripped = calls >= settings.CIRCUIT_MIN_CALLS and failures * 100 >= settings.CIRCUIT_ERROR_RATE_PERCENT * calls
    if current == HALF_OPEN or consecutive >= settings.CIRCUIT_FAILURE_THRESHOLD or rate_tripped:
        _open(gateway, now)


def _open(gateway: str, now: float) -> None:
    cool_down = settings.CIRCUIT_COOL_DOWN_SECONDS
    cache.set(_key(gateway, "open_until"), now + cool_down, timeout=cool_down * 20)
    cache.set(_key(gateway, "opened_at"), now, timeout=cool_down * 20)
    cache.delete(_key(gateway, "probe"))


def reset(gateway: str) -> None:
    keys = [_key(gateway, name) for name in ("open_until", "consecutive", "probe", "opened_at")]
    bucket = _bucket(time.time())
    keys += [_key(gateway, f"{kind}:{b}") for kind in ("calls", "failures") for b in (bucket, bucket - 1)]
    cache.delete_many(keys)
