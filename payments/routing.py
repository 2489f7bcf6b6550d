"""Which gateways may take a payment, best first.

Routing rules (admin-editable, per currency: ordered gateways, enabled flag, optional amount range)
decide the order; without rules for a currency, `GATEWAY_ROUTING` from settings does. Gateways
whose adapter does not take the currency are dropped. Health comes from the circuit breakers.
"""

from django.conf import settings

from payments import breaker
from payments.gateways.registry import gateway_names, get_adapter


def candidates(currency: str, amount: int | None = None) -> list[str]:
    """Gateways allowed for this currency (and amount), in routing order, healthy or not."""
    from payments.models import RoutingRule

    rules = list(RoutingRule.objects.filter(currency=currency))
    if rules:
        ordered = [rule.gateway for rule in rules if rule.enabled and rule.accepts(amount)]
    else:
        ordered = settings.GATEWAY_ROUTING.get(currency, gateway_names())
    known = gateway_names()
    return [name for name in ordered if name in known and supports(name, currency)]


def supports(gateway: str, currency: str) -> bool:
    return currency in get_adapter(gateway).currencies


def is_healthy(gateway: str) -> bool:
    return breaker.is_healthy(gateway)
