"""The three bare paths.

payments: SHA-256 key lookup, insert the intent and commit, the same Culqi charge POST as SmartPay's
adapter (payments/gateways/culqi.py: same body shape and headers) with `requests`, update and commit.
webhooks: one insert and commit. credits: key lookup, then one transaction with the account row locked
(SELECT ... FOR UPDATE), the balance updated and one ledger row inserted.
"""

import hashlib

import requests
from django.conf import settings
from django.db import transaction
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from bench.perf.bare.core.models import ApiKey, CreditAccount, CreditEntry, Intent, WebhookDelivery

_session = requests.Session()  # one per process, as SmartPay keeps one per gateway


def _api_key(request) -> ApiKey | None:
    parts = request.headers.get("Authorization", "").split()
    if len(parts) != 2 or parts[0].lower() != "bearer":
        return None
    return ApiKey.objects.filter(key_hash=hashlib.sha256(parts[1].encode()).hexdigest()).first()


def _unauthorized() -> Response:
    return Response({"code": "invalid_api_key"}, status=status.HTTP_401_UNAUTHORIZED)


class PaymentCreate(APIView):
    def post(self, request):
        api_key = _api_key(request)
        if api_key is None:
            return _unauthorized()
        data = request.data
        try:
            amount, currency, email = int(data["amount"]), str(data["currency"]), str(data["email"])
            token = str(data["source"]["token"])
        except (KeyError, TypeError, ValueError):
            return Response({"code": "invalid_request"}, status=status.HTTP_400_BAD_REQUEST)
        intent = Intent.objects.create(api_key=api_key, amount=amount, currency=currency, email=email)
        reference = f"bare_{intent.pk}"
        body = {
            "amount": amount,
            "currency_code": currency,
            "email": email,
            "source_id": token,
            "capture": bool(data.get("capture", True)),
            "description": f"Pago {reference}",
            "metadata": {"smartpay_payment_id": reference},
        }
        headers = {
            "Authorization": f"Bearer {settings.GATEWAY_SECRET_KEY}",
            "Content-Type": "application/json",
            "Accept": "application/json",
        }
        try:
            answer = _session.post(
                f"{settings.GATEWAY_BASE}/v2/charges",
                json=body,
                headers=headers,
                timeout=(settings.GATEWAY_CONNECT_TIMEOUT, settings.GATEWAY_READ_TIMEOUT),
            )
            charge = answer.json()
        except (requests.RequestException, ValueError):
            Intent.objects.filter(pk=intent.pk).update(status="unknown")
            return Response({"code": "gateway_unavailable"}, status=status.HTTP_503_SERVICE_UNAVAILABLE)
        succeeded = answer.status_code == 201 and (charge.get("outcome") or {}).get("type") == "venta_exitosa"
        new_status = "succeeded" if succeeded else "failed"
        charge_id = str(charge.get("id") or charge.get("charge_id") or "")[:64]
        Intent.objects.filter(pk=intent.pk).update(status=new_status, gateway_charge_id=charge_id)
        return Response(
            {
                "id": reference,
                "status": new_status,
                "amount": amount,
                "currency": currency,
                "gateway_payment_id": charge_id,
            },
            status=status.HTTP_201_CREATED,
        )


class WebhookReceive(APIView):
    def post(self, request):
        data = request.data if isinstance(request.data, dict) else {}
        event_id = str(data.get("id") or request.headers.get("X-Request-Id") or "")
        if not event_id:
            return Response({"code": "invalid_request"}, status=status.HTTP_400_BAD_REQUEST)
        WebhookDelivery.objects.create(event_id=event_id[:200], payload=data)
        return Response({"received": True})


class CreditConsume(APIView):
    def post(self, request, customer_id: str):
        if _api_key(request) is None:
            return _unauthorized()
        try:
            amount = int(request.data["amount"])
        except (KeyError, TypeError, ValueError):
            return Response({"code": "invalid_request"}, status=status.HTTP_400_BAD_REQUEST)
        with transaction.atomic():
            account = CreditAccount.objects.select_for_update().filter(customer_id=customer_id).first()
            if account is None:
                return Response({"code": "not_found"}, status=status.HTTP_404_NOT_FOUND)
            if amount < 1 or account.balance < amount:
                return Response({"code": "insufficient_credits"}, status=status.HTTP_422_UNPROCESSABLE_ENTITY)
            account.balance -= amount
            account.save(update_fields=["balance"])
            entry = CreditEntry.objects.create(account=account, amount=-amount, balance_after=account.balance)
        return Response(
            {"id": entry.pk, "amount": amount, "available": account.balance}, status=status.HTTP_201_CREATED
        )
