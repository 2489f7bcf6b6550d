"""Saved cards: created at the gateway from a single-use token; we keep only ids, brand, last4, expiry."""

from django.db import IntegrityError, transaction
from django.utils import timezone

from payments.exceptions import CardNotSaved, CustomerEmailRequired, GatewayTimeout, GatewayUnavailableError
from payments.gateways.base import (
    GatewayError,
    GatewayOutcomeUnknown,
    GatewayUnavailable,
    SaveCardRequest,
    SavedCardRef,
)
from payments.gateways.registry import get_adapter
from payments.models import Customer, GatewayCard, GatewayCustomer, PaymentMethod


def payment_method_save(*, customer: Customer, gateway: str, token: str) -> PaymentMethod:
    if not customer.email:
        raise CustomerEmailRequired("Both gateways need the customer's email to save a card; set it first.")
    known = GatewayCustomer.objects.filter(customer=customer, gateway=gateway).first()
    try:
        saved = get_adapter(gateway).save_card(
            SaveCardRequest(
                token=token,
                email=customer.email,
                reference=customer.id,
                name=customer.name,
                phone=customer.phone,
                gateway_customer_id=known.gateway_customer_id if known else None,
            )
        )
    except GatewayUnavailable as error:
        raise GatewayUnavailableError(
            f"{gateway} is unavailable; the card was not saved.",
            headers={"Retry-After": str(int(error.retry_after or 30))},
        ) from None
    except GatewayOutcomeUnknown:
        # The request left and no answer came: the card may be saved at the gateway, so "not saved"
        # would be a guess. Saving it again takes no money (at most a card validation, given back).
        raise GatewayTimeout(
            f"{gateway} did not answer in time; the card may or may not have been saved there. "
            "Try again with the same token or a new one."
        ) from None
    except GatewayError as error:
        raise CardNotSaved(error.message, gateway_code=error.gateway_code) from None

    with transaction.atomic():
        if known is None:
            try:
                with transaction.atomic():
                    GatewayCustomer.objects.create(
                        customer=customer, gateway=gateway, gateway_customer_id=saved.gateway_customer_id
                    )
            except IntegrityError:
                pass  # saved concurrently; the gateway reused or created one, either way it is recorded
        method = PaymentMethod.objects.create(
            client_app=customer.client_app,
            customer=customer,
            brand=saved.card.brand,
            last4=saved.card.last4,
            exp_month=saved.card.exp_month,
            exp_year=saved.card.exp_year,
        )
        GatewayCard.objects.create(
            payment_method=method,
            gateway=gateway,
            gateway_customer_id=saved.gateway_customer_id,
            gateway_card_id=saved.gateway_card_id,
        )
    return method


def payment_method_delete(*, payment_method: PaymentMethod) -> PaymentMethod:
    """Delete the card at every gateway that holds it, then mark it deleted (payments still refer to it)."""
    for card in payment_method.gateway_cards.all():
        try:
            get_adapter(card.gateway).delete_card(
                SavedCardRef(gateway_customer_id=card.gateway_customer_id, gateway_card_id=card.gateway_card_id)
            )
        except GatewayUnavailable as error:
            raise GatewayUnavailableError(
                f"{card.gateway} is unavailable; the card was not deleted.",
                headers={"Retry-After": str(int(error.retry_after or 30))},
            ) from None
    PaymentMethod.objects.filter(pk=payment_method.pk, deleted_at__isnull=True).update(deleted_at=timezone.now())
    payment_method.refresh_from_db()
    return payment_method
