"""Queueing work for the workers without ever letting a broker outage reach the caller.

Work queued after a commit (an invoice's email and PSE submission, a webhook's processing, a
credits renewal) follows from something already committed: a charge, a stored delivery. If the
broker cannot take the message, that commit stands and the caller's answer must not change: the
row that asks for the work stays in its waiting state (`pending` email, `issued` invoice,
`received` webhook event, ...) and the sweep of its app on beat queues it again minutes later.
So a publishing failure is logged as a warning and swallowed here, never raised.
"""

from __future__ import annotations

import logging
import re

from django.db import transaction

logger = logging.getLogger("smartpay.queueing")

_URL_CREDENTIALS = re.compile(r"(\w+://)[^@/\s]*@")


def _describe(error: BaseException) -> str:
    """The error for the log: its class and message, with any credentials in a URL masked."""
    return _URL_CREDENTIALS.sub(r"\1***@", f"{type(error).__name__}: {error}")[:300]


def enqueue(task, *args, **options) -> bool:
    """Publish `task(*args)` now (`options` go to `apply_async`). True when the broker took it.

    False, with a warning logged, when it could not be published (broker down or unreachable):
    the caller carries on and a sweep queues the work again. Without a broker (eager mode) the task
    runs right here, and its own errors are raised as they are: they are not a publishing failure.
    """
    if task.app.conf.task_always_eager:
        task.apply_async(args, **options)
        return True
    try:
        task.apply_async(args, **options)
    except Exception as error:  # kombu's OperationalError, socket errors, a result store outage...
        logger.warning(
            "task not queued (broker unavailable?); its sweep will queue it again",
            extra={"task": task.name, "error": _describe(error)},
        )
        return False
    return True


def enqueue_after_commit(task, *args, using: str | None = None, **options) -> None:
    """`enqueue(task, *args)` once the current transaction commits (never if it rolls back; at
    once outside a transaction). Registered robust: nothing it raises reaches the committed code."""

    def publish() -> None:
        enqueue(task, *args, **options)

    publish.__qualname__ = f"enqueue_after_commit[{task.name}]"  # named in Django's log if it raises
    transaction.on_commit(publish, using=using, robust=True)
