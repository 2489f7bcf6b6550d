"""Web Push to payers: the subscriptions API, and sending end to end through a local push service.

The stand-in push service is a real HTTP server (127.0.0.1, a free port, a thread) that does what
a browser vendor's does: it checks the VAPID JWT (ES256 signature with the `k=` public key, `aud`
= its origin, `exp` ahead, `sub` set), and the test decrypts the aes128gcm body with the
subscription's private key and auth secret, as the browser would, to read the message.
"""

import base64
import io
import json
import logging
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import http_ece
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from django.core.management import call_command
from py_vapid import Vapid

from notifications import push
from notifications.models import CustomerPreferences, OutgoingEvent, PushSubscription
from notifications.services import event_record
from payments.models import Customer

pytestmark = pytest.mark.django_db

SUBJECT = "mailto:pagos@smartpay.test"


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def unb64(value: str) -> bytes:
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


# --- The push service stand-in -----------------------------------------------------------------------


class PushService:
    """Answers `status[name]` (default 201) to POST /push/<name>; keeps what it received."""

    def __init__(self):
        self.received: list[dict] = []
        self.status: dict[str, int] = {}
        self.problems: list[str] = []
        service = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                name = self.path.rsplit("/", 1)[-1]
                try:
                    claims = service.check_vapid(self.headers.get("Authorization", ""))
                except Exception as error:  # recorded, and refused as a push service would
                    service.problems.append(f"{name}: {error!r}")
                    self.send_response(401)
                    self.end_headers()
                    return
                service.received.append(
                    {
                        "name": name,
                        "headers": {k.lower(): v for k, v in self.headers.items()},
                        "body": body,
                        "claims": claims,
                    }
                )
                self.send_response(service.status.get(name, 201))
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.origin = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def check_vapid(self, authorization: str) -> dict:
        scheme, _, params = authorization.partition(" ")
        assert scheme == "vapid", scheme
        fields = dict(part.strip().split("=", 1) for part in params.split(","))
        token, public = fields["t"], fields["k"]
        assert public == self.vapid_public, "k= is not our VAPID public key"
        header_b64, claims_b64, signature_b64 = token.split(".")
        header = json.loads(unb64(header_b64))
        assert header["alg"] == "ES256", header
        signature = unb64(signature_b64)
        assert len(signature) == 64
        key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), unb64(public))
        key.verify(
            encode_dss_signature(int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")),
            f"{header_b64}.{claims_b64}".encode(),
            ec.ECDSA(hashes.SHA256()),
        )  # raises InvalidSignature
        claims = json.loads(unb64(claims_b64))
        assert claims["aud"] == self.origin, claims
        assert time.time() < claims["exp"] <= time.time() + 24 * 3600, claims
        assert claims["sub"] == SUBJECT, claims
        return claims

    def endpoint(self, name: str) -> str:
        return f"{self.origin}/push/{name}"

    def of(self, name: str) -> list[dict]:
        return [request for request in self.received if request["name"] == name]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class Browser:
    """A browser's push subscription: its key pair and auth secret, and the decryption."""

    def __init__(self, endpoint: str):
        self.endpoint = endpoint
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.auth = os.urandom(16)

    def to_json(self) -> dict:
        public = self.key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        return {
            "endpoint": self.endpoint,
            "expirationTime": None,
            "keys": {"p256dh": b64(public), "auth": b64(self.auth)},
        }

    def read(self, request: dict) -> dict:
        assert request["headers"]["content-encoding"] == "aes128gcm"
        assert request["headers"]["ttl"] == str(push.TTL_SECONDS)
        plain = http_ece.decrypt(request["body"], private_key=self.key, auth_secret=self.auth, version="aes128gcm")
        return json.loads(plain.decode("utf-8"))


@pytest.fixture
def vapid(settings):
    public, private = push.generate_vapid_keys()
    settings.WEBPUSH_VAPID_PUBLIC_KEY = public
    settings.WEBPUSH_VAPID_PRIVATE_KEY = private
    settings.WEBPUSH_VAPID_SUBJECT = SUBJECT
    settings.EVENTS_ALLOW_PRIVATE_URLS = True  # the stand-in is on 127.0.0.1
    settings.EVENTS_REQUIRE_HTTPS = False  # ...and speaks plain HTTP (sandbox rules, as for webhooks)
    push._off_logged = False
    return public, private


@pytest.fixture
def service(vapid):
    stand_in = PushService()
    stand_in.vapid_public = vapid[0]
    yield stand_in
    stand_in.close()


@pytest.fixture
def customer(client_app):
    return Customer.objects.create(client_app=client_app, email="ana@example.pe", name="Ana Quispe")


def url(customer, subscription_id: str = "") -> str:
    base = f"/api/v1/customers/{customer.pk}/push-subscriptions"
    return f"{base}/{subscription_id}" if subscription_id else base


def subscribe(api, customer, browser: Browser) -> str:
    response = api.post(url(customer), browser.to_json(), format="json")
    assert response.status_code == 201, response.content
    return response.json()["id"]


def record(client_app, customer, type_: str, data: dict, capture, dedupe_key: str | None = None) -> OutgoingEvent:
    """Record an event the way services do (inside their transaction) and run the after-commit work."""
    with capture(execute=True):
        return event_record(
            client_app=client_app, type=type_, data={"customer": customer.pk, **data}, dedupe_key=dedupe_key
        )


PAYMENT = {"id": "pay_1", "object": "payment", "amount": 1250, "currency": "PEN", "status": "succeeded"}


# --- The API -----------------------------------------------------------------------------------------


def test_register_list_reregister_and_delete(api, customer, vapid):
    browser = Browser("https://fcm.googleapis.com/fcm/send/abc:def")

    created = api.post(url(customer), browser.to_json(), format="json")
    again = api.post(url(customer), browser.to_json(), format="json")
    listed = api.get(url(customer))

    assert created.status_code == 201
    body = created.json()
    assert body["id"].startswith("push_") and body["object"] == "push_subscription"
    assert body["customer"] == customer.pk and body["endpoint"] == browser.endpoint
    assert "keys" not in body and "auth" not in body  # the auth secret is never echoed
    assert again.status_code == 200 and again.json()["id"] == body["id"]
    assert PushSubscription.objects.filter(customer=customer).count() == 1
    assert listed.status_code == 200 and [row["id"] for row in listed.json()["data"]] == [body["id"]]

    assert api.delete(url(customer, body["id"])).status_code == 204
    assert api.delete(url(customer, body["id"])).status_code == 404
    assert not PushSubscription.objects.exists()


def test_registering_again_with_new_keys_keeps_one_row_with_the_new_keys(api, customer, vapid):
    first = Browser("https://updates.push.services.mozilla.com/wpush/v2/gAAAA")
    second = Browser(first.endpoint)
    subscribe(api, customer, first)

    response = api.post(url(customer), second.to_json(), format="json")

    assert response.status_code == 200
    row = PushSubscription.objects.get()
    assert (row.p256dh, row.auth) == (second.to_json()["keys"]["p256dh"], b64(second.auth))


def _with(body: dict, **changes) -> dict:
    body = json.loads(json.dumps(body))
    for path, value in changes.items():
        where, key = body, path
        if "__" in path:
            outer, key = path.split("__")
            where = body[outer]
        if value is _DROP:
            where.pop(key)
        else:
            where[key] = value
    return body


_DROP = object()
_OFF_CURVE = b64(b"\x04" + b"\x01" * 64)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"endpoint": "ftp://push.example/x"}, "endpoint"),
        ({"endpoint": "not a url"}, "endpoint"),
        ({"endpoint": "https://user:pw@push.example/x"}, "endpoint"),
        ({"endpoint": "https://push.example/" + "x" * 1000}, "endpoint"),
        ({"endpoint": _DROP}, "endpoint"),
        ({"keys__p256dh": b64(b"\x04" + b"\x02" * 63)}, "keys.p256dh"),  # 64 bytes
        ({"keys__p256dh": _OFF_CURVE}, "keys.p256dh"),
        ({"keys__p256dh": "BAD+/base64=="}, "keys.p256dh"),
        ({"keys__p256dh": 12}, "keys.p256dh"),
        ({"keys__auth": b64(os.urandom(8))}, "keys.auth"),
        ({"keys__auth": "$$$"}, "keys.auth"),
        ({"keys__auth": _DROP}, "keys.auth"),
        ({"keys": _DROP}, "keys"),
        ({"extra": "x"}, "extra"),
    ],
)
def test_an_invalid_subscription_is_400_naming_the_field(api, customer, vapid, changes, field):
    body = _with(Browser("https://push.example/sub/1").to_json(), **changes)

    response = api.post(url(customer), body, format="json")

    assert response.status_code == 400, response.content
    assert response["Content-Type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["code"] == "validation_error" and list(problem["errors"]) == [field]
    assert not PushSubscription.objects.exists()


def test_http_endpoint_is_refused_when_https_is_required(api, customer, vapid, settings):
    settings.EVENTS_REQUIRE_HTTPS = True

    response = api.post(url(customer), Browser("http://push.example/sub/1").to_json(), format="json")

    assert response.status_code == 400 and list(response.json()["errors"]) == ["endpoint"]


def test_another_apps_customer_or_subscription_is_not_found(api, other_api, customer, vapid):
    browser = Browser("https://push.example/sub/1")
    subscription_id = subscribe(api, customer, browser)
    theirs = Customer.objects.create(client_app=other_api.client_app, email="x@example.pe", name="X")
    their_subscription = other_api.post(url(theirs), Browser("https://push.example/sub/2").to_json(), format="json")
    assert their_subscription.status_code == 201

    assert other_api.get(url(customer)).status_code == 404
    assert other_api.post(url(customer), browser.to_json(), format="json").status_code == 404
    assert other_api.delete(url(customer, subscription_id)).status_code == 404
    assert other_api.delete(url(theirs, subscription_id)).status_code == 404  # not under their customer
    assert api.delete(url(customer, their_subscription.json()["id"])).status_code == 404
    assert PushSubscription.objects.count() == 2


# --- Sending, end to end -------------------------------------------------------------------------------


def test_payment_succeeded_reaches_every_browser_of_the_customer_in_spanish(
    api, client_app, customer, service, django_capture_on_commit_callbacks
):
    phone, laptop = Browser(service.endpoint("phone")), Browser(service.endpoint("laptop"))
    subscribe(api, customer, phone)
    subscribe(api, customer, laptop)

    event = record(client_app, customer, "payment.succeeded", PAYMENT, django_capture_on_commit_callbacks)

    assert service.problems == []
    assert len(service.of("phone")) == 1 and len(service.of("laptop")) == 1
    for browser, name in ((phone, "phone"), (laptop, "laptop")):
        message = browser.read(service.of(name)[0])
        assert message["title"] == "Pago aprobado"
        assert message["body"] == "Tu pago de S/ 12.50 fue aprobado."
        assert (message["type"], message["event"], message["lang"]) == ("payment.succeeded", event.pk, "es")
    assert all(row.last_used_at is not None for row in PushSubscription.objects.all())


def test_messages_follow_the_customers_language(api, client_app, customer, service, django_capture_on_commit_callbacks):
    CustomerPreferences.objects.create(customer=customer, language="en")
    browser = Browser(service.endpoint("b"))
    subscribe(api, customer, browser)

    record(
        client_app,
        customer,
        "payment.failed",
        {**PAYMENT, "amount": 990, "currency": "USD"},
        django_capture_on_commit_callbacks,
    )
    record(
        client_app,
        customer,
        "credits.low_balance",
        {"available": 5, "threshold": 20},
        django_capture_on_commit_callbacks,
    )
    record(
        client_app,
        customer,
        "credits.expiring",
        {"lot": "lot_1", "kind": "purchase", "credits": 40, "expires_at": "2026-05-12T15:00:00+00:00"},
        django_capture_on_commit_callbacks,
    )

    assert service.problems == []
    messages = [browser.read(request) for request in service.of("b")]
    assert [(m["title"], m["body"]) for m in messages] == [
        ("Payment failed", "Your payment of US$ 9.90 could not be completed."),
        ("Low balance", "You have 5 credits left."),
        ("Credits expiring", "40 credits expire on 2026-05-12."),
    ]


def test_credits_expiring_in_spanish_shows_the_lima_date(
    api, client_app, customer, service, django_capture_on_commit_callbacks
):
    browser = Browser(service.endpoint("b"))
    subscribe(api, customer, browser)

    # 02:00 UTC on the 13th is still the 12th in Lima (UTC-5)
    data = {"lot": "lot_1", "kind": "purchase", "credits": 40, "expires_at": "2026-05-13T02:00:00+00:00"}
    record(client_app, customer, "credits.expiring", data, django_capture_on_commit_callbacks)

    assert browser.read(service.of("b")[0])["body"] == "40 créditos vencen el 12/05/2026."


def test_other_events_other_customers_and_repeats_push_nothing_more(
    api, client_app, customer, service, django_capture_on_commit_callbacks
):
    browser = Browser(service.endpoint("b"))
    subscribe(api, customer, browser)
    stranger = Customer.objects.create(client_app=client_app, email="y@example.pe", name="Y")

    record(client_app, customer, "payment.canceled", PAYMENT, django_capture_on_commit_callbacks)
    record(client_app, stranger, "payment.succeeded", PAYMENT, django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=True):
        event_record(client_app=client_app, type="payment.succeeded", data={**PAYMENT, "customer": None})
    assert service.received == []

    record(client_app, customer, "payment.succeeded", PAYMENT, django_capture_on_commit_callbacks, dedupe_key="k1")
    record(client_app, customer, "payment.succeeded", PAYMENT, django_capture_on_commit_callbacks, dedupe_key="k1")
    assert len(service.received) == 1


def test_nothing_is_queued_before_the_commit_nor_after_a_rollback(api, client_app, customer, service):
    from django.db import transaction

    subscribe(api, customer, Browser(service.endpoint("b")))

    class Rollback(Exception):
        pass

    with pytest.raises(Rollback), transaction.atomic():
        event_record(client_app=client_app, type="payment.succeeded", data={**PAYMENT, "customer": customer.pk})
        raise Rollback

    assert service.received == []


@pytest.mark.parametrize("status", [404, 410])
def test_a_gone_subscription_is_deleted(api, client_app, customer, service, django_capture_on_commit_callbacks, status):
    gone, alive = Browser(service.endpoint("gone")), Browser(service.endpoint("alive"))
    gone_id = subscribe(api, customer, gone)
    alive_id = subscribe(api, customer, alive)
    service.status["gone"] = status

    record(client_app, customer, "payment.succeeded", PAYMENT, django_capture_on_commit_callbacks)

    assert len(service.of("gone")) == 1 and len(service.of("alive")) == 1
    assert list(PushSubscription.objects.values_list("pk", flat=True)) == [alive_id]
    assert not PushSubscription.objects.filter(pk=gone_id).exists()


def test_a_passing_failure_is_retried_a_bounded_number_of_times_and_keys_are_never_logged(
    api, client_app, customer, service, vapid, django_capture_on_commit_callbacks, caplog
):
    caplog.set_level(logging.INFO)  # what production logs (urllib3's DEBUG lines name every URL)
    busy, refused, fine = (Browser(service.endpoint(name)) for name in ("busy", "refused", "fine"))
    for browser in (busy, refused, fine):
        subscribe(api, customer, browser)
    service.status.update({"busy": 503, "refused": 400})

    record(client_app, customer, "payment.succeeded", PAYMENT, django_capture_on_commit_callbacks)

    # eager tasks: the retries run at once; on a worker they wait a minute times the attempt
    assert len(service.of("busy")) == push.MAX_ATTEMPTS
    assert len(service.of("refused")) == 1 and len(service.of("fine")) == 1
    assert PushSubscription.objects.count() == 3  # failures keep the subscription
    logged = caplog.text + " ".join(json.dumps(r.__dict__, default=str) for r in caplog.records)
    assert "push refused by the push service" in caplog.text
    secrets = [vapid[1]] + [b["keys"][k] for b in (busy.to_json(), refused.to_json()) for k in ("p256dh", "auth")]
    assert not [secret for secret in secrets if secret in logged]
    assert "/push/busy" not in logged  # the endpoint's path (a capability) is not logged either


def test_an_unreachable_push_service_is_logged_not_raised(
    api, client_app, customer, vapid, django_capture_on_commit_callbacks, caplog
):
    dead = PushService()
    dead.close()  # nothing listens on that port any more
    subscribe(api, customer, Browser(dead.endpoint("x")))

    event = record(client_app, customer, "payment.succeeded", PAYMENT, django_capture_on_commit_callbacks)

    assert OutgoingEvent.objects.filter(pk=event.pk).exists()
    assert "transport error" in caplog.text
    assert PushSubscription.objects.count() == 1


def test_a_private_endpoint_is_refused_when_private_urls_are_not_allowed(
    api, client_app, customer, service, settings, django_capture_on_commit_callbacks
):
    subscribe(api, customer, Browser(service.endpoint("b")))
    settings.EVENTS_ALLOW_PRIVATE_URLS = False

    record(client_app, customer, "payment.succeeded", PAYMENT, django_capture_on_commit_callbacks)

    assert service.received == []


def test_without_keys_pushing_is_off_and_said_once(
    api, client_app, customer, service, settings, django_capture_on_commit_callbacks, caplog
):
    subscribe(api, customer, Browser(service.endpoint("b")))
    settings.WEBPUSH_VAPID_PRIVATE_KEY = ""

    record(client_app, customer, "payment.succeeded", PAYMENT, django_capture_on_commit_callbacks)
    record(client_app, customer, "payment.failed", {**PAYMENT, "id": "pay_2"}, django_capture_on_commit_callbacks)

    assert service.received == []
    assert caplog.text.count("Web Push is off") == 1
    assert PushSubscription.objects.count() == 1


def test_a_private_key_not_matching_the_public_one_is_off(settings, vapid, caplog):
    settings.WEBPUSH_VAPID_PUBLIC_KEY = push.generate_vapid_keys()[0]

    assert push.vapid_key() is None
    assert "not the public half" in caplog.text and settings.WEBPUSH_VAPID_PRIVATE_KEY not in caplog.text


def test_webpush_keys_prints_a_working_pair(settings, tmp_path):
    out = io.StringIO()
    call_command("webpush_keys", stdout=out)
    values = dict(line.split("=", 1) for line in out.getvalue().split())
    public, private = values["WEBPUSH_VAPID_PUBLIC_KEY"], values["WEBPUSH_VAPID_PRIVATE_KEY"]
    derived = Vapid.from_string(private_key=private).public_key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    assert unb64(public) == derived and len(unb64(private)) == 32

    settings.WEBPUSH_VAPID_PRIVATE_KEY = ""
    target = tmp_path / ".env.webpush"
    call_command("webpush_keys", write=str(target), stdout=io.StringIO())
    first = target.read_text()
    call_command("webpush_keys", write=str(target), stdout=io.StringIO())  # exists: left as it is
    assert target.read_text() == first and "WEBPUSH_VAPID_PRIVATE_KEY=" in first
    assert oct(target.stat().st_mode & 0o777) == "0o600"


@pytest.mark.django_db
def test_the_vapid_public_key_is_served_to_subscribing_browsers(api, settings):
    public, private = push.generate_vapid_keys()
    settings.WEBPUSH_VAPID_PUBLIC_KEY, settings.WEBPUSH_VAPID_PRIVATE_KEY = public, private
    body = api.get("/api/v1/push/vapid-public-key").json()
    assert body == {"public_key": public, "enabled": True}
    settings.WEBPUSH_VAPID_PUBLIC_KEY = settings.WEBPUSH_VAPID_PRIVATE_KEY = ""
    assert api.get("/api/v1/push/vapid-public-key").json() == {"public_key": "", "enabled": False}
