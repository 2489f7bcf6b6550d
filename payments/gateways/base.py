"""The gateway boundary: one abstract adapter, frozen dataclasses in and out, one error hierarchy.

Everything gateway-specific (URLs, auth, decimal amounts, status words, error shapes) stays inside
an adapter module. The rest of SmartPay sees only these types:

* a **decline** is a normal `ChargeResult` with `status=FAILED` and a normalised `decline_code`;
* `GatewayUnavailable`: the request was not processed: safe to retry with the same idempotency
  key, or to fail over to another gateway;
* `GatewayOutcomeUnknown`: the request may have been processed: never sent again as a new charge,
  never failed over; settled later by asking the gateway (`retrieve`, `find_by_reference`);
* `GatewayInvalidRequest`: the gateway refused the parameters (our bug or the client's input);
* `GatewayConfigurationError`: bad credentials or setup (401/403).

Which of the first two a failure is depends on *when* it happened (`_send`, `transport_error`):

1. **Before the request left** (`GatewayUnavailable`, whatever the request): the DNS lookup failed
   (urllib3 `NameResolutionError`), the connection was refused or unreachable (`NewConnectionError`),
   the TCP connect timed out (`requests.ConnectTimeout`), or the TLS handshake failed
   (`requests.exceptions.SSLError`, or any error raised inside `do_handshake`, a handshake timeout
   included). No byte of the HTTP request was written, so nothing can have been processed.
   `requests.ConnectionError` wraps both phases, so the wrapped urllib3 reason (`exc.args[0]`,
   `MaxRetryError.reason`, the `ProtocolError`'s inner error, `__cause__`) decides; see
   `request_never_left`.
2. **After the request may have been sent**: a read timeout; the connection reset, aborted or
   closed (`ProtocolError` with `RemoteDisconnected`, `ConnectionResetError`, `BrokenPipeError`);
   a truncated body (`ChunkedEncodingError`); any other transport error we cannot place (*in doubt,
   it may have been sent*); an HTTP 5xx, 503 included, unless the gateway documents that answer as
   "not processed" (neither Culqi nor Mercado Pago does); an unparsable or unexpected body. These are
   `GatewayOutcomeUnknown` for a side-effecting request (charge, capture, cancel, refund, save card:
   `side_effect=True`) and plain `GatewayUnavailable` for a read-only one (retrieve, search, list),
   which is safe to ask again.
3. **HTTP 429** is a refusal (both gateways document it as "too many requests, not processed"):
   `GatewayUnavailable`, with `retry_after` from the `Retry-After` header.
4. **Hosted checkout creation** (`create_checkout`: a Culqi order, a Mercado Pago preference) is
   sent as not side-effecting: it takes no money and the payer can only pay a URL we received, so a
   session whose answer was lost is harmless and the call may be retried or failed over.

A gateway that replays the first answer for a repeated `X-Idempotency-Key` (Mercado Pago:
`honours_idempotency_keys = True`) may have an outcome-unknown request sent again with the *same*
key; one without (Culqi, culqi.md §13) never: its unknowns are settled by asking.
"""

from __future__ import annotations

import logging
import socket
import ssl
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar

import requests
import urllib3.exceptions
from urllib3.util.ssl_match_hostname import CertificateError as Urllib3CertificateError

logger = logging.getLogger("smartpay.gateways")


# --- Normalised vocabulary ----------------------------------------------------------------------


class ChargeStatus(StrEnum):
    """Where a gateway says a charge is, in SmartPay's words."""

    SUCCEEDED = "succeeded"  # captured money
    AUTHORIZED = "authorized"  # held, awaiting capture
    REQUIRES_ACTION = "requires_action"  # the payer must do something (3-D Secure, redirect)
    PENDING = "pending"  # in review / in process at the gateway; a final word comes later
    FAILED = "failed"  # declined or rejected; see decline_code
    CANCELED = "canceled"  # voided before capture
    REFUNDED = "refunded"  # fully refunded at the gateway
    PARTIALLY_REFUNDED = "partially_refunded"


class DeclineCode(StrEnum):
    INSUFFICIENT_FUNDS = "insufficient_funds"
    CARD_DECLINED = "card_declined"
    EXPIRED_CARD = "expired_card"
    INCORRECT_CVC = "incorrect_cvc"
    LOST_OR_STOLEN_CARD = "lost_or_stolen_card"
    FRAUD_SUSPECTED = "fraud_suspected"
    CALL_ISSUER = "call_issuer"
    INVALID_CARD_DATA = "invalid_card_data"
    AMOUNT_LIMIT_EXCEEDED = "amount_limit_exceeded"
    PROCESSING_ERROR = "processing_error"


# --- Errors ---------------------------------------------------------------------------------------


class GatewayError(Exception):
    """Base of every error an adapter raises. `code` is SmartPay's normalised error code."""

    code = "gateway_error"

    def __init__(
        self,
        message: str,
        *,
        gateway: str = "",
        http_status: int | None = None,
        gateway_code: str | None = None,
        raw: Any = None,
    ):
        super().__init__(message)
        self.message = message
        self.gateway = gateway
        self.http_status = http_status
        self.gateway_code = gateway_code
        self.raw = raw


class GatewayUnavailable(GatewayError):
    """Not processed: no connection (DNS, refused, connect timeout, TLS handshake), 429, or a
    read-only request that failed in any way. Safe to retry or fail over."""

    code = "gateway_unavailable"

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs):
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class GatewayOutcomeUnknown(GatewayError):
    """A side-effecting request may have left and no trustworthy answer came back (read timeout,
    connection lost after send, 5xx, unreadable body). Settle by asking the gateway; resend only
    with the same idempotency key to a gateway that honours it, and never fail over."""

    code = "gateway_timeout"

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs):
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class GatewayInvalidRequest(GatewayError):
    """The gateway refused the parameters (4xx other than auth/decline)."""

    code = "gateway_invalid_request"

    def __init__(self, message: str, *, param: str | None = None, **kwargs):
        super().__init__(message, **kwargs)
        self.param = param


class GatewayNotFound(GatewayInvalidRequest):
    code = "gateway_not_found"


class CheckoutAlreadyPaid(GatewayInvalidRequest):
    """`expire_checkout` refused: the hosted checkout session was paid (or a payment on it is in process).

    The session cannot be closed: record the payment instead of canceling or failing it. `charge` is the
    gateway's payment when the adapter has it at hand (Mercado Pago); otherwise (Culqi: an order does not
    name its charge) find it with `find_by_reference`.
    """

    code = "checkout_already_paid"

    def __init__(self, message: str, *, charge: ChargeResult | None = None, **kwargs):
        super().__init__(message, **kwargs)
        self.charge = charge


class GatewayConfigurationError(GatewayError):
    """Credentials or setup are wrong (401/403, missing keys). An operator must act."""

    code = "gateway_configuration_error"


# --- Requests and results -------------------------------------------------------------------------


@dataclass(frozen=True)
class SavedCardRef:
    gateway_customer_id: str
    gateway_card_id: str


@dataclass(frozen=True)
class CardInfo:
    brand: str = ""
    last4: str = ""
    exp_month: int | None = None
    exp_year: int | None = None


@dataclass(frozen=True)
class ChargeRequest:
    """Charge `amount` minor units of `currency`. Exactly one of `token` or `saved_card`."""

    reference: str  # our payment id (pay_…), sent as external_reference / metadata
    idempotency_key: str  # derived from our attempt row; reused on retry of the same attempt
    amount: int  # minor units
    currency: str  # "PEN" | "USD"
    email: str
    description: str = ""
    capture: bool = True
    token: str | None = None
    saved_card: SavedCardRef | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)
    # Mercado Pago specifics, ignored by gateways that do not need them.
    payment_method_id: str | None = None
    issuer_id: str | None = None
    installments: int = 1
    notification_url: str | None = None
    # The payer's 3-D Secure result, sent with a charge retried after the challenge (Culqi's
    # `authentication_3DS`: eci, xid, cavv, protocolVersion, directoryServerTransactionId).
    authentication_3ds: Mapping[str, Any] | None = None

    def __post_init__(self):
        if (self.token is None) == (self.saved_card is None):
            raise ValueError("ChargeRequest needs exactly one of token or saved_card")
        if self.amount <= 0:
            raise ValueError("amount must be a positive number of minor units")


@dataclass(frozen=True)
class RefundSeen:
    """One refund as the gateway lists it on its charge (Mercado Pago `refunds[]`, Culqi `operations[]`)."""

    gateway_refund_id: str
    amount: int  # minor units
    status: str = "succeeded"  # "succeeded" | "pending" | "failed"
    reference: str | None = None  # our refund id (re_…) when the gateway echoes it


@dataclass(frozen=True)
class ChargeResult:
    status: ChargeStatus
    gateway_payment_id: str | None
    amount: int
    currency: str
    amount_refunded: int = 0
    decline_code: str | None = None  # a DeclineCode value when status is FAILED
    decline_message: str | None = None  # the gateway's human message, safe to show
    gateway_code: str | None = None  # the gateway's own code (e.g. "insufficient_funds", "cc_rejected_…")
    gateway_status: str | None = None  # the gateway's own status word
    next_action: Mapping[str, Any] | None = None  # e.g. {"type": "three_d_secure", ...}
    card: CardInfo | None = None
    reference: str | None = None  # our reference as the gateway echoes it
    created_at: datetime | None = None
    # The refunds the gateway lists on this charge; None when its answer does not list them (a
    # creation answer, a webhook body): then only `amount_refunded` is known.
    refunds: tuple[RefundSeen, ...] | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class RefundRequest:
    gateway_payment_id: str
    amount: int
    currency: str
    idempotency_key: str
    reason: str = ""
    reference: str = ""  # our refund id (re_…)


@dataclass(frozen=True)
class RefundResult:
    gateway_refund_id: str
    status: str  # "succeeded" | "pending" | "failed"
    amount: int
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class SaveCardRequest:
    token: str
    email: str
    reference: str  # our customer id (cus_…)
    name: str = ""
    phone: str = ""
    gateway_customer_id: str | None = None  # reuse when the customer already exists at the gateway


@dataclass(frozen=True)
class SavedCard:
    gateway_customer_id: str
    gateway_card_id: str
    card: CardInfo
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class CheckoutRequest:
    reference: str
    idempotency_key: str
    amount: int
    currency: str
    email: str
    description: str
    return_url: str
    notification_url: str | None = None
    expires_at: datetime | None = None


@dataclass(frozen=True)
class CheckoutSession:
    gateway_checkout_id: str
    redirect_url: str
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class GatewayConfig:
    api_base: str
    secret_key: str
    public_key: str = ""
    secure_base: str = ""  # tokenization host when it differs from api_base (Culqi)
    connect_timeout: float = 3.05
    read_timeout: float = 20.0


# --- The adapter ----------------------------------------------------------------------------------


class GatewayAdapter(ABC):
    """One payment gateway. Subclasses live in their own module and register in `registry.py`."""

    name: ClassVar[str]
    display_name: ClassVar[str]
    currencies: ClassVar[frozenset[str]]
    # True when the gateway replays its first answer for a repeated idempotency key (Mercado Pago's
    # `X-Idempotency-Key`): an outcome-unknown request may then be sent again with the same key.
    # False (Culqi: no idempotency header, culqi.md §13): sending it again could charge twice.
    honours_idempotency_keys: ClassVar[bool] = False

    def __init__(self, config: GatewayConfig, session: requests.Session | None = None):
        self.config = config
        self.session = session or requests.Session()

    # Client-side tokenization facts, exposed by GET /api/v1/gateways.
    @property
    def public_key(self) -> str:
        return self.config.public_key

    @property
    def tokenization_base(self) -> str:
        return self.config.secure_base or self.config.api_base

    @abstractmethod
    def charge(self, request: ChargeRequest) -> ChargeResult: ...

    @abstractmethod
    def capture(self, gateway_payment_id: str, *, amount: int | None, idempotency_key: str) -> ChargeResult: ...

    @abstractmethod
    def cancel(self, gateway_payment_id: str, *, idempotency_key: str) -> ChargeResult: ...

    @abstractmethod
    def refund(self, request: RefundRequest) -> RefundResult: ...

    @abstractmethod
    def retrieve(self, gateway_payment_id: str) -> ChargeResult: ...

    @abstractmethod
    def find_by_reference(
        self, reference: str, *, amount: int, currency: str, email: str, created_after: datetime
    ) -> ChargeResult | None:
        """The charge made for our `reference`, or None when the gateway proves there is none."""

    @abstractmethod
    def list_charges(self, *, day_start: datetime, day_end: datetime) -> Iterator[ChargeResult]:
        """Every charge the gateway created in `[day_start, day_end)` (timezone-aware), for reconciliation.

        A generator that holds one page of the gateway's listing in memory at a time, so a day of
        100,000 charges streams. It yields the gateway's records as they are (declines, refunds and
        charges SmartPay never made included), each with `created_at` and, when the gateway echoes
        it, our `reference`. It either lists the window completely or raises a `GatewayError`: a
        listing that cannot be finished (no usable cursor, fewer records than the gateway counted)
        is an error, never a silent short read, because reconciliation reads absence as a finding.
        Read-only: failures are `GatewayUnavailable`, never `GatewayOutcomeUnknown`.
        """

    @abstractmethod
    def save_card(self, request: SaveCardRequest) -> SavedCard: ...

    @abstractmethod
    def delete_card(self, card: SavedCardRef) -> None: ...

    @abstractmethod
    def create_checkout(self, request: CheckoutRequest) -> CheckoutSession: ...

    @abstractmethod
    def expire_checkout(self, gateway_checkout_id: str) -> None:
        """Close a hosted checkout session at the gateway so that it can no longer be paid.

        Side-effecting but harmless to repeat. Returns when the session is closed, including when it was
        already expired, deleted or unknown to the gateway. Raises `CheckoutAlreadyPaid` when the payer
        paid (or a payment is in process) first; any other `GatewayError` means it may not be closed yet:
        `GatewayUnavailable` (nothing done) or `GatewayOutcomeUnknown` (maybe done): call it again later.
        """

    # --- Shared transport: one session, explicit timeouts, transport errors translated here.

    def _send(
        self,
        method: str,
        url: str,
        *,
        side_effect: bool,
        headers: Mapping[str, str] | None = None,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        data: bytes | None = None,
    ) -> requests.Response:
        """Send one HTTP request. Transport failures become gateway errors (module docstring):

        a failure before the request left (DNS, refused, connect timeout, TLS handshake) is
        `GatewayUnavailable`; any other one may have reached the gateway, so it is
        `GatewayOutcomeUnknown` when `side_effect` and `GatewayUnavailable` on a read-only request.
        HTTP statuses and bodies are the adapter's to judge, with the same rule.

        `data` is a pre-encoded body (the caller sets Content-Type), for adapters that must control
        the exact bytes, e.g. Mercado Pago's decimal amounts, which must never pass through float.
        """
        started = time.monotonic()
        try:
            response = self.session.request(
                method,
                url,
                headers=dict(headers or {}),
                json=json,
                data=data,
                params=params,
                timeout=(self.config.connect_timeout, self.config.read_timeout),
            )
        except requests.RequestException as exc:
            error = transport_error(exc, gateway=self.name, side_effect=side_effect)
            # Names of exception types only: messages carry URLs, and a URL may carry a card token.
            logger.warning(
                "gateway transport failure",
                extra={
                    "gateway": self.name,
                    "method": method,
                    "path": self._path_for_log(url),
                    "failure": _failure_names(exc),
                    "error_code": error.code,
                    "duration_ms": int((time.monotonic() - started) * 1000),
                },
            )
            raise error from None
        logger.info(
            "gateway call",
            extra={
                "gateway": self.name,
                "method": method,
                "path": self._path_for_log(url),
                "http_status": response.status_code,
                "duration_ms": int((time.monotonic() - started) * 1000),
            },
        )
        return response

    def _path_for_log(self, url: str) -> str:
        """The path to log. Adapters whose URLs embed secrets (card tokens) override this to redact."""
        return url.split("?", 1)[0].removeprefix(self.config.api_base)

    @staticmethod
    def retry_after_seconds(response: requests.Response) -> float | None:
        value = response.headers.get("Retry-After")
        if not value:
            return None
        try:
            return max(0.0, float(value))
        except ValueError:
            return None


# --- Transport failures: did the request leave? ---------------------------------------------------

# urllib3 and socket errors that only happen while a connection is being made, before any byte of
# the HTTP request is written. `NameResolutionError` (DNS) is a `NewConnectionError`, which urllib3
# raises for refused and unreachable connections and which subclasses `ConnectTimeoutError` (the TCP
# connect timed out). urllib3 wraps an error in `ProxyError` only while the proxy is not connected
# yet. The certificate is checked in the TLS handshake (or, by urllib3, right after it).
_BEFORE_SEND_ERRORS: tuple[type[BaseException], ...] = (
    urllib3.exceptions.ConnectTimeoutError,
    urllib3.exceptions.ProxyError,
    urllib3.exceptions.ClosedPoolError,
    urllib3.exceptions.EmptyPoolError,
    urllib3.exceptions.LocationParseError,
    socket.gaierror,
    ConnectionRefusedError,
    ssl.SSLCertVerificationError,
    Urllib3CertificateError,
)
# The TLS handshake's frame (the ssl module's and pyOpenSSL's). An HTTPS connection is made and its
# handshake completed before urllib3 writes the request, so an error raised inside it, a reset, an EOF
# or a timeout included, proves nothing was sent.
_HANDSHAKE_FRAMES = frozenset({"do_handshake"})


def _causes(exc: BaseException) -> list[BaseException]:
    """`exc` and what it wraps: exception arguments (requests wraps urllib3's error in `args[0]`, and
    `ProtocolError` its socket error in `args[1]`), `MaxRetryError.reason`, and `__cause__`.

    `__context__` is not followed: an exception merely being handled nearby proves nothing."""
    seen: set[int] = set()
    found: list[BaseException] = []
    pending: list[BaseException] = [exc]
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        found.append(current)
        inner = [arg for arg in current.args if isinstance(arg, BaseException)]
        reason = getattr(current, "reason", None)
        if isinstance(reason, BaseException):
            inner.append(reason)
        if current.__cause__ is not None:
            inner.append(current.__cause__)
        pending.extend(reversed(inner))
    return found


def _raised_in_handshake(exc: BaseException) -> bool:
    frame = exc.__traceback__
    while frame is not None:
        if frame.tb_frame.f_code.co_name in _HANDSHAKE_FRAMES:
            return True
        frame = frame.tb_next
    return False


def _failure_names(exc: BaseException) -> str:
    """`ConnectionError > ProtocolError > RemoteDisconnected`: the types only, safe to log."""
    return " > ".join(type(cause).__name__ for cause in _causes(exc))


def request_never_left(exc: BaseException) -> bool:
    """True only when the transport error `exc` proves that no byte of the HTTP request was sent.

    `requests.ConnectionError` covers failures of both phases: a connection that could not be made
    (`MaxRetryError(reason=NewConnectionError)`) and one lost after the request was written
    (`ProtocolError("Connection aborted.", RemoteDisconnected(...))`, `ConnectionResetError`,
    `BrokenPipeError`; urllib3 swallows a broken pipe while sending and reports what reading the
    answer then finds). Only the former proves anything; whatever cannot be placed may have been sent.
    """
    if isinstance(exc, requests.ConnectTimeout | requests.exceptions.ProxyError):
        return True
    causes = _causes(exc)
    if any(isinstance(cause, _BEFORE_SEND_ERRORS) or _raised_in_handshake(cause) for cause in causes):
        return True
    if isinstance(exc, requests.exceptions.SSLError):
        # requests raises SSLError for an ssl-module error anywhere; in practice, and always when it
        # carries no traceback to say otherwise, that is the handshake (a certificate, protocol or
        # cipher refusal). An ssl error raised later, while writing the request or reading the
        # answer, left its traceback outside `do_handshake` (checked above): it may have been sent.
        return not any(isinstance(cause, ssl.SSLError) and cause.__traceback__ is not None for cause in causes)
    return False


def transport_error(exc: requests.RequestException, *, gateway: str, side_effect: bool) -> GatewayError:
    """The gateway error for a request that got no HTTP answer (see the module docstring)."""
    if request_never_left(exc):
        causes = _causes(exc)
        if any(isinstance(cause, urllib3.exceptions.NameResolutionError | socket.gaierror) for cause in causes):
            what = "DNS lookup failed"
        elif isinstance(exc, requests.ConnectTimeout):
            what = "connect timeout"
        elif isinstance(exc, requests.exceptions.SSLError) or any(_raised_in_handshake(c) for c in causes):
            what = "TLS handshake failed"
        else:
            what = "could not connect"
        return GatewayUnavailable(f"{gateway}: {what}; the request was not sent", gateway=gateway)
    # What went wrong, by exception type only (messages carry URLs): `RemoteDisconnected`, ...
    what = "read timeout" if isinstance(exc, requests.Timeout) else f"no answer ({type(_causes(exc)[-1]).__name__})"
    if side_effect:
        return GatewayOutcomeUnknown(f"{gateway}: {what} after the request was sent", gateway=gateway)
    return GatewayUnavailable(f"{gateway}: {what}", gateway=gateway)
