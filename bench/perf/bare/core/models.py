"""The rows each bare path writes: the durable minimum, no more. Amounts in minor units beside a currency."""

from django.db import models

# ruff: noqa: DJ008 - rows of a benchmark, never shown anywhere


class ApiKey(models.Model):
    key_hash = models.CharField(max_length=64, unique=True)  # SHA-256 hex of the raw key, as SmartPay
    client_name = models.CharField(max_length=100)


class Intent(models.Model):
    api_key = models.ForeignKey(ApiKey, on_delete=models.PROTECT)
    amount = models.BigIntegerField()  # minor units
    currency = models.CharField(max_length=3)
    email = models.CharField(max_length=254)
    status = models.CharField(max_length=20, default="processing")
    gateway_charge_id = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)


class WebhookDelivery(models.Model):
    event_id = models.CharField(max_length=200, unique=True)
    payload = models.JSONField()
    received_at = models.DateTimeField(auto_now_add=True)


class CreditAccount(models.Model):
    customer_id = models.CharField(max_length=40, unique=True)
    balance = models.BigIntegerField(default=0)


class CreditEntry(models.Model):
    account = models.ForeignKey(CreditAccount, on_delete=models.PROTECT)
    amount = models.BigIntegerField()  # negative: a consumption
    balance_after = models.BigIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)
