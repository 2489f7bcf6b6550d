from payments.models.clients import ApiKey, ClientApp, generate_api_key, hash_api_key
from payments.models.customers import Customer

__all__ = ["ApiKey", "ClientApp", "Customer", "generate_api_key", "hash_api_key"]
