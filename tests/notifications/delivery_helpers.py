"""For the delivery tests: a real HTTP server on 127.0.0.1 playing a client app's webhook endpoint,
settings for it, and event helpers. Not a conftest (other tests of this folder test the API's URL
checks with the production defaults): each delivery test module asks for these explicitly."""

from __future__ import annotations

import itertools
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from notifications.models import OutgoingEvent
from payments.services.clients import client_app_create


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float  # time.monotonic() when the request was read


@dataclass
class Behaviour:
    slow_seconds: float = 1.5  # /slow sleeps this long (tests set EVENTS_READ_TIMEOUT below it)
    latency: float = 0.0  # every answer waits this long
    fail_event_ids: set[str] = field(default_factory=set)  # /ok answers 500 for these events
    hang_event_ids: set[str] = field(default_factory=set)  # /ok hangs (until released) on these, once each
    body: bytes = b"thanks"


class Receiver:
    """`url(path)`: /ok (200), /fail (500), /slow (sleeps past the read timeout), /redirect (302),
    /hang (waits until `release` is set). Every request is kept in `requests`."""

    def __init__(self):
        self.requests: list[Received] = []
        self.lock = threading.Lock()
        self.behaviour = Behaviour()
        self.hung = threading.Event()  # set when a request starts hanging
        self.release = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # else each keep-alive answer waits ~40 ms for a delayed ACK

            def log_message(self, *args):  # keep test output quiet
                pass

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                event_id = self.headers.get("SmartPay-Event-Id", "")
                with receiver.lock:
                    receiver.requests.append(Received(self.path, dict(self.headers), body, time.monotonic()))
                    hang = event_id in receiver.behaviour.hang_event_ids
                    receiver.behaviour.hang_event_ids.discard(event_id)
                behaviour = receiver.behaviour
                if behaviour.latency:
                    time.sleep(behaviour.latency)
                path = self.path.split("?")[0]
                if path == "/hang" or hang:
                    receiver.hung.set()
                    receiver.release.wait(120)
                    return self._answer(200, b"late")
                if path == "/slow":
                    time.sleep(behaviour.slow_seconds)
                    return self._answer(200, b"too late")
                if path == "/fail" or event_id in behaviour.fail_event_ids:
                    return self._answer(500, b"boom")
                if path == "/redirect":
                    return self._answer(302, b"", {"Location": "/ok"})
                if path == "/big":
                    return self._answer(200, b"x" * 5000)
                return self._answer(200, behaviour.body)

            def _answer(self, status, body, headers=None):
                try:
                    self.send_response(status)
                    for name, value in (headers or {}).items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:
                    pass  # the client gave up (timeout, killed worker)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.block_on_close = False
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str = "/ok") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def event_ids(self) -> list[str]:
        with self.lock:
            return [r.headers.get("SmartPay-Event-Id", "") for r in self.requests]

    def stop(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


def serve():
    """For a `receiver` fixture: `yield from serve()`."""
    server = Receiver()
    try:
        yield server
    finally:
        server.stop()


def use_local_receiver(settings):
    """Settings for delivering to the local server quickly (call from an autouse fixture)."""
    settings.EVENTS_ALLOW_PRIVATE_URLS = True  # the test receiver is on 127.0.0.1
    settings.EVENTS_REQUIRE_HTTPS = False
    settings.EVENTS_CONNECT_TIMEOUT = 1.0
    settings.EVENTS_READ_TIMEOUT = 0.5
    settings.EVENTS_DISPATCH_MAX_EVENTS = 200
    settings.EVENTS_DISPATCH_MAX_SECONDS = 30
    return settings


def closed_port() -> int:
    """A local port nothing listens on (connection refused at once)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


_numbers = itertools.count(1)


def make_app(url: str = "", **fields):
    app = client_app_create(name=f"Hooks app {next(_numbers)}", webhook_url=url)
    for name, value in fields.items():
        setattr(app, name, value)
    if fields:
        app.save()
    return app


def make_event(app, *, object_id: str | None = None, type: str = "payment.succeeded", **fields) -> OutgoingEvent:
    """An event row as `event_record` writes it, without queueing a dispatch (tests dispatch by hand)."""
    object_id = object_id if object_id is not None else f"pay_{next(_numbers)}"
    return OutgoingEvent.objects.create(
        client_app=app,
        type=type,
        data={"id": object_id, "amount": 2500, "currency": "PEN"},
        object_id=object_id,
        **fields,
    )
