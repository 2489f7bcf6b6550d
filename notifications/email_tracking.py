"""Bounces and complaints from Postmark (anymail's tracking webhook) suppress the payer's address.

Postmark posts to `/anymail/postmark/tracking/` with HTTP basic auth; the credentials are
`ANYMAIL_WEBHOOK_SECRET` ("user:password", set the same in Postmark's webhook URL). Without that
setting the URL refuses every post (anymail alone would accept unauthenticated posts with a warning).
A hard bounce or a spam complaint records a `SuppressedAddress`: nothing more is sent to it.
"""

from __future__ import annotations

from anymail.exceptions import AnymailWebhookValidationFailure
from anymail.signals import EventType, tracking
from anymail.webhooks.postmark import PostmarkTrackingWebhookView
from django.dispatch import receiver

# Postmark's bounce `Type`s that mean the address will never take mail (anymail maps soft bounces,
# virus notifications, ... to `bounced` too; those are not suppressed).
HARD_BOUNCES = {"HardBounce"}


class PostmarkTrackingView(PostmarkTrackingWebhookView):
    """anymail's Postmark tracking webhook, refusing every post when no webhook secret is set."""

    warn_if_no_basic_auth = False

    def validate_request(self, request):
        if not self.basic_auth:
            raise AnymailWebhookValidationFailure("ANYMAIL_WEBHOOK_SECRET is not set: tracking webhook refused")


@receiver(tracking, dispatch_uid="notifications.email_tracking.suppress_on_bounce")
def suppress_on_bounce(sender, event, esp_name, **kwargs) -> None:
    from notifications.emails import suppress_address

    esp_event = event.esp_event if isinstance(event.esp_event, dict) else {}
    if event.event_type == EventType.COMPLAINED:
        reason = "complained"
    elif event.event_type == EventType.BOUNCED and (esp_name != "Postmark" or esp_event.get("Type") in HARD_BOUNCES):
        reason = "bounced"
    else:
        return
    suppress_address(event.recipient or "", reason=reason, detail=event.description or event.mta_response or "")
