"""The signature a client app checks: computed here by hand, independently of the code under test."""

import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta

from django.utils import timezone

from notifications.models import OutgoingEvent
from notifications.signing import (
    delivery_headers,
    event_body,
    signature_header,
    signing_secrets,
    verify_signature,
)
from tests.notifications.delivery_helpers import make_app, make_event

SECRET = "whsec_0123456789abcdef0123456789abcdef0123456789abcdef"
OLD_SECRET = "whsec_fedcba9876543210fedcba9876543210fedcba9876543210"
T = 1_767_225_600  # 2026-01-01T00:00:00Z
BODY = b'{"id":"evt_1","type":"payment.succeeded","created_at":"2026-01-01T00:00:00Z","data":{"id":"pay_1"}}'


def by_hand(secret: str, timestamp: int, body: bytes) -> str:
    message = str(timestamp).encode("ascii") + b"." + body
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def test_header_matches_a_vector_computed_by_hand():
    expected = by_hand(SECRET, T, BODY)
    assert signature_header(BODY, [SECRET], timestamp=T) == f"t={T},v1={expected}"
    assert verify_signature(BODY, f"t={T},v1={expected}", [SECRET], now=T + 10)


def test_a_tampered_body_or_a_wrong_secret_fails():
    header = f"t={T},v1={by_hand(SECRET, T, BODY)}"
    assert not verify_signature(BODY.replace(b"pay_1", b"pay_2"), header, [SECRET], now=T)
    assert not verify_signature(BODY + b" ", header, [SECRET], now=T)
    assert not verify_signature(BODY, header, [OLD_SECRET], now=T)
    # A forged timestamp breaks the signature too.
    assert not verify_signature(BODY, header.replace(f"t={T}", f"t={T + 1}"), [SECRET], now=T)


def test_old_or_future_timestamps_are_refused_outside_the_tolerance():
    header = f"t={T},v1={by_hand(SECRET, T, BODY)}"
    assert verify_signature(BODY, header, [SECRET], now=T + 300)
    assert not verify_signature(BODY, header, [SECRET], now=T + 301)
    assert not verify_signature(BODY, header, [SECRET], now=T - 301)
    assert verify_signature(BODY, header, [SECRET], tolerance=1000, now=T + 900)


def test_malformed_headers_are_refused():
    good = by_hand(SECRET, T, BODY)
    for header in [
        "",
        "garbage",
        f"v1={good}",
        f"t={T}",
        f"t=abc,v1={good}",
        f"t={T},t={T},v1={good}",
        f"t=²,v1={good}",
    ]:
        assert not verify_signature(BODY, header, [SECRET], now=T), header


def test_two_v1_during_a_rotation_and_one_after(db):
    app = make_app(
        previous_webhook_secret=OLD_SECRET, previous_webhook_secret_expires_at=timezone.now() + timedelta(hours=24)
    )
    app.webhook_secret = SECRET
    app.save()
    assert signing_secrets(app) == [SECRET, OLD_SECRET]
    header = signature_header(BODY, signing_secrets(app), timestamp=T)
    assert header == f"t={T},v1={by_hand(SECRET, T, BODY)},v1={by_hand(OLD_SECRET, T, BODY)}"
    # A client that still only knows the old secret accepts it; one that has the new one too.
    assert verify_signature(BODY, header, [OLD_SECRET], now=T)
    assert verify_signature(BODY, header, [SECRET], now=T)
    # Once the grace period is over, only the current secret signs.
    assert signing_secrets(app, now=timezone.now() + timedelta(hours=25)) == [SECRET]
    app.previous_webhook_secret_expires_at = timezone.now() - timedelta(seconds=1)
    assert signing_secrets(app) == [SECRET]


def test_body_and_headers_of_an_event(db):
    app = make_app()
    event = make_event(app, object_id="pay_42")
    OutgoingEvent.objects.filter(pk=event.pk).update(created_at=datetime(2026, 3, 14, 15, 9, 26, 535000, tzinfo=UTC))
    event.refresh_from_db()
    body = event_body(event)
    assert list(json.loads(body)) == ["id", "type", "created_at", "data"]
    assert json.loads(body) == {
        "id": event.id,
        "type": "payment.succeeded",
        "created_at": "2026-03-14T15:09:26.535000Z",
        "data": {"id": "pay_42", "amount": 2500, "currency": "PEN"},
    }
    headers = delivery_headers(event, body, [app.webhook_secret], timestamp=T)
    assert headers["SmartPay-Event-Id"] == event.id
    assert headers["Content-Type"] == "application/json"
    assert "SmartPay" in headers["User-Agent"]
    assert headers["SmartPay-Signature"] == f"t={T},v1={by_hand(app.webhook_secret, T, body)}"


def test_the_readme_snippet_verifies_what_smartpay_signs():
    """The ten lines the README gives client apps agree with the signer (run here as written)."""
    import re
    import time
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme[readme.index("**Verify the signature**") :]
    snippet = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    namespace: dict = {}
    exec(compile(snippet, "README.md", "exec"), namespace)  # noqa: S102 — our own README's example
    verify = namespace["verify"]
    now = int(time.time())
    header = signature_header(BODY, [SECRET, OLD_SECRET], timestamp=now)
    assert verify(BODY, header, [SECRET]) and verify(BODY, header, [OLD_SECRET])
    assert not verify(BODY + b"x", header, [SECRET])
    assert not verify(BODY, signature_header(BODY, [SECRET], timestamp=now - 301), [SECRET])
