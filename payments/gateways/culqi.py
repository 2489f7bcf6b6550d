"""Culqi (Peru) adapter: API v2, JSON, `Authorization: Bearer <secret key>`.

Section numbers (§) refer to docs/reference/culqi.md. The Culqi quirks absorbed here:

* charges carry no status word: success is HTTP 201 + `object == "charge"` + `outcome.type == "venta_exitosa"`,
  captured or not is `capture`, refunds show in `amount_refunded` (§5.2);
* 3-D Secure is asked for with HTTP 200 + `action_code == "REVIEW"`, and then no charge exists (§5.1, §7);
* a decline is an error object (HTTP 402 on charges, 400 on card creation) whose `charge_id` names a charge
  Culqi keeps (§5.1, §9, §11); sometimes its `type` is outcome-like (`contactar_emisor`) instead of `card_error`;
* there is no idempotency header (§13): our payment id rides in `metadata.smartpay_payment_id`, and a
  timeout is settled by `find_by_reference`, which pages through `GET /v2/charges`;
* there is no void: a full refund of an uncaptured charge releases the hold (§6);
* timestamps are epoch milliseconds on charges, epoch seconds on orders and on list filters (§3);
* infrastructure errors are not Culqi-shaped (HTML, Spring Boot or API Gateway bodies, §11), so any body
  we cannot read, and any 5xx (503 included: Culqi documents no "not processed" answer), is "outcome
  unknown" after a side-effecting POST and "unavailable" after a GET; only a 429 is a refusal. Creating an
  order (hosted checkout) takes no money, so its failures are "unavailable" (see base.py).
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterator, Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar
from urllib.parse import quote, urlencode

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

REFERENCE_KEY = "smartpay_payment_id"
CUSTOMER_REFERENCE_KEY = "smartpay_customer_id"
SUCCESS_OUTCOME = "venta_exitosa"
REVIEW = "REVIEW"

# Field limits (§3, §5.1, §8).
METADATA_MAX_KEYS = 20
METADATA_KEY_MAX = 30
METADATA_VALUE_MAX = 200
DESCRIPTION_MIN = 5
DESCRIPTION_MAX = 80
ORDER_NUMBER_MAX = 36
NAME_MAX = 50

# Placeholders for the customer fields Culqi requires but SmartPay does not collect (§9).
DEFAULT_FIRST_NAME = "Cliente"
DEFAULT_LAST_NAME = "SmartPay"
DEFAULT_ADDRESS = "Sin dirección"
DEFAULT_CITY = "Lima"
DEFAULT_COUNTRY = "PE"
DEFAULT_PHONE = "999999999"

LIST_PAGE_SIZE = 100  # the maximum `limit` (§3)
LIST_MAX_PAGES = 50  # 5,000 charges for one email and amount: past that, refuse to conclude "absent"
# A day's listing is hundreds of pages: one 429 or 503 must not end it. Each page is asked again from the
# same cursor, honouring Retry-After, at most this many times in all.
LIST_PAGE_TRIES = 3
LIST_RETRY_MAX_SECONDS = 30.0
LOOKUP_CLOCK_SKEW = timedelta(minutes=15)  # widens `creation_date_from`; a wider window only costs a page
CHECKOUT_TTL = timedelta(hours=24)

# The `type`s of Culqi's API errors (§11). Any other `type` on a 400/402 is an outcome-like decline
# such as {"type": "contactar_emisor", "code": "DNGE0001"} (observed, §11).
API_ERROR_TYPES = frozenset(
    {
        "invalid_request_error",
        "authentication_error",
        "card_error",
        "parameter_error",
        "resource_error",
        "limit_api_error",
        "api_error",
    }
)

# Culqi decline codes, outcome types and outcome codes (§5.2, §11, §14), lower-cased, to SmartPay's words.
# Anything not listed is a plain `card_declined` (issuer_decline_operation, soft_block, card_declined, …).
DECLINE_CODES: dict[str, DeclineCode] = {
    "insufficient_funds": DeclineCode.INSUFFICIENT_FUNDS,
    "stolen_card": DeclineCode.LOST_OR_STOLEN_CARD,
    "lost_card": DeclineCode.LOST_OR_STOLEN_CARD,
    "expired_card": DeclineCode.EXPIRED_CARD,
    "invalid_cvv": DeclineCode.INCORRECT_CVC,
    "incorrect_cvv": DeclineCode.INCORRECT_CVC,
    "too_many_attempts_cvv": DeclineCode.INCORRECT_CVC,
    "fraudulent": DeclineCode.FRAUD_SUSPECTED,
    "suspected_fraud": DeclineCode.FRAUD_SUSPECTED,
    "fraud_suspected": DeclineCode.FRAUD_SUSPECTED,
    "operacion_denegada": DeclineCode.FRAUD_SUSPECTED,  # antifraud rejection (third-party report, §5.2)
    "contact_issuer": DeclineCode.CALL_ISSUER,
    "call_issuer": DeclineCode.CALL_ISSUER,
    "contactar_emisor": DeclineCode.CALL_ISSUER,
    "dnge0001": DeclineCode.CALL_ISSUER,
    "invalid_card": DeclineCode.INVALID_CARD_DATA,
    "invalid_number": DeclineCode.INVALID_CARD_DATA,
    "invalid_card_number": DeclineCode.INVALID_CARD_DATA,
    "incorrect_number": DeclineCode.INVALID_CARD_DATA,
    "culqi_card": DeclineCode.INVALID_CARD_DATA,  # a Culqi test card used in production
    "expiracion_invalida": DeclineCode.INVALID_CARD_DATA,  # the expiry typed is wrong, not a lapsed card
    "dnga0054": DeclineCode.INVALID_CARD_DATA,
    "amount_limit_exceeded": DeclineCode.AMOUNT_LIMIT_EXCEEDED,
    "limit_exceeded": DeclineCode.AMOUNT_LIMIT_EXCEEDED,
    "exceeds_limit": DeclineCode.AMOUNT_LIMIT_EXCEEDED,
    "amount_exceeded": DeclineCode.AMOUNT_LIMIT_EXCEEDED,
    "exceeded_limit": DeclineCode.AMOUNT_LIMIT_EXCEEDED,
    "issuer_not_available": DeclineCode.PROCESSING_ERROR,
    "issuer_unavailable": DeclineCode.PROCESSING_ERROR,
    "processing_error": DeclineCode.PROCESSING_ERROR,
}

# Culqi's refund reasons (§6) are an enum; ours are free text.
REFUND_REASONS = ("duplicado", "fraudulento", "solicitud_comprador")

BRANDS = {"visa": "visa", "mastercard": "mastercard", "amex": "amex", "americanexpress": "amex", "diners": "diners"}


def _now() -> datetime:
    return datetime.now(UTC)


class CulqiAdapter(GatewayAdapter):
    name: ClassVar[str] = "culqi"
    display_name: ClassVar[str] = "Culqi"
    currencies: ClassVar[frozenset[str]] = frozenset({"PEN", "USD"})
    # No idempotency header (§13): a charge whose answer was lost is settled by asking, never resent.
    honours_idempotency_keys: ClassVar[bool] = False

    # --- Charges ----------------------------------------------------------------------------------

    def charge(self, request: ChargeRequest) -> ChargeResult:
        currency = self._currency(request.currency)
        body: dict[str, Any] = {
            "amount": int(request.amount),
            "currency_code": currency,
            "email": request.email,
            "source_id": request.saved_card.gateway_card_id if request.saved_card else request.token,
            "capture": bool(request.capture),  # always explicit: the default is ambiguous (§5.3)
            "description": _description(request.description, request.reference),
            "metadata": _metadata(request.reference, request.metadata),
        }
        if request.installments > 1:
            body["installments"] = int(request.installments)
        if request.authentication_3ds:
            # The retry after Culqi3DS: the same request (same token) plus the payer's result (§5.1, §7).
            body["authentication_3DS"] = dict(request.authentication_3ds)
        # A saved card is charged by the merchant, not in front of the payer (§1, §9).
        headers = {"X-Charge-Channel": "recurrent"} if request.saved_card else None
        response, data = self._request("POST", "/charges", side_effect=True, json=body, headers=headers)

        if 200 <= response.status_code < 300:
            result = _charge_result(data)
            if result is not None:
                return result
            if response.status_code == 200 and isinstance(data, dict) and data.get("action_code") == REVIEW:
                return self._review_result(request, currency, data)
            raise self._unreadable(response, side_effect=True)
        declined = _decline(response.status_code, data)
        if declined is not None:
            return _declined_result(declined, request, currency)
        raise self._error(response, data, side_effect=True)

    def capture(self, gateway_payment_id: str, *, amount: int | None, idempotency_key: str) -> ChargeResult:
        """Capture an authorized charge. Culqi captures the whole authorized amount, nothing less (§5.3)."""
        if amount is not None:
            current = self.retrieve(gateway_payment_id)
            if amount != current.amount:
                raise GatewayInvalidRequest(
                    f"culqi: partial capture is not supported by Culqi; capture the full {current.amount} "
                    f"(asked for {amount}), or capture and then refund the difference",
                    param="amount",
                    gateway=self.name,
                )
        response, data = self._request("POST", f"/charges/{_segment(gateway_payment_id)}/capture", side_effect=True)
        return self._charge_or_raise(response, data, side_effect=True)

    def cancel(self, gateway_payment_id: str, *, idempotency_key: str) -> ChargeResult:
        """Release an uncaptured charge.

        Culqi has no void endpoint. A refund of a charge created with `capture: false` is accepted (§6:
        observed 201 on an uncaptured charge), so canceling is a full refund of what is still authorized,
        with reason `solicitud_comprador`. Canceling an already released charge returns it unchanged.
        """
        charge = self.retrieve(gateway_payment_id)
        if charge.status == ChargeStatus.CANCELED:
            return charge
        if charge.status != ChargeStatus.AUTHORIZED:
            raise GatewayInvalidRequest(
                f"culqi: only an uncaptured charge can be canceled; this one is {charge.status}",
                param="charge_id",
                gateway=self.name,
            )
        self._create_refund(gateway_payment_id, charge.amount - charge.amount_refunded, "solicitud_comprador")
        try:
            after = self.retrieve(gateway_payment_id)
        except GatewayError:
            # The release is done; a failed re-read must not make the caller think it was not.
            after = replace(charge, amount_refunded=charge.amount)
        return replace(after, status=ChargeStatus.CANCELED)

    def refund(self, request: RefundRequest) -> RefundResult:
        data = self._create_refund(
            request.gateway_payment_id, request.amount, _refund_reason(request.reason), request.reference
        )
        amount = _as_int(data.get("amount"))
        return RefundResult(
            gateway_refund_id=data["id"],  # checked by _expect
            status="succeeded",  # a 201 refund is final at Culqi (§6); the money reaches the card later
            amount=request.amount if amount is None else amount,
            raw=data,
        )

    def retrieve(self, gateway_payment_id: str) -> ChargeResult:
        response, data = self._request("GET", f"/charges/{_segment(gateway_payment_id)}", side_effect=False)
        return self._charge_or_raise(response, data, side_effect=False)

    def find_by_reference(
        self, reference: str, *, amount: int, currency: str, email: str, created_after: datetime
    ) -> ChargeResult | None:
        """The charge whose `metadata.smartpay_payment_id` is `reference`, or None after every page was read.

        Culqi's metadata filter has no documented syntax (§13), so we filter on email, amount, currency and
        creation date and match the metadata ourselves. `creation_date_from` is sent in epoch seconds (§3:
        list date filters are "unix"); were Culqi to read it as milliseconds the window would only widen,
        whereas milliseconds read as seconds would hide every charge and wrongly prove absence.
        When several attempts of one payment left charges, a successful one wins over declines.
        """
        params: dict[str, Any] = {
            "email": email,
            "amount": int(amount),
            "currency_code": currency.upper(),
            "creation_date_from": int((created_after - LOOKUP_CLOCK_SKEW).timestamp()),
            "limit": LIST_PAGE_SIZE,
        }
        declined: ChargeResult | None = None
        cursor: str | None = None
        for _ in range(LIST_MAX_PAGES):
            page_params = {**params, "after": cursor} if cursor else params
            response, data = self._request("GET", "/charges", side_effect=False, params=page_params)
            if not 200 <= response.status_code < 300:
                raise self._error(response, data, side_effect=False)
            items = data.get("data") if isinstance(data, dict) else None
            paging = data.get("paging") if isinstance(data, dict) else None
            if not isinstance(items, list) or not isinstance(paging, dict | None):
                raise self._unreadable(response, side_effect=False)
            for item in items:
                metadata = item.get("metadata") if isinstance(item, dict) else None
                if not isinstance(metadata, dict) or metadata.get(REFERENCE_KEY) != reference:
                    continue
                result = _charge_result(item)
                if result is None:
                    raise self._unreadable(response, side_effect=False)
                if result.status != ChargeStatus.FAILED:
                    return result
                declined = declined or result
            next_cursor = _next_cursor(paging, items)
            if next_cursor is False:
                return declined
            if next_cursor is None or next_cursor == cursor:
                raise GatewayUnavailable(
                    "culqi: the charge list says more pages exist but gives no usable `after` cursor",
                    gateway=self.name,
                    http_status=response.status_code,
                    raw=paging,
                )
            cursor = next_cursor
        raise GatewayUnavailable(
            f"culqi: more than {LIST_MAX_PAGES} pages of charges to search; cannot prove the charge is absent",
            gateway=self.name,
        )

    def list_charges(self, *, day_start: datetime, day_end: datetime) -> Iterator[ChargeResult]:
        """Every charge created in `[day_start, day_end)`: `GET /v2/charges`, 100 a page, `after` cursors (§3, §5.4).

        The date filters go in epoch seconds, as in `find_by_reference` (§3: list filters are "unix"), widened
        to whole seconds; the window is then cut exactly on each charge's `creation_date` (milliseconds), so a
        charge in a boundary second is listed on one day only. Declined charges are listed too (Culqi keeps
        them, §5.1). One page is held at a time. A page that cannot be read now is asked again (see
        `_list_page`); a listing that claims more pages without a usable cursor is an error, not an end.
        """
        params: dict[str, Any] = {
            "creation_date_from": math.floor(day_start.timestamp()),
            "creation_date_to": math.ceil(day_end.timestamp()),
            "limit": LIST_PAGE_SIZE,
        }
        cursor: str | None = None
        while True:
            response, items, paging = self._list_page({**params, "after": cursor} if cursor else params)
            for item in items:
                result = _charge_result(item)
                if result is None:
                    raise self._unreadable(response, side_effect=False)
                if result.created_at is None or day_start <= result.created_at < day_end:
                    yield result
            next_cursor = _next_cursor(paging, items)
            if next_cursor is False:
                return
            if next_cursor is None or next_cursor == cursor:
                raise GatewayUnavailable(
                    "culqi: the charge list says more pages exist but gives no usable `after` cursor",
                    gateway=self.name,
                    http_status=response.status_code,
                    raw=paging,
                )
            cursor = next_cursor

    def _list_page(self, params: Mapping[str, Any]) -> tuple[requests.Response, list[Any], dict[str, Any] | None]:
        """One page of `GET /v2/charges` as (response, data, paging), retried while Culqi is unavailable."""
        for attempt in range(LIST_PAGE_TRIES):
            try:
                response, data = self._request("GET", "/charges", side_effect=False, params=params)
                if not 200 <= response.status_code < 300:
                    raise self._error(response, data, side_effect=False)
                items = data.get("data") if isinstance(data, dict) else None
                paging = data.get("paging") if isinstance(data, dict) else None
                if not isinstance(items, list) or not isinstance(paging, dict | None):
                    raise self._unreadable(response, side_effect=False)
                return response, items, paging
            except GatewayUnavailable as error:
                if attempt + 1 >= LIST_PAGE_TRIES:
                    raise
                time.sleep(min(LIST_RETRY_MAX_SECONDS, error.retry_after or 2.0**attempt))
        raise AssertionError("unreachable")  # pragma: no cover

    # --- Saved cards ------------------------------------------------------------------------------

    def save_card(self, request: SaveCardRequest) -> SavedCard:
        """Create the Culqi customer when needed, then the card (Culqi validates it with a small charge, §9).

        If the card fails after a customer was created here, the raised error carries that customer's id
        in `gateway_customer_id`, so the caller can keep it and not create a second customer next time.
        """
        customer_id = request.gateway_customer_id
        created_customer = customer_id is None
        if customer_id is None:
            customer_id = self._create_customer(request)
        try:
            return self._create_card(customer_id, request.token)
        except GatewayError as exc:
            if created_customer:
                exc.gateway_customer_id = customer_id
            raise

    def delete_card(self, card: SavedCardRef) -> None:
        # Not side-effecting for our purposes: deleting twice is harmless (the second finds it gone, below),
        # so a lost answer is "unavailable, try again", not an unknown outcome to settle.
        response, data = self._request("DELETE", f"/cards/{_segment(card.gateway_card_id)}", side_effect=False)
        if 200 <= response.status_code < 300:
            if response.status_code == 204 or (isinstance(data, dict) and data.get("deleted") is True):
                return
            raise self._unreadable(response, side_effect=False)
        error = self._error(response, data, side_effect=False)
        if isinstance(error, GatewayNotFound):
            return  # already gone
        raise error

    # --- Hosted checkout (orders) -----------------------------------------------------------------

    def create_checkout(self, request: CheckoutRequest) -> CheckoutSession:
        expires_at = request.expires_at or (_now() + CHECKOUT_TTL)
        body = {
            "amount": int(request.amount),
            "currency_code": self._currency(request.currency),
            "description": _description(request.description, request.reference),
            "order_number": request.reference[:ORDER_NUMBER_MAX],
            "expiration_date": int(expires_at.timestamp()),  # orders use epoch seconds (§3, §8)
            "client_details": {
                "first_name": DEFAULT_FIRST_NAME,
                "last_name": DEFAULT_LAST_NAME,
                "email": request.email,
                "phone_number": DEFAULT_PHONE,
            },
            "confirm": False,
            "metadata": {REFERENCE_KEY: request.reference},
        }
        # Sent as not side-effecting: an order takes no money, and the payer can only pay an order whose
        # URL we received. So an order whose answer was lost (5xx, reset, read timeout) is harmless and
        # `GatewayUnavailable`: the caller may retry or fail over to another gateway (base.py, rule 4).
        response, data = self._request("POST", "/orders", side_effect=False, json=body)
        order = self._expect(response, data, "order", side_effect=False)
        # Culqi has no hosted payment page URL of its own (orders are paid through Culqi Checkout in the
        # merchant's page, §8). We point at `<secure_base>/checkout/<order id>`: in sandbox that is the
        # simulator's page, in production it must be served by a page embedding Culqi Checkout.
        redirect_url = f"{self.tokenization_base}/checkout/{_segment(order['id'])}"
        if request.return_url:
            redirect_url += "?" + urlencode({"return_url": request.return_url})
        return CheckoutSession(gateway_checkout_id=order["id"], redirect_url=redirect_url, raw=order)

    def expire_checkout(self, gateway_checkout_id: str) -> None:
        """Delete the order so that it can no longer be paid: `DELETE /v2/orders/{id}` (§8, observed 204).

        Culqi deletes only `created` and `pending` orders, so Culqi itself settles a race with the payer.
        When it refuses, the order is read (`GET /v2/orders/{id}`) to learn why: `paid` raises
        `CheckoutAlreadyPaid` (the order does not name its charge: find it with `find_by_reference`);
        `expired`, `deleted`, past its `expiration_date`, or unknown to Culqi is closed already, so
        success. Any other refusal is raised as it came.
        """
        path = f"/orders/{_segment(gateway_checkout_id)}"
        response, data = self._request("DELETE", path, side_effect=True)
        if 200 <= response.status_code < 300:
            return
        refusal = self._error(response, data, side_effect=True)
        if not isinstance(refusal, GatewayInvalidRequest):
            raise refusal
        try:
            read, order_data = self._request("GET", path, side_effect=False)
            order = self._expect(read, order_data, "order", side_effect=False)
        except GatewayNotFound:
            return  # Culqi does not know the order (any more): nothing can be paid there
        state = _str(order.get("state"))
        if state == "paid":
            raise CheckoutAlreadyPaid(
                f"culqi: order {gateway_checkout_id} is already paid; record the payment instead",
                param="order_id",
                gateway=self.name,
                http_status=refusal.http_status,
                gateway_code=refusal.gateway_code,
                raw=order,
            )
        expiration = _as_int(order.get("expiration_date"))  # epoch seconds on orders (§3)
        if state in ("expired", "deleted") or (expiration is not None and expiration <= _now().timestamp()):
            return
        raise refusal

    # --- Internals --------------------------------------------------------------------------------

    def _request(
        self,
        method: str,
        path: str,
        *,
        side_effect: bool,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> tuple[requests.Response, Any]:
        if not self.config.secret_key:
            raise GatewayConfigurationError("culqi: no secret key configured", gateway=self.name)
        all_headers = {
            "Authorization": f"Bearer {self.config.secret_key}",
            "Content-Type": "application/json",
            "Accept": "application/json",
            **(headers or {}),
        }
        response = self._send(
            method,
            f"{self.config.api_base}/v2{path}",
            side_effect=side_effect,
            headers=all_headers,
            json=json,
            params=params,
        )
        return response, _json_body(response)

    def _currency(self, currency: str) -> str:
        code = (currency or "").upper()
        if code not in self.currencies:
            raise GatewayInvalidRequest(
                f"culqi: currency {currency!r} is not supported (PEN, USD)", param="currency", gateway=self.name
            )
        return code

    def _review_result(self, request: ChargeRequest, currency: str, data: dict[str, Any]) -> ChargeResult:
        """HTTP 200 REVIEW: Culqi's antifraud wants 3-D Secure; no charge was made (§7).

        The payer's browser runs Culqi3DS with these facts, then the same charge is sent again with
        `authentication_3DS`.
        """
        return ChargeResult(
            status=ChargeStatus.REQUIRES_ACTION,
            gateway_payment_id=None,
            amount=request.amount,
            currency=currency,
            gateway_status=REVIEW,
            next_action={
                "type": "three_d_secure",
                "provider": "culqi",
                "action_code": REVIEW,
                "public_key": self.config.public_key,
                "amount": request.amount,
                "currency": currency,
                "email": request.email,
                "user_message": _str(data.get("user_message")),
            },
            reference=request.reference,
            raw=data,
        )

    def _charge_or_raise(self, response: requests.Response, data: Any, *, side_effect: bool) -> ChargeResult:
        if 200 <= response.status_code < 300:
            result = _charge_result(data)
            if result is None:
                raise self._unreadable(response, side_effect=side_effect)
            return result
        raise self._error(response, data, side_effect=side_effect)

    def _create_refund(self, charge_id: str, amount: int, reason: str, reference: str = "") -> dict[str, Any]:
        body: dict[str, Any] = {"amount": int(amount), "charge_id": charge_id, "reason": reason}
        if reference:
            body["metadata"] = {"smartpay_refund_id": reference}  # lets a lost answer be matched later
        response, data = self._request("POST", "/refunds", side_effect=True, json=body)
        return self._expect(response, data, "refund", side_effect=True)

    def _create_customer(self, request: SaveCardRequest) -> str:
        first_name, last_name = _split_name(request.name)
        body = {
            "first_name": first_name,
            "last_name": last_name,
            "email": request.email,
            "address": DEFAULT_ADDRESS,
            "address_city": DEFAULT_CITY,
            "country_code": DEFAULT_COUNTRY,
            "phone_number": _phone(request.phone),
            "metadata": {CUSTOMER_REFERENCE_KEY: request.reference},
        }
        response, data = self._request("POST", "/customers", side_effect=True, json=body)
        return self._expect(response, data, "customer", side_effect=True)["id"]

    def _create_card(self, customer_id: str, token: str) -> SavedCard:
        body = {"customer_id": customer_id, "token_id": token, "validate": True}
        response, data = self._request("POST", "/cards", side_effect=True, json=body)
        if response.status_code == 200 and isinstance(data, dict) and data.get("action_code") == REVIEW:
            raise GatewayInvalidRequest(
                "3-D Secure required to save this card",
                param="token_id",
                gateway=self.name,
                http_status=200,
                gateway_code=REVIEW,
                raw=data,
            )
        declined = _decline(response.status_code, data)
        if declined is not None:  # the validation charge was declined: HTTP 400 card_error (§9)
            raise GatewayInvalidRequest(
                _str(declined.get("user_message")) or _str(declined.get("merchant_message")) or "card declined",
                param="token_id",
                gateway=self.name,
                http_status=response.status_code,
                gateway_code=_decline_gateway_code(declined),
                raw=declined,
            )
        card = self._expect(response, data, "card", side_effect=True)
        return SavedCard(
            gateway_customer_id=_str(card.get("customer_id")) or customer_id,
            gateway_card_id=card["id"],
            card=_card_info(card.get("source")) or CardInfo(),
            raw=card,
        )

    def _expect(self, response: requests.Response, data: Any, obj: str, *, side_effect: bool) -> dict[str, Any]:
        """The Culqi object `obj` (with a string `id`) from a 2xx answer, else the matching gateway error."""
        if 200 <= response.status_code < 300:
            if isinstance(data, dict) and data.get("object") == obj and isinstance(data.get("id"), str) and data["id"]:
                return data
            raise self._unreadable(response, side_effect=side_effect)
        raise self._error(response, data, side_effect=side_effect)

    def _unreadable(self, response: requests.Response, *, side_effect: bool) -> GatewayError:
        """A body we cannot trust: after a POST it may have been processed; after a GET, just retry later."""
        message = f"culqi: unreadable response (HTTP {response.status_code})"
        kwargs = {"gateway": self.name, "http_status": response.status_code, "raw": _raw_text(response)}
        if side_effect:
            return GatewayOutcomeUnknown(message, **kwargs)
        return GatewayUnavailable(message, **kwargs)

    def _error(self, response: requests.Response, data: Any, *, side_effect: bool) -> GatewayError:
        """Translate a non-2xx answer that is not a decline (§11)."""
        status = response.status_code
        error = _culqi_error(data)
        error_type = _str(error.get("type")) if error else None
        kwargs: dict[str, Any] = {
            "gateway": self.name,
            "http_status": status,
            "gateway_code": (_str(error.get("code")) or error_type) if error else None,
            "raw": error if error else _raw_text(response),
        }
        detail = _str(error.get("merchant_message")) if error else None
        message = f"culqi: {detail}" if detail else f"culqi: HTTP {status}"

        if status in (401, 403) or error_type == "authentication_error":
            return GatewayConfigurationError(message, **kwargs)
        if status == 429 or error_type == "limit_api_error":
            # Rate limited (§11, §13): refused, not processed.
            return GatewayUnavailable(message, retry_after=self.retry_after_seconds(response), **kwargs)
        if status >= 500 or error_type == "api_error":
            # 500/502/503/504, `api_error` ("Culqi side", §11): Culqi documents no answer meaning "not
            # processed", and a 503 may come from a proxy after Culqi acted. After a POST it may have
            # been processed; after a GET, ask again later.
            retry_after = self.retry_after_seconds(response)
            if side_effect:
                return GatewayOutcomeUnknown(message, retry_after=retry_after, **kwargs)
            return GatewayUnavailable(message, retry_after=retry_after, **kwargs)
        if error is None:
            # A 4xx that Culqi did not write (proxy page, a 404 from a wrong base URL): no conclusion.
            return self._unreadable(response, side_effect=side_effect)
        param = _str(error.get("param"))
        if status == 404:
            return GatewayNotFound(message, param=param, **kwargs)
        return GatewayInvalidRequest(message, param=param, **kwargs)


# --- Mapping helpers ------------------------------------------------------------------------------


def _charge_result(data: Any) -> ChargeResult | None:
    """A Culqi charge object as a ChargeResult, or None when `data` is not a readable charge (§5.2)."""
    if not isinstance(data, dict) or data.get("object") != "charge":
        return None
    charge_id, amount, currency = data.get("id"), _as_int(data.get("amount")), data.get("currency_code")
    if not isinstance(charge_id, str) or not charge_id or amount is None or not isinstance(currency, str):
        return None
    refunded = _as_int(data.get("amount_refunded")) or 0
    outcome = data.get("outcome") if isinstance(data.get("outcome"), dict) else {}
    outcome_type = _str(outcome.get("type"))
    metadata = data.get("metadata") if isinstance(data.get("metadata"), dict) else {}
    common: dict[str, Any] = {
        "gateway_payment_id": charge_id,
        "amount": amount,
        "currency": currency,
        "amount_refunded": refunded,
        "gateway_status": outcome_type,
        "card": _card_info(data.get("source")),
        "reference": _str(metadata.get(REFERENCE_KEY)),
        "created_at": _from_epoch_ms(data.get("creation_date")),
        "refunds": _refunds_seen(data.get("operations")),
        "raw": data,
    }
    if outcome_type != SUCCESS_OUTCOME:
        # A stored decline (capture is null) or an old charge without an outcome (§5.2).
        gateway_code = _str(outcome.get("decline_code")) or outcome_type or _str(outcome.get("code"))
        return ChargeResult(
            status=ChargeStatus.FAILED,
            decline_code=_normalise_decline(outcome.get("decline_code"), outcome_type, outcome.get("code")),
            decline_message=_str(outcome.get("user_message")),
            gateway_code=gateway_code,
            **common,
        )
    captured = data.get("capture") is True or data.get("capture_date") is not None
    if not captured:
        # An authorization hold; a full refund released it (that is how `cancel` works, §6).
        status = ChargeStatus.CANCELED if refunded >= amount else ChargeStatus.AUTHORIZED
    elif refunded >= amount:
        status = ChargeStatus.REFUNDED
    elif refunded > 0:
        status = ChargeStatus.PARTIALLY_REFUNDED
    else:
        status = ChargeStatus.SUCCEEDED
    return ChargeResult(status=status, **common)


def _culqi_error(data: Any) -> dict[str, Any] | None:
    """The body when it is a Culqi error object (§11), else None."""
    if isinstance(data, dict) and (data.get("object") == "error" or ("type" in data and "merchant_message" in data)):
        return data
    return None


def _decline(status: int, data: Any) -> dict[str, Any] | None:
    """The error object when a 402 (charges) or 400 (cards, §9) answer is a card decline."""
    error = _culqi_error(data)
    if error is None or status not in (400, 402):
        return None
    if status == 402:
        return error
    error_type = _str(error.get("type"))
    if error_type == "card_error" or error.get("decline_code") or (error_type and error_type not in API_ERROR_TYPES):
        return error
    return None


def _decline_gateway_code(error: Mapping[str, Any]) -> str | None:
    error_type = _str(error.get("type"))
    outcome_like_type = error_type if error_type and error_type not in API_ERROR_TYPES else None
    return _str(error.get("decline_code")) or outcome_like_type or _str(error.get("code"))


def _declined_result(error: dict[str, Any], request: ChargeRequest, currency: str) -> ChargeResult:
    """A decline is a normal outcome; Culqi stores the declined charge under `charge_id` (§5.1)."""
    return ChargeResult(
        status=ChargeStatus.FAILED,
        gateway_payment_id=_str(error.get("charge_id")),
        amount=request.amount,
        currency=currency,
        decline_code=_normalise_decline(error.get("decline_code"), error.get("type"), error.get("code")),
        decline_message=_str(error.get("user_message")),
        gateway_code=_decline_gateway_code(error),
        gateway_status=_str(error.get("type")),
        reference=request.reference,
        raw=error,
    )


def _normalise_decline(*candidates: Any) -> str:
    """The first candidate Culqi code we know, in SmartPay's words; `card_declined` otherwise."""
    for candidate in candidates:
        if isinstance(candidate, str) and (code := DECLINE_CODES.get(candidate.strip().lower())):
            return code.value
    return DeclineCode.CARD_DECLINED.value


def _next_cursor(paging: Mapping[str, Any] | None, items: list[Any]) -> str | bool | None:
    """The `after` cursor of the next page; False when this was the last page; None when unknowable."""
    if not items or paging is None:
        return False
    remaining = paging.get("remaining_items")
    more = bool(paging.get("next")) or (isinstance(remaining, int) and remaining > 0)
    if not more:
        return False
    cursors = paging.get("cursors")
    after = cursors.get("after") if isinstance(cursors, dict) else None
    return after if isinstance(after, str) and after else None


def _card_info(source: Any) -> CardInfo | None:
    """Brand and last four from a charge's or card's `source` (a token, or a card wrapping one, §4, §9)."""
    if not isinstance(source, dict):
        return None
    if source.get("object") == "card" and isinstance(source.get("source"), dict):
        source = source["source"]
    iin = source.get("iin") if isinstance(source.get("iin"), dict) else {}
    brand = _str(iin.get("card_brand")) or ""
    last4 = _str(source.get("last_four")) or ""
    if not last4 and isinstance(source.get("card_number"), str):
        last4 = source["card_number"][-4:]
    if not brand and not last4:
        return None
    key = re.sub(r"[^a-z]", "", brand.lower())
    # Culqi tokens carry no expiry month or year.
    return CardInfo(brand=BRANDS.get(key, key), last4=last4)


def _refund_reason(reason: str) -> str:
    text = (reason or "").strip().lower()
    if text in REFUND_REASONS:
        return text
    if "duplic" in text:
        return "duplicado"
    if "fraud" in text:
        return "fraudulento"
    return "solicitud_comprador"


def _description(description: str, reference: str) -> str:
    """Culqi wants 5 to 80 characters (§5.1, §8)."""
    text = " ".join((description or "").split())
    if len(text) < DESCRIPTION_MIN:
        text = f"Pago {reference}"
    return text[:DESCRIPTION_MAX].rstrip()


def _metadata(reference: str, extra: Mapping[str, Any]) -> dict[str, str]:
    """Our payment id plus the caller's metadata, within Culqi's limits (§3); ours is always kept."""
    metadata = {REFERENCE_KEY: reference[:METADATA_VALUE_MAX]}
    for key, value in (extra or {}).items():
        if len(metadata) >= METADATA_MAX_KEYS:
            break
        key = str(key)
        if not key or len(key) > METADATA_KEY_MAX or key in metadata:
            continue  # a truncated key could collide with another one, so long keys are dropped
        metadata[key] = ("" if value is None else str(value))[:METADATA_VALUE_MAX]
    return metadata


def _name_part(part: str, default: str) -> str:
    """Culqi wants 2 to 50 characters per name: an initial gets its full stop ("J" -> "J.")."""
    part = part.strip()[:NAME_MAX].strip()
    if not part:
        return default
    return part if len(part) >= 2 else f"{part}."


def _split_name(name: str) -> tuple[str, str]:
    parts = (name or "").split(None, 1)
    first = parts[0] if parts else ""
    last = parts[1] if len(parts) > 1 else ""
    return _name_part(first, DEFAULT_FIRST_NAME), _name_part(last, DEFAULT_LAST_NAME)


def _phone(phone: str) -> str:
    digits = re.sub(r"\D", "", phone or "")
    return digits if 5 <= len(digits) <= 15 else DEFAULT_PHONE


def _segment(value: str) -> str:
    """An id as one URL path segment."""
    return quote(str(value), safe="")


def _json_body(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:  # includes requests' JSONDecodeError; an empty body too
        return None


def _raw_text(response: requests.Response) -> str:
    return response.text[:500]


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def _from_epoch_ms(value: Any) -> datetime | None:
    millis = _as_int(value)
    if millis is None:
        return None
    try:
        return datetime.fromtimestamp(millis / 1000, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _refunds_seen(operations: Any) -> tuple[RefundSeen, ...] | None:
    """Refunds listed in a charge's `operations[]` (`{type: "devolución", id: "ref_…", amount}`, §5.2).

    None when the charge carries no list at all (then only `amount_refunded` is known); an empty
    tuple when it lists operations and none is a refund.
    """
    if not isinstance(operations, list):
        return None
    seen = []
    for operation in operations:
        if not isinstance(operation, Mapping):
            continue
        refund_id, amount = _str(operation.get("id")), _as_int(operation.get("amount"))
        if refund_id and refund_id.startswith("ref_") and amount is not None:
            seen.append(RefundSeen(gateway_refund_id=refund_id, amount=amount))
    return tuple(seen)
