from payments.models.clients import ApiKey, ClientApp, generate_api_key, hash_api_key
from payments.models.customers import Customer
from payments.models.payments import (
    GatewayCard,
    GatewayCustomer,
    IdempotencyRecord,
    Payment,
    PaymentAttempt,
    PaymentMethod,
    Refund,
)

__all__ = [
    "ApiKey",
    "ClientApp",
    "Customer",
    "GatewayCard",
    "GatewayCustomer",
    "IdempotencyRecord",
    "Payment",
    "PaymentAttempt",
    "PaymentMethod",
    "Refund",
    "generate_api_key",
    "hash_api_key",
]
