"""The sandbox receiver: a client app's webhook endpoint, built in, to watch events arrive.

`POST /sandbox/receiver/<app_id>` checks `SmartPay-Signature` with that app's secrets (the current
one and, during a rotation, the previous one) exactly as a client app should, stores what it got
and answers 200 — or 400 when the signature does not check out (what a client app should answer).
Faults on demand, by query string (put it in the app's webhook URL):
`?fail=500` answers 500, `?fail=timeout` answers only after EVENTS_READ_TIMEOUT + 2 s (SmartPay has
given up by then), `?fail=redirect` answers 302 (never followed). Every request is stored.

`GET /sandbox/receiver/` lists the last 100 (newest first, times in Lima), `?app=app_…` for one app.
`seed_demo` points the demo client app here.
"""

from __future__ import annotations

import json
import logging
import time

from django.conf import settings
from django.http import Http404, HttpResponse, HttpResponseRedirect
from django.shortcuts import render

from notifications.signing import EVENT_ID_HEADER, SIGNATURE_HEADER, signing_secrets, verify_signature
from payments.gateways.simulator.control import by_method, endpoint
from payments.gateways.simulator.models import ReceivedEvent
from payments.models import ClientApp
from smartpay.clock import business_time

logger = logging.getLogger("smartpay.simulator")

FAULTS = ("500", "timeout", "redirect")
MAX_BODY_CHARS = 64 * 1024
LIST_SIZE = 100
_KEPT_HEADERS = (EVENT_ID_HEADER, "Content-Type", "User-Agent")


def _sleep(seconds: float) -> None:
    time.sleep(seconds)


def _receive(request, app_id: str) -> HttpResponse:
    app = ClientApp.objects.filter(pk=app_id).first()
    if app is None:
        raise Http404("no such client app")
    raw = request.body
    header = request.headers.get(SIGNATURE_HEADER, "")
    ok = verify_signature(raw, header, signing_secrets(app))
    problem = "" if ok else ("no SmartPay-Signature header" if not header else "no v1 signature matches a secret")
    try:
        payload = json.loads(raw)
    except ValueError:
        payload = {}
    if not isinstance(payload, dict):
        payload = {}
    fault = request.GET.get("fail", "")
    fault = fault if fault in FAULTS else ""
    status = 400 if not ok else {"500": 500, "redirect": 302}.get(fault, 200)
    headers = {name: request.headers[name] for name in _KEPT_HEADERS if name in request.headers}
    headers["signatures"] = header.count("v1=")  # how many v1= came (two during a rotation); not their values
    ReceivedEvent.objects.create(
        client_app_id=app.pk,
        event_id=str(request.headers.get(EVENT_ID_HEADER) or payload.get("id") or "")[:60],
        event_type=str(payload.get("type") or "")[:60],
        signature_ok=ok,
        signature_problem=problem,
        headers=headers,
        body=raw.decode("utf-8", errors="replace")[:MAX_BODY_CHARS],
        answered_status=status,
        fault=fault,
    )
    logger.info("sandbox receiver got an event", extra={"client_app": app.pk, "signature_ok": ok, "answer": status})
    if not ok:
        return HttpResponse(f"bad signature: {problem}\n", status=400, content_type="text/plain")
    if fault == "500":
        return HttpResponse("simulated failure\n", status=500, content_type="text/plain")
    if fault == "redirect":
        return HttpResponseRedirect(request.path)
    if fault == "timeout":
        _sleep(settings.EVENTS_READ_TIMEOUT + 2)
    return HttpResponse("ok\n", content_type="text/plain")


def _list(request) -> HttpResponse:
    received = ReceivedEvent.objects.all()
    app_id = request.GET.get("app", "")
    if app_id:
        received = received.filter(client_app_id=app_id)
    rows = [
        {"at": business_time(item.received_at).strftime("%Y-%m-%d %H:%M:%S"), "item": item}
        for item in received[:LIST_SIZE]
    ]
    return render(request, "simulator/receiver.html", {"rows": rows, "app_id": app_id, "limit": LIST_SIZE})


@endpoint(None, faults=False)
def receiver_endpoint(request, app_id: str):
    return by_method(request, POST=lambda: _receive(request, app_id))


@endpoint(None, faults=False)
def receiver_list(request):
    return by_method(request, GET=lambda: _list(request))
