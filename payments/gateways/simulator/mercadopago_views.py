"""Mercado Pago's HTTP surface under /sandbox/mercadopago/ (api.mercadopago.com paths).

Plain Django views: parse, call one `mercadopago_services` function, render with
`mercadopago_objects`. POST/PUT honour `X-Idempotency-Key` (required on payments and refunds).
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from django.http import Http404, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt

from payments.gateways.simulator import mercadopago_objects as objects
from payments.gateways.simulator import mercadopago_services as services
from payments.gateways.simulator import wire
from payments.gateways.simulator.control import by_method, endpoint, sandbox_only
from payments.gateways.simulator.idempotency import idempotent
from payments.gateways.simulator.models import SimCustomer

CHECKOUT_CHOICES = [
    ("APRO", "Pago aprobado"),
    ("FUND", "Rechazado por monto insuficiente"),
    ("OTHE", "Rechazado por error general"),
    ("CONT", "Pendiente de pago"),
    ("CALL", "Rechazado con validación para autorizar"),
    ("SECU", "Rechazado por código de seguridad inválido"),
    ("EXPI", "Rechazado por problema con la fecha de vencimiento"),
    ("FORM", "Rechazado por error en formulario"),
]


def _answer(value, status: int = 200) -> HttpResponse:
    return wire.json_response(value, status=status, headers={"x-request-id": wire.alnum(8).lower()})


def _paged(results: list, total: int, limit: int, offset: int) -> dict:
    return {"paging": {"total": total, "limit": limit, "offset": offset}, "results": results}


# --- Card tokens and payment methods ------------------------------------------------------------


@endpoint("mercadopago")
def card_tokens(request):
    services.authenticate(request, public_ok=True)

    def create():
        token = services.token_create(body=services.body_of(request))
        return _answer(objects.token_object(token), status=201)

    return by_method(request, POST=lambda: idempotent(request, create, required=False))


@endpoint("mercadopago")
def card_token_detail(request, token_id: str):
    services.authenticate(request, public_ok=True)
    return by_method(request, GET=lambda: _answer(objects.token_object(services.token_get(token_id))))


@endpoint("mercadopago")
def payment_methods_search(request):
    services.authenticate(request, public_ok=True)

    def search():
        results = services.payment_methods_for_bin(request.GET.get("bins", ""))
        if request.GET.get("status") not in (None, "", "active"):
            results = []
        return _answer(_paged(results, len(results), 30, 0))

    return by_method(request, GET=search)


# --- Payments -----------------------------------------------------------------------------------


@endpoint("mercadopago")
def payments(request):
    services.authenticate(request)

    def create():
        charge = services.payment_create(body=services.body_of(request))
        return _answer(objects.payment_object(charge), status=201)

    return by_method(request, POST=lambda: idempotent(request, create, required=True))


@endpoint("mercadopago")
def payments_search(request):
    services.authenticate(request)

    def search():
        page, total, limit, offset = services.payment_search(request.GET)
        return _answer(_paged([objects.payment_object(charge) for charge in page], total, limit, offset))

    return by_method(request, GET=search)


@endpoint("mercadopago")
def payment_detail(request, payment_id: str):
    services.authenticate(request)

    def update():
        charge = services.payment_update(public_id=payment_id, body=services.body_of(request))
        return _answer(objects.payment_object(charge))

    return by_method(
        request,
        GET=lambda: _answer(objects.payment_object(services.payment_get(payment_id))),
        PUT=lambda: idempotent(request, update, required=False),
    )


@endpoint("mercadopago")
def payment_refunds(request, payment_id: str):
    services.authenticate(request)

    def create():
        refund = services.refund_create(public_id=payment_id, body=services.body_of(request))
        return _answer(objects.refund_object(refund), status=201)

    def listing():
        charge = services.payment_get(payment_id)
        return _answer([objects.refund_object(refund) for refund in charge.refunds.order_by("pk")])

    return by_method(request, POST=lambda: idempotent(request, create, required=True), GET=listing)


@endpoint("mercadopago")
def payment_refund_detail(request, payment_id: str, refund_id: str):
    services.authenticate(request)

    def get():
        refund = services.payment_get(payment_id).refunds.filter(public_id=refund_id).first()
        if refund is None:
            raise objects.not_found(2032, "Refund not found")
        return _answer(objects.refund_object(refund))

    return by_method(request, GET=get)


# --- Customers and cards ------------------------------------------------------------------------


@endpoint("mercadopago")
def customers(request):
    services.authenticate(request)

    def create():
        customer = services.customer_create(body=services.body_of(request))
        return _answer(objects.customer_object(customer), status=201)

    return by_method(request, POST=lambda: idempotent(request, create, required=False))


@endpoint("mercadopago")
def customers_search(request):
    services.authenticate(request)

    def search():
        queryset = SimCustomer.objects.filter(gateway=services.MP, deleted=False).order_by("pk")
        if email := request.GET.get("email"):
            queryset = queryset.filter(email=email)
        found = [objects.customer_object(customer) for customer in queryset[:100]]
        return _answer(_paged(found, len(found), 30, 0))

    return by_method(request, GET=search)


@endpoint("mercadopago")
def customer_detail(request, customer_id: str):
    services.authenticate(request)
    return by_method(request, GET=lambda: _answer(objects.customer_object(services.customer_get(customer_id))))


@endpoint("mercadopago")
def customer_cards(request, customer_id: str):
    services.authenticate(request)

    def create():
        card = services.card_create(customer_id=customer_id, body=services.body_of(request))
        return _answer(objects.card_object(card), status=201)

    def listing():
        customer = services.customer_get(customer_id)
        return _answer([objects.card_object(card) for card in customer.cards.filter(deleted=False).order_by("pk")])

    return by_method(request, POST=lambda: idempotent(request, create, required=False), GET=listing)


@endpoint("mercadopago")
def customer_card_detail(request, customer_id: str, card_id: str):
    services.authenticate(request)
    return by_method(
        request,
        GET=lambda: _answer(objects.card_object(services.card_get(customer_id, card_id))),
        DELETE=lambda: _answer(objects.card_object(services.card_delete(customer_id, card_id))),
    )


# --- Checkout Pro -------------------------------------------------------------------------------


def _init_point(request, preference_id: str) -> str:
    return request.build_absolute_uri(reverse("simulator:mercadopago-checkout-page", args=[preference_id]))


@endpoint("mercadopago")
def preferences(request):
    services.authenticate(request)

    def create():
        preference = services.preference_create(body=services.body_of(request))
        return _answer(objects.preference_object(preference, _init_point(request, preference.public_id)), status=201)

    return by_method(request, POST=lambda: idempotent(request, create, required=False))


@endpoint("mercadopago")
def preference_detail(request, preference_id: str):
    services.authenticate(request)

    def get():
        preference = services.preference_get(preference_id)
        return _answer(objects.preference_object(preference, _init_point(request, preference_id)))

    def update():
        preference = services.preference_update(public_id=preference_id, body=services.body_of(request))
        return _answer(objects.preference_object(preference, _init_point(request, preference_id)))

    return by_method(request, GET=get, PUT=lambda: idempotent(request, update, required=False))


def _with_params(url: str, params: dict[str, str]) -> str:
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True) + list(params.items())
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), parts.fragment))


def _back_url(preference, charge) -> str | None:
    back_urls = preference.details.get("back_urls") or {}
    key = {"approved": "success", "rejected": "failure"}.get(charge.status, "pending")
    url = back_urls.get(key)
    if not url or urlsplit(url).scheme not in ("http", "https"):
        return None
    params = {
        "collection_id": charge.public_id,
        "collection_status": charge.status,
        "payment_id": charge.public_id,
        "status": charge.status,
        "external_reference": preference.external_reference or "null",
        "payment_type": charge.details.get("payment_type_id", "credit_card"),
        "merchant_order_id": str(preference.details.get("merchant_order_id", "")),
        "preference_id": preference.public_id,
        "site_id": "MPE",
        "processing_mode": "aggregator",
        "merchant_account_id": "null",
    }
    return _with_params(url, params)


CLOSED_MESSAGE = "Esta preferencia de pago expiró: ya no puede pagarse. Vuelve a la tienda para pagar de nuevo."
OPEN_AFTER = ("rejected", "cancelled")  # a try that took no money: the payer may try again on the same page


@csrf_exempt
def checkout_page(request, preference_id: str):
    """GET: the page where a person picks a test outcome; POST: pay, then 302 to the matching back_url.

    A rejected try leaves the preference payable: the page offers the form again. An expired preference
    (its `expiration_date_to` passed, or set to now by `PUT /checkout/preferences/{id}`) is refused with
    410 and no form.
    """
    sandbox_only()
    if request.method not in ("GET", "POST"):
        return HttpResponse(status=405, headers={"Allow": "GET, POST"})
    try:
        preference = services.preference_get(preference_id)
    except wire.SimulatorError:
        raise Http404("no such preference") from None
    context = {
        "preference": preference,
        "title": preference.description or "Pago",
        "amount": wire.decimal_amount(preference.amount),
        "choices": CHECKOUT_CHOICES,
        "payment": None,
        "can_pay": True,
        "closed": None,
        "error": None,
    }
    template = "simulator/mercadopago_checkout.html"
    if services.preference_closed(preference):
        context.update(closed=CLOSED_MESSAGE, can_pay=False)
        return render(request, template, context, status=410)
    if request.method == "POST":
        outcome = request.POST.get("outcome")
        if outcome not in dict(CHECKOUT_CHOICES):
            context["error"] = "Elige un resultado de prueba."
            return render(request, template, context, status=400)
        try:
            preference, charge = services.checkout_pay(preference_id=preference_id, outcome=outcome)
        except services.CheckoutClosed:
            context.update(closed=CLOSED_MESSAGE, can_pay=False)
            return render(request, template, context, status=410)
        redirect_to = _back_url(preference, charge)
        if redirect_to:
            return HttpResponseRedirect(redirect_to)
        context.update(payment=charge, can_pay=charge.status in OPEN_AFTER)
    return render(request, template, context)
