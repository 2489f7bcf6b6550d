"""Prometheus metrics of SmartPay: what the web process counts, and what is read at scrape time.

Counted in process (prometheus-client metric objects):
- `smartpay_http_request_duration_seconds{method, route, status}`: every request, labelled with the
  URL pattern's name (never the raw path, so no ids) and the status class (2xx, 4xx, ...);
- `smartpay_payment_attempts_total{gateway, operation, outcome}` and
  `smartpay_gateway_call_duration_seconds{gateway, operation}`: each gateway call made for a payment,
  counted when its attempt row is closed (`payments.services.attempts.finish_attempt`).

Read at scrape time (`ScrapeCollector`), so every process answers the same:
- `smartpay_gateway_breaker_state{gateway}`: 0 closed, 1 half-open, 2 open (the breaker lives in the cache);
- `smartpay_webhook_events_waiting`, `smartpay_outgoing_events_waiting`, `smartpay_reports_waiting{status}`:
  one COUNT each;
- `smartpay_celery_task_failures_total{task}`: Celery workers are other processes, so their failures
  are counted in the shared cache (Redis) by the `task_failure` signal and read back here.

Several web processes (gunicorn workers): set `PROMETHEUS_MULTIPROC_DIR` to an empty directory that
every worker can write (e.g. /dev/shm/smartpay-metrics, emptied before gunicorn starts). Each worker
then writes its counters there and a scrape (answered by any worker) adds them up. Without it the
in-process counters are those of the worker that answered the scrape.

Labels never hold tokens, ids, emails or raw paths: only names chosen by the code.
"""

from __future__ import annotations

import logging
import os

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector

logger = logging.getLogger("smartpay.reporting")

HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
GATEWAY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 8, 13, 20, 30)

HTTP_REQUEST_DURATION = Histogram(
    "smartpay_http_request_duration_seconds",
    "Time to answer an HTTP request, by method, URL pattern name and status class.",
    ["method", "route", "status"],
    buckets=HTTP_BUCKETS,
)
PAYMENT_ATTEMPTS = Counter(
    "smartpay_payment_attempts",
    "Gateway calls made for payments, by gateway, operation (charge, capture, ...) and outcome.",
    ["gateway", "operation", "outcome"],
)
GATEWAY_CALL_DURATION = Histogram(
    "smartpay_gateway_call_duration_seconds",
    "Duration of gateway calls made for payments (the attempt rows' duration), by gateway and operation.",
    ["gateway", "operation"],
    buckets=GATEWAY_BUCKETS,
)

BREAKER_VALUES = {"closed": 0, "half_open": 1, "open": 2}
CELERY_FAILURE_KEY = "reporting:celery_task_failures:{task}"
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def observe_attempt(*, gateway: str, operation: str, outcome: str, duration_ms: int | None) -> None:
    """Count one finished gateway call. Never raises: metrics must not break a payment."""
    try:
        PAYMENT_ATTEMPTS.labels(gateway=gateway, operation=operation, outcome=outcome).inc()
        if duration_ms is not None:
            GATEWAY_CALL_DURATION.labels(gateway=gateway, operation=operation).observe(duration_ms / 1000)
    except Exception:  # pragma: no cover - defensive: a metrics bug is logged, the payment goes on
        logger.exception("payment attempt metric not recorded")


def observe_request(*, method: str, route: str, status: int, seconds: float) -> None:
    method = method if method in KNOWN_METHODS else "OTHER"  # arbitrary verbs must not grow the label set
    HTTP_REQUEST_DURATION.labels(method=method, route=route, status=f"{status // 100}xx").observe(seconds)


# --- Celery task failures, counted in the shared cache ---------------------------------------------


def record_task_failure(sender=None, **kwargs) -> None:
    """`celery.signals.task_failure` receiver: one more failure of this task, in the shared cache."""
    from django.core.cache import cache

    from smartpay.cache import count as shared_counter

    name = getattr(sender, "name", None) or "unknown"
    key = CELERY_FAILURE_KEY.format(task=name)
    try:
        shared_counter(key, None, cache=cache)
    except Exception:  # a cache outage must not turn into a second failure of the task
        logger.warning("celery task failure not counted", extra={"task": name})


def celery_task_failures() -> dict[str, int]:
    """{task name: failures} of every registered task that has failed at least once."""
    from django.core.cache import cache

    from smartpay.celery import app

    names = sorted(name for name in app.tasks if not name.startswith("celery."))
    keys = {CELERY_FAILURE_KEY.format(task=name): name for name in names}
    found = cache.get_many(list(keys))
    return {keys[key]: int(value) for key, value in found.items() if value}


# --- Scrape-time readings --------------------------------------------------------------------------


class ScrapeCollector:
    """Readings taken when Prometheus scrapes: breaker states, queue depths, Celery failures."""

    def collect(self):
        yield self._breakers()
        yield from self._queues()
        yield self._celery_failures()

    def _breakers(self):
        from payments import breaker
        from payments.gateways.registry import gateway_names

        family = GaugeMetricFamily(
            "smartpay_gateway_breaker_state",
            "Circuit breaker of each gateway: 0 closed, 1 half-open, 2 open.",
            labels=["gateway"],
        )
        for gateway in gateway_names():
            family.add_metric([gateway], BREAKER_VALUES.get(breaker.state(gateway).state, 0))
        return family

    def _queues(self):
        from django.db.models import Count

        from notifications.models import DeliveryState, OutgoingEvent
        from payments.models import WebhookEvent
        from reporting.models import Report, ReportStatus

        webhooks = GaugeMetricFamily(
            "smartpay_webhook_events_waiting",
            "Gateway webhook deliveries received and not processed yet.",
            value=WebhookEvent.objects.filter(status=WebhookEvent.RECEIVED).count(),
        )
        outgoing = GaugeMetricFamily(
            "smartpay_outgoing_events_waiting",
            "Events for client apps waiting to be delivered (first try or a scheduled retry).",
            value=OutgoingEvent.objects.filter(delivery_state=DeliveryState.PENDING).count(),
        )
        reports = GaugeMetricFamily(
            "smartpay_reports_waiting", "Period reports queued or being generated.", labels=["status"]
        )
        waiting = (ReportStatus.QUEUED, ReportStatus.RUNNING)
        counts = dict(
            Report.objects.filter(status__in=waiting).order_by().values_list("status").annotate(n=Count("id"))
        )
        for status in waiting:
            reports.add_metric([str(status)], counts.get(status, 0))
        return [webhooks, outgoing, reports]

    def _celery_failures(self):
        family = CounterMetricFamily(
            "smartpay_celery_task_failures",
            "Celery task runs that ended in an exception, by task name (counted by every worker in the cache).",
            labels=["task"],
        )
        for task, count in celery_task_failures().items():
            family.add_metric([task], count)
        return family


class _Exposition:
    """What one scrape shows: the in-process metrics (or every worker's, in multiprocess mode) and
    the scrape-time readings."""

    def __init__(self, *collectors):
        self.collectors = collectors

    def collect(self):
        for collector in self.collectors:
            yield from collector.collect()


def exposition_registry() -> _Exposition:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        workers = CollectorRegistry()
        MultiProcessCollector(workers)
        return _Exposition(workers, ScrapeCollector())
    return _Exposition(REGISTRY, ScrapeCollector())
