"""The configured PSE sender (settings.BILLING_PSE), or None: documents then stay `issued` here."""

from django.conf import settings

from billing.pse.base import InvoiceSender


def get_sender() -> InvoiceSender | None:
    if settings.BILLING_PSE == "nubefact":
        from billing.pse.nubefact import NubefactSender

        return NubefactSender(
            url=settings.NUBEFACT_API_URL,
            token=settings.NUBEFACT_API_TOKEN,
            usd_exchange_rate=settings.BILLING_USD_EXCHANGE_RATE,
            timeout=(settings.BILLING_PSE_CONNECT_TIMEOUT, settings.BILLING_PSE_READ_TIMEOUT),
        )
    return None


def pse_configured() -> bool:
    return bool(settings.BILLING_PSE)
