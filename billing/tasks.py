"""Thin Celery wrappers around billing services (queued after commit; the sweep is on beat)."""

import secrets

from celery import shared_task

from billing import services
from billing.pse.base import PseTransientError

_jitter = secrets.SystemRandom()

# Without a broker tasks run eagerly inside the request that committed the document: a failure
# then waits for the sweep (5 minutes) instead of retrying in a loop inside that request.
RETRY_WHEN_EAGER = False


def _countdown(retries: int, *, base: int = 30, cap: int = 3600) -> int:
    """Full-jitter exponential backoff: uniform(0, min(cap, base * 2**n)), at least 1 s."""
    return max(1, int(_jitter.uniform(0, min(cap, base * 2**retries))))


def _may_retry(task) -> bool:
    return task.request.retries < task.max_retries and (RETRY_WHEN_EAGER or not task.request.is_eager)


@shared_task(bind=True, name="billing.submit_invoice", max_retries=6, acks_late=True)
def submit_invoice(self, invoice_id: str) -> str:
    """Submit a document to the PSE (or ask for its verdict); network trouble retries with backoff."""
    try:
        return services.invoice_submit(invoice_id=invoice_id).status
    except PseTransientError as exc:
        if not _may_retry(self):
            services.invoice_submission_failed(invoice_id=invoice_id, error=exc.message)
            return "retry_later"
        raise self.retry(countdown=_countdown(self.request.retries)) from None


@shared_task(bind=True, name="billing.email_invoice", max_retries=5, acks_late=True)
def email_invoice(self, invoice_id: str) -> str:
    """Email a document once; retried only when the provider certainly did not take it."""
    try:
        return services.invoice_email_send(invoice_id=invoice_id)
    except services.EmailRetry:
        if not _may_retry(self):
            if not self.request.is_eager:
                services.invoice_email_failed(invoice_id=invoice_id)
            return "retry_later"
        raise self.retry(countdown=_countdown(self.request.retries, base=60)) from None


@shared_task(name="billing.sweep")
def sweep() -> dict:
    """Issue what was missed, re-queue stalled submissions and emails, poll SUNAT verdicts."""
    return services.billing_sweep()
