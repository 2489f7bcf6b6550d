"""Builds gateway adapters from settings. A new gateway is one module plus one line here.

Adapters are cached per process and per configuration, so each keeps one `requests.Session`
(connection pooling) while tests that change base URLs get fresh adapters.
"""

from __future__ import annotations

import threading

from django.conf import settings
from django.utils.module_loading import import_string

from payments.gateways.base import GatewayAdapter, GatewayConfig, GatewayConfigurationError

ADAPTERS: dict[str, str] = {
    "culqi": "payments.gateways.culqi.CulqiAdapter",
    "mercadopago": "payments.gateways.mercadopago.MercadoPagoAdapter",
}

_cache: dict[tuple[str, GatewayConfig], GatewayAdapter] = {}
_lock = threading.Lock()


def gateway_config(name: str) -> GatewayConfig:
    timeouts = {"connect_timeout": settings.GATEWAY_CONNECT_TIMEOUT, "read_timeout": settings.GATEWAY_READ_TIMEOUT}
    if name == "culqi":
        return GatewayConfig(
            api_base=settings.CULQI_API_BASE.rstrip("/"),
            secure_base=settings.CULQI_SECURE_BASE.rstrip("/"),
            public_key=settings.CULQI_PUBLIC_KEY,
            secret_key=settings.CULQI_SECRET_KEY,
            **timeouts,
        )
    if name == "mercadopago":
        return GatewayConfig(
            api_base=settings.MERCADOPAGO_API_BASE.rstrip("/"),
            public_key=settings.MERCADOPAGO_PUBLIC_KEY,
            secret_key=settings.MERCADOPAGO_ACCESS_TOKEN,
            **timeouts,
        )
    raise GatewayConfigurationError(f"unknown gateway {name!r}", gateway=name)


def gateway_names() -> list[str]:
    return list(ADAPTERS)


def get_adapter(name: str) -> GatewayAdapter:
    if name not in ADAPTERS:
        raise GatewayConfigurationError(f"unknown gateway {name!r}", gateway=name)
    config = gateway_config(name)
    key = (name, config)
    with _lock:
        adapter = _cache.get(key)
        if adapter is None:
            adapter = import_string(ADAPTERS[name])(config)
            _cache[key] = adapter
    return adapter
