"""Hosted checkout sessions at the gateway (a Culqi order, a Mercado Pago Checkout Pro preference).

A hosted checkout stays `pending` while its gateway session can still be paid; a declined try on
the page is not the end of it (api-contract.md, Payments). So before SmartPay moves such a payment
to `canceled` or `failed` it must close the session at the gateway, or the payer could still pay a
payment SmartPay calls over.
"""

from __future__ import annotations

import logging

from django.db import transaction

from payments.gateways.base import CheckoutAlreadyPaid, GatewayError
from payments.gateways.registry import get_adapter
from payments.models import Payment

logger = logging.getLogger("smartpay.payments")


def checkout_expire_at_gateway(payment: Payment) -> None:
    """Close `payment`'s hosted checkout session at its gateway, so that it can no longer be paid.

    Call it before moving a hosted-checkout payment to `canceled` (`payment_cancel`) or to `failed`
    because it expired (settlement), **outside any database transaction and without the payment's
    row lock** (it makes HTTP calls); then lock the row and record the outcome:

    * returns None: the session is closed now. It was open, or already expired, deleted or unknown
      to the gateway (all success). The payment may be canceled / failed;
    * raises `CheckoutAlreadyPaid` (a `GatewayInvalidRequest`): the payer paid first (or a payment
      on the session is in process). Do not cancel: record that payment instead. `error.charge` is
      the gateway's `ChargeResult` when the adapter has it (Mercado Pago); otherwise (Culqi) look it
      up with `payment_query_gateway(payment)` (`find_by_reference`);
    * raises any other `GatewayError`: the session may still be open. `GatewayUnavailable`: nothing
      was done; `GatewayOutcomeUnknown`: maybe closed. Either way leave the payment as it is and
      call again later: it is harmless to repeat.

    A payment without a gateway checkout session (`gateway_checkout_id` empty) has nothing that
    could be paid: returns at once, without calling anyone.

        try:
            checkout_expire_at_gateway(payment)
        except CheckoutAlreadyPaid as paid:
            ...  # record paid.charge or payment_query_gateway(payment); refuse the cancel (409)
        except GatewayError as error:
            ...  # 503 / retry later; the payment stays pending
        else:
            ...  # lock the row, move to canceled / failed
    """
    if not payment.gateway_checkout_id:
        return
    if _in_transaction():
        raise RuntimeError("checkout_expire_at_gateway calls the gateway: call it outside any database transaction")
    try:
        get_adapter(payment.gateway).expire_checkout(payment.gateway_checkout_id)
    except CheckoutAlreadyPaid:
        logger.info(
            "checkout already paid at the gateway",
            extra={"payment": payment.pk, "gateway": payment.gateway, "checkout": payment.gateway_checkout_id},
        )
        raise
    except GatewayError as error:
        logger.warning(
            "checkout not expired at the gateway",
            extra={"payment": payment.pk, "gateway": payment.gateway, "error_code": error.code},
        )
        raise
    logger.info(
        "checkout expired at the gateway",
        extra={"payment": payment.pk, "gateway": payment.gateway, "checkout": payment.gateway_checkout_id},
    )


def _in_transaction() -> bool:
    """An open transaction.atomic() of our own (the ones a test case wraps around each test do not count)."""
    connection = transaction.get_connection()
    return any(not getattr(block, "_from_testcase", False) for block in connection.atomic_blocks)
