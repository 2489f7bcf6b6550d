"""Mercado Pago (Peru, site MPE) over the Payments API v1: `/v1/payments`, refunds, customers and
saved cards, card tokens, Checkout Pro preferences. See `docs/reference/mercadopago.md`.

What stays inside this module and nowhere else:

* **Money.** SmartPay's amounts are integer minor units (céntimos). Mercado Pago's are decimal JSON
  numbers (`transaction_amount: 19.99`). We convert with `Decimal` only: requests are serialised
  by `_encode_json`, which writes a Decimal's exact text, and responses are parsed with
  `parse_float=Decimal`. No float ever holds an amount we read or send.
* **Idempotency.** Every POST/PUT carries `X-Idempotency-Key`. The caller's key goes on the call
  that moves money. Helper POSTs made on the way (a card token from a saved card, a customer, a
  saved card) get keys *derived* from the caller's, so a retry of the whole operation replays
  each step and the helper steps never share a key with the money step.
* **Words.** `status`/`status_detail` become `ChargeStatus` and `DeclineCode`. Error bodies
  `{message, error, status, cause[{code, description}]}` become the base error hierarchy.
* **Secrets.** The access token goes only in the `Authorization` header. Card tokens never reach
  a log line or an error message: `GET /v1/card_tokens/{token}` is logged with the id redacted.

`ChargeResult.raw` and friends are the response as the standard library parses it, so they stay
JSON-serialisable for the JSONField that stores them. They are the record, not a source of
amounts: read money only from the typed fields.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any, NoReturn
from urllib.parse import quote

import requests

from payments.gateways.base import (
    CardInfo,
    ChargeRequest,
    ChargeResult,
    ChargeStatus,
    CheckoutAlreadyPaid,
    CheckoutRequest,
    CheckoutSession,
    DeclineCode,
    GatewayAdapter,
    GatewayConfigurationError,
    GatewayError,
    GatewayInvalidRequest,
    GatewayNotFound,
    GatewayOutcomeUnknown,
    GatewayUnavailable,
    RefundRequest,
    RefundResult,
    RefundSeen,
    SaveCardRequest,
    SavedCard,
    SavedCardRef,
)

logger = logging.getLogger("smartpay.gateways")

CENT = Decimal("0.01")

# `find_by_reference` searches from a little before `created_after`: Mercado Pago stamps
# `date_created` with its own clock, and missing a payment there could lead to charging twice.
SEARCH_CLOCK_SKEW = timedelta(minutes=10)
# Mercado Pago only searches the last 12 months and refuses ranges of 365 days or more (9062).
SEARCH_MAX_RANGE = timedelta(days=364)
# Listing a day (`list_charges`): pages of 100 (the SDK's auto-pager size, §4), offset paging.
SEARCH_PAGE_SIZE = 100
# The reference states no ceiling on `offset` (§4, §17), but deep offsets are where search APIs cap or
# slow down, so a window counting more payments than this is split into smaller windows before paging.
# Unconfirmed guard: when a window fits (always, below this many payments a day) nothing is wasted.
SEARCH_WINDOW_MAX_RESULTS = 10_000
SEARCH_MIN_WINDOW = timedelta(seconds=1)
SEARCH_RESOLUTION = timedelta(milliseconds=1)  # `date_created` has milliseconds; `end_date` is inclusive
# A page that cannot be read now (429, 503, a read timeout) is asked again, at most this many times in all.
SEARCH_PAGE_TRIES = 3
SEARCH_RETRY_MAX_SECONDS = 30.0


# --- Money: int minor units <-> Mercado Pago's decimal amounts -----------------------------------


class _MalformedResponse(Exception):
    """A 2xx body we cannot read. Becomes OutcomeUnknown (side effects) or Unavailable (reads)."""


def to_decimal_amount(minor: int) -> Decimal:
    """1999 -> Decimal("19.99"). Exact: integer division by 100 in Decimal, two places."""
    if isinstance(minor, bool) or not isinstance(minor, int):
        raise TypeError(f"amount must be int minor units, not {type(minor).__name__}")
    return (Decimal(minor) / 100).quantize(CENT)


def to_minor_units(value: Any) -> int:
    """Mercado Pago's amount (a Decimal from `parse_float=Decimal`, an int, or a numeric string)
    -> int minor units. Amounts are 2-decimal PEN; anything finer is rounded half-up."""
    if value is None or isinstance(value, bool | float | dict | list):
        raise _MalformedResponse(f"not an amount: {type(value).__name__}")
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise _MalformedResponse("not an amount") from None
    if not amount.is_finite():
        raise _MalformedResponse("not a finite amount")
    return int((amount * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _encode_json(value: Any) -> str:
    """Compact JSON where a Decimal is written as its exact decimal text (`19.99`, never via float).

    The stdlib encoder cannot emit a Decimal as a number, and floats are refused here on purpose.
    """
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError("non-finite Decimal in a request body")
        return format(value, "f")
    if isinstance(value, float):
        raise TypeError("floats are not allowed in Mercado Pago request bodies; use Decimal")
    if isinstance(value, Mapping):
        return "{" + ",".join(f"{json.dumps(str(k))}:{_encode_json(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(_encode_json(v) for v in value) + "]"
    return json.dumps(value)  # str, int, bool, None


def _refuse_constant(name: str) -> NoReturn:
    raise ValueError(f"JSON constant {name} is not a valid amount")


def _parse_json(content: bytes) -> Any:
    return json.loads(content, parse_float=Decimal, parse_constant=_refuse_constant)


def _mp_datetime(value: datetime) -> str:
    """Mercado Pago's `yyyy-MM-dd'T'HH:mm:ss.SSS±hh:mm`, in UTC. A naive datetime is taken as UTC."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="milliseconds")


def _parse_datetime(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _opt_int(value: Any) -> int | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        return int(str(value))
    except ValueError:
        return None


def _id_text(value: Any) -> str:
    """Mercado Pago ids: payments and refunds are JSON integers, customers and cards strings."""
    if isinstance(value, bool) or not isinstance(value, int | str) or value == "":
        raise _MalformedResponse("missing or invalid id")
    return str(value)


def _mapping(value: Any) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise _MalformedResponse("expected a JSON object")
    return value


def _results(body: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    results = body.get("results")
    if not isinstance(results, list) or not all(isinstance(item, Mapping) for item in results):
        raise _MalformedResponse("expected a results list")
    return results


# --- Status words --------------------------------------------------------------------------------

# status_detail of a `rejected` payment -> SmartPay's decline code. Anything not listed (the set is
# open: Yape and newer flows add words) is card_declined; `gateway_code` always keeps the original.
DECLINE_CODES: dict[str, DeclineCode] = {
    "cc_rejected_insufficient_amount": DeclineCode.INSUFFICIENT_FUNDS,
    "cc_rejected_bad_filled_security_code": DeclineCode.INCORRECT_CVC,
    "cc_rejected_bad_filled_date": DeclineCode.EXPIRED_CARD,
    "cc_rejected_bad_filled_card_number": DeclineCode.INVALID_CARD_DATA,
    "cc_rejected_bad_filled_other": DeclineCode.INVALID_CARD_DATA,
    "cc_rejected_form_error": DeclineCode.INVALID_CARD_DATA,  # Yape's spelling of bad_filled_other
    "cc_rejected_call_for_authorize": DeclineCode.CALL_ISSUER,
    "cc_rejected_high_risk": DeclineCode.FRAUD_SUSPECTED,
    "cc_rejected_blacklist": DeclineCode.FRAUD_SUSPECTED,
    "cc_rejected_fraud": DeclineCode.FRAUD_SUSPECTED,
    "rejected_high_risk": DeclineCode.FRAUD_SUSPECTED,
    # "Disabled" is the issuer's block (often a card not enabled for online use; MP's own payer
    # text is "call to activate your card"). It says nothing about loss or theft, so it is a plain
    # decline, not lost_or_stolen_card, which would accuse the payer and trigger fraud handling.
    "cc_rejected_card_disabled": DeclineCode.CARD_DECLINED,
    "cc_amount_rate_limit_exceeded": DeclineCode.AMOUNT_LIMIT_EXCEEDED,
    "cc_rejected_max_attempts": DeclineCode.CARD_DECLINED,
    "cc_rejected_duplicated_payment": DeclineCode.CARD_DECLINED,
    "cc_rejected_other_reason": DeclineCode.CARD_DECLINED,
    "cc_rejected_time_out": DeclineCode.PROCESSING_ERROR,  # the issuer did not answer in time
    "bank_error": DeclineCode.PROCESSING_ERROR,
}

PENDING_STATUSES = frozenset({"pending", "in_process"})
# Which payment on a checkout `expire_checkout` reports first: money taken, then money that may come.
_PAID_RANK = {
    ChargeStatus.SUCCEEDED: 0,
    ChargeStatus.PARTIALLY_REFUNDED: 0,
    ChargeStatus.REFUNDED: 0,
    ChargeStatus.AUTHORIZED: 1,
    ChargeStatus.PENDING: 2,
    ChargeStatus.REQUIRES_ACTION: 2,
}
# Disputes are out of scope: the money was captured and a dispute does not undo that by itself.
CAPTURED_DISPUTE_STATUSES = frozenset({"charged_back", "in_mediation"})

REFUND_STATUSES: dict[str, str] = {
    "approved": "succeeded",
    "in_process": "pending",
    "pending": "pending",
    "authorized": "pending",
    "rejected": "failed",
    "cancelled": "failed",
}

# cause.code -> the request field it is about (doc §8), for GatewayInvalidRequest.param.
CAUSE_PARAMS: dict[str, str] = {
    "2002": "payer.id",
    "2006": "token",
    "2062": "token",
    "3003": "token",
    "4000": "token",
    "2072": "transaction_amount",
    "4002": "transaction_amount",
    "4003": "transaction_amount",
    "4023": "transaction_amount",
    "4024": "transaction_amount",
    "4037": "transaction_amount",
    "2131": "payment_method_id",
    "3011": "payment_method_id",
    "3014": "payment_method_id",
    "3028": "payment_method_id",
    "4001": "payment_method_id",
    "3001": "issuer_id",
    "4004": "installments",
    "4005": "installments",
    "4033": "installments",
    "4006": "payer",
    "4050": "payer.email",
    "4051": "payer.email",
    "106": "email",
    "4020": "notification_url",
    "4021": "notification_url",
    "4022": "metadata",
    "4040": "amount",
    "4041": "amount",
    "2077": "capture",
    "2078": "capture",
    "2079": "capture",
    "4292": "X-Idempotency-Key",
}
_PARAM_IN_TEXT = re.compile(
    r"\b(transaction_amount|payment_method_id|issuer_id|installments|card_token_id|token|payer\.email"
    r"|notification_url|external_reference|metadata|description|capture|amount|email)\b"
)
# Under 401 the refund API reports bad amounts (doc §7: 4040 "amount must be positive", 4041).
REFUND_AMOUNT_CAUSES = frozenset({"4040", "4041"})
# Under 404 the refund API also reports "too old" / "partial refund unsupported": not missing objects.
NOT_REALLY_NOT_FOUND_CAUSES = frozenset({"2024", "15016", "3024"})
CUSTOMER_ALREADY_EXISTS = "101"


class MercadoPagoAdapter(GatewayAdapter):
    name = "mercadopago"
    display_name = "Mercado Pago"
    # Mercado Pago charges in the seller account's currency; `/v1/payments` has no currency field.
    # SmartPay's account is Peruvian (MPE), so PEN only. USD goes through another gateway.
    currencies = frozenset({"PEN"})
    # The same `X-Idempotency-Key` replays the first answer (mercadopago.md §2, §16: "on timeout/5xx/429
    # retry with the same key"), so a request whose outcome is unknown may be sent again with its key.
    honours_idempotency_keys = True

    # --- Charges ---------------------------------------------------------------------------------

    def charge(self, request: ChargeRequest) -> ChargeResult:
        """POST /v1/payments. A decline is a FAILED result, not an error.

        With a saved card, a fresh single-use token is first made from the card (POST
        /v1/card_tokens). Without `payment_method_id`, it is worked out from the token's BIN
        (GET /v1/card_tokens/{token}, GET /v1/payment_methods/search), as MP's SDKs do. Those
        preparatory steps move no money, so their failures are `GatewayUnavailable`.
        """
        self._check_currency(request.currency)
        first_six = None
        if request.saved_card is not None:
            token, first_six = self._token_from_saved_card(request.saved_card, request.idempotency_key)
            payer: dict[str, Any] = {
                "type": "customer",
                "id": request.saved_card.gateway_customer_id,
                "email": request.email,
            }
        else:
            token = request.token
            payer = {"email": request.email}
        payment_method_id, issuer_id = request.payment_method_id, request.issuer_id
        if not payment_method_id:
            payment_method_id, found_issuer_id = self._payment_method_from_token(token, first_six)
            issuer_id = issuer_id or found_issuer_id

        body: dict[str, Any] = {
            "transaction_amount": to_decimal_amount(request.amount),
            "token": token,
        }
        if request.description:
            body["description"] = request.description
        body["installments"] = request.installments
        body["payment_method_id"] = payment_method_id
        if issuer_id:
            body["issuer_id"] = issuer_id
        body["capture"] = request.capture
        body["external_reference"] = request.reference
        # Our id last, so client metadata can never overwrite the key reconciliation relies on.
        body["metadata"] = {**request.metadata, "smartpay_payment_id": request.reference}
        if request.notification_url:
            body["notification_url"] = request.notification_url
        body["payer"] = payer

        payment, raw = self._call(
            "POST", "/v1/payments", body=body, idempotency_key=request.idempotency_key, side_effect=True
        )
        return self._charge_result(payment, raw, side_effect=True)

    def capture(self, gateway_payment_id: str, *, amount: int | None, idempotency_key: str) -> ChargeResult:
        """PUT /v1/payments/{id} {capture: true}; a partial capture adds the lower transaction_amount."""
        body: dict[str, Any] = {"capture": True}
        if amount is not None:
            body["transaction_amount"] = to_decimal_amount(amount)
        payment, raw = self._call(
            "PUT", self._payment_path(gateway_payment_id), body=body, idempotency_key=idempotency_key, side_effect=True
        )
        return self._charge_result(payment, raw, side_effect=True)

    def cancel(self, gateway_payment_id: str, *, idempotency_key: str) -> ChargeResult:
        """PUT /v1/payments/{id} {status: cancelled}: voids a pending, in_process or authorized payment."""
        payment, raw = self._call(
            "PUT",
            self._payment_path(gateway_payment_id),
            body={"status": "cancelled"},
            idempotency_key=idempotency_key,
            side_effect=True,
        )
        return self._charge_result(payment, raw, side_effect=True)

    def refund(self, request: RefundRequest) -> RefundResult:
        """POST /v1/payments/{id}/refunds. The amount is always explicit, even for a full refund:
        MP reads an empty body as "refund whatever is left", which a retry must never mean."""
        self._check_currency(request.currency)
        refund, raw = self._call(
            "POST",
            self._payment_path(request.gateway_payment_id) + "/refunds",
            body={"amount": to_decimal_amount(request.amount)},
            idempotency_key=request.idempotency_key,
            side_effect=True,
        )
        with self._reading(side_effect=True):
            amount = refund.get("amount")
            status_word = refund.get("status")
            return RefundResult(
                gateway_refund_id=_id_text(refund.get("id")),
                # Unknown words stay pending: a later retrieve or webhook settles them.
                status=REFUND_STATUSES.get(status_word, "pending") if isinstance(status_word, str) else "pending",
                amount=request.amount if amount is None else to_minor_units(amount),
                raw=raw,
            )

    def retrieve(self, gateway_payment_id: str) -> ChargeResult:
        payment, raw = self._call("GET", self._payment_path(gateway_payment_id))
        return self._charge_result(payment, raw, side_effect=False)

    def find_by_reference(
        self, reference: str, *, amount: int, currency: str, email: str, created_after: datetime
    ) -> ChargeResult | None:
        """GET /v1/payments/search by external_reference, newest first. An empty result is proof.

        `amount`, `currency` and `email` are not needed: Mercado Pago indexes our reference.
        """
        if created_after.tzinfo is None:
            created_after = created_after.replace(tzinfo=UTC)
        begin = max(created_after - SEARCH_CLOCK_SKEW, datetime.now(UTC) - SEARCH_MAX_RANGE)
        found, raw = self._call("GET", "/v1/payments/search", params=_search_by_reference(reference, begin))
        with self._reading(side_effect=False):
            matches = [
                (index, payment)
                for index, payment in enumerate(_results(found))
                if payment.get("external_reference") == reference
            ]
            raw_results = raw.get("results", [])
        if not matches:
            return None
        oldest = datetime.min.replace(tzinfo=UTC)
        # Sorted by the server already; sort again so a differently ordered answer cannot pick an old one.
        index, newest = max(
            matches, key=lambda item: (_aware(_parse_datetime(item[1].get("date_created"))) or oldest, -item[0])
        )
        return self._charge_result(newest, raw_results[index], side_effect=False)

    def list_charges(self, *, day_start: datetime, day_end: datetime) -> Iterator[ChargeResult]:
        """Every payment created in `[day_start, day_end)`: GET /v1/payments/search (§4).

        `range=date_created`, oldest first, 100 a page with `offset` paging until `offset >= paging.total`.
        A window whose `paging.total` exceeds SEARCH_WINDOW_MAX_RESULTS is split into equal smaller windows
        (recursively) so no offset gets deep. Ending a window with fewer payments than it counted is an
        error, never a short read. One page is held in memory at a time.
        """
        yield from self._list_window(_aware(day_start), _aware(day_end))

    def _list_window(self, start: datetime, end: datetime) -> Iterator[ChargeResult]:
        offset = 0
        page, raw, total = self._search_page(start, end, offset)
        if total > SEARCH_WINDOW_MAX_RESULTS and end - start > SEARCH_MIN_WINDOW:
            parts = math.ceil(total / SEARCH_WINDOW_MAX_RESULTS) + 1
            step = max(SEARCH_MIN_WINDOW, timedelta(seconds=math.ceil((end - start).total_seconds() / parts)))
            cut = start
            while cut < end:
                yield from self._list_window(cut, min(cut + step, end))
                cut += step
            return
        while True:
            results = page["results"]
            for index, payment in enumerate(results):
                result = self._charge_result(payment, raw["results"][index], side_effect=False)
                if result.created_at is None or start <= result.created_at < end:
                    yield result
            offset += len(results)
            if offset >= total:
                return
            if not results:
                raise GatewayUnavailable(
                    f"mercadopago: the payment search ended at {offset} of the {total} payments it counted",
                    gateway=self.name,
                )
            page, raw, total = self._search_page(start, end, offset)

    def _search_page(self, start: datetime, end: datetime, offset: int) -> tuple[Mapping[str, Any], Any, int]:
        """One page of the search as (body, raw body, paging.total), retried while Mercado Pago is unavailable."""
        params = {
            "range": "date_created",
            "begin_date": _mp_datetime(start),
            "end_date": _mp_datetime(end - SEARCH_RESOLUTION),
            "sort": "date_created",
            "criteria": "asc",
            "limit": SEARCH_PAGE_SIZE,
            "offset": offset,
        }
        for attempt in range(SEARCH_PAGE_TRIES):
            try:
                found, raw = self._call("GET", "/v1/payments/search", params=params)
                with self._reading(side_effect=False):
                    _results(found)
                    total = _opt_int(_mapping(found.get("paging")).get("total"))
                    if total is None or total < 0:
                        raise _MalformedResponse("search without paging.total")
                    return found, raw, total
            except GatewayUnavailable as error:
                if attempt + 1 >= SEARCH_PAGE_TRIES:
                    raise
                time.sleep(min(SEARCH_RETRY_MAX_SECONDS, error.retry_after or 2.0**attempt))
        raise AssertionError("unreachable")  # pragma: no cover

    # --- Saved cards -----------------------------------------------------------------------------

    def save_card(self, request: SaveCardRequest) -> SavedCard:
        """Find or create the customer (by email), then POST /v1/customers/{id}/cards {token}."""
        customer_id = request.gateway_customer_id or self._find_or_create_customer(request)
        # One key per (customer, token): a retry of the same save replays; a new token is a new card.
        token_digest = hashlib.sha256(request.token.encode()).hexdigest()[:16]
        card, raw = self._call(
            "POST",
            f"/v1/customers/{quote(customer_id, safe='')}/cards",
            body={"token": request.token},
            idempotency_key=f"{request.reference}:card:{token_digest}",
            side_effect=True,
        )
        with self._reading(side_effect=True):
            payment_method = card.get("payment_method") or {}
            return SavedCard(
                gateway_customer_id=customer_id,
                gateway_card_id=_id_text(card.get("id")),
                card=CardInfo(
                    brand=str(_mapping(payment_method).get("id") or ""),
                    last4=str(card.get("last_four_digits") or ""),
                    exp_month=_opt_int(card.get("expiration_month")),
                    exp_year=_opt_int(card.get("expiration_year")),
                ),
                raw=raw,
            )

    def delete_card(self, card: SavedCardRef) -> None:
        """DELETE /v1/customers/{customer_id}/cards/{card_id}. Already gone (404) is done."""
        path = f"/v1/customers/{quote(card.gateway_customer_id, safe='')}/cards/{quote(card.gateway_card_id, safe='')}"
        try:
            # Deleting twice is harmless (the second is a 404, done): a lost answer is "try again".
            self._call("DELETE", path, side_effect=False, parse=False)
        except GatewayNotFound:
            return

    # --- Checkout Pro ----------------------------------------------------------------------------

    def create_checkout(self, request: CheckoutRequest) -> CheckoutSession:
        """POST /checkout/preferences: one item for the whole amount; the payer returns to return_url."""
        self._check_currency(request.currency)
        body: dict[str, Any] = {
            "items": [
                {
                    "id": request.reference,
                    "title": request.description,
                    "quantity": 1,
                    "currency_id": request.currency,
                    "unit_price": to_decimal_amount(request.amount),
                }
            ],
            "payer": {"email": request.email},
            "back_urls": {"success": request.return_url, "failure": request.return_url, "pending": request.return_url},
            "auto_return": "approved",
            "external_reference": request.reference,
            "metadata": {"smartpay_payment_id": request.reference},
        }
        if request.notification_url:
            body["notification_url"] = request.notification_url
        if request.expires_at is not None:
            body["expires"] = True
            body["expiration_date_to"] = _mp_datetime(request.expires_at)
        # Sent as not side-effecting: a preference takes no money, and the payer can only pay one whose
        # URL we received. So a preference whose answer was lost (5xx, reset, read timeout) is harmless and
        # `GatewayUnavailable`: the caller may retry or fail over to another gateway (base.py, rule 4).
        preference, raw = self._call(
            "POST", "/checkout/preferences", body=body, idempotency_key=request.idempotency_key, side_effect=False
        )
        with self._reading(side_effect=False):
            redirect_url = preference.get("init_point")
            if not isinstance(redirect_url, str) or not redirect_url:
                raise _MalformedResponse("preference without init_point")
            return CheckoutSession(
                gateway_checkout_id=_id_text(preference.get("id")), redirect_url=redirect_url, raw=raw
            )

    def expire_checkout(self, gateway_checkout_id: str) -> None:
        """Expire the preference now, then make sure nobody paid on it first.

        `PUT /checkout/preferences/{id}` with `expires: true` and `expiration_date_to` = now (§12): from
        then on Checkout Pro refuses to pay it. A preference has no paid state (it can be paid more than
        once), so the payments carrying its `external_reference` are then searched: one that is approved,
        authorized, pending or in process (or refunded since: it was paid) raises `CheckoutAlreadyPaid`
        with that payment as `charge`; rejected and cancelled payments were only tries. A preference
        Mercado Pago does not know (404) is closed already. Each call sends a new `X-Idempotency-Key`:
        the body carries the time, and a reused key with another body is a 409.
        """
        body = {"expires": True, "expiration_date_to": _mp_datetime(datetime.now(UTC))}
        try:
            preference, _ = self._call(
                "PUT",
                f"/checkout/preferences/{quote(str(gateway_checkout_id), safe='')}",
                body=body,
                idempotency_key=f"{gateway_checkout_id}:expire:{uuid.uuid4().hex}",
                side_effect=True,
            )
        except GatewayNotFound:
            return
        with self._reading(side_effect=True):
            reference = preference.get("external_reference")
            if not isinstance(reference, str) or not reference:
                raise _MalformedResponse("preference without external_reference: its payments cannot be found")
            created = _aware(_parse_datetime(preference.get("date_created")))
        paid = self._payment_on_checkout(reference, created)
        if paid is not None:
            raise CheckoutAlreadyPaid(
                f"mercadopago: preference {gateway_checkout_id} was paid (payment {paid.gateway_payment_id}, "
                f"{paid.gateway_status}); record the payment instead",
                charge=paid,
                gateway=self.name,
                gateway_code=paid.gateway_status,
                raw=paid.raw,
            )

    def _payment_on_checkout(self, reference: str, created: datetime | None) -> ChargeResult | None:
        """The payment that took (or may take) money for `reference`, or None when every one was a failed try."""
        now = datetime.now(UTC)
        begin = max((created or now) - SEARCH_CLOCK_SKEW, now - SEARCH_MAX_RANGE)
        params = {**_search_by_reference(reference, begin), "limit": SEARCH_PAGE_SIZE}
        found, raw = self._call("GET", "/v1/payments/search", params=params)
        with self._reading(side_effect=False):
            results = _results(found)
            paging = found.get("paging")
            total = _opt_int(paging.get("total")) if isinstance(paging, Mapping) else None
            raw_results = raw["results"]
        best: ChargeResult | None = None
        for index, payment in enumerate(results):
            if payment.get("external_reference") != reference:
                continue
            result = self._charge_result(payment, raw_results[index], side_effect=False)
            if result.status in (ChargeStatus.FAILED, ChargeStatus.CANCELED):
                continue
            if best is None or _PAID_RANK[result.status] < _PAID_RANK[best.status]:
                best = result
        if best is None and total is not None and total > len(results):
            raise GatewayUnavailable(
                f"mercadopago: {total} payments for {reference}, more than one page; cannot prove none was paid",
                gateway=self.name,
            )
        return best

    # --- Steps ------------------------------------------------------------------------------------

    def _token_from_saved_card(self, card: SavedCardRef, idempotency_key: str) -> tuple[str, str | None]:
        """POST /v1/card_tokens {card_id, customer_id} -> (single-use token, first six digits if given)."""
        token, _ = self._call(
            "POST",
            "/v1/card_tokens",
            body={"card_id": card.gateway_card_id, "customer_id": card.gateway_customer_id},
            idempotency_key=f"{idempotency_key}:card_token",
            side_effect=False,  # a token moves no money: failing here means nothing was charged
        )
        with self._reading(side_effect=False):
            first_six = token.get("first_six_digits")
            return _id_text(token.get("id")), first_six if isinstance(first_six, str) and first_six else None

    def _payment_method_from_token(self, token: str, first_six: str | None) -> tuple[str, str | None]:
        """The SDK way: the token's BIN, then the active payment method for that BIN (and its issuer)."""
        if first_six is None:
            card_token, _ = self._call("GET", f"/v1/card_tokens/{quote(token, safe='')}")
            with self._reading(side_effect=False):
                first_six = card_token.get("first_six_digits")
                if isinstance(first_six, int) and not isinstance(first_six, bool):
                    first_six = str(first_six)
        if not isinstance(first_six, str) or not re.fullmatch(r"\d{6}", first_six):
            raise GatewayInvalidRequest(
                "mercadopago: the card token has no usable first_six_digits", param="token", gateway=self.name
            )
        params = {"bins": first_six, "status": "active"}
        if self.config.public_key:
            params["public_key"] = self.config.public_key
        found, _ = self._call("GET", "/v1/payment_methods/search", params=params)
        with self._reading(side_effect=False):
            results = _results(found)
            if not results:
                raise GatewayInvalidRequest(
                    "mercadopago: no active payment method for this card", param="payment_method_id", gateway=self.name
                )
            method = results[0]
            issuer = method.get("issuer")
            issuer_id = issuer.get("id") if isinstance(issuer, Mapping) else None
            return _id_text(method.get("id")), (None if issuer_id in (None, "") else _id_text(issuer_id))

    def _find_or_create_customer(self, request: SaveCardRequest) -> str:
        """GET /v1/customers/search?email=, else POST /v1/customers (MP keeps one customer per email)."""
        existing = self._search_customer(request.email)
        if existing is not None:
            return existing
        first_name, _, last_name = request.name.strip().partition(" ")
        body: dict[str, Any] = {"email": request.email}
        if first_name:
            body["first_name"] = first_name
        if last_name.strip():
            body["last_name"] = last_name.strip()
        body["description"] = request.reference
        try:
            customer, _ = self._call(
                "POST",
                "/v1/customers",
                body=body,
                idempotency_key=f"{request.reference}:customer",
                side_effect=True,
            )
        except GatewayInvalidRequest as exc:
            # 101 "customer already exists": someone created it since our search. Use theirs.
            if exc.gateway_code == CUSTOMER_ALREADY_EXISTS and (found := self._search_customer(request.email)):
                return found
            raise
        with self._reading(side_effect=True):
            return _id_text(customer.get("id"))

    def _search_customer(self, email: str) -> str | None:
        found, _ = self._call("GET", "/v1/customers/search", params={"email": email})
        with self._reading(side_effect=False):
            results = _results(found)
            return _id_text(results[0].get("id")) if results else None

    # --- Reading payments -------------------------------------------------------------------------

    def _charge_result(self, payment: Mapping[str, Any], raw: Any, *, side_effect: bool) -> ChargeResult:
        with self._reading(side_effect=side_effect):
            status_word = payment.get("status")
            if not isinstance(status_word, str) or not status_word:
                raise _MalformedResponse("payment without status")
            detail = payment.get("status_detail")
            detail = detail if isinstance(detail, str) and detail else None
            amount = to_minor_units(payment.get("transaction_amount"))
            refunded_value = payment.get("transaction_amount_refunded")
            refunded = 0 if refunded_value is None else to_minor_units(refunded_value)
            status, decline_code = self._map_status(status_word, detail, refunded)
            next_action = self._three_ds_action(payment) if status is ChargeStatus.REQUIRES_ACTION else None
            payment_method_id = payment.get("payment_method_id")
            card = payment.get("card")
            card_info = None
            if isinstance(card, Mapping) and card:
                card_info = CardInfo(
                    brand=str(payment_method_id or ""),
                    last4=str(card.get("last_four_digits") or ""),
                    exp_month=_opt_int(card.get("expiration_month")),
                    exp_year=_opt_int(card.get("expiration_year")),
                )
            reference = payment.get("external_reference")
            currency = payment.get("currency_id")
            return ChargeResult(
                status=status,
                gateway_payment_id=_id_text(payment.get("id")),
                amount=amount,
                currency=currency if isinstance(currency, str) and currency else "PEN",
                amount_refunded=refunded,
                decline_code=decline_code,
                gateway_code=detail,
                gateway_status=status_word,
                next_action=next_action,
                card=card_info,
                reference=reference if isinstance(reference, str) and reference else None,
                created_at=_parse_datetime(payment.get("date_created")),
                refunds=_refunds_seen(payment.get("refunds")),
                raw=raw if isinstance(raw, Mapping) else {},
            )

    def _map_status(self, status: str, detail: str | None, refunded: int) -> tuple[ChargeStatus, str | None]:
        """Mercado Pago's status (+ status_detail) -> (ChargeStatus, decline code when FAILED).

        `cancelled` is always CANCELED, whatever came before (pending, in_process, authorized) and
        whatever the detail (by_collector, expired, ...): no money was ever captured, which is
        what SmartPay's CANCELED means, and `gateway_code` keeps the detail for anyone who cares.
        """
        if status == "approved":
            if refunded > 0 or detail == "partially_refunded":
                return ChargeStatus.PARTIALLY_REFUNDED, None
            return ChargeStatus.SUCCEEDED, None
        if status == "authorized":
            return ChargeStatus.AUTHORIZED, None
        if status in PENDING_STATUSES:
            if detail == "pending_challenge":
                return ChargeStatus.REQUIRES_ACTION, None
            return ChargeStatus.PENDING, None
        if status == "rejected":
            return ChargeStatus.FAILED, DECLINE_CODES.get(detail or "", DeclineCode.CARD_DECLINED).value
        if status == "cancelled":
            return ChargeStatus.CANCELED, None
        if status == "refunded":
            return ChargeStatus.REFUNDED, None
        if status in CAPTURED_DISPUTE_STATUSES:
            return ChargeStatus.SUCCEEDED, None
        # An unknown word is not a final word: PENDING lets a later retrieve or webhook settle it.
        logger.warning("mercadopago: unknown payment status", extra={"gateway": self.name, "gateway_status": status})
        return ChargeStatus.PENDING, None

    @staticmethod
    def _three_ds_action(payment: Mapping[str, Any]) -> dict[str, Any]:
        action: dict[str, Any] = {"type": "three_d_secure"}
        info = payment.get("three_ds_info")
        if isinstance(info, Mapping):
            if isinstance(info.get("external_resource_url"), str):
                action["url"] = info["external_resource_url"]
            if isinstance(info.get("creq"), str):
                action["creq"] = info["creq"]
        return action

    # --- HTTP -------------------------------------------------------------------------------------

    def _call(
        self,
        method: str,
        path: str,
        *,
        body: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
        side_effect: bool = False,
        parse: bool = True,
    ) -> tuple[Mapping[str, Any], Any]:
        """One call -> (body with Decimal amounts, body as plain JSON for `raw`), or a gateway error.

        `side_effect` decides how an unreadable or 5xx answer is reported: OutcomeUnknown when the
        call may have done something, Unavailable when it surely did not.
        """
        if not self.config.secret_key:
            raise GatewayConfigurationError("mercadopago: no access token configured", gateway=self.name)
        if method in ("POST", "PUT") and not idempotency_key:
            raise ValueError("every Mercado Pago POST/PUT needs an X-Idempotency-Key")
        headers = {"Authorization": f"Bearer {self.config.secret_key}", "Accept": "application/json"}
        data = None
        if body is not None:
            headers["Content-Type"] = "application/json"
            data = _encode_json(body).encode()
        if idempotency_key:
            headers["X-Idempotency-Key"] = idempotency_key
        response = self._send(
            method, f"{self.config.api_base}{path}", side_effect=side_effect, headers=headers, params=params, data=data
        )
        if not 200 <= response.status_code < 300:
            raise self._error_for(response, side_effect=side_effect)
        if not parse:
            return {}, None
        with self._reading(side_effect=side_effect):
            parsed = _mapping(_parse_json(response.content))
            return parsed, json.loads(response.content)

    @contextmanager
    def _reading(self, *, side_effect: bool) -> Iterator[None]:
        """Turn any surprise in a 2xx body into the error its request kind calls for."""
        try:
            yield
        except (_MalformedResponse, ValueError, TypeError, KeyError, AttributeError, InvalidOperation) as exc:
            logger.warning(
                "mercadopago: unreadable response", extra={"gateway": self.name, "problem": type(exc).__name__}
            )
            raise self._unclear(side_effect, "unreadable response") from exc

    def _unclear(self, side_effect: bool, what: str, **kwargs: Any) -> GatewayError:
        if side_effect:
            return GatewayOutcomeUnknown(f"{self.name}: {what}; the request may have been processed", **kwargs)
        return GatewayUnavailable(f"{self.name}: {what}", **kwargs)

    def _error_for(self, response: requests.Response, *, side_effect: bool) -> GatewayError:
        """Mercado Pago's error body (when there is one) and HTTP status -> the base error hierarchy."""
        status = response.status_code
        body = _error_body(response)
        message = body.get("message") if isinstance(body.get("message"), str) else ""
        causes = _causes(body)
        code = next((c for c, _ in causes if c), None) or (
            body.get("error") if isinstance(body.get("error"), str) else None
        )
        cause_codes = {c for c, _ in causes if c}
        detail = "; ".join(d for _, d in causes if d)
        text = f"{self.name}: HTTP {status}" + (f": {message}" if message else "") + (f" ({detail})" if detail else "")
        common = {"gateway": self.name, "http_status": status, "gateway_code": code, "raw": body or None}

        if status in (401, 403):
            if cause_codes & REFUND_AMOUNT_CAUSES:
                return GatewayInvalidRequest(text, param="amount", **common)
            return GatewayConfigurationError(text, **common)
        if status == 404:
            if cause_codes & NOT_REALLY_NOT_FOUND_CAUSES:
                return GatewayInvalidRequest(text, param=None, **common)
            return GatewayNotFound(text, param=None, **common)
        if status == 429:
            return GatewayUnavailable(text, retry_after=self.retry_after_seconds(response), **common)
        if status in (409, 423):
            # The same idempotency key is in flight or was used: the first request's fate is unknown.
            return self._unclear(side_effect, f"HTTP {status} (idempotency conflict)", **common)
        if 400 <= status < 500 and status != 424:
            return GatewayInvalidRequest(text, param=_param_from(causes, message), **common)
        # 424 (failed dependency), 500, 502, 503, 504, anything else: "retryable" in the SDKs (with the same
        # key), but Mercado Pago documents none of them as "not processed". After a side-effecting call it
        # may have been acted on: unknown (the caller resends it with the same key, never elsewhere).
        return self._unclear(
            side_effect, text.removeprefix(f"{self.name}: "), retry_after=self.retry_after_seconds(response), **common
        )

    # --- Small things -----------------------------------------------------------------------------

    def _check_currency(self, currency: str) -> None:
        if currency not in self.currencies:
            raise GatewayInvalidRequest(
                f"mercadopago charges only in {', '.join(sorted(self.currencies))}, not {currency}",
                param="currency",
                gateway=self.name,
            )

    @staticmethod
    def _payment_path(gateway_payment_id: str) -> str:
        return f"/v1/payments/{quote(str(gateway_payment_id), safe='')}"

    def _path_for_log(self, url: str) -> str:
        # GET /v1/card_tokens/{token} carries a card token in its path: never log it.
        return re.sub(r"^/v1/card_tokens/[^/]+", "/v1/card_tokens/{token}", super()._path_for_log(url))


def _aware(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def _error_body(response: requests.Response) -> Mapping[str, Any]:
    """The JSON error object, or {} for HTML pages, empty bodies and other non-gateway shapes."""
    try:
        body = json.loads(response.content)
    except ValueError:
        return {}
    return body if isinstance(body, Mapping) else {}


def _causes(body: Mapping[str, Any]) -> list[tuple[str | None, str]]:
    """`cause` as [(code as text, description)]: a list, a single object (old APIs) or null."""
    cause = body.get("cause")
    items = cause if isinstance(cause, list) else [cause] if isinstance(cause, Mapping) else []
    out = []
    for item in items:
        if not isinstance(item, Mapping):
            continue
        code = item.get("code")
        description = item.get("description")
        out.append(
            (
                None if code is None or isinstance(code, bool) else str(code),
                description if isinstance(description, str) else "",
            )
        )
    return out


def _param_from(causes: list[tuple[str | None, str]], message: str) -> str | None:
    for code, _ in causes:
        if code in CAUSE_PARAMS:
            return CAUSE_PARAMS[code]
    for text in [description for _, description in causes] + [message]:
        match = _PARAM_IN_TEXT.search(text)
        if match:
            return "token" if match.group(1) == "card_token_id" else match.group(1)
    return None


def _refunds_seen(refunds: Any) -> tuple[RefundSeen, ...] | None:
    """`refunds[]` of a payment object (present on GET); None when the answer has no list."""
    if not isinstance(refunds, list):
        return None
    seen = []
    for refund in refunds:
        if not isinstance(refund, Mapping) or refund.get("id") is None or refund.get("amount") is None:
            continue
        status_word = refund.get("status")
        metadata = refund.get("metadata") if isinstance(refund.get("metadata"), Mapping) else {}
        reference = metadata.get("smartpay_refund_id")
        seen.append(
            RefundSeen(
                gateway_refund_id=_id_text(refund.get("id")),
                amount=to_minor_units(refund.get("amount")),
                status=REFUND_STATUSES.get(status_word, "pending") if isinstance(status_word, str) else "succeeded",
                reference=reference if isinstance(reference, str) and reference else None,
            )
        )
    return tuple(seen)


def _search_by_reference(reference: str, begin: datetime) -> dict[str, str]:
    """`/v1/payments/search` params: payments carrying our `external_reference`, newest first."""
    return {
        "external_reference": reference,
        "sort": "date_created",
        "criteria": "desc",
        "range": "date_created",
        "begin_date": _mp_datetime(begin),
        "end_date": "NOW",
    }
