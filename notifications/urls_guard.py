"""Which webhook URLs SmartPay may POST to (server-side request forgery guard).

A client app chooses the URL, and SmartPay's workers sit inside our network: a URL pointing at
`127.0.0.1`, `10.0.0.5`, `169.254.169.254` (cloud metadata) or any other internal address would let
an app make our workers call our own services. So:

* only `http` and `https`; `https` is required unless `EVENTS_REQUIRE_HTTPS` is false (its default
  in sandbox mode only, where the built-in receiver is plain HTTP); no user:password in the URL (the
  signature authenticates us, and URLs are stored and shown with each attempt);
* every address the host resolves to must be public: loopback, link-local, private (RFC 1918,
  ULA), shared (CGNAT), multicast, reserved and unspecified addresses are refused, also when they
  hide inside an IPv6 form (IPv4-mapped, 6to4, NAT64). `EVENTS_ALLOW_PRIVATE_URLS` (default: true
  in sandbox mode only) turns that check off;
* the check is made again at every delivery, after DNS resolution, and the connection goes to the
  very addresses that were checked (`resolve_target` + `PinnedAdapter`): a host whose DNS answer
  changes between the check and the connection (DNS rebinding) cannot redirect the request.
  Redirects are never followed, and proxies from the environment are not used.

`check_webhook_url(url)` is the API's check when an app sets its URL (400 on `ValueError`).
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

PRIVATE_ADDRESS = "refused: private address"

_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class UnsafeWebhookUrl(ValueError):
    """A URL SmartPay will not POST to; `reason` is short and safe to store and show."""

    def __init__(self, reason: str, message: str | None = None):
        super().__init__(message or reason)
        self.reason = reason


@dataclass(frozen=True)
class Target:
    """A checked URL: where to connect (`addresses`, in resolver order) and what to ask for."""

    url: str
    scheme: str
    host: str
    port: int
    addresses: tuple[str, ...]


def address_is_public(address: str) -> bool:
    """False for loopback, link-local, private, shared, multicast, reserved or unspecified
    addresses, including IPv4 ones wrapped in IPv6 (mapped, 6to4, NAT64)."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])  # an IPv6 zone index is not part of it
    except ValueError:
        return False
    if ip.version == 6:
        embedded = ip.ipv4_mapped or ip.sixtofour
        if embedded is None and ip in _NAT64:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None and not address_is_public(str(embedded)):
            return False
    return ip.is_global and not (
        ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_multicast or ip.is_reserved or ip.is_unspecified
    )


def _parse(url: str) -> tuple[str, str, int]:
    if not isinstance(url, str) or not url.strip():
        raise UnsafeWebhookUrl("refused: empty URL", "Enter a URL.")
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as error:
        raise UnsafeWebhookUrl("refused: malformed URL", f"The URL is malformed ({error}).") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise UnsafeWebhookUrl("refused: scheme", "The URL must start with https:// (or http:// in sandbox mode).")
    if scheme != "https" and settings.EVENTS_REQUIRE_HTTPS:
        raise UnsafeWebhookUrl("refused: https required", "The URL must use https://.")
    if parts.username is not None or parts.password is not None:
        raise UnsafeWebhookUrl(
            "refused: credentials in URL",
            "The URL must not contain a user name or password: check the SmartPay-Signature header instead.",
        )
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise UnsafeWebhookUrl("refused: no host", "The URL has no host name.")
    return scheme, host, port or (443 if scheme == "https" else 80)


def _resolve(host: str, port: int) -> tuple[str, ...]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as error:
        raise UnsafeWebhookUrl("DNS: host not found", f"The host {host!r} could not be resolved ({error}).") from None
    addresses: list[str] = []
    for _family, _type, _proto, _canonname, sockaddr in infos:
        if sockaddr[0] not in addresses:
            addresses.append(sockaddr[0])
    if not addresses:
        raise UnsafeWebhookUrl("DNS: host not found", f"The host {host!r} has no address.")
    return tuple(addresses)


def resolve_target(url: str) -> Target:
    """Parse, resolve and check `url` now; raises `UnsafeWebhookUrl` (a `ValueError`).

    Every address the host resolves to is checked (one private address among public ones refuses
    the URL), unless `EVENTS_ALLOW_PRIVATE_URLS`. Connect only to `Target.addresses`."""
    scheme, host, port = _parse(url)
    addresses = _resolve(host, port)
    if not settings.EVENTS_ALLOW_PRIVATE_URLS and not all(address_is_public(a) for a in addresses):
        raise UnsafeWebhookUrl(
            PRIVATE_ADDRESS,
            f"The host {host!r} resolves to a loopback, link-local or private address; "
            "events are only sent to public addresses.",
        )
    return Target(url=url.strip(), scheme=scheme, host=host, port=port, addresses=addresses)


def check_webhook_url(url: str) -> None:
    """Raise `ValueError` with a message for the client app when SmartPay would not POST to `url`.

    For `PATCH /api/v1/webhook-endpoint`: scheme (https outside sandbox), no credentials, and the
    host must resolve to public addresses only, unless `EVENTS_ALLOW_PRIVATE_URLS` (then the host is
    not resolved: any name is accepted). Delivery checks again each time, after resolution."""
    if settings.EVENTS_ALLOW_PRIVATE_URLS:
        _parse(url)
        return
    resolve_target(url)


# --- Connecting to the checked addresses only ------------------------------------------------------


class _PinnedConnectionMixin:
    """Connects to `pinned_addresses` (tried in order) instead of resolving the host again; the host
    name still goes in the Host header, TLS SNI and certificate check."""

    pinned_addresses: tuple[str, ...] = ()

    def _new_conn(self):
        host = self._dns_host
        error: Exception | None = None
        for address in self.pinned_addresses:
            self._dns_host = address
            try:
                return super()._new_conn()
            except (ConnectTimeoutError, NewConnectionError) as failure:
                error = failure
            finally:
                self._dns_host = host
        raise error or NewConnectionError(self, "no address to connect to")


def _pinned_pool_classes(addresses: tuple[str, ...]) -> dict:
    http_connection = type("PinnedHTTPConnection", (_PinnedConnectionMixin, HTTPConnection), {})
    https_connection = type("PinnedHTTPSConnection", (_PinnedConnectionMixin, HTTPSConnection), {})
    http_connection.pinned_addresses = https_connection.pinned_addresses = addresses
    return {
        "http": type("PinnedHTTPConnectionPool", (HTTPConnectionPool,), {"ConnectionCls": http_connection}),
        "https": type("PinnedHTTPSConnectionPool", (HTTPSConnectionPool,), {"ConnectionCls": https_connection}),
    }


class PinnedAdapter(HTTPAdapter):
    """A requests adapter whose connections go to the given, already checked addresses."""

    def __init__(self, addresses: tuple[str, ...], **kwargs):
        self.addresses = tuple(addresses)
        super().__init__(**kwargs)

    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _pinned_pool_classes(self.addresses)
