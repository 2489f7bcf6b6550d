from django.db import IntegrityError, transaction

from payments.exceptions import CustomerExists
from payments.models import ClientApp, Customer

CUSTOMER_FIELDS = ("external_id", "email", "name", "phone", "metadata")


def customer_create(*, client_app: ClientApp, **fields) -> Customer:
    """Create a customer. `external_id` is unique per client app, enforced by the database."""
    data = {key: value for key, value in fields.items() if key in CUSTOMER_FIELDS}
    try:
        with transaction.atomic():
            return Customer.objects.create(client_app=client_app, **data)
    except IntegrityError:
        raise CustomerExists(
            f"A customer with external_id '{data.get('external_id')}' already exists.",
        ) from None


def customer_update(*, customer: Customer, **fields) -> Customer:
    data = {key: value for key, value in fields.items() if key in CUSTOMER_FIELDS}
    for key, value in data.items():
        setattr(customer, key, value)
    try:
        with transaction.atomic():
            customer.save(update_fields=[*data, "updated_at"])
    except IntegrityError:
        raise CustomerExists(f"A customer with external_id '{data.get('external_id')}' already exists.") from None
    return customer
