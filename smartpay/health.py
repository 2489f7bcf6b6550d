"""Liveness (`/healthz`) and readiness (`/readyz`) probes."""

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.http import JsonResponse

from smartpay.api.errors import problem_response


def healthz(request):
    return JsonResponse({"status": "ok"})


def _check_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def _check_broker() -> None:
    from smartpay.celery import app

    # The URL is passed explicitly: the Celery app caches its configuration on first use.
    # One attempt with a short connect timeout, so a dead broker answers 503 fast instead of hanging.
    with app.connection_for_write(settings.CELERY_BROKER_URL, connect_timeout=2) as conn:
        conn.ensure_connection(max_retries=0)


def _check_cache() -> None:
    cache.set("readyz", "1", timeout=5)
    if cache.get("readyz") != "1":
        raise RuntimeError("cache did not return the value just written")


def readyz(request):
    checks = {"database": _check_database}
    if settings.CELERY_BROKER_URL:
        checks["broker"] = _check_broker
    if settings.REDIS_URL:
        checks["cache"] = _check_cache
    results, failing = {}, []
    for name, check in checks.items():
        try:
            check()
            results[name] = "ok"
        except Exception as exc:  # a probe reports every failure, whatever its kind
            results[name] = f"error: {type(exc).__name__}"
            failing.append(name)
    if failing:
        return problem_response(
            status=503,
            code="not_ready",
            title="Service not ready",
            detail=f"Failing: {', '.join(failing)}.",
            checks=results,
        )
    return JsonResponse({"status": "ok", "checks": results})
