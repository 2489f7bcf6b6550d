"""Transport failures for tests: real TCP servers that fail at a chosen moment, and the exceptions
`requests` raises for each phase, built the way requests and urllib3 build them.

`FaultyServer` listens on 127.0.0.1 (port 0) in a thread. Its `behaviour`:

* `drop_after_request`: read the whole HTTP request (headers and `Content-Length` body), record it, then
  close the connection without a byte of answer: the request left and was received, the answer is lost;
* `close_on_accept`: accept the connection and close it at once, before reading anything;
* `answer`: read and record the request, then answer `status` with `body` (and `headers`); with
  `drop_first=n`, the first n requests are read, recorded and dropped as above;
* `route`: read and record the request, then answer it from `replies`, a map of "METHOD /path-prefix"
  to (status, body), first match wins; a request no entry matches is dropped as above;
* `hold`: accept the connection and never read from it nor answer (until the server is closed).

With `tls=True` the server speaks HTTPS with a self-signed certificate for 127.0.0.1 (`ca_file` is
what a client must trust); `close_on_accept` then fails the client's TLS handshake.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
import ssl
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from urllib3.exceptions import MaxRetryError, NewConnectionError, ProtocolError


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class FaultyServer:
    behaviour: str
    tls: bool = False
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    drop_first: int = 0
    replies: dict[str, tuple[int, bytes]] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    accepted: int = 0
    handshakes: int = 0  # TLS handshakes that completed

    def __post_init__(self):
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)
        self._held: list[socket.socket] = []
        self._tls_dir = None
        self._context = None
        if self.tls:
            self._tls_dir = tempfile.TemporaryDirectory()
            self._context, self.ca_file = _server_context(Path(self._tls_dir.name))
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://127.0.0.1:{self._listener.getsockname()[1]}"

    def paths(self, method: str | None = None) -> list[str]:
        with self._lock:
            return [r.path for r in self.received if method is None or r.method == method]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        for conn in self._held:
            conn.close()
        self._listener.close()
        if self._tls_dir is not None:
            self._tls_dir.cleanup()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self.accepted += 1
            if self.behaviour == "hold":
                self._held.append(conn)
                continue
            try:
                self._handle(conn)
            except OSError:
                pass
            finally:
                conn.close()

    def _handle(self, conn: socket.socket) -> None:
        if self.behaviour == "close_on_accept":
            return
        conn.settimeout(5)
        if self._context is None:
            self._exchange(conn)
            return
        with self._context.wrap_socket(conn, server_side=True) as tls_conn:  # closing it closes the connection
            with self._lock:
                self.handshakes += 1
            self._exchange(tls_conn)

    def _exchange(self, conn: socket.socket) -> None:
        request = _read_request(conn)
        if request is None:
            return
        with self._lock:
            self.received.append(request)
            dropped = len(self.received) <= self.drop_first
        reply = None
        if self.behaviour == "answer" and not dropped:
            reply = (self.status, self.body)
        elif self.behaviour == "route":
            target = f"{request.method} {request.path}"
            reply = next((answer for prefix, answer in self.replies.items() if target.startswith(prefix)), None)
        if reply is not None:
            status, body = reply
            head = f"HTTP/1.1 {status} X\r\nContent-Length: {len(body)}\r\nConnection: close\r\n"
            head += "Content-Type: application/json\r\n" if body.startswith((b"{", b"[")) else ""
            head += "".join(f"{name}: {value}\r\n" for name, value in self.headers.items())
            conn.sendall(head.encode() + b"\r\n" + body)
        # drop_after_request: close without answering (the `finally` above).


def _read_request(conn: socket.socket) -> Received | None:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, path, _ = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        body += chunk
    return Received(method=method, path=path, headers=headers, body=body)


def _server_context(directory: Path) -> tuple[ssl.SSLContext, str]:
    """A TLS server context with a fresh self-signed certificate for 127.0.0.1; returns (context, CA file)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    return context, str(cert_file)


def closed_port_url() -> str:
    """An http URL where nothing listens: connecting is refused (ECONNREFUSED)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


# --- The exceptions requests raises, for mocked transports (`responses`' body=...) --------------------


def connection_refused(url: str = "/") -> requests.ConnectionError:
    """Nothing listens: `ConnectionError(MaxRetryError(reason=NewConnectionError))`. Never sent."""
    reason = NewConnectionError(None, "Failed to establish a new connection: [Errno 111] Connection refused")
    return requests.ConnectionError(MaxRetryError(None, url, reason))


def connection_dropped() -> requests.ConnectionError:
    """The server closed the connection after the request was sent, before answering."""
    from http.client import RemoteDisconnected

    inner = RemoteDisconnected("Remote end closed connection without response")
    return requests.ConnectionError(ProtocolError("Connection aborted.", inner))


@pytest.fixture
def servers():
    """`servers(behaviour, **kwargs)` starts a FaultyServer; every one started is closed afterwards."""
    started = []

    def start(behaviour, **kwargs):
        server = FaultyServer(behaviour, **kwargs)
        started.append(server)
        return server

    yield start
    for server in started:
        server.close()
