"""Browser-facing pages (no API key): the return from a gateway's hosted checkout."""

from urllib.parse import urlencode, urlsplit, urlunsplit

from django.http import HttpResponseRedirect
from django.shortcuts import render

from payments.enums import PaymentStatus
from payments.models import Payment
from payments.services import recording
from payments.services.operations import payment_sync
from smartpay.api.errors import problem_response

_UNSETTLED = {PaymentStatus.PENDING, PaymentStatus.PROCESSING, PaymentStatus.REQUIRES_ACTION}


def checkout_return(request, payment_id: str):
    """The gateway sends the payer here. We never trust the query string: we ask the gateway."""
    payment = Payment.objects.filter(pk=payment_id).first()
    if payment is None:
        return problem_response(status=404, code="not_found", title="Not found", detail="No such payment.")
    if payment.status in _UNSETTLED:
        payment = payment_sync(payment=payment, source=recording.CHECKOUT_RETURN)
    if payment.return_url:
        parts = urlsplit(payment.return_url)
        query = "&".join(filter(None, [parts.query, urlencode({"payment_id": payment.id, "status": payment.status})]))
        return HttpResponseRedirect(urlunsplit(parts._replace(query=query)))
    return render(request, "payments/checkout_return.html", {"payment": payment})
