"""Endpoints the gateways call. No API key: authenticity by each gateway's own means."""

from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from payments.services import webhooks
from smartpay.api.errors import problem_response


def _query(request) -> dict:
    return {key: request.GET.get(key) for key in request.GET}


def _headers(request) -> dict:
    return {key.lower(): value for key, value in request.headers.items()}


def _answer(request, gateway: str, parse, verify):
    try:
        delivery = parse()
        verify(delivery)
    except webhooks.WebhookRejected as exc:
        return problem_response(
            status=401, code="webhook_unauthenticated", title="Webhook not authenticated", detail=str(exc)
        )
    except webhooks.WebhookMalformed as exc:
        return problem_response(status=400, code="webhook_malformed", title="Webhook not understood", detail=str(exc))
    except webhooks.WebhookIgnored as exc:
        return problem_response(status=404, code="ipn_disabled", title="Not accepted here", detail=str(exc))
    event, created = webhooks.webhook_receive(
        delivery=delivery, raw_body=request.body, query=_query(request), headers=_headers(request)
    )
    return JsonResponse({"received": True, "duplicate": not created, "id": event.pk}, status=200)


@csrf_exempt
@require_POST
def mercadopago_webhook(request):
    query, headers = _query(request), _headers(request)
    if webhooks.is_mercadopago_ipn(query) and webhooks.ipn_rate_exceeded(request.META.get("REMOTE_ADDR", "")):
        return problem_response(
            status=429,
            code="rate_limited",
            title="Too many requests",
            detail="Too many IPN notifications from this address; try again in a minute.",
            headers={"Retry-After": "60"},
        )

    def parse():
        return webhooks.parse_mercadopago(query=query, body=request.body, headers=headers)

    def verify(delivery):
        if delivery.event_id.startswith("ipn:"):
            return  # legacy IPN cannot be signed: trusted only through the re-fetch in the worker
        webhooks.verify_mercadopago_signature(
            header=headers.get("x-signature"), data_id=query.get("data.id"), request_id=headers.get("x-request-id")
        )

    return _answer(request, "mercadopago", parse, verify)


@csrf_exempt
@require_POST
def culqi_webhook(request):
    def verify(_delivery):
        webhooks.verify_culqi_basic_auth(request.headers.get("Authorization"))

    def parse():
        # Check credentials before reading the body, so unauthenticated junk is 401, not 400.
        webhooks.verify_culqi_basic_auth(request.headers.get("Authorization"))
        return webhooks.parse_culqi(body=request.body)

    return _answer(request, "culqi", parse, verify)
