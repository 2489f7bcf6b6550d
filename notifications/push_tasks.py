"""Thin Celery task of Web Push (registered by NotificationsConfig.ready; the logic is `push.py`)."""

from celery import shared_task


@shared_task(name="notifications.send_event_push")
def send_event_push(event_id: str, subscription_ids: list[str] | None = None, attempt: int = 1) -> dict:
    """Push one outbox event to its customer's browsers (queued after the commit that recorded it).

    Subscriptions that failed for a passing reason (429, 5xx, transport error) are tried again by a
    new task for those only, a minute later times the attempt, `push.MAX_ATTEMPTS` tries in all."""
    from notifications import push
    from smartpay.queueing import enqueue

    result = push.send_event_push(event_id, subscription_ids)
    if result.retry and attempt >= push.MAX_ATTEMPTS:
        push.logger.warning(
            "push given up", extra={"event_id": event_id, "subscriptions": result.retry, "attempts": attempt}
        )
    elif result.retry:
        enqueue(
            send_event_push,
            event_id,
            result.retry,
            attempt + 1,
            countdown=push.RETRY_COUNTDOWN_SECONDS * attempt,
        )
    return {
        "sent": len(result.sent),
        "gone": len(result.gone),
        "retry": len(result.retry),
        "failed": len(result.failed),
    }
