"""Thin Celery tasks of the notifications app."""

from celery import shared_task


@shared_task(name="notifications.dispatch_events")
def dispatch_events() -> dict:
    """Send due outgoing events to client apps (beat every 10 s, and queued after each commit that
    records events). Bounded per run (EVENTS_DISPATCH_MAX_EVENTS / EVENTS_DISPATCH_MAX_SECONDS);
    several runs at once are safe: each event row is sent under its own lock (SKIP LOCKED)."""
    from notifications.delivery import dispatch_due

    return dispatch_due()
