"""What the Culqi simulator does: tokens, charges, captures, refunds, customers, cards, orders.

Each function validates like Culqi (400 `parameter_error` naming the `param`), does its writes in
one transaction, and queues the webhook Culqi would send (delivered after commit). Money columns
are integers in céntimos. Rows that two requests may race for (a token being spent, a charge being
captured or refunded, an order being paid) are locked with `select_for_update`.
"""

from __future__ import annotations

import hmac
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from payments.gateways.simulator import cards, webhooks, wire
from payments.gateways.simulator import culqi_objects as objects
from payments.gateways.simulator.models import (
    Gateway,
    SimCard,
    SimCharge,
    SimCheckout,
    SimCustomer,
    SimRefund,
    SimToken,
)

CULQI = Gateway.CULQI
SECRET_PREFIXES = ("sk_test_", "sk_live_")
PUBLIC_PREFIXES = ("pk_test_", "pk_live_")
TOKEN_TTL = timedelta(minutes=5)  # §4: single use, 5 minutes
CHARGE_LIMITS = (300, 999_900)  # céntimos, §15
ORDER_LIMITS = (600, 999_900)
CURRENCIES = ("PEN", "USD")
CARD_VALIDATION_AMOUNT = 100  # the "Validacion de tarjeta" charge of POST /v2/cards (§9)
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_DIGITS = re.compile(r"^\d{1,12}$")
SPENT_SOURCE_MESSAGE = (
    "El token enviado ya fue utilizado o ha expirado. Los tokens expiran después de 5 minutos y solo pueden "
    "usarse una vez."
)


@dataclass(frozen=True)
class Outcome:
    """What a charge or card request came to: `created`, `declined` (a stored charge) or `review` (3DS)."""

    kind: str
    charge: SimCharge | None = None
    card: SimCard | None = None


# --- Auth and parsing ---------------------------------------------------------------------------


def _key_ok(key: str, configured: str, prefixes: tuple[str, ...]) -> bool:
    if configured:
        return hmac.compare_digest(key.encode(), configured.encode())
    return key.startswith(prefixes)


def authenticate(request, *, public_ok: bool = False) -> None:
    """Bearer secret key; the public key too where Culqi takes it (POST /v2/tokens)."""
    key = wire.bearer(request)
    if key and _key_ok(key, settings.CULQI_SECRET_KEY, SECRET_PREFIXES):
        return
    if key and public_ok and _key_ok(key, settings.CULQI_PUBLIC_KEY, PUBLIC_PREFIXES):
        return
    raise objects.authentication_error()


def body_of(request) -> dict[str, Any]:
    try:
        return wire.parse_json_body(request)
    except wire.BadJson:
        raise objects.invalid_request() from None


def _invalid(param: str):
    return objects.parameter_error(param, f"El campo '{param}' es inválido o está vacío.")


def _amount(body: dict, field: str, low: int, high: int) -> int:
    value = body.get(field)
    if isinstance(value, str) and _DIGITS.match(value):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise objects.parameter_error(
            field,
            f"El campo '{field}' es inválido o está vacío, debe tener un valor mínimo de {low} y un valor "
            f"máximo de {high}.",
        )
    return value


def _currency(body: dict) -> str:
    value = body.get("currency_code")
    if value not in CURRENCIES:
        raise objects.parameter_error(
            "currency_code",
            "El campo 'currency_code' es inválido o está vacío, el código de la moneda debe ser PEN o USD.",
        )
    return value


def _email(body: dict, field: str = "email") -> str:
    value = body.get(field)
    if not isinstance(value, str) or not 5 <= len(value) <= 50 or not _EMAIL.match(value):
        raise _invalid(field)
    return value


def _text(body: dict, field: str, low: int, high: int, *, required: bool = True) -> str:
    value = body.get(field)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or not low <= len(value.strip()) <= high:
        raise objects.parameter_error(
            field, f"El campo '{field}' es inválido o está vacío, debe tener entre {low} y {high} caracteres."
        )
    return value


def _bool(body: dict, field: str, default: bool) -> bool:
    value = body.get(field, default)
    if not isinstance(value, bool):
        raise _invalid(field)
    return value


def _metadata(body: dict) -> dict[str, str]:
    value = body.get("metadata")
    if value is None:
        return {}
    if not isinstance(value, dict) or len(value) > 20:
        raise objects.parameter_error("metadata", "El campo 'metadata' es inválido: máximo 20 llaves.")
    metadata = {}
    for key, item in value.items():
        if isinstance(item, bool | dict | list) or item is None:
            raise objects.parameter_error("metadata", "Los valores de 'metadata' deben ser textos.")
        text = str(item)
        if not 1 <= len(key) <= 30 or len(text) > 200:
            raise objects.parameter_error(
                "metadata", "El campo 'metadata' es inválido: llaves de hasta 30 y valores de hasta 200 caracteres."
            )
        metadata[key] = text
    return metadata


def _int_text(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"\d{1,4}", value):
        return int(value)
    return None


# --- Tokens -------------------------------------------------------------------------------------


def token_create(*, body: dict, client_ip: str = "") -> SimToken:
    """POST /v2/tokens. The card number and CVV are checked and forgotten; only card facts are kept."""
    number = body.get("card_number")
    if isinstance(number, int) and not isinstance(number, bool):
        number = str(number)
    if not isinstance(number, str) or not re.fullmatch(r"\d{13,19}", number):
        raise objects.parameter_error(
            "card_number", "El campo 'card_number' es inválido o está vacío, debe tener entre 13 y 19 dígitos."
        )
    facts = cards.inspect(number)
    if not facts.luhn_valid:
        raise objects.parameter_error("card_number", "El número de tarjeta es inválido.")
    cvv = body.get("cvv")
    if not isinstance(cvv, str) or not re.fullmatch(r"\d{3,4}", cvv):
        raise objects.parameter_error("cvv", "El campo 'cvv' es inválido o está vacío, debe tener 3 o 4 dígitos.")
    month, year = _int_text(body.get("expiration_month")), _int_text(body.get("expiration_year"))
    if month is None or not 1 <= month <= 12:
        raise objects.parameter_error("expiration_month", "El campo 'expiration_month' es inválido o está vacío.")
    if year is None or not 1000 <= year <= 9999:
        raise objects.parameter_error(
            "expiration_year", "El campo 'expiration_year' es inválido o está vacío, debe tener 4 dígitos."
        )
    now = timezone.now()
    if not cards.expiry_in_future(month, year, timezone.localtime(now)):
        raise objects.parameter_error("expiration_year", "La fecha de vencimiento de la tarjeta es inválida.")
    email = _email(body)
    metadata = _metadata(body)
    return SimToken.objects.create(
        gateway=CULQI,
        public_id=wire.culqi_id("tkn"),
        bin=facts.bin,
        last4=facts.last4,
        card_length=facts.length,
        brand=facts.brand,
        card_type=facts.card_type,
        exp_month=month,
        exp_year=year,
        security_code_length=len(cvv),
        luhn_valid=facts.luhn_valid,
        email=email,
        scenario=cards.culqi_scenario(number),
        client_ip=client_ip[:45],
        metadata=metadata,
        expires_at=now + TOKEN_TTL,
        created_at=now,
    )


def token_get(public_id: str) -> SimToken:
    token = SimToken.objects.filter(gateway=CULQI, public_id=public_id).first()
    if token is None:
        raise objects.not_found("el token", public_id)
    return token


def _usable_token(public_id: Any, param: str) -> SimToken:
    """The token, locked, if it can still be spent (unused, within its 5 minutes)."""
    token = (
        SimToken.objects.select_for_update().filter(gateway=CULQI, public_id=public_id).first()
        if isinstance(public_id, str)
        else None
    )
    if token is None or token.used_at is not None or token.expires_at <= timezone.now():
        raise objects.parameter_error(param, SPENT_SOURCE_MESSAGE)
    return token


# --- Charges ------------------------------------------------------------------------------------


def _new_charge(
    *,
    scenario: str,
    amount: int,
    currency: str,
    email: str,
    description: str,
    metadata: dict,
    capture: bool,
    installments: int,
    token: SimToken | None,
    card: SimCard | None,
    antifraud: dict | None = None,
) -> SimCharge:
    now = timezone.now()
    declined = scenario not in (cards.APPROVE, cards.REVIEW_3DS)
    captured = capture and not declined
    details: dict[str, Any] = {
        "installments": max(installments, 1),
        "fraud_score": f"{wire.numeric_id(2) % 90 + 1}.0",
        "reference_code": wire.alnum(10),
        "authorization_code": wire.alnum(6),
    }
    if antifraud:
        details["antifraud_details"] = {
            "first_name": antifraud.get("first_name"),
            "last_name": antifraud.get("last_name"),
            "address": antifraud.get("address"),
            "address_city": antifraud.get("address_city"),
            "country_code": antifraud.get("country_code"),
            "phone": antifraud.get("phone_number") or antifraud.get("phone"),
            "object": "client",
        }
    charge = SimCharge(
        gateway=CULQI,
        public_id=wire.culqi_id("chr"),
        status="declined" if declined else ("captured" if captured else "authorized"),
        status_detail=scenario if declined else "",
        amount=amount,
        currency=currency,
        email=email,
        description=description,
        metadata=metadata,
        capture=capture,
        captured=captured,
        token=token,
        card=card,
        customer=card.customer if card else None,
        details=details,
        created_at=now,
        approved_at=None if declined else now,
        captured_at=now if captured else None,
        updated_at=now,
    )
    charge.payload = objects.charge_object(charge, capture_date_pending=True)
    charge.save()
    event = "charge.creation.failed" if declined else "charge.creation.succeeded"
    webhooks.culqi_event(event, objects.charge_event_data(charge))
    return charge


def charge_create(*, body: dict) -> Outcome:
    """POST /v2/charges. The outcome comes from the card number behind the token or saved card (§14)."""
    amount = _amount(body, "amount", *CHARGE_LIMITS)
    currency = _currency(body)
    email = _email(body)
    source_id = body.get("source_id")
    if not isinstance(source_id, str) or not source_id:
        raise _invalid("source_id")
    capture = _bool(body, "capture", True)
    description = _text(body, "description", 5, 80, required=False)
    installments = body.get("installments", 0)
    if isinstance(installments, bool) or not isinstance(installments, int) or not 0 <= installments <= 48:
        raise _invalid("installments")
    metadata = _metadata(body)
    antifraud = body.get("antifraud_details") if isinstance(body.get("antifraud_details"), dict) else None
    authenticated = isinstance(body.get("authentication_3DS"), dict) and bool(body["authentication_3DS"])

    with transaction.atomic():
        token, card = None, None
        if source_id.startswith("tkn_"):
            token = _usable_token(source_id, "source_id")
            scenario, card_type = token.scenario, token.card_type
        elif source_id.startswith("crd_"):
            card = SimCard.objects.filter(gateway=CULQI, public_id=source_id, deleted=False).first()
            if card is None:
                raise objects.parameter_error("source_id", "La tarjeta enviada en 'source_id' no existe.")
            scenario, card_type = card.scenario, card.card_type
        else:
            raise objects.parameter_error(
                "source_id", "El campo 'source_id' debe ser un token (tkn_) o una tarjeta (crd_)."
            )
        if installments > 1 and (card_type != "credit" or installments not in objects.INSTALLMENTS_ALLOWED):
            raise objects.parameter_error("installments", "El número de cuotas no está permitido para esta tarjeta.")
        if scenario == cards.REVIEW_3DS and not authenticated:
            return Outcome("review")  # no charge, and the token stays usable for the 3DS retry (§7)
        if token is not None:
            token.used_at = timezone.now()
            token.save(update_fields=["used_at"])
        charge = _new_charge(
            scenario=scenario,
            amount=amount,
            currency=currency,
            email=email,
            description=description,
            metadata=metadata,
            capture=capture,
            installments=installments,
            token=token,
            card=card,
            antifraud=antifraud,
        )
    return Outcome("declined" if charge.status == "declined" else "created", charge=charge)


def charge_get(public_id: str) -> SimCharge:
    charge = (
        SimCharge.objects.select_related("token", "card__customer", "card__source_token")
        .filter(gateway=CULQI, public_id=public_id)
        .first()
    )
    if charge is None:
        raise objects.not_found("el cargo", public_id)
    return charge


def _locked_charge(public_id: str) -> SimCharge:
    charge = SimCharge.objects.select_for_update().filter(gateway=CULQI, public_id=public_id).first()
    if charge is None:
        raise objects.not_found("el cargo", public_id)
    return charge


def _save_charge(charge: SimCharge, **render) -> None:
    charge.updated_at = timezone.now()
    charge.payload = objects.charge_object(charge, **render)
    charge.save()


def charge_capture(*, public_id: str) -> SimCharge:
    """POST /v2/charges/{id}/capture: only an authorized, uncaptured, unreleased charge."""
    with transaction.atomic():
        charge = _locked_charge(public_id)
        if charge.status != "authorized":
            reason = {"captured": "ya fue capturado", "declined": "fue denegado", "voided": "fue devuelto"}
            raise objects.error(
                400,
                "parameter_error",
                f"El cargo {public_id} no puede ser capturado: {reason.get(charge.status, 'no está autorizado')}.",
            )
        charge.status, charge.captured, charge.captured_at = "captured", True, timezone.now()
        _save_charge(charge, capture_date_pending=True)
        webhooks.culqi_event("charge.capture.succeeded", objects.charge_event_data(charge))
    return charge


# --- Refunds ------------------------------------------------------------------------------------


def refund_create(*, body: dict) -> SimRefund:
    """POST /v2/refunds. Never more than what is left; a full refund of an uncaptured charge voids it."""
    amount = _amount(body, "amount", 1, 10**12)
    charge_id = body.get("charge_id")
    if not isinstance(charge_id, str) or not charge_id:
        raise _invalid("charge_id")
    reason = body.get("reason")
    if reason not in objects.REFUND_REASONS:
        raise objects.parameter_error(
            "reason", "El campo 'reason' es inválido, debe ser duplicado, fraudulento o solicitud_comprador."
        )
    metadata = _metadata(body)
    with transaction.atomic():
        charge = SimCharge.objects.select_for_update().filter(gateway=CULQI, public_id=charge_id).first()
        if charge is None:
            raise objects.parameter_error("charge_id", f"El cargo {charge_id} no existe.")
        if charge.status in ("declined", "voided"):
            raise objects.parameter_error("charge_id", f"El cargo {charge_id} no puede ser devuelto.")
        if amount > charge.remaining:
            raise objects.parameter_error(
                "amount", f"El monto a devolver ({amount}) es mayor al monto disponible del cargo ({charge.remaining})."
            )
        now = timezone.now()
        refund = SimRefund.objects.create(
            gateway=CULQI,
            public_id=wire.culqi_id("ref"),
            charge=charge,
            amount=amount,
            reason=reason,
            metadata=metadata,
            created_at=now,
        )
        charge.amount_refunded += amount
        operations = list(charge.details.get("operations") or [])
        operations.append(
            {
                "type": "devolución",
                "id": refund.public_id,
                "creation_date": wire.epoch_ms(now, whole_seconds=True),
                "amount": amount,
                "operation_id": wire.alnum(10),
            }
        )
        charge.details = {**charge.details, "operations": operations}
        if charge.status == "authorized" and charge.remaining == 0:
            charge.status = "voided"  # the hold is released (§5.3 "Devuelta")
        _save_charge(charge)
        webhooks.culqi_event("refund.creation.succeeded", objects.refund_event_data(refund))
    return refund


def refund_get(public_id: str) -> SimRefund:
    refund = SimRefund.objects.select_related("charge").filter(gateway=CULQI, public_id=public_id).first()
    if refund is None:
        raise objects.not_found("la devolución", public_id)
    return refund


# --- Customers and cards ------------------------------------------------------------------------


def customer_create(*, body: dict) -> SimCustomer:
    first_name = _text(body, "first_name", 2, 50)
    last_name = _text(body, "last_name", 2, 50)
    email = _email(body)
    address = _text(body, "address", 5, 100)
    city = _text(body, "address_city", 2, 30)
    country = body.get("country_code")
    if not isinstance(country, str) or not re.fullmatch(r"[A-Z]{2}", country):
        raise _invalid("country_code")
    phone = body.get("phone_number")
    if not isinstance(phone, str) or not 5 <= len(phone) <= 15:
        raise _invalid("phone_number")
    return SimCustomer.objects.create(
        gateway=CULQI,
        public_id=wire.culqi_id("cus"),
        email=email,
        first_name=first_name,
        last_name=last_name,
        details={"address": address, "address_city": city, "country_code": country, "phone_number": phone},
        metadata=_metadata(body),
        created_at=timezone.now(),
    )


def customer_get(public_id: str) -> SimCustomer:
    customer = SimCustomer.objects.filter(gateway=CULQI, public_id=public_id, deleted=False).first()
    if customer is None:
        raise objects.not_found("el cliente", public_id)
    return customer


def customer_delete(public_id: str) -> SimCustomer:
    customer = customer_get(public_id)
    customer.deleted = True
    customer.save(update_fields=["deleted", "updated_at"])
    return customer


def card_create(*, body: dict) -> Outcome:
    """POST /v2/cards. With `validate` (default true) the card number's scenario decides: a decline is a
    stored "Validacion de tarjeta" charge and HTTP 400 (§9); a 3DS card answers REVIEW."""
    customer_id, token_id = body.get("customer_id"), body.get("token_id")
    if not isinstance(customer_id, str) or not customer_id:
        raise _invalid("customer_id")
    if not isinstance(token_id, str) or not token_id:
        raise _invalid("token_id")
    validate = _bool(body, "validate", True)
    metadata = _metadata(body)
    authenticated = isinstance(body.get("authentication_3DS"), dict) and bool(body["authentication_3DS"])
    with transaction.atomic():
        customer = SimCustomer.objects.filter(gateway=CULQI, public_id=customer_id, deleted=False).first()
        if customer is None:
            raise objects.parameter_error("customer_id", f"El cliente {customer_id} no existe.")
        token = _usable_token(token_id, "token_id")
        if validate and token.scenario == cards.REVIEW_3DS and not authenticated:
            return Outcome("review")
        token.used_at = timezone.now()
        token.save(update_fields=["used_at"])
        if validate and token.scenario not in (cards.APPROVE, cards.REVIEW_3DS):
            charge = _new_charge(
                scenario=token.scenario,
                amount=CARD_VALIDATION_AMOUNT,
                currency="PEN",
                email=token.email or customer.email,
                description="Validacion de tarjeta",
                metadata={},
                capture=True,
                installments=0,
                token=token,
                card=None,
            )
            return Outcome("declined", charge=charge)
        now = timezone.now()
        card = SimCard.objects.create(
            gateway=CULQI,
            public_id=wire.culqi_id("crd"),
            customer=customer,
            source_token=token,
            bin=token.bin,
            last4=token.last4,
            brand=token.brand,
            card_type=token.card_type,
            exp_month=token.exp_month,
            exp_year=token.exp_year,
            scenario=token.scenario,
            metadata=metadata,
            created_at=now,
        )
        webhooks.culqi_event("card.creation.succeeded", objects.card_object(card))
    return Outcome("created", card=card)


def card_get(public_id: str) -> SimCard:
    card = (
        SimCard.objects.select_related("customer", "source_token")
        .filter(gateway=CULQI, public_id=public_id, deleted=False)
        .first()
    )
    if card is None:
        raise objects.not_found("la tarjeta", public_id)
    return card


def card_delete(public_id: str) -> SimCard:
    card = card_get(public_id)
    card.deleted = True
    card.save(update_fields=["deleted", "updated_at"])
    return card


# --- Orders and the hosted checkout -------------------------------------------------------------


def _client_details(body: dict) -> dict[str, str]:
    details = body.get("client_details")
    if not isinstance(details, dict):
        raise _invalid("client_details")
    for field in ("first_name", "last_name", "phone_number"):
        if not isinstance(details.get(field), str) or not details[field].strip():
            raise _invalid(f"client_details.{field}")
    _email(details, "email")
    return {field: details[field] for field in ("first_name", "last_name", "email", "phone_number")}


def order_create(*, body: dict) -> SimCheckout:
    """POST /v2/orders (§8): `expiration_date` in epoch seconds; `order_number` unique per merchant."""
    amount = _amount(body, "amount", *ORDER_LIMITS)
    currency = _currency(body)
    description = _text(body, "description", 5, 80)
    order_number = _text(body, "order_number", 1, 36)
    expiration = body.get("expiration_date")
    now = timezone.now()
    if isinstance(expiration, str) and expiration.isdigit():
        expiration = int(expiration)
    if isinstance(expiration, bool) or not isinstance(expiration, int) or wire.from_epoch(expiration) <= now:
        raise objects.parameter_error(
            "expiration_date", "El campo 'expiration_date' es inválido, debe ser una fecha futura (epoch en segundos)."
        )
    client = _client_details(body)
    confirm = _bool(body, "confirm", False)
    metadata = _metadata(body)
    details: dict[str, Any] = {"client_details": client}
    if confirm:
        details["payment_code"] = str(wire.numeric_id(8))
    try:
        with transaction.atomic():
            order = SimCheckout.objects.create(
                gateway=CULQI,
                public_id=wire.culqi_id("ord"),
                order_number=order_number,
                state="pending" if confirm else "created",
                amount=amount,
                currency=currency,
                description=description,
                email=client["email"],
                metadata=metadata,
                details=details,
                expires_at=wire.from_epoch(expiration),
                created_at=now,
                updated_at=now,
            )
            webhooks.culqi_event("order.creation.succeeded", objects.order_object(order))
    except IntegrityError:
        raise objects.parameter_error("order_number", f"Ya existe una orden con el número {order_number}.") from None
    return order


def order_get(public_id: str) -> SimCheckout:
    order = SimCheckout.objects.filter(gateway=CULQI, public_id=public_id).first()
    if order is None:
        raise objects.not_found("la orden", public_id)
    return order


def order_confirm(public_id: str) -> SimCheckout:
    with transaction.atomic():
        order = SimCheckout.objects.select_for_update().filter(gateway=CULQI, public_id=public_id).first()
        if order is None:
            raise objects.not_found("la orden", public_id)
        if objects.order_state(order) != "created":
            raise objects.parameter_error("order_id", f"La orden {public_id} no puede ser confirmada.")
        order.state = "pending"
        order.details = {**order.details, "payment_code": str(wire.numeric_id(8))}
        order.updated_at = timezone.now()
        order.save()
        webhooks.culqi_event("order.status.changed", objects.order_object(order))
    return order


def order_delete(public_id: str) -> SimCheckout:
    """DELETE /v2/orders/{id} (§8): only a `created` or `pending` order; it becomes `deleted` (204).

    Any other state (paid, expired, deleted already) is refused with a 400 `parameter_error`, as Culqi
    deletes only orders that can still be paid.
    """
    with transaction.atomic():
        order = SimCheckout.objects.select_for_update().filter(gateway=CULQI, public_id=public_id).first()
        if order is None:
            raise objects.not_found("la orden", public_id)
        state = objects.order_state(order)
        if state not in ("created", "pending"):
            raise objects.parameter_error(
                "order_id", f"La orden {public_id} no puede ser eliminada porque su estado es {state}."
            )
        order.state = "deleted"
        order.updated_at = timezone.now()
        order.save(update_fields=["state", "updated_at"])
        webhooks.culqi_event("order.status.changed", objects.order_object(order))
    return order


class CheckoutClosed(Exception):
    """The order can no longer be paid (expired or deleted)."""


def checkout_pay(*, order_id: str, choice: str, client_ip: str = "") -> tuple[SimCheckout, SimCharge | None]:
    """The person paid on the hosted page with the test card they picked.

    The charge carries the order's metadata (so `smartpay_payment_id`). An approved charge marks the
    order paid and sends `order.status.changed`; paying a paid order again changes nothing.
    """
    number, cvv = cards.CULQI_CHECKOUT_CARDS[choice]
    with transaction.atomic():
        order = SimCheckout.objects.select_for_update().filter(gateway=CULQI, public_id=order_id).first()
        if order is None:
            raise objects.not_found("la orden", order_id)
        if order.state == "paid":
            return order, order.charge
        if objects.order_state(order) not in ("created", "pending"):
            raise CheckoutClosed(objects.order_state(order))
        now = timezone.localtime()
        token = token_create(
            body={
                "card_number": number,
                "cvv": cvv,
                "expiration_month": "12",
                "expiration_year": str(now.year + 4),
                "email": order.email,
            },
            client_ip=client_ip,
        )
        outcome = charge_create(
            body={
                "amount": order.amount,
                "currency_code": order.currency,
                "email": order.email,
                "source_id": token.public_id,
                "capture": True,
                "description": order.description[:80],
                "metadata": order.metadata,
            }
        )
        order.charge = outcome.charge
        order.updated_at = timezone.now()
        if outcome.kind == "created":
            order.state, order.paid_at = "paid", order.updated_at
        order.save()
        if outcome.kind == "created":
            webhooks.culqi_event("order.status.changed", objects.order_object(order))
    return order, outcome.charge
