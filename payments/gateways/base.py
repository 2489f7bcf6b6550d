"""The gateway boundary: one abstract adapter, frozen dataclasses in and out, one error hierarchy.

Everything gateway-specific (URLs, auth, decimal amounts, status words, error shapes) stays inside
an adapter module. The rest of SmartPay sees only these types:

* a **decline** is a normal `ChargeResult` with `status=FAILED` and a normalised `decline_code`;
* `GatewayUnavailable`: the request was not processed (connect error, 429, 503): safe to retry
  with the same idempotency key, or to fail over to another gateway;
* `GatewayOutcomeUnknown`: the request may have been processed (read timeout, 5xx after send):
  never retried blindly; settled later by asking the gateway (`find_by_reference`);
* `GatewayInvalidRequest`: the gateway refused the parameters (our bug or the client's input);
* `GatewayConfigurationError`: bad credentials or setup (401/403).
"""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar

import requests

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
    """Not processed: connection refused/failed, 429, 503. Safe to retry or fail over."""

    code = "gateway_unavailable"

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs):
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class GatewayOutcomeUnknown(GatewayError):
    """The request left and no trustworthy answer came back. Settle by asking the gateway."""

    code = "gateway_timeout"


class GatewayInvalidRequest(GatewayError):
    """The gateway refused the parameters (4xx other than auth/decline)."""

    code = "gateway_invalid_request"

    def __init__(self, message: str, *, param: str | None = None, **kwargs):
        super().__init__(message, **kwargs)
        self.param = param


class GatewayNotFound(GatewayInvalidRequest):
    code = "gateway_not_found"


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

    def __post_init__(self):
        if (self.token is None) == (self.saved_card is None):
            raise ValueError("ChargeRequest needs exactly one of token or saved_card")
        if self.amount <= 0:
            raise ValueError("amount must be a positive number of minor units")


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
        """Send one HTTP request. Transport failures become gateway errors:

        a connect failure never reached the gateway (`GatewayUnavailable`); a read timeout on a
        request with side effects may have been processed (`GatewayOutcomeUnknown`), while on a
        read-only request it is just unavailability.

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
        except (requests.ConnectionError, requests.ConnectTimeout) as exc:
            if isinstance(exc, requests.ReadTimeout):  # ReadTimeout is not a ConnectionError; defensive
                raise self._after_send_failure(side_effect, "read timeout") from None
            raise GatewayUnavailable(f"{self.name}: could not connect", gateway=self.name) from None
        except requests.Timeout:
            raise self._after_send_failure(side_effect, "read timeout") from None
        except requests.RequestException as exc:
            raise self._after_send_failure(side_effect, type(exc).__name__) from None
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

    def _after_send_failure(self, side_effect: bool, what: str) -> GatewayError:
        if side_effect:
            return GatewayOutcomeUnknown(f"{self.name}: {what} after the request was sent", gateway=self.name)
        return GatewayUnavailable(f"{self.name}: {what}", gateway=self.name)

    @staticmethod
    def retry_after_seconds(response: requests.Response) -> float | None:
        value = response.headers.get("Retry-After")
        if not value:
            return None
        try:
            return max(0.0, float(value))
        except ValueError:
            return None
