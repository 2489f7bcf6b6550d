from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from payments.models import ApiKey, ClientApp, generate_api_key, hash_api_key
from payments.models.clients import API_KEY_PREFIX_LEN


@dataclass(frozen=True)
class IssuedKey:
    """A freshly issued key. `raw_key` exists only here: it is never stored and cannot be shown again."""

    api_key: ApiKey
    raw_key: str


def client_app_create(*, name: str, webhook_url: str = "") -> ClientApp:
    return ClientApp.objects.create(name=name, webhook_url=webhook_url)


def api_key_issue(*, client_app: ClientApp, label: str = "", live: bool | None = None) -> IssuedKey:
    """A new key, shown once. `sk_live_` in live mode and `sk_test_` against the sandbox gateways,
    unless `live` says otherwise, so a sandbox key never looks like a live one."""
    if live is None:
        live = settings.GATEWAY_MODE == "live"
    raw = generate_api_key(live=live)
    api_key = ApiKey.objects.create(
        client_app=client_app, label=label, prefix=raw[:API_KEY_PREFIX_LEN], key_hash=hash_api_key(raw)
    )
    return IssuedKey(api_key=api_key, raw_key=raw)


def api_key_revoke(*, api_key: ApiKey) -> ApiKey:
    with transaction.atomic():
        locked = ApiKey.objects.select_for_update().get(pk=api_key.pk)
        if locked.revoked_at is None:
            locked.revoked_at = timezone.now()
            locked.save(update_fields=["revoked_at"])
    return locked
