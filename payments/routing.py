"""Which gateways may take a payment, best first.

Per currency, an ordered list from settings (`GATEWAY_ROUTING`), filtered to gateways whose
adapter supports the currency. Health-aware ordering (circuit breakers) plugs in here.
"""

from django.conf import settings

from payments.gateways.registry import gateway_names, get_adapter


def candidates(currency: str) -> list[str]:
    preferred = settings.GATEWAY_ROUTING.get(currency, gateway_names())
    return [name for name in preferred if name in gateway_names() and supports(name, currency)]


def supports(gateway: str, currency: str) -> bool:
    return currency in get_adapter(gateway).currencies


def is_healthy(gateway: str) -> bool:
    return True
