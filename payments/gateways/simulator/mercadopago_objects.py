"""Mercado Pago's objects and errors as its API writes them (mercadopago.md §3-§12, SDK mocks).

Amounts are `Decimal` with two places here and JSON numbers on the wire (`58.80`); payment and
refund ids are JSON integers; customers and cards have string ids; dates are
`yyyy-MM-dd'T'HH:mm:ss.SSS-04:00`.
"""

from __future__ import annotations

import base64
import json
import uuid
from datetime import timedelta
from decimal import Decimal
from typing import Any

from payments.gateways.simulator import cards, wire
from payments.gateways.simulator.models import SimCard, SimCharge, SimCheckout, SimCustomer, SimRefund, SimToken

COLLECTOR_ID = 1_234_567_890  # the sandbox seller account (user_id in webhooks)
APPROVED_LIKE = ("approved", "refunded", "charged_back")


# --- Errors -------------------------------------------------------------------------------------


def error(status: int, message: str, error_word: str, causes: list[tuple[Any, str]] | None = None):
    body = {
        "message": message,
        "error": error_word,
        "status": status,
        "cause": [{"code": code, "description": description, "data": None} for code, description in causes or []],
    }
    return wire.SimulatorError(status, body, headers={"x-request-id": wire.alnum(8).lower()})


def bad_request(code: Any, description: str, message: str | None = None):
    return error(400, message or description, "bad_request", [(code, description)])


def unauthorized(message: str):
    return error(401, message, "unauthorized")


def not_found(code: Any, description: str):
    return error(404, description, "not_found", [(code, description)])


PAYMENT_NOT_FOUND = (2000, "Payment not found")


# --- Objects ------------------------------------------------------------------------------------


def _identification(value: dict | None) -> dict[str, Any]:
    value = value or {}
    return {"number": value.get("number"), "type": value.get("type")}


def token_object(token: SimToken) -> dict[str, Any]:
    return {
        "id": token.public_id,
        "public_key": None,
        "card_id": token.card.public_id if token.card_id else None,
        "luhn_validation": token.luhn_valid,
        "status": "used" if token.used_at else "active",
        "date_used": wire.mp_datetime(token.used_at),
        "card_number_length": token.card_length,
        "date_created": wire.mp_datetime(token.created_at),
        "first_six_digits": token.bin,
        "last_four_digits": token.last4,
        "security_code_length": token.security_code_length,
        "expiration_month": token.exp_month,
        "expiration_year": token.exp_year,
        "date_last_updated": wire.mp_datetime(token.used_at or token.created_at),
        "date_due": wire.mp_datetime(token.expires_at),
        "live_mode": False,
        "cardholder": {
            "identification": _identification(token.cardholder_identification),
            "name": token.cardholder_name,
        },
    }


def payment_method_object(method: dict, bin_: str) -> dict[str, Any]:
    """A `/v1/payment_methods/search` result for one card BIN."""
    security = cards.mp_security_code("amex" if method["id"] == "amex" else "other")
    thumbnail = f"https://http2.mlstatic.com/storage/logos-api-admin/{method['id']}.gif"
    return {
        "id": method["id"],
        "name": method["name"],
        "payment_type_id": method["payment_type_id"],
        "status": "active",
        "secure_thumbnail": thumbnail,
        "thumbnail": thumbnail.replace("https://", "http://"),
        "deferred_capture": "supported",
        "settings": [
            {
                "card_number": {"length": 15 if method["id"] == "amex" else 16, "validation": "standard"},
                "bin": {
                    "pattern": f"^({bin_[:4]})",
                    "installments_pattern": f"^({bin_[:4]})",
                    "exclusion_pattern": None,
                },
                "security_code": {**security, "mode": "mandatory"},
            }
        ],
        "additional_info_needed": [
            "cardholder_name",
            "cardholder_identification_type",
            "cardholder_identification_number",
        ],
        "min_allowed_amount": Decimal("1.00"),
        "max_allowed_amount": Decimal("60000.00"),
        "accreditation_time": 2880,
        "financial_institutions": [],
        "processing_modes": ["aggregator"],
        "issuer": dict(method["issuer"]),
    }


def card_object(card: SimCard) -> dict[str, Any]:
    method = cards.mp_payment_method(card.brand, card.card_type) or {}
    token = card.source_token
    return {
        "id": card.public_id,
        "customer_id": card.customer.public_id,
        "expiration_month": card.exp_month,
        "expiration_year": card.exp_year,
        "first_six_digits": card.bin,
        "last_four_digits": card.last4,
        "payment_method": {
            "id": method.get("id"),
            "name": method.get("name"),
            "payment_type_id": method.get("payment_type_id"),
            "thumbnail": None,
            "secure_thumbnail": None,
        },
        "security_code": cards.mp_security_code(card.brand),
        "issuer": method.get("issuer"),
        "cardholder": {
            "name": card.cardholder_name,
            "identification": _identification(token.cardholder_identification),
        },
        "date_created": wire.mp_datetime(card.created_at),
        "date_last_updated": wire.mp_datetime(card.updated_at),
        "user_id": COLLECTOR_ID,
        "live_mode": False,
    }


def customer_object(customer: SimCustomer) -> dict[str, Any]:
    details = customer.details
    return {
        "id": customer.public_id,
        "email": customer.email,
        "first_name": customer.first_name or None,
        "last_name": customer.last_name or None,
        "phone": details.get("phone") or {"area_code": None, "number": None},
        "identification": details.get("identification") or {"type": None, "number": None},
        "address": details.get("address") or {"id": None, "zip_code": None, "street_name": None, "street_number": None},
        "date_registered": details.get("date_registered"),
        "description": details.get("description"),
        "date_created": wire.mp_datetime(customer.created_at),
        "date_last_updated": wire.mp_datetime(customer.updated_at),
        "metadata": customer.metadata,
        "default_card": details.get("default_card"),
        "default_address": None,
        "cards": [card_object(card) for card in customer.cards.filter(deleted=False).order_by("pk")],
        "addresses": [],
        "live_mode": False,
    }


def refund_object(refund: SimRefund) -> dict[str, Any]:
    return {
        "id": int(refund.public_id),
        "payment_id": int(refund.charge.public_id),
        "amount": wire.decimal_amount(refund.amount),
        "metadata": refund.metadata,
        "source": {"id": str(COLLECTOR_ID), "name": "SmartPay Sandbox", "type": "collector"},
        "date_created": wire.mp_datetime(refund.created_at),
        "unique_sequence_number": None,
        "refund_mode": "standard",
        "adjustment_amount": Decimal(0),
        "status": refund.status,
        "reason": refund.reason or None,
        "labels": [],
        "amount_refunded_to_payer": wire.decimal_amount(refund.amount),
        "partition_details": [],
    }


def payment_object(charge: SimCharge) -> dict[str, Any]:
    """The payment object (§3), the same for POST, GET, PUT and search results."""
    details = charge.details
    approved = charge.status in APPROVED_LIKE
    settled = charge.status in APPROVED_LIKE or charge.status == "authorized"
    installments = details.get("installments", 1)
    fee = wire.sandbox_fees(charge.amount)["total"] if approved else 0
    token = charge.token
    payer = details.get("payer", {})
    card_id = charge.card.public_id if charge.card_id else None
    return {
        "id": int(charge.public_id),
        "date_created": wire.mp_datetime(charge.created_at),
        "date_approved": wire.mp_datetime(charge.approved_at),
        "date_last_updated": wire.mp_datetime(charge.updated_at),
        "date_of_expiration": None,
        "money_release_date": wire.mp_datetime(charge.approved_at + timedelta(days=14)) if charge.approved_at else None,
        "money_release_schema": None,
        "operation_type": "regular_payment",
        "issuer_id": details.get("issuer_id"),
        "payment_method_id": details.get("payment_method_id"),
        "payment_type_id": details.get("payment_type_id"),
        "status": charge.status,
        "status_detail": charge.status_detail,
        "currency_id": charge.currency,
        "description": charge.description or None,
        "live_mode": False,
        "sponsor_id": None,
        "authorization_code": details.get("authorization_code") if settled else None,
        "money_release_status": "released" if approved else None,
        "taxes_amount": Decimal(0),
        "counter_currency": None,
        "shipping_amount": Decimal(0),
        "pos_id": None,
        "store_id": None,
        "collector_id": COLLECTOR_ID,
        "payer": {
            "id": charge.customer.public_id if charge.customer_id else None,
            # Mercado Pago returns the payer's email and identification only on approved/refunded payments.
            "email": payer.get("email") if approved else None,
            "identification": _identification(payer.get("identification")) if approved else None,
            "type": payer.get("type"),
            "first_name": None,
            "last_name": None,
            "entity_type": None,
            "operator_id": None,
        },
        "metadata": charge.metadata,
        "additional_info": details.get("additional_info") or {},
        "external_reference": charge.external_reference or None,
        "transaction_amount": wire.decimal_amount(charge.amount),
        "transaction_amount_refunded": wire.decimal_amount(charge.amount_refunded),
        "coupon_amount": Decimal(0),
        "differential_pricing_id": None,
        "deduction_schema": None,
        "installments": installments,
        "transaction_details": {
            "payment_method_reference_id": None,
            "acquirer_reference": None,
            "net_received_amount": wire.decimal_amount(charge.amount - fee) if approved else Decimal(0),
            "total_paid_amount": wire.decimal_amount(charge.amount),
            "overpaid_amount": Decimal(0),
            "external_resource_url": None,
            "installment_amount": wire.decimal_amount(charge.amount // max(installments, 1)),
            "financial_institution": None,
            "payable_deferral_period": None,
        },
        "fee_details": [{"type": "mercadopago_fee", "amount": wire.decimal_amount(fee), "fee_payer": "collector"}]
        if approved
        else [],
        "charges_details": [],
        "captured": charge.captured,
        "binary_mode": details.get("binary_mode", False),
        "call_for_authorize_id": None,
        "statement_descriptor": details.get("statement_descriptor"),
        "card": {
            "id": card_id,
            "first_six_digits": token.bin,
            "last_four_digits": token.last4,
            "expiration_month": token.exp_month,
            "expiration_year": token.exp_year,
            "date_created": wire.mp_datetime(token.created_at),
            "date_last_updated": wire.mp_datetime(token.created_at),
            "cardholder": {
                "name": token.cardholder_name,
                "identification": _identification(token.cardholder_identification),
            },
        }
        if token
        else {},
        "notification_url": details.get("notification_url"),
        "refunds": [refund_object(refund) for refund in charge.refunds.order_by("pk")] if charge.pk else [],
        "processing_mode": "aggregator",
        "merchant_account_id": None,
        "merchant_number": None,
        "acquirer_reconciliation": [],
        "point_of_interaction": {"type": "UNSPECIFIED"},
        **({"three_ds_info": three_ds_info(charge)} if charge.status_detail == "pending_challenge" else {}),
    }


def three_ds_info(charge: SimCharge) -> dict[str, str]:
    """Where the payer's browser takes the challenge: POST `creq` to `external_resource_url` (in an iframe).

    The URL is the simulator's challenge page (`mercadopago_challenge`); the CReq is the EMV 3-D Secure
    challenge request, base64url JSON, derived from the payment id so that the page can check it.
    """
    from django.conf import settings
    from django.urls import reverse

    url = settings.PUBLIC_BASE_URL + reverse("simulator:mercadopago-challenge", args=[charge.public_id])
    return {"external_resource_url": url, "creq": challenge_request(charge.public_id)}


def challenge_request(public_id: str) -> str:
    message = {
        "messageType": "CReq",
        "messageVersion": "2.1.0",
        "threeDSServerTransID": str(uuid.uuid5(uuid.NAMESPACE_URL, f"3ds-server:{public_id}")),
        "acsTransID": str(uuid.uuid5(uuid.NAMESPACE_URL, f"acs:{public_id}")),
        "challengeWindowSize": "05",
    }
    return base64.urlsafe_b64encode(json.dumps(message, separators=(",", ":")).encode()).decode().rstrip("=")


def preference_object(preference: SimCheckout, init_point: str) -> dict[str, Any]:
    details = preference.details
    items = []
    for item in details.get("items", []):
        items.append({**item, "unit_price": Decimal(str(item["unit_price"])).quantize(wire.CENT)})
    return {
        "id": preference.public_id,
        "init_point": init_point,
        "sandbox_init_point": init_point,
        "items": items,
        "payer": details.get("payer") or {},
        "payment_methods": details.get("payment_methods") or {"excluded_payment_types": [], "installments": None},
        "back_urls": details.get("back_urls") or {"success": "", "failure": "", "pending": ""},
        "auto_return": details.get("auto_return") or "",
        "notification_url": details.get("notification_url"),
        "external_reference": preference.external_reference,
        "metadata": preference.metadata,
        "statement_descriptor": details.get("statement_descriptor"),
        "binary_mode": details.get("binary_mode", False),
        "expires": details.get("expires", False),
        "expiration_date_from": details.get("expiration_date_from"),
        "expiration_date_to": details.get("expiration_date_to"),
        "date_created": wire.mp_datetime(preference.created_at),
        "last_updated": wire.mp_datetime(preference.updated_at),
        "collector_id": COLLECTOR_ID,
        "client_id": str(COLLECTOR_ID),
        "marketplace": "NONE",
        "marketplace_fee": Decimal(0),
        "operation_type": "regular_payment",
        "additional_info": "",
        "site_id": "MPE",
        "total_amount": wire.decimal_amount(preference.amount),
    }
