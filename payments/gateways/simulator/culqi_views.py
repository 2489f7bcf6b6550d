"""Culqi's HTTP surface under /sandbox/culqi/: api.culqi.com and secure.culqi.com paths on one base.

Views parse, call one `culqi_services` function and render with `culqi_objects`. They are plain
Django views (no DRF: no SmartPay API keys, and tokenization receives card numbers by design).
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from django.http import Http404, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt

from payments.gateways.simulator import culqi_objects as objects
from payments.gateways.simulator import culqi_services as services
from payments.gateways.simulator import wire
from payments.gateways.simulator.control import by_method, endpoint, sandbox_only
from payments.gateways.simulator.models import SimCharge, SimCustomer

CHECKOUT_CHOICES = [
    ("approve", "Visa 4111 1111 1111 1111 — aprobada"),
    ("insufficient_funds", "Visa 4000 0400 0000 0008 — fondos insuficientes"),
    ("stolen_card", "Visa 4000 0200 0000 0000 — tarjeta robada"),
]


def _answer(value, status: int = 200) -> HttpResponse:
    return wire.json_response(value, status=status, headers=objects.response_headers(), charset_header=True)


def _client_ip(request) -> str:
    return request.META.get("REMOTE_ADDR", "")


def _outcome_response(outcome: services.Outcome, render_created, decline_status: int) -> HttpResponse:
    if outcome.kind == "review":
        return _answer(dict(objects.REVIEW_BODY), status=200)
    if outcome.kind == "declined":
        body, status = objects.card_declined(outcome.charge.status_detail, outcome.charge.public_id, decline_status)
        return _answer(body, status=status)
    return _answer(render_created(outcome), status=201)


# --- Paging (§3) --------------------------------------------------------------------------------


def _page(request, queryset, base_queryset, render_item) -> dict:
    """`{"data": [...], "paging": {...}}`, newest first, cursors are object ids; `before` wins over `after`."""
    raw_limit = request.GET.get("limit", "50")
    if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= 100:
        raise objects.parameter_error("limit", "El campo 'limit' debe ser un número entre 1 y 100.")
    limit = int(raw_limit)
    before, after = request.GET.get("before"), request.GET.get("after")
    cursor = before or after
    if cursor:
        anchor = base_queryset.filter(public_id=cursor).first()
        if anchor is None:
            raise objects.parameter_error("before" if before else "after", f"El cursor {cursor} no existe.")
        if before:
            newer = queryset.filter(pk__gt=anchor.pk)
            items = list(newer.order_by("pk")[:limit])[::-1]
            remaining = newer.count() - len(items)
        else:
            older = queryset.filter(pk__lt=anchor.pk)
            items = list(older.order_by("-pk")[:limit])
            remaining = older.count() - len(items)
    else:
        items = list(queryset.order_by("-pk")[:limit])
        remaining = queryset.count() - len(items)

    def link(cursor_name: str, cursor_value: str) -> str:
        query = [(k, v) for k, v in request.GET.items() if k not in ("before", "after", "limit")]
        query = [("limit", str(limit)), *query, (cursor_name, cursor_value)]
        return request.build_absolute_uri(request.path) + "?" + urlencode(query)

    first, last = (items[0].public_id, items[-1].public_id) if items else (None, None)
    return {
        "data": [render_item(item) for item in items],
        "paging": {
            "previous": link("before", first) if first else None,
            "next": link("after", last) if last else None,
            "cursors": {"before": first, "after": last},
            "remaining_items": remaining,
        },
    }


def _int_param(request, name: str) -> int | None:
    value = request.GET.get(name)
    if value is None or value == "":
        return None
    if not value.isdigit():
        raise objects.parameter_error(name, f"El campo '{name}' es inválido.")
    return int(value)


# --- Tokens -------------------------------------------------------------------------------------


@endpoint("culqi", charset_header=True)
def tokens(request):
    def create():
        services.authenticate(request, public_ok=True)
        token = services.token_create(body=services.body_of(request), client_ip=_client_ip(request))
        return _answer(objects.token_object(token), status=201)

    return by_method(request, POST=create)


@endpoint("culqi", charset_header=True)
def token_detail(request, token_id: str):
    def get():
        services.authenticate(request)
        return _answer(objects.token_object(services.token_get(token_id)))

    return by_method(request, GET=get)


# --- Charges ------------------------------------------------------------------------------------


def _charge_list(request) -> HttpResponse:
    base = SimCharge.objects.filter(gateway=services.CULQI)
    queryset = base.select_related("token", "card__customer", "card__source_token")
    if email := request.GET.get("email"):
        queryset = queryset.filter(email=email)
    if currency := request.GET.get("currency_code"):
        queryset = queryset.filter(currency=currency)
    for name, lookup in (("amount", "amount"), ("min_amount", "amount__gte"), ("max_amount", "amount__lte")):
        if (value := _int_param(request, name)) is not None:
            queryset = queryset.filter(**{lookup: value})
    # Culqi documents list dates as "unix": seconds or milliseconds are both accepted (told by magnitude).
    if (value := _int_param(request, "creation_date_from")) is not None:
        queryset = queryset.filter(created_at__gte=wire.from_epoch(value))
    if (value := _int_param(request, "creation_date_to")) is not None:
        queryset = queryset.filter(created_at__lte=wire.from_epoch(value))
    captured = request.GET.get("captured")
    if captured in ("true", "false"):
        queryset = queryset.filter(captured=captured == "true")
    return _answer(_page(request, queryset, base, objects.charge_object))


@endpoint("culqi", charset_header=True)
def charges(request):
    services.authenticate(request)

    def create():
        outcome = services.charge_create(body=services.body_of(request))
        return _outcome_response(
            outcome, lambda o: objects.charge_object(o.charge, capture_date_pending=True), decline_status=402
        )

    return by_method(request, POST=create, GET=lambda: _charge_list(request))


@endpoint("culqi", charset_header=True)
def charge_detail(request, charge_id: str):
    services.authenticate(request)
    return by_method(request, GET=lambda: _answer(objects.charge_object(services.charge_get(charge_id))))


@endpoint("culqi", charset_header=True)
def charge_capture(request, charge_id: str):
    services.authenticate(request)

    def capture():
        charge = services.charge_capture(public_id=charge_id)
        return _answer(objects.charge_object(charge, capture_date_pending=True), status=201)

    return by_method(request, POST=capture)


# --- Refunds ------------------------------------------------------------------------------------


@endpoint("culqi", charset_header=True)
def refunds(request):
    services.authenticate(request)

    def create():
        refund = services.refund_create(body=services.body_of(request))
        return _answer(objects.refund_object(refund), status=201)

    return by_method(request, POST=create)


@endpoint("culqi", charset_header=True)
def refund_detail(request, refund_id: str):
    services.authenticate(request)
    return by_method(request, GET=lambda: _answer(objects.refund_object(services.refund_get(refund_id))))


# --- Customers and cards ------------------------------------------------------------------------


@endpoint("culqi", charset_header=True)
def customers(request):
    services.authenticate(request)

    def create():
        return _answer(objects.customer_object(services.customer_create(body=services.body_of(request))), status=201)

    def listing():
        base = SimCustomer.objects.filter(gateway=services.CULQI, deleted=False)
        queryset = base.filter(email=request.GET["email"]) if request.GET.get("email") else base
        return _answer(_page(request, queryset, base, lambda c: objects.customer_object(c, with_cards=True)))

    return by_method(request, POST=create, GET=listing)


@endpoint("culqi", charset_header=True)
def customer_detail(request, customer_id: str):
    services.authenticate(request)

    def delete():
        customer = services.customer_delete(customer_id)
        message = f"Se eliminó el cliente con ID {customer.public_id} exitosamente."
        return _answer({"id": customer.public_id, "deleted": True, "merchant_message": message})

    return by_method(
        request,
        GET=lambda: _answer(objects.customer_object(services.customer_get(customer_id), with_cards=True)),
        DELETE=delete,
    )


@endpoint("culqi", charset_header=True)
def cards_view(request):
    services.authenticate(request)

    def create():
        outcome = services.card_create(body=services.body_of(request))
        # A declined validation is HTTP 400 on cards, not 402 (§9, §11).
        return _outcome_response(outcome, lambda o: objects.card_object(o.card), decline_status=400)

    return by_method(request, POST=create)


@endpoint("culqi", charset_header=True)
def card_detail(request, card_id: str):
    services.authenticate(request)

    def delete():
        card = services.card_delete(card_id)
        message = f"Se eliminó la tarjeta con ID {card.public_id} exitosamente."
        return _answer({"id": card.public_id, "deleted": True, "merchant_message": message})

    return by_method(request, GET=lambda: _answer(objects.card_object(services.card_get(card_id))), DELETE=delete)


# --- Orders -------------------------------------------------------------------------------------


@endpoint("culqi", charset_header=True)
def orders(request):
    services.authenticate(request)

    def create():
        return _answer(objects.order_object(services.order_create(body=services.body_of(request))), status=201)

    return by_method(request, POST=create)


@endpoint("culqi", charset_header=True)
def order_detail(request, order_id: str):
    services.authenticate(request)

    def delete():
        services.order_delete(order_id)
        response = HttpResponse(status=204)  # an empty body, as observed (§8)
        for name, value in objects.response_headers().items():
            response[name] = value
        return response

    return by_method(request, GET=lambda: _answer(objects.order_object(services.order_get(order_id))), DELETE=delete)


@endpoint("culqi", charset_header=True)
def order_confirm(request, order_id: str):
    services.authenticate(request, public_ok=True)  # SDKs confirm with the public key; sk worked too (§1)
    return by_method(request, POST=lambda: _answer(objects.order_object(services.order_confirm(order_id)), status=201))


# --- Hosted checkout page (not a Culqi API: a stand-in for Culqi Checkout in the browser) --------


def _safe_return_url(value: str | None) -> str | None:
    if not value:
        return None
    parts = urlsplit(value)
    return value if parts.scheme in ("http", "https") and parts.netloc else None


def _with_params(url: str, params: dict[str, str]) -> str:
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True) + list(params.items())
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), parts.fragment))


CLOSED_MESSAGES = {
    "expired": "Esta orden expiró: ya no puede pagarse. Vuelve a la tienda para pagar de nuevo.",
    "deleted": "Esta orden fue anulada por el comercio: ya no puede pagarse.",
}


def _closed_message(state: str) -> str | None:
    if state in ("created", "pending", "paid"):
        return None
    return CLOSED_MESSAGES.get(state, f"Esta orden no puede pagarse (estado: {state}).")


@csrf_exempt
def checkout_page(request, order_id: str):
    """GET: the page where a person picks a test card; POST: pay, then 302 to `return_url`.

    A declined try leaves the order payable: without a `return_url` the page shows the decline and the
    form again. An expired or deleted order is refused with 410 and no form; a paid one is not charged
    again (a POST answers with its charge).
    """
    sandbox_only()
    if request.method not in ("GET", "POST"):
        return HttpResponse(status=405, headers={"Allow": "GET, POST"})
    try:
        order = services.order_get(order_id)
    except wire.SimulatorError:
        raise Http404("no such order") from None
    return_url = _safe_return_url(request.POST.get("return_url") or request.GET.get("return_url"))
    template = "simulator/culqi_checkout.html"
    state = objects.order_state(order)
    context = {
        "order": order,
        "state": state,
        "closed": _closed_message(state),
        "amount": wire.decimal_amount(order.amount),
        "choices": CHECKOUT_CHOICES,
        "return_url": return_url or "",
        "charge": None,
        "error": None,
    }
    if context["closed"]:
        return render(request, template, context, status=410)
    if request.method == "POST":
        choice = request.POST.get("card")
        if choice not in dict(CHECKOUT_CHOICES):
            context["error"] = "Elige una tarjeta de prueba."
            return render(request, template, context, status=400)
        try:
            order, charge = services.checkout_pay(order_id=order_id, choice=choice, client_ip=_client_ip(request))
        except services.CheckoutClosed as closed:
            context.update(state=str(closed), closed=_closed_message(str(closed)))
            return render(request, template, context, status=410)
        if return_url:
            return HttpResponseRedirect(
                _with_params(return_url, {"order_id": order.public_id, "charge_id": charge.public_id})
            )
        context.update(order=order, state=objects.order_state(order), charge=charge)
    return render(request, template, context)
