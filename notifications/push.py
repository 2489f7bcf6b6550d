"""Web Push to payers' browsers (RFC 8030 push, RFC 8291 aes128gcm payload, RFC 8292 VAPID).

A client app's front end subscribes the payer's browser (`pushManager.subscribe` with our VAPID
public key) and registers the subscription (`POST /api/v1/customers/{id}/push-subscriptions`).
When one of `PUSH_EVENT_TYPES` is recorded for that customer, `push_for_event` (called by
`notifications.services.event_record`) queues `notifications.send_event_push` after the commit;
the task sends a short, encrypted message (title + body in the customer's language) to each of the
customer's subscriptions with pywebpush:

* 201/202: sent (`last_used_at` is set);
* 404/410 from the push service: the subscription is gone (unsubscribed, expired) and is deleted;
* 429, 5xx or a transport error: tried again later, at most `MAX_ATTEMPTS` times in all, for the
  failed subscriptions only; anything else (400, 401/403 VAPID refused, 413) is logged, not retried.

The endpoint is chosen by the browser's push service, but reaches us through the client app: it is
checked like a webhook URL before every send (`urls_guard.resolve_target`: private addresses
refused unless `EVENTS_ALLOW_PRIVATE_URLS`, https unless `EVENTS_REQUIRE_HTTPS` is off) and the
connection goes to the checked addresses; redirects are not followed. Logs name the subscription
id and the endpoint's host, never the endpoint path, the keys or the VAPID private key.

Without `WEBPUSH_VAPID_PUBLIC_KEY` and `WEBPUSH_VAPID_PRIVATE_KEY` pushing is off (logged once).
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from dataclasses import dataclass
from urllib.parse import urlsplit

import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from django.conf import settings
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from notifications.models import CustomerPreferences, Language, OutgoingEvent, PushSubscription
from notifications.urls_guard import PinnedAdapter, UnsafeWebhookUrl, resolve_target

logger = logging.getLogger("smartpay.notifications.push")

PUSH_EVENT_TYPES = frozenset({"payment.succeeded", "payment.failed", "credits.low_balance", "credits.expiring"})
TTL_SECONDS = 12 * 3600  # a push service keeps an undelivered message this long (browser offline)
MAX_ATTEMPTS = 3  # per subscription and event: the first send and two retries
RETRY_COUNTDOWN_SECONDS = 60  # times the attempt number
GONE = (404, 410)
TRANSIENT = (429, 500, 502, 503, 504)

P256DH_BYTES = 65
AUTH_BYTES = 16


# --- Keys --------------------------------------------------------------------------------------------


def b64url_decode(value: str) -> bytes:
    """base64url with or without padding; raises ValueError for anything else."""
    if not isinstance(value, str) or not value or any(c in value for c in "+/ \n"):
        raise ValueError("not base64url")
    try:
        return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError):
        raise ValueError("not base64url") from None


def b64url_encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def check_p256dh(value: str) -> None:
    """ValueError unless `value` is base64url of a 65-byte uncompressed point on P-256."""
    try:
        raw = b64url_decode(value)
    except ValueError:
        raise ValueError("Must be base64url (the browser's keys.p256dh).") from None
    if len(raw) != P256DH_BYTES or raw[0] != 0x04:
        raise ValueError("Must be a 65-byte uncompressed P-256 public key, base64url-encoded.")
    try:
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), raw)
    except ValueError:
        raise ValueError("Is not a point on the P-256 curve.") from None


def check_auth(value: str) -> None:
    """ValueError unless `value` is base64url of a 16-byte auth secret."""
    try:
        raw = b64url_decode(value)
    except ValueError:
        raise ValueError("Must be base64url (the browser's keys.auth).") from None
    if len(raw) != AUTH_BYTES:
        raise ValueError("Must be a 16-byte auth secret, base64url-encoded.")


def generate_vapid_keys() -> tuple[str, str]:
    """A new VAPID pair as (public, private), base64url: the uncompressed public point and the raw
    32-byte private scalar (the form browsers and every Web Push library take)."""
    key = ec.generate_private_key(ec.SECP256R1())
    public = key.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    return b64url_encode(public), b64url_encode(key.private_numbers().private_value.to_bytes(32, "big"))


_off_logged = False


def vapid_key():
    """The `py_vapid.Vapid` signer from settings, or None (pushing off: logged once per process).

    A private key that does not parse, or whose public half is not WEBPUSH_VAPID_PUBLIC_KEY (the
    browsers subscribed with that one: the push service would refuse every message), is off too."""
    global _off_logged
    from py_vapid import Vapid

    public, private = settings.WEBPUSH_VAPID_PUBLIC_KEY, settings.WEBPUSH_VAPID_PRIVATE_KEY
    problem = ""
    signer = None
    if not (public and private):
        problem = "WEBPUSH_VAPID_PUBLIC_KEY / WEBPUSH_VAPID_PRIVATE_KEY not set"
    else:
        try:
            signer = Vapid.from_string(private_key=private)
            derived = signer.public_key.public_bytes(
                serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
            )
            if b64url_decode(public) != derived:
                problem, signer = "WEBPUSH_VAPID_PUBLIC_KEY is not the public half of WEBPUSH_VAPID_PRIVATE_KEY", None
        except Exception:  # never log the key or the parser's message (it may quote the key)
            problem, signer = "WEBPUSH_VAPID_PRIVATE_KEY does not parse (base64url raw P-256 key or DER)", None
    if signer is None and not _off_logged:
        _off_logged = True
        logger.warning("Web Push is off: %s", problem)
    return signer


def push_enabled() -> bool:
    return vapid_key() is not None


# --- Messages ----------------------------------------------------------------------------------------

_TEXTS = {
    "payment.succeeded": {
        Language.ES: ("Pago aprobado", "Tu pago de {amount} fue aprobado."),
        Language.EN: ("Payment successful", "Your payment of {amount} went through."),
    },
    "payment.failed": {
        Language.ES: ("Pago rechazado", "Tu pago de {amount} no se pudo completar."),
        Language.EN: ("Payment failed", "Your payment of {amount} could not be completed."),
    },
    "credits.low_balance": {
        Language.ES: ("Saldo bajo", "Te quedan {available} créditos."),
        Language.EN: ("Low balance", "You have {available} credits left."),
    },
    "credits.expiring": {
        Language.ES: ("Créditos por vencer", "{credits} créditos vencen el {date}."),
        Language.EN: ("Credits expiring", "{credits} credits expire on {date}."),
    },
}


def _date(value: str, language: str) -> str:
    from smartpay.clock import business_time

    parsed = parse_datetime(value or "")
    if parsed is None:
        return value or ""
    local = business_time(parsed)
    return local.strftime("%d/%m/%Y") if language == Language.ES else local.strftime("%Y-%m-%d")


def event_customer_id(event: OutgoingEvent) -> str:
    customer = (event.data or {}).get("customer")
    return customer if isinstance(customer, str) else ""


def message_for(event: OutgoingEvent, language: str) -> dict:
    """The push payload: {"title", "body", "type", "event", "object_id", "lang"} (JSON, encrypted)."""
    from billing.taxes import format_money

    language = language if language in _TEXTS[event.type] else Language.ES
    title, body = _TEXTS[event.type][language]
    data = event.data or {}
    values = {
        "amount": format_money(int(data.get("amount") or 0), str(data.get("currency") or "PEN")),
        "available": data.get("available", 0),
        "credits": data.get("credits", 0),
        "date": _date(str(data.get("expires_at") or ""), language),
    }
    return {
        "title": title,
        "body": body.format(**values),
        "type": event.type,
        "event": event.pk,
        "object_id": event.object_id,
        "lang": language,
    }


# --- Subscriptions ---------------------------------------------------------------------------------


def subscription_save(*, customer, endpoint: str, p256dh: str, auth: str) -> tuple[PushSubscription, bool]:
    """Register `endpoint` for `customer`: (subscription, created). The same endpoint again returns
    the existing row (its keys replaced by the given ones, should the browser have new ones); two
    registrations at once end with one row (the unique constraint decides)."""
    from django.db import IntegrityError, transaction

    values = {"p256dh": p256dh, "auth": auth}
    try:
        with transaction.atomic():
            subscription, created = PushSubscription.objects.get_or_create(
                customer=customer, endpoint=endpoint, defaults=values
            )
    except IntegrityError:
        subscription, created = PushSubscription.objects.get(customer=customer, endpoint=endpoint), False
    if not created and (subscription.p256dh, subscription.auth) != (p256dh, auth):
        subscription.p256dh, subscription.auth = p256dh, auth
        subscription.save(update_fields=["p256dh", "auth"])
    return subscription, created


# --- Queueing (from event_record) --------------------------------------------------------------------


def push_for_event(event: OutgoingEvent) -> None:
    """Queue `notifications.send_event_push` for `event` after the current transaction commits,
    when it is a pushed type, names a customer with a subscription, and pushing is on."""
    if event.type not in PUSH_EVENT_TYPES:
        return
    customer_id = event_customer_id(event)
    if not customer_id or not PushSubscription.objects.filter(customer_id=customer_id).exists():
        return
    if not push_enabled():
        return
    from notifications.push_tasks import send_event_push
    from smartpay.queueing import enqueue_after_commit

    enqueue_after_commit(send_event_push, event.pk)


# --- Sending -----------------------------------------------------------------------------------------


@dataclass
class Result:
    sent: list[str]
    gone: list[str]
    retry: list[str]
    failed: list[str]


def _host(endpoint: str) -> str:
    try:
        return urlsplit(endpoint).hostname or "?"
    except ValueError:
        return "?"


def _session(addresses: tuple[str, ...]) -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # no proxy from the environment: we connect where we checked
    session.max_redirects = 0  # a push service answers, it does not redirect
    adapter = PinnedAdapter(addresses, max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def send_one(subscription: PushSubscription, payload: str, signer) -> str:
    """POST one encrypted message; 'sent', 'gone' (deleted), 'retry' or 'failed'."""
    from pywebpush import WebPushException, webpush

    where = {"subscription": subscription.pk, "host": _host(subscription.endpoint)}
    try:
        target = resolve_target(subscription.endpoint)
    except UnsafeWebhookUrl as error:
        logger.warning("push not sent: endpoint refused", extra={**where, "error": error.reason})
        return "failed"
    session = _session(target.addresses)
    try:
        webpush(
            subscription_info={
                "endpoint": subscription.endpoint,
                "keys": {"p256dh": subscription.p256dh, "auth": subscription.auth},
            },
            data=payload,
            vapid_private_key=signer,
            vapid_claims={"sub": settings.WEBPUSH_VAPID_SUBJECT},  # a fresh dict: webpush adds aud/exp
            ttl=TTL_SECONDS,
            timeout=(settings.EVENTS_CONNECT_TIMEOUT, settings.EVENTS_READ_TIMEOUT),
            headers={"Urgency": "normal"},
            requests_session=session,
        )
    except WebPushException as error:
        status = getattr(error.response, "status_code", None)
        if status in GONE:
            PushSubscription.objects.filter(pk=subscription.pk).delete()
            logger.info("push subscription gone: deleted", extra={**where, "status": status})
            return "gone"
        logger.warning("push refused by the push service", extra={**where, "status": status})
        return "retry" if status in TRANSIENT else "failed"
    except requests.RequestException as error:
        logger.warning("push not sent: transport error", extra={**where, "error": type(error).__name__})
        return "retry"
    except Exception as error:  # a key the encryption refuses, ...: never retried, never fatal to the others
        logger.warning("push not sent", extra={**where, "error": type(error).__name__})
        return "failed"
    finally:
        session.close()
    PushSubscription.objects.filter(pk=subscription.pk).update(last_used_at=timezone.now())
    return "sent"


def send_event_push(event_id: str, subscription_ids: list[str] | None = None) -> Result:
    """Push `event` to its customer's subscriptions (only `subscription_ids` when given: a retry)."""
    result = Result(sent=[], gone=[], retry=[], failed=[])
    event = OutgoingEvent.objects.filter(pk=event_id).first()
    if event is None or event.type not in PUSH_EVENT_TYPES:
        return result
    signer = vapid_key()
    customer_id = event_customer_id(event)
    if signer is None or not customer_id:
        return result
    subscriptions = PushSubscription.objects.filter(
        customer_id=customer_id, customer__client_app_id=event.client_app_id
    ).order_by("pk")
    if subscription_ids is not None:
        subscriptions = subscriptions.filter(pk__in=subscription_ids)
    language = (
        CustomerPreferences.objects.filter(customer_id=customer_id).values_list("language", flat=True).first()
        or Language.ES
    )
    payload = json.dumps(message_for(event, language), ensure_ascii=False)
    for subscription in subscriptions:
        getattr(result, send_one(subscription, payload, signer)).append(subscription.pk)
    return result
