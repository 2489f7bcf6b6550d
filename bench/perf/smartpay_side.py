"""Preparing and checking SmartPay's side, run by the runner in a child process with SmartPay's environment.

    python -m bench.perf.smartpay_side prepare <credits>   # migrate, client app + key, customer with credits
    python -m bench.perf.smartpay_side check               # what the payments, invoices and ledger say
    python -m bench.perf.smartpay_side simcharges          # (simulator's database) charges for SmartPay payments

Each prints one JSON object on its last line.
"""

from __future__ import annotations

import io
import json
import os
import sys
import warnings


def prepare(credits: int) -> dict:
    from django.core.management import call_command

    from credits.services import credit_adjust
    from payments.models import ClientApp, Customer

    call_command("migrate", verbosity=0, interactive=False)
    out = io.StringIO()
    call_command("create_client_app", "Bench client app", "--test-key", stdout=out)
    raw_key = out.getvalue().strip().splitlines()[-1]
    app = ClientApp.objects.filter(name="Bench client app").latest("created_at")
    customer = Customer.objects.create(client_app=app, email="bench@example.com")
    credit_adjust(customer=customer, amount=credits, reason="benchmark", actor="bench", validity_days=365)
    return {"api_key": raw_key, "customer_id": customer.pk}


def check() -> dict:
    from django.core.management import call_command
    from django.core.management.base import CommandError
    from django.db.models import Count

    from billing.enums import DocumentType
    from billing.models import Invoice
    from payments.enums import PaymentStatus
    from payments.models import Payment

    statuses = dict(Payment.objects.values_list("status").annotate(n=Count("pk")).values_list("status", "n"))
    succeeded = set(
        Payment.objects.filter(status=PaymentStatus.SUCCEEDED, gateway="culqi").values_list(
            "gateway_payment_id", flat=True
        )
    )
    sales = Invoice.objects.exclude(document_type=DocumentType.CREDIT_NOTE)
    per_payment = dict(sales.values_list("payment_id").annotate(n=Count("pk")).values_list("payment_id", "n"))
    succeeded_ids = set(Payment.objects.filter(status=PaymentStatus.SUCCEEDED).values_list("pk", flat=True))
    missing = [pk for pk in succeeded_ids if per_payment.get(pk, 0) == 0]
    duplicated = [pk for pk, n in per_payment.items() if n > 1]
    not_succeeded = [pk for pk in per_payment if pk not in succeeded_ids]
    gaps = {}
    for series in sorted(set(Invoice.objects.values_list("series", flat=True))):
        numbers = sorted(Invoice.objects.filter(series=series).values_list("correlative", flat=True))
        if numbers != list(range(1, len(numbers) + 1)):
            gaps[series] = f"{len(numbers)} documents, numbers {numbers[:3]}…{numbers[-3:]}"
    ledger_out, ledger_err = io.StringIO(), io.StringIO()
    try:
        call_command("check_credit_ledger", stdout=ledger_out, stderr=ledger_err)
        ledger_ok = True
    except CommandError as error:
        ledger_ok = False
        ledger_err.write(str(error))
    return {
        "statuses": statuses,
        "succeeded_charge_ids": sorted(succeeded),
        "invoices": sales.count(),
        "payments_without_invoice": missing[:5],
        "payments_without_invoice_count": len(missing),
        "payments_with_several_invoices": duplicated[:5],
        "invoices_for_unsucceeded_payments": not_succeeded[:5],
        "series_gaps": gaps,
        "series": sorted(set(Invoice.objects.values_list("series", flat=True))),
        "ledger_ok": ledger_ok,
        "ledger_output": (ledger_out.getvalue() + ledger_err.getvalue()).strip()[-500:],
    }


def simcharges() -> dict:
    from payments.gateways.simulator.models import SimCharge

    rows = SimCharge.objects.filter(gateway="culqi", metadata__smartpay_payment_id__startswith="pay_")
    return {"charge_ids": sorted(rows.values_list("public_id", flat=True))}


def main(argv: list[str]) -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "smartpay.settings")
    warnings.filterwarnings("ignore", message="No directory at")  # WhiteNoise: no collected static files
    import django

    django.setup()
    command = argv[0]
    if command == "prepare":
        result = prepare(int(argv[1]))
    elif command == "check":
        result = check()
    elif command == "simcharges":
        result = simcharges()
    else:
        print(__doc__)
        return 2
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
