"""`{% open_alerts_panel %}`: the unresolved alerts on the admin index (templates/admin/index.html).

A template tag rather than a context processor or a custom AdminSite: it runs only where the panel
is drawn (like Django's own `get_admin_log` on that page), and nothing in settings or URLs changes.
"""

from django import template
from django.db.models import Case, IntegerField, Value, When

from notifications.models import Alert, AlertSeverity, AlertStatus
from smartpay.clock import business_time

register = template.Library()

PANEL_ROWS = 20

SEVERITY_RANK = Case(
    When(severity=AlertSeverity.CRITICAL, then=Value(0)),
    When(severity=AlertSeverity.WARNING, then=Value(1)),
    default=Value(2),
    output_field=IntegerField(),
)
STATUS_RANK = Case(When(status=AlertStatus.OPEN, then=Value(0)), default=Value(1), output_field=IntegerField())


@register.inclusion_tag("admin/notifications/alerts_panel.html", takes_context=True)
def open_alerts_panel(context):
    """Unresolved alerts for a staff user: open ones first, then by severity and last sighting."""
    request = context.get("request")
    user = getattr(request, "user", None)
    if not (user and user.is_active and user.is_staff):
        return {"show": False}
    unresolved = Alert.objects.filter(resolved_at__isnull=True)
    rows = list(
        unresolved.select_related("acknowledged_by")
        .annotate(status_rank=STATUS_RANK, severity_rank=SEVERITY_RANK)
        .order_by("status_rank", "severity_rank", "-last_seen_at")[:PANEL_ROWS]
    )
    for alert in rows:
        alert.last_seen_lima = business_time(alert.last_seen_at)
    total = len(rows) if len(rows) < PANEL_ROWS else unresolved.count()
    return {
        "show": True,
        "alerts": rows,
        "total": total,
        "open": sum(1 for alert in rows if alert.status == AlertStatus.OPEN)
        if total == len(rows)
        else unresolved.filter(status=AlertStatus.OPEN).count(),
        "more": total - len(rows),
        "next": request.get_full_path(),
    }
