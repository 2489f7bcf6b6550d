"""Prometheus `/metrics`: the scrape endpoint, and the middleware that times every request.

Access: `Authorization: Bearer <METRICS_TOKEN>` when a token is set (compared in constant time), or
a client address (REMOTE_ADDR only: X-Forwarded-For is whatever the caller says) inside one of
`METRICS_ALLOWED_NETWORKS`. Anything else is a plain-text 403. The metrics are described in
`reporting/prom.py`.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import time

from django.conf import settings
from django.http import HttpResponse
from django.views.decorators.http import require_GET
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest

from reporting import prom

logger = logging.getLogger("smartpay.reporting")


def _token_ok(request) -> bool:
    expected = settings.METRICS_TOKEN
    if not expected:
        return False
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not given:
        return False
    return hmac.compare_digest(given.strip().encode(), expected.encode())


def _network_ok(request) -> bool:
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    for network in settings.METRICS_ALLOWED_NETWORKS:
        try:
            if address in ipaddress.ip_network(network.strip(), strict=False):
                return True
        except ValueError:
            logger.warning("METRICS_ALLOWED_NETWORKS has an invalid entry", extra={"network": network})
    return False


def scrape_allowed(request) -> bool:
    return _token_ok(request) or _network_ok(request)


@require_GET
def prometheus_metrics(request):
    if not scrape_allowed(request):
        return HttpResponse("Forbidden\n", status=403, content_type="text/plain; charset=utf-8")
    return HttpResponse(generate_latest(prom.exposition_registry()), content_type=CONTENT_TYPE_PLAIN_0_0_4)


class RequestMetricsMiddleware:
    """Times every request into `smartpay_http_request_duration_seconds`, labelled with the URL
    pattern's name (`resolver_match.view_name`), never the path, so ids never become labels."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        started = time.perf_counter()
        response = self.get_response(request)
        match = getattr(request, "resolver_match", None)
        route = (match.view_name or match.url_name or "unnamed") if match is not None else "unmatched"
        try:
            prom.observe_request(
                method=request.method or "",
                route=route,
                status=response.status_code,
                seconds=time.perf_counter() - started,
            )
        except Exception:  # pragma: no cover - a metrics bug never costs a response
            logger.exception("request metric not recorded")
        return response
