"""The SSRF guard: private addresses refused when an app sets its URL and again at delivery, after DNS."""

import socket

import pytest
import requests

from notifications.delivery import dispatch_due
from notifications.models import DeliveryAttempt, DeliveryState
from notifications.urls_guard import PRIVATE_ADDRESS, address_is_public, check_webhook_url, resolve_target
from tests.notifications.delivery_helpers import make_app, make_event, serve, use_local_receiver

REAL_GETADDRINFO = socket.getaddrinfo


@pytest.fixture
def receiver():
    yield from serve()


@pytest.fixture(autouse=True)
def live_rules(settings):
    """Production rules: no private addresses, https only."""
    use_local_receiver(settings)
    settings.EVENTS_ALLOW_PRIVATE_URLS = False
    settings.EVENTS_REQUIRE_HTTPS = True


def fake_dns(monkeypatch, answers: dict[str, list[str]], calls: list | None = None):
    """`socket.getaddrinfo` answering `answers[host]` (a list per call for a changing answer)."""

    def getaddrinfo(host, port, *args, **kwargs):
        if host in answers:
            if calls is not None:
                calls.append(host)
            addresses = answers[host]
            address = addresses.pop(0) if len(addresses) > 1 else addresses[0]
            family = socket.AF_INET6 if ":" in address else socket.AF_INET
            sockaddr = (address, port or 0, 0, 0) if family == socket.AF_INET6 else (address, port or 0)
            return [(family, socket.SOCK_STREAM, 6, "", sockaddr)]
        return REAL_GETADDRINFO(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/hooks",
        "https://127.8.9.10:8443/hooks",
        "https://10.1.2.3/hooks",
        "https://172.16.0.1/hooks",
        "https://192.168.1.10/hooks",
        "https://169.254.169.254/latest/meta-data",
        "https://[::1]/hooks",
        "https://[fe80::1]/hooks",
        "https://[fd00::1]/hooks",
        "https://[::ffff:127.0.0.1]/hooks",
        "https://0.0.0.0/hooks",
        "https://100.64.0.1/hooks",
        "https://224.0.0.1/hooks",
        "https://localhost/hooks",
        "https://2130706433/hooks",  # 127.0.0.1 written as one number: resolved, then refused
    ],
)
def test_private_addresses_are_refused(url):
    with pytest.raises(ValueError, match="loopback, link-local or private address"):
        check_webhook_url(url)


def test_a_host_name_resolving_to_a_private_address_is_refused(monkeypatch):
    fake_dns(monkeypatch, {"hooks.shop.example": ["10.0.0.7"], "mixed.shop.example": ["93.184.215.14"]})
    with pytest.raises(ValueError, match=r"'hooks\.shop\.example' resolves to a loopback"):
        check_webhook_url("https://hooks.shop.example/events")

    # One private address among public ones is enough to refuse.
    def two_answers(host, port, *args, **kwargs):
        return [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.215.14", port)),
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port)),
        ]

    monkeypatch.setattr(socket, "getaddrinfo", two_answers)
    with pytest.raises(ValueError, match="private address"):
        check_webhook_url("https://mixed.shop.example/events")


def test_public_https_urls_pass(monkeypatch):
    fake_dns(monkeypatch, {"hooks.shop.example": ["93.184.215.14"], "v6.shop.example": ["2606:4700:4700::1111"]})
    assert check_webhook_url("https://hooks.shop.example/events?x=1") is None
    assert check_webhook_url("https://v6.shop.example:8443/events") is None
    assert resolve_target("https://hooks.shop.example/e").addresses == ("93.184.215.14",)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://hooks.shop.example/events", "must use https"),
        ("ftp://hooks.shop.example/events", "must start with https://"),
        ("file:///etc/passwd", "must start with https://"),
        ("https://user:pass@hooks.shop.example/events", "must not contain a user name or password"),
        ("https:///events", "no host"),
        ("https://hooks.shop.example:99999/", "malformed"),
        ("", "Enter a URL"),
    ],
)
def test_other_refusals_have_clear_messages(url, message):
    with pytest.raises(ValueError, match=message):
        check_webhook_url(url)


def test_an_unknown_host_is_refused_when_private_addresses_are_not_allowed(monkeypatch):
    def nowhere(*args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", nowhere)
    with pytest.raises(ValueError, match="could not be resolved"):
        check_webhook_url("https://nowhere.shop.example/events")


def test_in_sandbox_any_host_and_http_are_accepted(settings):
    settings.EVENTS_ALLOW_PRIVATE_URLS = True
    settings.EVENTS_REQUIRE_HTTPS = False
    assert check_webhook_url("http://127.0.0.1:8000/sandbox/receiver/app_x") is None
    assert check_webhook_url("http://web:8000/sandbox/receiver/app_x") is None  # not even resolved
    with pytest.raises(ValueError):
        check_webhook_url("gopher://127.0.0.1/")


def test_address_classification():
    assert address_is_public("93.184.215.14") and address_is_public("2606:4700:4700::1111")
    for address in ["2002:7f00:1::1", "64:ff9b::a00:1", "fe80::1%eth0", "192.0.2.1", "240.0.0.1", "not-an-ip"]:
        assert not address_is_public(address), address


@pytest.mark.django_db
def test_delivery_refuses_a_private_address_as_a_failed_try(receiver, settings, monkeypatch):
    """The URL was fine when set; now its name resolves to our own machine: refused, nothing sent."""
    settings.EVENTS_REQUIRE_HTTPS = False
    fake_dns(monkeypatch, {"hooks.shop.example": ["127.0.0.1"]})
    app = make_app(f"http://hooks.shop.example:{receiver.port}/ok")
    event = make_event(app)

    assert dispatch_due()["retry"] == 1

    event.refresh_from_db()
    assert (event.delivery_state, event.attempts, event.last_error) == (DeliveryState.PENDING, 1, PRIVATE_ADDRESS)
    (attempt,) = DeliveryAttempt.objects.filter(event=event)
    assert (attempt.error, attempt.status_code, attempt.duration_ms) == ("refused: private address", None, None)
    assert receiver.requests == []


@pytest.mark.django_db
def test_delivery_connects_to_the_address_it_checked(receiver, settings, monkeypatch):
    """DNS rebinding: the name resolves to an allowed address when checked and elsewhere a moment
    later. The connection goes to the checked address, with the name in the Host header."""
    settings.EVENTS_ALLOW_PRIVATE_URLS = True  # the test server is on 127.0.0.1
    settings.EVENTS_REQUIRE_HTTPS = False
    calls = []
    # First answer 127.0.0.1 (checked), then an address where nothing answers (would time out).
    fake_dns(monkeypatch, {"rebind.shop.example": ["127.0.0.1", "10.255.255.1"]}, calls)
    event = make_event(make_app(f"http://rebind.shop.example:{receiver.port}/ok"))

    assert dispatch_due()["delivered"] == 1

    assert calls == ["rebind.shop.example"]  # resolved once, by the guard
    (request,) = receiver.requests
    assert request.headers["Host"] == f"rebind.shop.example:{receiver.port}"
    assert request.headers["SmartPay-Event-Id"] == event.id


def self_signed(tmp_path, name: str):
    """A certificate for `name` and its key, as PEM files."""
    from datetime import UTC, datetime, timedelta

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


def test_https_to_a_pinned_address_still_checks_the_host_name(tmp_path):
    """TLS over the pinned connection: SNI and the certificate check use the URL's host name."""
    import http.server
    import ssl
    import threading

    from notifications.delivery import Sessions

    cert, key = self_signed(tmp_path, "hooks.shop.example")
    server_names = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    context.sni_callback = lambda sock, name, ctx: server_names.append(name)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    sessions = Sessions()
    try:
        session = sessions.for_addresses(("127.0.0.1",))
        answer = session.post(f"https://hooks.shop.example:{port}/e", data=b"{}", verify=str(cert), timeout=3)
        assert answer.status_code == 204
        assert server_names == ["hooks.shop.example"]
        # The same address under another name: the certificate does not match, refused.
        with pytest.raises(requests.exceptions.SSLError):
            session.post(f"https://other.shop.example:{port}/e", data=b"{}", verify=str(cert), timeout=3)
        # Not signed by a trusted authority: refused.
        with pytest.raises(requests.exceptions.SSLError):
            session.post(f"https://hooks.shop.example:{port}/e", data=b"{}", timeout=3)
    finally:
        sessions.close()
        server.shutdown()
        server.server_close()
