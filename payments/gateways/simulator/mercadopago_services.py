"""What the Mercado Pago simulator does: card tokens, payments, captures, cancels, refunds,
customers and cards, Checkout Pro preferences.

Outcomes follow the cardholder name (mercadopago.md §14): APRO approves, FUND/OTHE/CALL/SECU/EXPI/FORM
reject with their status_detail, CONT stays in_process, CHAL (simulator only) waits for a 3-D Secure
challenge. `transaction_amount` is parsed as Decimal and kept as integer céntimos; rows two requests
may race for are locked with `select_for_update`.
"""

from __future__ import annotations

import hmac
import re
import secrets
import uuid
from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import BigIntegerField
from django.db.models.functions import Cast
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from payments.gateways.simulator import cards, webhooks, wire
from payments.gateways.simulator import mercadopago_objects as objects
from payments.gateways.simulator.models import (
    Gateway,
    SimCard,
    SimCharge,
    SimCheckout,
    SimCustomer,
    SimRefund,
    SimToken,
)

MP = Gateway.MERCADOPAGO
TOKEN_PREFIXES = ("TEST-", "APP_USR-")
TOKEN_TTL = timedelta(days=7)
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")

# Cardholder name → (status, status_detail). Names not listed are approved (simulator choice).
OUTCOMES: dict[str, tuple[str, str]] = {
    "APRO": ("approved", "accredited"),
    "OTHE": ("rejected", "cc_rejected_other_reason"),
    "CONT": ("in_process", "pending_contingency"),
    "CALL": ("rejected", "cc_rejected_call_for_authorize"),
    "FUND": ("rejected", "cc_rejected_insufficient_amount"),
    "SECU": ("rejected", "cc_rejected_bad_filled_security_code"),
    "EXPI": ("rejected", "cc_rejected_bad_filled_date"),
    "FORM": ("rejected", "cc_rejected_bad_filled_other"),
    "CARD": ("rejected", "cc_rejected_bad_filled_card_number"),
    "INST": ("rejected", "cc_rejected_invalid_installments"),
    "DUPL": ("rejected", "cc_rejected_duplicated_payment"),
    "LOCK": ("rejected", "cc_rejected_card_disabled"),
    "CTNA": ("rejected", "cc_rejected_card_type_not_allowed"),
    "ATTE": ("rejected", "cc_rejected_max_attempts"),
    "BLAC": ("rejected", "cc_rejected_blacklist"),
    # Simulator only (Mercado Pago publishes no test name for it): a 3-D Secure challenge. The payment
    # waits as pending/pending_challenge with `three_ds_info` until the challenge page completes it
    # (`mercadopago_challenge`).
    "CHAL": ("pending", "pending_challenge"),
}
CANCELLABLE = ("authorized", "pending", "in_process")


# --- Auth and parsing ---------------------------------------------------------------------------


def _matches(value: str, configured: str) -> bool:
    if configured:
        return hmac.compare_digest(value.encode(), configured.encode())
    return value.startswith(TOKEN_PREFIXES)


def authenticate(request, *, public_ok: bool = False) -> None:
    """`Authorization: Bearer <access token>`; `?public_key=` too where MP takes it (tokens, methods)."""
    token = wire.bearer(request)
    if token and _matches(token, settings.MERCADOPAGO_ACCESS_TOKEN):
        return
    public_key = request.GET.get("public_key")
    if public_ok and public_key and _matches(public_key, settings.MERCADOPAGO_PUBLIC_KEY):
        return
    if not token and not public_key:
        raise objects.unauthorized("Must provide your access_token to proceed")
    raise objects.unauthorized("invalid access token")


def body_of(request) -> dict[str, Any]:
    try:
        return wire.parse_json_body(request)
    except wire.BadJson:
        raise objects.error(400, "JSON parse error: the body must be a JSON object", "bad_request") from None


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"\d{1,4}", value):
        return int(value)
    return None


def _email_ok(value: Any) -> bool:
    return isinstance(value, str) and len(value) < 254 and bool(_EMAIL.match(value))


# --- Card tokens and payment methods ------------------------------------------------------------


def token_create(*, body: dict) -> SimToken:
    """POST /v1/card_tokens: from card data, or from a saved card (`card_id` + `customer_id`)."""
    now = timezone.now()
    if body.get("card_id") is not None:
        card = SimCard.objects.filter(gateway=MP, public_id=str(body["card_id"]), deleted=False).first()
        customer_id = body.get("customer_id")
        if card is None or (customer_id is not None and card.customer.public_id != str(customer_id)):
            raise objects.not_found(120, "card not found")
        return SimToken.objects.create(
            gateway=MP,
            public_id=secrets.token_hex(16),
            bin=card.bin,
            last4=card.last4,
            card_length=card.source_token.card_length,
            brand=card.brand,
            card_type=card.card_type,
            exp_month=card.exp_month,
            exp_year=card.exp_year,
            security_code_length=card.source_token.security_code_length,
            cardholder_name=card.cardholder_name,
            cardholder_identification=card.source_token.cardholder_identification,
            card=card,
            expires_at=now + TOKEN_TTL,
            created_at=now,
        )
    number = body.get("card_number")
    if isinstance(number, int) and not isinstance(number, bool):
        number = str(number)
    if not number:
        raise objects.bad_request("205", "parameter cardNumber can not be null/empty")
    if not isinstance(number, str) or not re.fullmatch(r"\d{13,19}", number):
        raise objects.bad_request("E301", "invalid parameter cardNumber")
    code = body.get("security_code")
    code = str(code) if isinstance(code, int) and not isinstance(code, bool) else code
    if not code:
        raise objects.bad_request("224", "parameter securityCode can not be null/empty")
    if not isinstance(code, str) or not re.fullmatch(r"\d{3,4}", code):
        raise objects.bad_request("E302", "invalid parameter securityCode")
    month, year = _int(body.get("expiration_month")), _int(body.get("expiration_year"))
    if month is None or not 1 <= month <= 12:
        raise objects.bad_request("325", "invalid parameter expirationMonth")
    if year is None or not 1000 <= year <= 9999 or not cards.expiry_in_future(month, year, timezone.localtime(now)):
        raise objects.bad_request("326", "invalid parameter expirationYear")
    holder = body.get("cardholder") if isinstance(body.get("cardholder"), dict) else {}
    name = holder.get("name")
    if not isinstance(name, str) or not name.strip():
        raise objects.bad_request("221", "parameter cardholderName can not be null/empty")
    identification = holder.get("identification") if isinstance(holder.get("identification"), dict) else {}
    facts = cards.inspect(number)
    return SimToken.objects.create(
        gateway=MP,
        public_id=secrets.token_hex(16),
        bin=facts.bin,
        last4=facts.last4,
        card_length=facts.length,
        brand=facts.brand,
        card_type=facts.card_type,
        exp_month=month,
        exp_year=year,
        security_code_length=len(code),
        luhn_valid=facts.luhn_valid,
        cardholder_name=name.strip()[:100],
        cardholder_identification={
            "type": identification.get("type"),
            "number": None if identification.get("number") is None else str(identification["number"]),
        },
        expires_at=now + TOKEN_TTL,
        created_at=now,
    )


def token_get(public_id: str) -> SimToken:
    token = SimToken.objects.select_related("card").filter(gateway=MP, public_id=public_id).first()
    if token is None:
        raise objects.not_found(2006, "Card Token not found")
    return token


def payment_methods_for_bin(bin_: str) -> list[dict]:
    if not re.fullmatch(r"\d{6,8}", bin_ or ""):
        return []
    card_type = "debit" if bin_[:6] in cards.DEBIT_BINS else "credit"
    method = cards.mp_payment_method(cards.brand_of(bin_), card_type)
    return [objects.payment_method_object(method, bin_)] if method else []


# --- Payments -----------------------------------------------------------------------------------


def _spend_token(token_id: Any) -> SimToken:
    if not isinstance(token_id, str) or not token_id:
        raise objects.bad_request(4000, "token attribute can't be null")
    token = SimToken.objects.select_for_update().filter(gateway=MP, public_id=token_id).first()
    if token is None:
        raise objects.bad_request(2006, "Card Token not found")
    if token.used_at is not None or token.expires_at <= timezone.now():
        raise objects.bad_request(3003, "Invalid card_token_id")
    token.used_at = timezone.now()
    token.save(update_fields=["used_at"])
    return token


def _decide(token: SimToken, *, capture: bool, binary_mode: bool) -> tuple[str, str]:
    if not token.luhn_valid:
        return "rejected", "cc_rejected_bad_filled_card_number"
    status, detail = OUTCOMES.get(token.cardholder_name.strip().upper(), OUTCOMES["APRO"])
    if status == "in_process" and binary_mode:
        return "rejected", "cc_rejected_other_reason"  # binary mode: only approved or rejected (§3)
    if detail == "pending_challenge" and binary_mode:
        return "rejected", "cc_rejected_3ds_mandatory"  # a challenge needs binary_mode off (§3)
    if status == "approved" and not capture:
        return "authorized", "pending_capture"
    return status, detail


def _amount(value: Any, *, null_code: int = 4002) -> int:
    if value is None:
        raise objects.bad_request(null_code, "transaction_amount attribute can't be null")
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        raise objects.bad_request(4003, "transaction_amount attribute must be numeric")
    minor = wire.minor_from_decimal(value)
    if minor is None or minor <= 0:
        raise objects.bad_request(4037, "Invalid transaction_amount")
    return minor


def payment_create(*, body: dict) -> SimCharge:
    """POST /v1/payments. A decline is a 201 payment with status `rejected` (§3), not an error."""
    amount = _amount(body.get("transaction_amount"))
    installments = body.get("installments")
    if installments is None:
        raise objects.bad_request(4004, "installments attribute can't be null")
    if isinstance(installments, bool) or not isinstance(installments, int):
        raise objects.bad_request(4005, "installments attribute must be numeric")
    if not 1 <= installments <= 36:
        raise objects.bad_request(4033, "Invalid installments")
    method_id = body.get("payment_method_id")
    if not isinstance(method_id, str) or not method_id:
        raise objects.bad_request(4001, "payment_method_id attribute can't be null")
    payer = body.get("payer")
    if not isinstance(payer, dict):
        raise objects.bad_request(4006, "payer attribute is malformed")
    if not _email_ok(payer.get("email")):
        raise objects.bad_request(4050, "payer.email must be a valid email")
    notification_url = body.get("notification_url")
    if notification_url is not None and (
        not isinstance(notification_url, str) or not re.match(r"^https?://[^\s/]+", notification_url)
    ):
        raise objects.bad_request(4020, "notification_url attribute must be url valid")
    metadata = body.get("metadata", {})
    if not isinstance(metadata, dict):
        raise objects.bad_request(4022, "metadata attribute must be a valid JSON")
    capture = body.get("capture", True)
    if not isinstance(capture, bool):
        raise objects.bad_request(2078, "capture attribute must be boolean")
    binary_mode = bool(body.get("binary_mode", False))
    external_reference = body.get("external_reference")
    if external_reference is not None and not isinstance(external_reference, str | int):
        raise objects.bad_request(1, "external_reference attribute must be a string")

    with transaction.atomic():
        customer = None
        if payer.get("type") == "customer" or payer.get("id"):
            customer = SimCustomer.objects.filter(gateway=MP, public_id=str(payer.get("id")), deleted=False).first()
            if customer is None:
                raise objects.bad_request(2002, "Customer not found")
        token = _spend_token(body.get("token"))
        method = cards.mp_payment_method(token.brand, token.card_type)
        if method is None or method["id"] != method_id:
            raise objects.bad_request(3028, "Invalid payment_method_id", message="diff_param_bins")
        status, detail = _decide(token, capture=capture, binary_mode=binary_mode)
        now = timezone.now()
        charge = SimCharge(
            gateway=MP,
            public_id=str(wire.numeric_id(11)),
            status=status,
            status_detail=detail,
            amount=amount,
            currency="PEN",  # the seller account's currency; /v1/payments takes none (§3)
            email=payer["email"],
            description=str(body.get("description") or "")[:255],
            metadata=metadata,
            external_reference=str(external_reference or "")[:255],
            capture=capture,
            captured=status == "approved",
            token=token,
            card=token.card,
            customer=customer,
            details={
                "installments": installments,
                "payment_method_id": method["id"],
                "payment_type_id": method["payment_type_id"],
                "issuer_id": str(body.get("issuer_id") or method["issuer"]["id"]),
                "authorization_code": str(wire.numeric_id(6)),
                "payer": {
                    "email": payer["email"],
                    "identification": payer.get("identification")
                    if isinstance(payer.get("identification"), dict)
                    else None,
                    "type": payer.get("type"),
                },
                "notification_url": notification_url,
                "statement_descriptor": body.get("statement_descriptor"),
                "binary_mode": binary_mode,
                "additional_info": body.get("additional_info") if isinstance(body.get("additional_info"), dict) else {},
            },
            created_at=now,
            approved_at=now if status == "approved" else None,
            captured_at=now if status == "approved" else None,
            updated_at=now,
        )
        _save(charge, action="payment.created")
    return charge


def _save(charge: SimCharge, *, action: str) -> None:
    charge.updated_at = timezone.now()
    charge.save()
    charge.payload = objects.payment_object(charge)
    charge.save(update_fields=["payload"])
    webhooks.mercadopago_payment_event(
        payment_id=charge.public_id,
        action=action,
        user_id=objects.COLLECTOR_ID,
        notification_url=charge.details.get("notification_url"),
    )


def payment_get(public_id: str) -> SimCharge:
    charge = (
        SimCharge.objects.select_related("token", "card", "customer").filter(gateway=MP, public_id=public_id).first()
    )
    if charge is None:
        raise objects.not_found(*objects.PAYMENT_NOT_FOUND)
    return charge


def _locked_payment(public_id: str) -> SimCharge:
    charge = SimCharge.objects.select_for_update().filter(gateway=MP, public_id=public_id).first()
    if charge is None:
        raise objects.not_found(*objects.PAYMENT_NOT_FOUND)
    return charge


def _new_refund(charge: SimCharge, amount: int, metadata: dict | None = None) -> SimRefund:
    refund = SimRefund.objects.create(
        gateway=MP,
        public_id=str(wire.numeric_id(10)),
        charge=charge,
        amount=amount,
        status="approved",
        metadata=metadata or {},
        created_at=timezone.now(),
    )
    charge.amount_refunded += amount
    if charge.remaining == 0:
        charge.status, charge.status_detail = "refunded", "refunded"
    else:
        charge.status_detail = "partially_refunded"
    return refund


def payment_update(*, public_id: str, body: dict) -> SimCharge:
    """PUT /v1/payments/{id}: capture (full, or partial with a lower transaction_amount, which becomes
    the payment's amount; the rest of the hold is released), cancel (`status: cancelled`, only
    authorized/pending/in_process), or metadata."""
    with transaction.atomic():
        charge = _locked_payment(public_id)
        changed = False
        if "capture" in body:
            if not isinstance(body["capture"], bool):
                raise objects.bad_request(2078, "capture attribute must be boolean")
            if body["capture"]:
                if charge.status != "authorized":
                    raise objects.bad_request(2018, "The action requested is not valid for the current payment state")
                captured = charge.amount
                if body.get("transaction_amount") is not None:
                    captured = _amount(body["transaction_amount"])
                    if captured > charge.amount:
                        raise objects.bad_request(4037, "Invalid transaction_amount: more than authorized")
                now = timezone.now()
                charge.status, charge.status_detail = "approved", "accredited"
                charge.captured, charge.approved_at, charge.captured_at = True, now, now
                # A lower transaction_amount captures that much: the payment's amount becomes it and the
                # rest of the hold is released (no refund: that money was never taken).
                charge.amount = captured
                changed = True
        if body.get("status") is not None:
            if body["status"] != "cancelled":
                raise objects.bad_request(8, "status: only 'cancelled' can be set")
            if charge.status not in CANCELLABLE:
                raise objects.bad_request(2018, "The action requested is not valid for the current payment state")
            charge.status, charge.status_detail, charge.captured = "cancelled", "by_collector", False
            changed = True
        if isinstance(body.get("metadata"), dict):
            charge.metadata = body["metadata"]
            changed = True
        if not changed:
            raise objects.bad_request(1004, "Nothing to update")
        _save(charge, action="payment.updated")
    return charge


def refund_create(*, public_id: str, body: dict) -> SimRefund:
    """POST /v1/payments/{id}/refunds: `{}` refunds all that is left; `{amount}` part of it."""
    amount = None
    if body.get("amount") is not None:
        value = body["amount"]
        if isinstance(value, bool) or not isinstance(value, int | Decimal):
            raise objects.error(401, "amount must be numeric", "bad_request", [(4041, "amount must be numeric")])
        amount = wire.minor_from_decimal(value)
        if amount is None or amount <= 0:
            raise objects.error(401, "amount must be positive", "bad_request", [(4040, "amount must be positive")])
    with transaction.atomic():
        charge = _locked_payment(public_id)
        if charge.status != "approved":
            raise objects.bad_request(2063, "The action requested is not valid for the current payment state")
        amount = charge.remaining if amount is None else amount
        if amount > charge.remaining:
            raise objects.bad_request(2085, "Invalid refund amount: it exceeds the amount available to refund")
        refund = _new_refund(charge, amount, body.get("metadata") if isinstance(body.get("metadata"), dict) else None)
        _save(charge, action="payment.updated")
    return refund


_SORTS = {
    "date_created": "created_at",
    "date_approved": "approved_at",
    "date_last_updated": "updated_at",
    "money_release_date": "approved_at",
    "id": "numeric_id",
}
_UNITS = {"MINUTES": 1 / 1440, "HOURS": 1 / 24, "DAYS": 1, "WEEKS": 7, "MONTHS": 30, "YEARS": 365}


def _search_date(value: str | None, param: str):
    if not value:
        return None
    match = re.fullmatch(r"NOW(?:-(\d+)(MINUTES|HOURS|DAYS|WEEKS|MONTHS|YEARS))?", value.strip().upper())
    if match:
        days = int(match.group(1) or 0) * _UNITS.get(match.group(2) or "DAYS", 1)
        return timezone.now() - timedelta(days=days)
    moment = parse_datetime(value.strip().replace(" ", "+"))
    if moment is None:
        raise objects.bad_request(23, f"{param}: invalid date format, use ISO-8601 or NOW-<n>DAYS")
    return moment if moment.tzinfo else timezone.make_aware(moment)


def payment_search(query) -> tuple[list[SimCharge], int, int, int]:
    """GET /v1/payments/search → (page, total, limit, offset)."""
    queryset = SimCharge.objects.filter(gateway=MP).select_related("token", "card", "customer")
    if reference := query.get("external_reference"):
        queryset = queryset.filter(external_reference=reference)
    if status := query.get("status"):
        queryset = queryset.filter(status=status)
    if payer_id := query.get("payer.id"):
        queryset = queryset.filter(customer__public_id=payer_id)
    field = _SORTS.get(query.get("range") or "date_created", "created_at")
    field = "created_at" if field == "numeric_id" else field
    if (begin := _search_date(query.get("begin_date"), "begin_date")) is not None:
        queryset = queryset.filter(**{f"{field}__gte": begin})
    if (end := _search_date(query.get("end_date"), "end_date")) is not None:
        queryset = queryset.filter(**{f"{field}__lte": end})
    sort = _SORTS.get(query.get("sort") or "date_created", "created_at")
    if sort == "numeric_id":
        queryset = queryset.annotate(numeric_id=Cast("public_id", BigIntegerField()))
    descending = (query.get("criteria") or "desc").lower() != "asc"
    queryset = queryset.order_by(f"-{sort}" if descending else sort, "-pk" if descending else "pk")
    try:
        limit = min(max(int(query.get("limit", 30)), 1), 1000)
        offset = max(int(query.get("offset", 0)), 0)
    except ValueError:
        raise objects.bad_request(1, "limit and offset must be integers") from None
    total = queryset.count()
    return list(queryset[offset : offset + limit]), total, limit, offset


# --- Customers and cards ------------------------------------------------------------------------


def customer_create(*, body: dict) -> SimCustomer:
    email = body.get("email")
    if not _email_ok(email):
        raise objects.bad_request(106, "invalid email")
    details = {
        key: body[key]
        for key in ("phone", "identification", "address", "description", "date_registered", "default_card")
        if key in body
    }
    try:
        with transaction.atomic():
            return SimCustomer.objects.create(
                gateway=MP,
                public_id=f"{objects.COLLECTOR_ID}-{wire.alnum(14)}",
                email=email,
                first_name=str(body.get("first_name") or "")[:100],
                last_name=str(body.get("last_name") or "")[:100],
                details=details,
                metadata=body.get("metadata") if isinstance(body.get("metadata"), dict) else {},
                created_at=timezone.now(),
            )
    except IntegrityError:
        raise objects.bad_request(101, "the customer already exist") from None


def customer_get(public_id: str) -> SimCustomer:
    customer = SimCustomer.objects.filter(gateway=MP, public_id=public_id, deleted=False).first()
    if customer is None:
        raise objects.not_found(2002, "Customer not found")
    return customer


def card_create(*, customer_id: str, body: dict) -> SimCard:
    """POST /v1/customers/{id}/cards {token}: the token is spent; no validation charge at MP."""
    with transaction.atomic():
        customer = customer_get(customer_id)
        token_id = body.get("token")
        if not isinstance(token_id, str) or not token_id:
            raise objects.bad_request(119, "card required")
        token = SimToken.objects.select_for_update().filter(gateway=MP, public_id=token_id).first()
        if token is None or token.used_at is not None or token.expires_at <= timezone.now():
            raise objects.bad_request(2062, "Invalid card token")
        if cards.mp_payment_method(token.brand, token.card_type) is None:
            raise objects.bad_request(127, "cannot resolve the payment method of card")
        token.used_at = timezone.now()
        token.save(update_fields=["used_at"])
        return SimCard.objects.create(
            gateway=MP,
            public_id=str(wire.numeric_id(13)),
            customer=customer,
            source_token=token,
            bin=token.bin,
            last4=token.last4,
            brand=token.brand,
            card_type=token.card_type,
            exp_month=token.exp_month,
            exp_year=token.exp_year,
            cardholder_name=token.cardholder_name,
            scenario="",
            created_at=timezone.now(),
        )


def card_get(customer_id: str, card_id: str) -> SimCard:
    card = (
        SimCard.objects.select_related("customer", "source_token")
        .filter(gateway=MP, public_id=card_id, customer__public_id=customer_id, deleted=False)
        .first()
    )
    if card is None:
        raise objects.not_found(120, "card not found")
    return card


def card_delete(customer_id: str, card_id: str) -> SimCard:
    card = card_get(customer_id, card_id)
    card.deleted = True
    card.save(update_fields=["deleted", "updated_at"])
    return card


# --- Checkout Pro -------------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """A parsed body with Decimals as text, for a JSON column."""
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


# What `PUT /checkout/preferences/{id}` may change. Items (and so the amount) stay as created.
PREFERENCE_UPDATABLE = (
    "back_urls",
    "auto_return",
    "notification_url",
    "payment_methods",
    "statement_descriptor",
    "binary_mode",
    "expires",
    "expiration_date_from",
    "expiration_date_to",
)


def preference_create(*, body: dict) -> SimCheckout:
    """POST /checkout/preferences: items priced in PEN; the total is sum(quantity * unit_price)."""
    items = body.get("items")
    if not isinstance(items, list) or not items:
        raise objects.error(400, "items needed", "invalid_items")
    total = 0
    for item in items:
        if not isinstance(item, dict):
            raise objects.error(400, "items must be objects", "invalid_items")
        quantity, price = item.get("quantity"), item.get("unit_price")
        if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 1:
            raise objects.error(400, "quantity must be a positive integer", "invalid_items")
        cents = wire.minor_from_decimal(price)
        if cents is None or cents <= 0:
            raise objects.error(400, "unit_price invalid", "invalid_items")
        if item.get("currency_id", "PEN") != "PEN":
            raise objects.error(400, "currency_id invalid", "invalid_items")
        total += quantity * cents
    back_urls = body.get("back_urls") if isinstance(body.get("back_urls"), dict) else {}
    if body.get("auto_return") and not back_urls.get("success"):
        raise objects.error(400, "auto_return invalid. back_url.success must be defined", "invalid_auto_return")
    payer = body.get("payer") if isinstance(body.get("payer"), dict) else {}
    now = timezone.now()
    expires_at = None
    if body.get("expires") and body.get("expiration_date_to"):
        expires_at = parse_datetime(str(body["expiration_date_to"]))
    details = _plain({key: body[key] for key in ("items", "payer", *PREFERENCE_UPDATABLE) if key in body})
    details["merchant_order_id"] = wire.numeric_id(11)
    return SimCheckout.objects.create(
        gateway=MP,
        public_id=f"{objects.COLLECTOR_ID}-{uuid.uuid4()}",
        state="open",
        amount=total,
        currency="PEN",
        description=str(items[0].get("title") or "")[:255],
        email=str(payer.get("email") or ""),
        external_reference=str(body.get("external_reference") or ""),
        metadata=body.get("metadata") if isinstance(body.get("metadata"), dict) else {},
        details=details,
        expires_at=expires_at,
        created_at=now,
        updated_at=now,
    )


def preference_get(public_id: str) -> SimCheckout:
    preference = SimCheckout.objects.filter(gateway=MP, public_id=public_id).first()
    if preference is None:
        raise objects.not_found(404, "Preference not found")
    return preference


def _preference_date(body: dict, field: str):
    value = body.get(field)
    if value is None:
        return None
    try:
        moment = parse_datetime(value) if isinstance(value, str) else None
    except ValueError:  # well formed but impossible, e.g. month 13
        moment = None
    if moment is None or moment.tzinfo is None:
        raise objects.bad_request("invalid_" + field, f"{field} must be a date like 2025-03-15T15:00:00.000-04:00")
    return moment


def preference_update(*, public_id: str, body: dict) -> SimCheckout:
    """PUT /checkout/preferences/{id}: `expires` + `expiration_date_to` decide until when it can be paid.

    An `expiration_date_to` of now or earlier closes the preference at once: its page refuses to pay.
    `expires: false` opens it again. `external_reference`, `metadata`, `back_urls` and the other fields
    in PREFERENCE_UPDATABLE replace what was sent; unknown fields are ignored.
    """
    for field in ("expiration_date_from", "expiration_date_to"):
        _preference_date(body, field)
    if "expires" in body and not isinstance(body["expires"], bool):
        raise objects.bad_request("invalid_expires", "expires must be a boolean")
    with transaction.atomic():
        preference = SimCheckout.objects.select_for_update().filter(gateway=MP, public_id=public_id).first()
        if preference is None:
            raise objects.not_found(404, "Preference not found")
        details = {**preference.details, **_plain({key: body[key] for key in PREFERENCE_UPDATABLE if key in body})}
        if "external_reference" in body:
            preference.external_reference = str(body["external_reference"] or "")
        if isinstance(body.get("metadata"), dict):
            preference.metadata = body["metadata"]
        preference.details = details
        expires_to = _preference_date(details, "expiration_date_to")
        preference.expires_at = expires_to if details.get("expires") and expires_to else None
        preference.updated_at = timezone.now()
        preference.save()
    return preference


def preference_closed(preference: SimCheckout) -> bool:
    """Whether the preference can no longer be paid (its `expiration_date_to` has passed)."""
    return preference.expires_at is not None and preference.expires_at <= timezone.now()


class CheckoutClosed(Exception):
    """The preference expired."""


def checkout_pay(*, preference_id: str, outcome: str) -> tuple[SimCheckout, SimCharge]:
    """The person paid on the hosted page; the cardholder name is the test outcome they picked.

    The payment carries the preference's external_reference and metadata and is notified like any
    other (`payment.created`). A preference can be paid again after a rejection, as on MP.
    """
    number, code = cards.MERCADOPAGO_CHECKOUT_CARD
    with transaction.atomic():
        preference = SimCheckout.objects.select_for_update().filter(gateway=MP, public_id=preference_id).first()
        if preference is None:
            raise objects.not_found(404, "Preference not found")
        if preference_closed(preference):
            raise CheckoutClosed("expired")
        if preference.charge_id and preference.charge.status in ("approved", "authorized", "in_process"):
            return preference, preference.charge
        year = timezone.localtime().year + 4
        token = token_create(
            body={
                "card_number": number,
                "security_code": code,
                "expiration_month": 11,
                "expiration_year": year,
                "cardholder": {"name": outcome, "identification": {"type": "DNI", "number": "12345678"}},
            }
        )
        details = preference.details
        charge = payment_create(
            body={
                "transaction_amount": wire.decimal_amount(preference.amount),
                "token": token.public_id,
                "installments": 1,
                "payment_method_id": "visa",
                "description": preference.description,
                "payer": {"email": preference.email or "test_user@testuser.com"},
                "external_reference": preference.external_reference or None,
                "metadata": preference.metadata,
                "notification_url": details.get("notification_url"),
                "binary_mode": bool(details.get("binary_mode")),
            }
        )
        preference.charge = charge
        preference.state = "paid" if charge.status == "approved" else preference.state
        preference.updated_at = timezone.now()
        preference.save()
    return preference, charge
