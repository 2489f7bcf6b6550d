import hashlib
import secrets

from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q

from smartpay.ids import PrefixedIdField

API_KEY_PREFIX_LEN = 12  # "sk_live_abcd": enough to tell keys apart in the admin, useless to an attacker


def generate_api_key(live: bool = True) -> str:
    return f"sk_{'live' if live else 'test'}_{secrets.token_urlsafe(32).replace('-', 'x').replace('_', 'y')}"


def hash_api_key(raw_key: str) -> str:
    return hashlib.sha256(raw_key.encode()).hexdigest()


def generate_signing_secret() -> str:
    return "whsec_" + secrets.token_hex(24)


class ClientApp(models.Model):
    """A tenant: an application that calls SmartPay with its own API keys and sees only its rows."""

    id = PrefixedIdField("app")
    name = models.CharField(max_length=120)
    is_active = models.BooleanField(default=True)
    webhook_url = models.URLField(blank=True, help_text="Where SmartPay pushes signed events.")
    webhook_secret = models.CharField(max_length=80, default=generate_signing_secret, editable=False)
    webhook_enabled = models.BooleanField(default=True, help_text="Deliver events to webhook_url.")
    # After a rotation the previous secret still signs (a second `v1=`) until it expires (24 h).
    previous_webhook_secret = models.CharField(max_length=80, blank=True, editable=False)
    previous_webhook_secret_expires_at = models.DateTimeField(null=True, blank=True, editable=False)
    # Requests a minute this app may make (empty: the defaults, API_RATE_LIMIT_*_PER_MINUTE).
    rate_limit_write_per_minute = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text="POST/PUT/PATCH/DELETE a minute; empty: default.",
    )
    rate_limit_read_per_minute = models.PositiveIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1)], help_text="GET a minute; empty: default."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    # DRF treats the authenticated principal as request.user.
    is_authenticated = True
    is_anonymous = False

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class ApiKey(models.Model):
    """An API key, stored only as a SHA-256 hash beside a visible prefix. Several may be active."""

    id = PrefixedIdField("key")
    client_app = models.ForeignKey(ClientApp, on_delete=models.CASCADE, related_name="api_keys")
    label = models.CharField(max_length=120, blank=True)
    prefix = models.CharField(max_length=API_KEY_PREFIX_LEN)
    key_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["client_app"], condition=Q(revoked_at__isnull=True), name="apikey_active_idx")]

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.label or 'key'})"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None
