"""Prometheus `/metrics` (filled by the reporting issue)."""

from django.http import HttpResponse


def prometheus_metrics(request):
    return HttpResponse(status=404)
