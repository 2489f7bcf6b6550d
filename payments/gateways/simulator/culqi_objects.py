"""Culqi's objects and errors exactly as its API v2 writes them (culqi.md §4-§12, recorded traffic).

Field order follows the recorded responses. Timestamps: epoch milliseconds for tokens, charges,
refunds, customers, cards and events (tokens/charges/refunds rounded to the second, as observed);
epoch seconds for orders.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.utils import timezone

from payments.gateways.simulator import wire
from payments.gateways.simulator.models import SimCard, SimCharge, SimCheckout, SimCustomer, SimRefund, SimToken

BRAND_NAMES = {"visa": "Visa", "mastercard": "MasterCard", "amex": "Amex", "diners": "Diners", "unknown": ""}
CARD_TYPES = {"credit": "credito", "debit": "debito"}
INSTALLMENTS_ALLOWED = [2, 4, 6, 8, 10, 12, 3, 5, 7, 9, 24, 48]
VARIABLE_FEE = wire.VARIABLE_FEE

SUCCESS_OUTCOME = {
    "type": "venta_exitosa",
    "code": "AUT0000",
    "merchant_message": "La operación de venta ha sido autorizada exitosamente",
    "user_message": "Su compra ha sido exitosa.",
}

_DENIED = (
    "La operación ha sido denegada por la entidad emisora de tu tarjeta. Contáctate con el banco para conocer "
    "el motivo de la denegación o intenta nuevamente con otra tarjeta."
)
# decline_code → (merchant_message, user_message), as recorded from Culqi's sandbox (§11, S3).
DECLINE_MESSAGES: dict[str, tuple[str, str]] = {
    "insufficient_funds": (
        "Fondos insuficientes. La tarjeta no tiene fondos suficientes para realizar la compra.",
        "Su tarjeta no tiene fondos suficientes. Para realizar la compra, verifica tus fondos disponibles con el "
        "banco emisor o inténta nuevamente con otra tarjeta.",
    ),
    "stolen_card": (
        "Tarjeta robada. La tarjeta fue bloqueada y reportada al banco emisor como una tarjeta robada.",
        # Sic: the sandbox answers stolen_card with an "expired card" user message (§11).
        "Su tarjeta está vencida. Verifica la fecha de vencimiento de tu tarjeta e ingrésalos correctamente. Si es "
        "denegada nuevamente, contáctate con el banco emisor de tu tarjeta.",
    ),
    "lost_card": (
        "Tarjeta perdida. La tarjeta fue bloqueada y reportada al banco emisor como una tarjeta perdida.",
        "La operación ha sido denegada por la entidad emisora de tu tarjeta. Contáctate con el banco para conocer "
        "el motivo de la denegación.",
    ),
    "contact_issuer": (
        "Contactar emisor. La operación fue denegada por el banco emisor de la tarjeta y el cliente necesita "
        "contactarse con la entidad para conocer el motivo.",
        _DENIED,
    ),
    "incorrect_cvv": (
        "CVV incorrecto. El código de seguridad (CVV2, CVC2, CID) de la tarjeta es incorrecto.",
        "El código de seguridad (CVV) es incorrecto. Verifica tu tarjeta e ingresa los dígitos correctamente. Si "
        "es denegada nuevamente, contáctate con el banco emisor de tu tarjeta. ",
    ),
    "issuer_not_available": (
        "Emisor no disponible. El banco que emitió la tarjeta no responde. El cliente debe realizar el pago "
        "nuevamente.",
        "El banco emisor de tu tarjeta no responde y la operación no pudo ser completada. Vuelve a realizar el "
        "pago en unos minutos o intenta nuevamente con otra tarjeta.",
    ),
    "issuer_decline_operation": (
        "Operación denegada. La operación fue denegada por el banco emisor de la tarjeta por una razón desconocida.",
        _DENIED,
    ),
    "invalid_card": (
        "Tarjeta inválida. La tarjeta utilizada tiene restricciones para este tipo de compras. El cliente necesita "
        "contactarse con el banco emisor para conocer el motivo de la denegación.",
        _DENIED,
    ),
    "processing_error": (
        "Error de procesamiento. Ocurrió un error mientras procesabamos la compra. Contáctate con "
        "culqi.com/soporte para que te demos una solución.",
        "Ocurrió un error mientras procesabamos tu compra. Contáctate con culqi.com/soporte para que te demos "
        "una solución.",
    ),
    "fraudulent": (
        "Operación fraudulenta. El banco emisor de la tarjeta sospecha que se trata de una compra fraudulenta.",
        _DENIED,
    ),
}

REFUND_REASONS = {
    "solicitud_comprador": "Devolución solicitada por el comercio",
    "duplicado": "Duplicado",
    "fraudulento": "Fraudulento",
}

REVIEW_BODY = {
    "action_code": "REVIEW",
    "user_message": "Necesitamos validar tu identidad con tu banco para completar la compra.",
}


# --- Errors -------------------------------------------------------------------------------------


def error(status: int, error_type: str, merchant_message: str, user_message: str | None = None, **extra: Any):
    body: dict[str, Any] = {"object": "error", "type": error_type}
    body.update({key: value for key, value in extra.items() if value is not None})
    body["merchant_message"] = merchant_message
    body["user_message"] = user_message or merchant_message
    return wire.SimulatorError(status, body, headers=response_headers())


def parameter_error(param: str, message: str, status: int = 400):
    return error(status, "parameter_error", message, param=param)


def invalid_request(message: str = "El cuerpo de la petición no es un JSON válido."):
    return error(400, "invalid_request_error", message)


def authentication_error():
    return error(
        401,
        "authentication_error",
        "Error de autenticación. La llave usada no es válida: revisa tu llave pública o secreta.",
        "Ocurrió un problema, inténtalo nuevamente.",
        code="invalid_key",
    )


def not_found(what: str, public_id: str):
    return error(404, "resource_error", f"No se encontró {what} con el id {public_id}.")


def card_declined(decline_code: str, charge_id: str, status: int = 402):
    merchant_message, user_message = DECLINE_MESSAGES.get(decline_code, DECLINE_MESSAGES["issuer_decline_operation"])
    body = {
        "object": "error",
        "type": "card_error",
        "charge_id": charge_id,
        "code": "card_declined",
        "decline_code": decline_code,
        "merchant_message": merchant_message,
        "user_message": user_message,
    }
    return body, status


def response_headers() -> dict[str, str]:
    return {
        "x-culqi-environment": "test",
        "x-culqi-tracking-id": str(wire.numeric_id(8)),
        "x-culqi-version": "2.0.0",
    }


# --- Objects ------------------------------------------------------------------------------------


def _iin(token: SimToken | SimCard) -> dict[str, Any]:
    credit = token.card_type == "credit"
    is_visa = token.brand == "visa"
    return {
        "object": "iin",
        "bin": token.bin,
        "card_brand": BRAND_NAMES.get(token.brand, ""),
        "card_type": CARD_TYPES.get(token.card_type, "credito"),
        "card_category": "Clásica" if is_visa and credit else None,
        "issuer": {
            "name": "BBVA" if is_visa else "",
            "country": "PERU",
            "country_code": "PE",
            "website": None,
            "phone_number": None,
        },
        "installments_allowed": list(INSTALLMENTS_ALLOWED) if credit else [],
    }


def token_object(token: SimToken) -> dict[str, Any]:
    return {
        "object": "token",
        "id": token.public_id,
        "type": "card",
        "creation_date": wire.epoch_ms(token.created_at, whole_seconds=True),
        "email": token.email,
        "card_number": token.bin + "*" * (token.card_length - 10) + token.last4,
        "last_four": token.last4,
        "active": True,
        "iin": _iin(token),
        "client": {
            "ip": token.client_ip or None,
            "ip_country": "Peru",
            "ip_country_code": "PE",
            "browser": "UNKNOWN",
            "device_fingerprint": None,
            "device_type": "Escritorio",
        },
        "metadata": token.metadata,
    }


def card_object(card: SimCard) -> dict[str, Any]:
    return {
        "object": "card",
        "id": card.public_id,
        "active": not card.deleted,
        "creation_date": wire.epoch_ms(card.created_at),
        "customer_id": card.customer.public_id,
        "source": token_object(card.source_token),
        "metadata": card.metadata,
    }


def customer_object(customer: SimCustomer, *, with_cards: bool = False) -> dict[str, Any]:
    details = customer.details
    body = {
        "object": "customer",
        "id": customer.public_id,
        "creation_date": wire.epoch_ms(customer.created_at),
        "email": customer.email,
        "antifraud_details": {
            "first_name": customer.first_name,
            "last_name": customer.last_name,
            "address": details.get("address"),
            "address_city": details.get("address_city"),
            "country_code": details.get("country_code"),
            "phone": details.get("phone_number"),
            "object": "client",
        },
        "metadata": customer.metadata,
    }
    if with_cards:
        body["cards"] = [card_object(card) for card in customer.cards.filter(deleted=False).order_by("pk")]
    return body


def _source(charge: SimCharge) -> dict[str, Any]:
    if charge.card_id is not None:
        return card_object(charge.card)
    return token_object(charge.token)


def _outcome(charge: SimCharge) -> dict[str, Any]:
    if charge.status == "declined":
        merchant_message, user_message = DECLINE_MESSAGES.get(
            charge.status_detail, DECLINE_MESSAGES["issuer_decline_operation"]
        )
        return {
            "type": "card_error",
            "code": "card_declined",
            "decline_code": charge.status_detail,
            "merchant_message": merchant_message,
            "user_message": user_message,
        }
    return dict(SUCCESS_OUTCOME)


def charge_object(charge: SimCharge, *, capture_date_pending: bool = False) -> dict[str, Any]:
    """The charge object (§5.2). `capture_date` is filled asynchronously at Culqi: null in the answer to
    the create/capture call itself, set on later reads."""
    declined = charge.status == "declined"
    details = charge.details
    installments = details.get("installments", 1)
    fee = wire.sandbox_fees(charge.amount)
    body: dict[str, Any] = {
        "duplicated": False,
        "object": "charge",
        "id": charge.public_id,
        "creation_date": wire.epoch_ms(charge.created_at, whole_seconds=True),
        "amount": charge.amount,
        "amount_refunded": charge.amount_refunded,
        "current_amount": charge.remaining,
        "installments": 0 if declined else installments,
        "installments_amount": None if declined else charge.amount // max(installments, 1),
        "currency_code": charge.currency,
        "email": charge.email,
        "description": charge.description or None,
        "source": _source(charge),
        "outcome": _outcome(charge),
        "fraud_score": Decimal(details.get("fraud_score", "6.0")),
    }
    if details.get("antifraud_details"):
        body["antifraud_details"] = details["antifraud_details"]
    body.update(
        {
            "dispute": False,
            "capture": None if declined else charge.captured,
            "reference_code": None if declined else details.get("reference_code"),
            "authorization_code": None if declined else details.get("authorization_code"),
            "metadata": charge.metadata,
            "total_fee": None if declined else fee["total"],
            "fee_details": None
            if declined
            else {
                "fixed_fee": {},
                "variable_fee": {"currency_code": charge.currency, "commision": VARIABLE_FEE, "total": fee["variable"]},
            },
            "total_fee_taxes": None if declined else fee["taxes"],
            "transfer_amount": None if declined else fee["transfer"],
            "paid": False,
            "statement_descriptor": "CULQI*",
            "transfer_id": None,
        }
    )
    if details.get("operations"):
        body["operations"] = details["operations"]
    captured_at = None if capture_date_pending else charge.captured_at
    body["capture_date"] = wire.epoch_ms(captured_at, whole_seconds=True)
    return body


def refund_object(refund: SimRefund) -> dict[str, Any]:
    return {
        "object": "refund",
        "id": refund.public_id,
        "charge_id": refund.charge.public_id,
        "creation_date": wire.epoch_ms(refund.created_at, whole_seconds=True),
        "amount": refund.amount,
        "reason": REFUND_REASONS.get(refund.reason, refund.reason),
        "metadata": refund.metadata,
    }


def order_state(order: SimCheckout) -> str:
    if order.state in ("created", "pending") and order.expires_at and order.expires_at <= timezone.now():
        return "expired"
    return order.state


def order_object(order: SimCheckout) -> dict[str, Any]:
    paid = order.state == "paid"
    fee = wire.sandbox_fees(order.amount) if paid else None
    return {
        "object": "order",
        "id": order.public_id,
        "amount": order.amount,
        "payment_code": order.details.get("payment_code"),
        "currency_code": order.currency,
        "description": order.description,
        "order_number": order.order_number,
        "state": order_state(order),
        "total_fee": fee["total"] if fee else None,
        "net_amount": fee["transfer"] if fee else None,
        "fee_details": None,
        "creation_date": wire.epoch_s(order.created_at),
        "expiration_date": wire.epoch_s(order.expires_at),
        "updated_at": wire.epoch_s(order.updated_at) if order.updated_at != order.created_at else None,
        "paid_at": wire.epoch_s(order.paid_at),
        "available_on": None,
        "metadata": order.metadata,
    }


# --- Event payloads (the `data` string of a webhook, §12) ---------------------------------------


def _token_event(token: SimToken) -> dict[str, Any]:
    iin = _iin(token)
    return {
        "object": "token",
        "id": token.public_id,
        "type": "card",
        "creationDate": wire.epoch_ms(token.created_at, whole_seconds=True),
        "email": token.email,
        "cardNumber": token.bin + "*" * (token.card_length - 10) + token.last4,
        "lastFourDigits": token.last4,
        "active": True,
        "iin": {
            "object": "iin",
            "value": token.bin,
            "brand": iin["card_brand"],
            "cardType": iin["card_type"],
            "cardCategory": iin["card_category"],
            "issuer": {
                "name": iin["issuer"]["name"],
                "country": iin["issuer"]["country"],
                "countryCode": iin["issuer"]["country_code"],
                "website": None,
                "phone": None,
            },
            "installments": iin["installments_allowed"],
        },
        "tokenClient": {
            "ip": token.client_ip or None,
            "countryIp": "Perú",
            "countryCodeIp": "PE",
            "browser": None,
            "deviceFingerprint": None,
            "device": "Escritorio",
        },
        "metadata": token.metadata,
    }


def charge_event_data(charge: SimCharge) -> dict[str, Any]:
    """A charge as Culqi's charge events carry it: the internal camelCase form (§12, S5 example)."""
    wire_charge = charge_object(charge)
    outcome = wire_charge["outcome"]
    if charge.card_id is not None:
        card = charge.card
        source = {
            "object": "card",
            "id": card.public_id,
            "active": not card.deleted,
            "creationDate": wire.epoch_ms(card.created_at),
            "customerId": card.customer.public_id,
            "source": _token_event(card.source_token),
            "metadata": card.metadata,
        }
    else:
        source = _token_event(charge.token)
    antifraud = charge.details.get("antifraud_details") or None
    client = None
    if antifraud:
        client = {
            "name": antifraud.get("first_name"),
            "lastName": antifraud.get("last_name"),
            "address": antifraud.get("address"),
            "city": antifraud.get("address_city"),
            "country": antifraud.get("country_code"),
            "phone": antifraud.get("phone"),
            "object": "client",
        }
    declined = charge.status == "declined"
    fee = wire.sandbox_fees(charge.amount)
    return {
        "object": "charge",
        "merchant": None,
        "id": charge.public_id,
        "creationDate": wire_charge["creation_date"],
        "originalAmount": charge.amount,
        "refundedAmount": charge.amount_refunded,
        "actualAmount": charge.remaining,
        "installments": wire_charge["installments"],
        "installmentsAmount": wire_charge["installments_amount"],
        "currency": charge.currency,
        "email": charge.email,
        "description": charge.description or None,
        "source": source,
        "outcome": {
            "type": outcome["type"],
            "code": outcome["code"],
            "declineCode": outcome.get("decline_code"),
            "message": outcome["merchant_message"],
            "userMessage": outcome["user_message"],
        },
        "fraudScore": wire_charge["fraud_score"],
        "client": client,
        "dispute": False,
        "capture": wire_charge["capture"],
        "referenceCode": wire_charge["reference_code"],
        "metadata": charge.metadata,
        "fee": None if declined else fee["total"],
        "feeDetails": None
        if declined
        else {
            "fixed_fee": None,
            "variable_fee": {"currency": charge.currency, "commision": VARIABLE_FEE, "total": fee["variable"]},
        },
        "feeTaxes": None if declined else fee["taxes"],
        "transferAmount": None if declined else fee["transfer"],
        "paid": False,
        "statementDescriptor": "CULQI*",
        "transferId": None,
        "operations": charge.details.get("operations") or None,
        "duplicated": False,
    }


def refund_event_data(refund: SimRefund) -> dict[str, Any]:
    """Refund events carry camelCase with `chargeId` (§12)."""
    return {
        "object": "refund",
        "id": refund.public_id,
        "chargeId": refund.charge.public_id,
        "creationDate": wire.epoch_ms(refund.created_at, whole_seconds=True),
        "amount": refund.amount,
        "reason": REFUND_REASONS.get(refund.reason, refund.reason),
        "metadata": refund.metadata,
    }
