"""Fault injection and the decorator every simulator view goes through.

`POST /sandbox/control {"gateway", "mode", "latency_ms", "failure_rate", "seed"}` sets how one
simulated gateway misbehaves; `GET` shows both; `DELETE` puts them back to normal. The modes, applied
to every API path of that gateway (never to /sandbox/control nor to the hosted checkout pages), and
how SmartPay's adapters read them (the rules are in `payments/gateways/base.py`):

* `down`: 503 with a plain-text body no gateway would write; the simulator does **not** process the
  request. SmartPay cannot know that: the request left and a 503 is not a documented "not processed"
  answer of either gateway. So a side-effecting request (charge, capture, cancel, refund, save card) is
  *outcome unknown*: a Culqi charge stays `processing`, is never resent nor failed over, and is settled
  by asking the gateway (which then proves it absent); a Mercado Pago charge is resent with the same
  `X-Idempotency-Key` within the retry bounds, then left `processing` the same way. Read-only requests
  and hosted checkout creation read it as *unavailable*: retried, and checkouts fail over.
* `error`: 500 with an HTML body; the request is **not** processed. (Real 500s may or may not have
  been processed; choosing "not" keeps the fault deterministic.) SmartPay reads it exactly like `down`.
* `timeout`: the request **is processed** (a charge is created), then the answer is held back
  `latency_ms` (30 s when 0), longer than the caller's read timeout: "the request left, the answer was
  lost". A read timeout: *outcome unknown* for side-effecting requests, *unavailable* for reads.
* `slow`: sleep `latency_ms`, then process normally (a timeout in SmartPay when longer than its read
  timeout, read as above; the charge then exists).
* `flaky`: with probability `failure_rate`, 503 before processing (read like `down`); otherwise normal.
  With a `seed`, the n-th draw is a function of (seed, n) with n counted in the database, so runs are
  reproducible across processes.

None of these is "nothing happened" to SmartPay: that takes a failure before the request left (DNS,
connection refused, connect timeout, TLS handshake), which the simulators, answering over HTTP, cannot
produce; tests use a closed port or a real socket server for it.

Optional `method` and `path` narrow a fault to matching requests, `path` being a prefix of the path
after the gateway's base: `{"gateway": "mercadopago", "mode": "timeout", "method": "POST", "path":
"/v1/payments"}` loses only payment answers, not the token and payment-method lookups before them.
"""

from __future__ import annotations

import functools
import logging
import random
import secrets
import time
from decimal import Decimal, InvalidOperation

from django.conf import settings
from django.db import transaction
from django.http import Http404, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from payments.gateways.simulator import wire
from payments.gateways.simulator.models import ControlMode, Gateway, GatewayControl

logger = logging.getLogger("smartpay.simulator")

DEFAULT_TIMEOUT_MS = 30_000
_RATE_STEPS = 10_000  # failure_rate has four decimals


def sandbox_only() -> None:
    """Every simulator view is a 404 unless the service runs in sandbox mode (urls are also absent then)."""
    if settings.GATEWAY_MODE != "sandbox":
        raise Http404("gateway simulators exist only in sandbox mode")


def method_not_allowed(request, allowed: list[str]) -> HttpResponse:
    response = HttpResponse(status=405)
    response["Allow"] = ", ".join(allowed)
    return response


def by_method(request, **handlers):
    """Dispatch on the HTTP method to `GET=…`, `POST=…`, … handlers."""
    handler = handlers.get(request.method)
    if handler is None:
        return method_not_allowed(request, sorted(handlers))
    return handler()


# --- Fault state --------------------------------------------------------------------------------


def control_get(gateway: str) -> GatewayControl:
    control = GatewayControl.objects.filter(gateway=gateway).first()
    return control or GatewayControl(gateway=gateway)


def control_set(
    *,
    gateway: str,
    mode: str,
    latency_ms: int = 0,
    failure_rate: Decimal = Decimal(0),
    seed: int | None = None,
    only_method: str = "",
    only_path: str = "",
) -> GatewayControl:
    control, _ = GatewayControl.objects.update_or_create(
        gateway=gateway,
        defaults={
            "mode": mode,
            "latency_ms": latency_ms,
            "failure_rate": failure_rate,
            "seed": seed,
            "draws": 0,
            "only_method": only_method,
            "only_path": only_path,
        },
    )
    return control


def control_reset(*, gateway: str | None = None) -> None:
    for name in [gateway] if gateway else Gateway.values:
        control_set(gateway=name, mode=ControlMode.NORMAL)


def _applies(control: GatewayControl, request, gateway: str) -> bool:
    if control.only_method and request.method != control.only_method:
        return False
    if control.only_path:
        marker = f"/{gateway}"
        relative = request.path.split(marker, 1)[1] if marker in request.path else request.path
        return relative.startswith(control.only_path)
    return True


def _fails(control: GatewayControl) -> bool:
    threshold = int(control.failure_rate * _RATE_STEPS)
    if threshold <= 0:
        return False
    if control.seed is None:
        return secrets.randbelow(_RATE_STEPS) < threshold
    with transaction.atomic():
        row = GatewayControl.objects.select_for_update().get(pk=control.pk)
        row.draws += 1
        row.save(update_fields=["draws"])
        draw = row.draws
    # Deterministic on purpose (reproducible test runs); nothing secret depends on it.
    return random.Random(f"{control.seed}:{draw}").randrange(_RATE_STEPS) < threshold  # noqa: S311


def _down() -> HttpResponse:
    return HttpResponse("Service Unavailable", status=503, content_type="text/plain")


def _error() -> HttpResponse:
    body = (
        "<html><head><title>500 Internal Server Error</title></head><body><h1>Internal Server Error</h1></body></html>"
    )
    return HttpResponse(body, status=500, content_type="text/html")


def _sleep_ms(milliseconds: int) -> None:
    time.sleep(milliseconds / 1000)


# --- The decorator ------------------------------------------------------------------------------


def endpoint(gateway: str | None, *, faults: bool = True, charset_header: bool = False):
    """Wrap a simulator view: sandbox guard, CSRF exemption, fault injection, error rendering."""

    def decorate(view):
        @csrf_exempt
        @functools.wraps(view)
        def wrapped(request, *args, **kwargs):
            sandbox_only()
            control = control_get(gateway) if (faults and gateway) else None
            mode = control.mode if control and _applies(control, request, gateway) else ControlMode.NORMAL
            if mode == ControlMode.DOWN:
                return _down()
            if mode == ControlMode.ERROR:
                return _error()
            if mode == ControlMode.FLAKY and _fails(control):
                return _down()
            if mode == ControlMode.SLOW:
                _sleep_ms(control.latency_ms)
            try:
                response = view(request, *args, **kwargs)
            except wire.SimulatorError as error:
                response = wire.json_response(
                    error.body, status=error.status, headers=error.headers, charset_header=charset_header
                )
            if mode == ControlMode.TIMEOUT:
                _sleep_ms(control.latency_ms or DEFAULT_TIMEOUT_MS)
            return response

        return wrapped

    return decorate


# --- /sandbox/control ---------------------------------------------------------------------------


def _state(control: GatewayControl) -> dict:
    return {
        "gateway": control.gateway,
        "mode": control.mode,
        "latency_ms": control.latency_ms,
        "failure_rate": Decimal(control.failure_rate).normalize() if control.failure_rate else Decimal(0),
        "seed": control.seed,
        "method": control.only_method or None,
        "path": control.only_path or None,
    }


def _all_states() -> dict:
    return {name: _state(control_get(name)) for name in Gateway.values}


def _bad(message: str) -> HttpResponse:
    return wire.json_response({"error": "invalid_control", "message": message}, status=400)


def _parse_rate(value) -> Decimal:
    if isinstance(value, bool) or value is None:
        raise ValueError
    rate = Decimal(str(value)) if isinstance(value, str | int | Decimal) else None
    if rate is None or not rate.is_finite() or not Decimal(0) <= rate <= Decimal(1):
        raise ValueError
    return rate.quantize(Decimal("0.0001"))


def _set_from_body(request) -> HttpResponse:
    try:
        body = wire.parse_json_body(request)
    except wire.BadJson:
        return _bad("the body must be a JSON object")
    gateway = body.get("gateway")
    if gateway not in Gateway.values:
        return _bad(f"gateway must be one of {', '.join(Gateway.values)}")
    mode = body.get("mode", ControlMode.NORMAL)
    if mode not in ControlMode.values:
        return _bad(f"mode must be one of {', '.join(ControlMode.values)}")
    latency = body.get("latency_ms", 0)
    if isinstance(latency, bool) or not isinstance(latency, int) or not 0 <= latency <= 600_000:
        return _bad("latency_ms must be an integer between 0 and 600000")
    try:
        rate = _parse_rate(body.get("failure_rate", 0))
    except (ValueError, InvalidOperation):
        return _bad("failure_rate must be a number (or decimal string) between 0 and 1")
    seed = body.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        return _bad("seed must be an integer")
    method, scope = body.get("method") or "", body.get("path") or ""
    if method not in ("", "GET", "POST", "PUT", "PATCH", "DELETE"):
        return _bad("method must be GET, POST, PUT, PATCH or DELETE")
    if not isinstance(scope, str) or (scope and not scope.startswith("/")) or len(scope) > 200:
        return _bad("path must be a path prefix such as /v1/payments")
    control = control_set(
        gateway=gateway,
        mode=mode,
        latency_ms=latency,
        failure_rate=rate,
        seed=seed,
        only_method=method,
        only_path=scope,
    )
    logger.info("simulator control changed", extra={"gateway": gateway, "mode": mode})
    return wire.json_response(_state(control))


def _reset(request) -> HttpResponse:
    gateway = request.GET.get("gateway") or None
    if gateway is not None and gateway not in Gateway.values:
        return _bad(f"gateway must be one of {', '.join(Gateway.values)}")
    control_reset(gateway=gateway)
    return wire.json_response(_all_states())


@endpoint(None, faults=False)
def control_view(request):
    return by_method(
        request,
        GET=lambda: wire.json_response(_all_states()),
        POST=lambda: _set_from_body(request),
        DELETE=lambda: _reset(request),
    )
