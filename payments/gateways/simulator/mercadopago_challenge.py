"""The Mercado Pago simulator's 3-D Secure challenge (the issuer's ACS page, in the payer's browser).

A payment made with cardholder name `CHAL` waits as `pending` / `pending_challenge` with
`three_ds_info: {external_resource_url, creq}`. The payer's browser POSTs `creq` to that URL (in an
iframe, as Mercado Pago's docs show); this page then offers the test outcomes. Completing it moves the
payment the way Mercado Pago does after a challenge (approved, or authorized when `capture` was false;
or rejected with `cc_rejected_3ds_challenge`) and notifies `payment.updated`. SmartPay learns it from
that webhook, from `POST /api/v1/payments/{id}/confirm`, or from the expiry job, which asks first.

`GET|POST /sandbox/mercadopago/challenge/<payment id>`: without `outcome`, the page; with
`outcome=authenticated|failed`, complete it (the form's own POST; tests and scripts POST it directly).
"""

from __future__ import annotations

from django.db import transaction
from django.http import Http404, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from payments.gateways.simulator import mercadopago_objects as objects
from payments.gateways.simulator import mercadopago_services as services
from payments.gateways.simulator import wire
from payments.gateways.simulator.control import sandbox_only
from payments.gateways.simulator.models import SimCharge

AUTHENTICATED = "authenticated"
FAILED = "failed"
CHALLENGE_CHOICES = [
    (AUTHENTICATED, "Autenticación correcta (el banco confirma al titular)"),
    (FAILED, "Autenticación fallida (código incorrecto o cancelada)"),
]


class ChallengeClosed(Exception):
    """The payment is no longer waiting for a challenge (completed, cancelled, never asked for one)."""


def challenge_complete(*, public_id: str, outcome: str) -> SimCharge:
    """Finish the challenge of a `pending_challenge` payment, under its row lock. Completing twice is refused."""
    if outcome not in dict(CHALLENGE_CHOICES):
        raise ValueError(f"outcome must be one of {', '.join(dict(CHALLENGE_CHOICES))}")
    with transaction.atomic():
        charge = SimCharge.objects.select_for_update().filter(gateway=services.MP, public_id=public_id).first()
        if charge is None:
            raise objects.not_found(*objects.PAYMENT_NOT_FOUND)
        if charge.status != "pending" or charge.status_detail != "pending_challenge":
            raise ChallengeClosed(f"{charge.status} ({charge.status_detail})")
        now = timezone.now()
        if outcome == FAILED:
            charge.status, charge.status_detail = "rejected", "cc_rejected_3ds_challenge"
        elif charge.capture:
            charge.status, charge.status_detail = "approved", "accredited"
            charge.captured, charge.approved_at, charge.captured_at = True, now, now
        else:
            charge.status, charge.status_detail = "authorized", "pending_capture"
        services._save(charge, action="payment.updated")
    return charge


@csrf_exempt
def challenge_page(request, payment_id: str):
    """The issuer's challenge page (no Mercado Pago API auth: the payer's browser opens it)."""
    sandbox_only()
    if request.method not in ("GET", "POST"):
        return HttpResponse(status=405, headers={"Allow": "GET, POST"})
    try:
        charge = services.payment_get(payment_id)
    except wire.SimulatorError:
        raise Http404("no such payment") from None
    context = {
        "payment": charge,
        "amount": wire.decimal_amount(charge.amount),
        "choices": CHALLENGE_CHOICES,
        "creq": request.POST.get("creq") or objects.challenge_request(charge.public_id),
        "error": None,
        "done": False,
    }
    waiting = charge.status == "pending" and charge.status_detail == "pending_challenge"
    outcome = request.POST.get("outcome") if request.method == "POST" else None
    if outcome is None:
        if not waiting:
            context["error"] = f"Este pago no espera una autenticación ({charge.status}, {charge.status_detail})."
            return render(request, "simulator/mercadopago_challenge.html", context, status=409)
        if request.POST.get("creq") not in (None, objects.challenge_request(charge.public_id)):
            context["error"] = "El CReq no corresponde a este pago."
            return render(request, "simulator/mercadopago_challenge.html", context, status=400)
        return render(request, "simulator/mercadopago_challenge.html", context)
    if outcome not in dict(CHALLENGE_CHOICES):
        context["error"] = "Elige un resultado de prueba."
        return render(request, "simulator/mercadopago_challenge.html", context, status=400)
    try:
        context["payment"] = challenge_complete(public_id=payment_id, outcome=outcome)
    except ChallengeClosed as closed:
        context["error"] = f"Este pago no espera una autenticación ({closed})."
        return render(request, "simulator/mercadopago_challenge.html", context, status=409)
    context["done"] = True
    return render(request, "simulator/mercadopago_challenge.html", context)
