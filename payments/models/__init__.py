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
from payments.models.reconciliation import ReconciliationIssue, ReconciliationRecord, ReconciliationRun
from payments.models.strays import StrayCharge
from payments.models.webhooks import RoutingRule, WebhookEvent

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
    "ReconciliationIssue",
    "ReconciliationRecord",
    "ReconciliationRun",
    "Refund",
    "RoutingRule",
    "StrayCharge",
    "WebhookEvent",
    "generate_api_key",
    "hash_api_key",
]
