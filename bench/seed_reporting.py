"""Seed a PostgreSQL database with a large payment history for the reporting bench.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/smartpay_bench_reporting \\
        .venv/bin/python bench/seed_reporting.py --payments 1000000 --days 90

Migrates the database, then writes, with `INSERT ... SELECT ... FROM generate_series` (the rows are
made by PostgreSQL itself, 100,000 per statement), for one "Bench client app":

- N payments spread evenly over the last `--days` Lima days, 86 % PEN / 14 % USD, amounts
  log-normal (median S/ 79), ~85 % of final outcomes succeeded, declines with real decline codes,
  a few canceled and open payments, Culqi and Mercado Pago (USD only on Culqi);
- one charge attempt per payment (duration log-normal around 450/650 ms) and a second one at the
  other gateway for ~3 % (a failover after "unavailable");
- refunds for ~7 % of the succeeded payments (60 % full, the rest 30 %);
- one invoice per succeeded payment (boletas, 10 % facturas) with its line, and a credit note
  per refund, IGV split exactly as `billing.taxes.igv_split` does (checked on a sample at the end).

Deterministic (`setseed`). Refuses a database that already has payments unless `--truncate`.
Never point it at a database you care about: use smartpay_bench_reporting.
"""

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "smartpay.settings")
os.environ.setdefault("SECRET_KEY", "bench-only-secret-key-not-for-production-0123456789")
os.environ.setdefault("LOG_LEVEL", "WARNING")
os.environ["DEBUG"] = "false"
warnings.filterwarnings("ignore", message="No directory at")

BATCH = 100_000
APP_NAME = "Bench client app"
TRUNCATE = [
    "billing_invoiceline",
    "billing_invoice",
    "billing_seriescounter",
    "payments_refund",
    "payments_paymentattempt",
    "payments_payment",
    "reporting_dailyrollup",
    "reporting_rollupday",
    "reporting_report",
]


def insert_select(cursor, model, exprs: dict[str, str], source: str, params=()) -> int:
    """INSERT INTO model's table every column: `exprs[column]` where given (None: left to the
    database), else the field's Python default (or NULL), selected FROM `source`, whose
    placeholders take `params`. `exprs` hold no placeholders. Returns the rows written."""
    columns, values, literals = [], [], []
    for field in model._meta.concrete_fields:
        column = field.column
        if column in exprs and exprs[column] is None:
            continue  # the database fills it (an auto-increment id)
        columns.append(f'"{column}"')
        if column in exprs:
            values.append(exprs[column])
        elif field.has_default() and not callable(field.default):
            values.append("%s")
            literals.append(field.get_db_prep_save(field.get_default(), cursor.db))
        elif field.null:
            values.append("NULL")
        elif field.get_internal_type() == "JSONField":
            values.append("'{}'::jsonb")
        elif field.get_internal_type() in ("CharField", "TextField", "EmailField", "URLField", "SlugField"):
            values.append("''")
        else:
            raise RuntimeError(f"no value for {model.__name__}.{column}")
    sql = f'INSERT INTO "{model._meta.db_table}" ({", ".join(columns)}) SELECT {", ".join(values)} FROM {source}'  # noqa: S608
    cursor.execute(sql, [*literals, *params])
    return cursor.rowcount


# A payment's random draws, made once per row: u1..u8 uniform, z a standard normal (Box-Muller).
PAYMENT_SOURCE = """
(
  SELECT g, u1, u2, u3, u4, u5, u6, u7, u8,
         sqrt(-2 * ln(greatest(u7, 1e-12))) * cos(2 * pi() * u8) AS z,
         %(start)s::timestamptz + (g - 1 + u6) * %(span)s::interval / %(n)s AS at,
         CASE WHEN u1 < 0.86 THEN 'PEN' ELSE 'USD' END AS currency,
         CASE WHEN u1 >= 0.86 OR u2 < 0.62 THEN 'culqi' ELSE 'mercadopago' END AS gw,
         CASE WHEN u3 < 0.025 THEN 'canceled' WHEN u3 < 0.028 THEN 'processing'
              WHEN u3 < 0.155 THEN 'failed'
              WHEN u4 < 0.042 THEN 'refunded' WHEN u4 < 0.07 THEN 'partially_refunded'
              ELSE 'succeeded' END AS st
  FROM (SELECT g, random() u1, random() u2, random() u3, random() u4, random() u5, random() u6,
               random() u7, random() u8 FROM generate_series(%(first)s, %(last)s) g) draws
) p
"""

DECLINES = {
    "culqi": [("insufficient_funds", "insufficient_funds"), ("issuer_decline_operation", "card_declined"),
              ("invalid_cvv", "incorrect_cvc"), ("contactar_emisor", "call_issuer"), ("expired_card", "expired_card"),
              ("fraudulent", "fraud_suspected")],
    "mercadopago": [("cc_rejected_insufficient_amount", "insufficient_funds"),
                    ("cc_rejected_other_reason", "card_declined"),
                    ("cc_rejected_bad_filled_security_code", "incorrect_cvc"),
                    ("cc_rejected_call_for_authorize", "call_issuer"),
                    ("cc_rejected_bad_filled_date", "expired_card"), ("cc_rejected_high_risk", "fraud_suspected")],
}  # fmt: skip


def decline_case(draw: str, pick: int) -> str:
    """SQL: the decline code (pick 1: SmartPay's, 0: the gateway's) chosen by `draw`, per gateway."""
    parts = []
    for gateway, codes in DECLINES.items():
        whens = " ".join(
            f"WHEN {draw} < {(i + 1) / len(codes):.4f} THEN '{code[pick]}'" for i, code in enumerate(codes[:-1])
        )
        parts.append(f"WHEN p.gw = '{gateway}' THEN (CASE {whens} ELSE '{codes[-1][pick]}' END)")
    return f"(CASE {' '.join(parts)} END)"


def seed(args) -> None:
    from django.core.management import call_command
    from django.db import connection, transaction
    from django.utils import timezone

    from billing.models import Invoice, InvoiceLine, SeriesCounter
    from payments.models import ClientApp, Payment, PaymentAttempt, Refund
    from payments.services.clients import client_app_create

    call_command("migrate", verbosity=0, interactive=False)
    with connection.cursor() as cursor:
        if Payment.objects.exists():
            if not args.truncate:
                raise SystemExit("This database already has payments: pass --truncate to replace them.")
            cursor.execute(f"TRUNCATE {', '.join(TRUNCATE)} CASCADE")
    app = ClientApp.objects.filter(name=APP_NAME).first() or client_app_create(name=APP_NAME)
    now = timezone.now()
    start = now - timezone.timedelta(days=args.days)
    n = args.payments
    timings = {}

    started = time.monotonic()
    with connection.cursor() as cursor:
        cursor.execute("SELECT setseed(%s)", [args.seed])
        for first in range(1, n + 1, BATCH):
            last = min(n, first + BATCH - 1)
            source = PAYMENT_SOURCE % {
                "start": "%s", "span": "%s", "n": "%s", "first": "%s", "last": "%s",
            }  # fmt: skip
            amount = "greatest(500, least(900000, (exp(ln(CASE WHEN p.currency = 'PEN' THEN 7900 ELSE 2500 END)"
            amount += " + 0.9 * p.z) / 10)::bigint * 10))"
            paid = "p.st IN ('succeeded', 'refunded', 'partially_refunded')"
            with transaction.atomic():
                insert_select(
                    cursor,
                    Payment,
                    {
                        "id": "'pay_b' || lpad(p.g::text, 25, '0')",
                        "client_app_id": f"'{app.pk}'",
                        "status": "p.st",
                        "amount": amount,
                        "amount_captured": f"CASE WHEN {paid} THEN {amount} ELSE 0 END",
                        "amount_refunded": f"CASE p.st WHEN 'refunded' THEN {amount} "
                        f"WHEN 'partially_refunded' THEN greatest(1, {amount} * 3 / 10) ELSE 0 END",
                        "currency": "p.currency",
                        "email": "'payer' || mod(p.g, 50000) || '@example.com'",
                        "description": "'Pedido #' || p.g",
                        "metadata": "'{\"bench\": true}'::jsonb",
                        "gateway": "p.gw",
                        "gateway_payment_id": "CASE WHEN p.st IN ('canceled', 'processing') THEN NULL "
                        "WHEN p.gw = 'culqi' THEN 'chr_b' || p.g ELSE (10000000000 + p.g)::text END",
                        "failure_code": "CASE WHEN p.st = 'failed' THEN 'card_declined' ELSE '' END",
                        "decline_code": f"CASE WHEN p.st = 'failed' THEN {decline_case('p.u5', 1)} ELSE '' END",
                        "failure_message": "CASE WHEN p.st = 'failed' THEN 'The card was declined.' ELSE '' END",
                        "created_at": "p.at",
                        "updated_at": "p.at + interval '1 second'",
                    },
                    source,
                    [start, timezone.timedelta(days=args.days), n, first, last],
                )
            print(f"  payments {last:>9,}/{n:,}  {time.monotonic() - started:6.1f} s", flush=True)
    timings["payments"] = time.monotonic() - started

    started = time.monotonic()
    pay = "(SELECT *, ('x' || substr(md5(id), 1, 8))::bit(32)::int::float8 / 4294967296 + 0.5 AS h"
    pay += " FROM payments_payment WHERE client_app_id = %s) p"
    # One charge attempt per payment; 3 % of PEN payments first met the other gateway unavailable.
    failover = "(p.currency = 'PEN' AND p.h < 0.03)"
    other = "CASE p.gateway WHEN 'culqi' THEN 'mercadopago' ELSE 'culqi' END"
    duration = (
        "least(15000, greatest(80, (exp(ln(CASE WHEN {gw} = 'culqi' THEN 450 ELSE 650 END) "
        "+ 0.45 * sqrt(-2 * ln(greatest(random(), 1e-12))) * cos(2 * pi() * random())))::int))"
    )
    with connection.cursor() as cursor, transaction.atomic():
        cursor.execute("SELECT setseed(%s)", [args.seed / 2])
        insert_select(
            cursor,
            PaymentAttempt,
            {
                "id": None,
                "payment_id": "p.id",
                "number": "1",
                "operation": "'charge'",
                "gateway": other,
                "idempotency_key": "p.id || ':charge:1'",
                "outcome": "'unavailable'",
                "error_code": "'gateway_unavailable'",
                "http_status": "503",
                "duration_ms": "(40 + p.h * 10000)::int",
                "created_at": "p.created_at",
                "finished_at": "p.created_at + interval '100 milliseconds'",
            },
            f"{pay} WHERE {failover}",
            [app.pk],
        )
        number = f"CASE WHEN {failover} THEN 2 ELSE 1 END"
        insert_select(
            cursor,
            PaymentAttempt,
            {
                "id": None,
                "payment_id": "p.id",
                "number": number,
                "operation": "'charge'",
                "gateway": "p.gateway",
                "idempotency_key": f"p.id || ':charge:' || {number}",
                "outcome": "CASE p.status WHEN 'failed' THEN 'declined' WHEN 'canceled' THEN 'requires_action' "
                "WHEN 'processing' THEN 'unknown' ELSE 'succeeded' END",
                "error_code": "CASE p.status WHEN 'failed' THEN p.decline_code "
                "WHEN 'processing' THEN 'gateway_timeout' ELSE '' END",
                "gateway_payment_id": "coalesce(p.gateway_payment_id, '')",
                "http_status": "CASE WHEN p.status = 'processing' THEN NULL ELSE 201 END",
                "duration_ms": "CASE WHEN p.status = 'processing' THEN 20040 ELSE "
                + duration.format(gw="p.gateway")
                + " END",
                "created_at": "p.created_at + interval '120 milliseconds'",
                "finished_at": "p.created_at + interval '800 milliseconds'",
            },
            pay,
            [app.pk],
        )
    timings["attempts"] = time.monotonic() - started

    started = time.monotonic()
    stamp = f"'{now.isoformat()}'::timestamptz"
    with connection.cursor() as cursor, transaction.atomic():
        insert_select(
            cursor,
            Refund,
            {
                "id": "'re_b' || substr(p.id, 6)",
                "payment_id": "p.id",
                "amount": "p.amount_refunded",
                "currency": "p.currency",
                "status": "'succeeded'",
                "reason": "'solicitud_comprador'",
                "gateway_refund_id": "'ref_b' || substr(p.id, 6)",
                "idempotency_key": "'bench:' || p.id",
                "created_by": "'sk_test_bench'",
                "origin": "'api'",
                "created_at": f"least(p.created_at + (1 + p.h * 240) * interval '1 hour', {stamp})",
                "updated_at": f"least(p.created_at + (1 + p.h * 240) * interval '1 hour', {stamp})",
            },
            f"{pay} WHERE p.amount_refunded > 0",
            [app.pk],
        )
    timings["refunds"] = time.monotonic() - started

    started = time.monotonic()
    seed_invoices(app, now)
    timings["invoices"] = time.monotonic() - started
    with connection.cursor() as cursor:
        for table in ("payments_payment", "payments_paymentattempt", "payments_refund", "billing_invoice"):
            cursor.execute(f"ANALYZE {table}")
    check_igv_sample()
    counts = {
        "payments": Payment.objects.count(),
        "attempts": PaymentAttempt.objects.count(),
        "refunds": Refund.objects.count(),
        "invoices": Invoice.objects.count(),
        "invoice lines": InvoiceLine.objects.count(),
        "series": dict(SeriesCounter.objects.values_list("series", "last_correlative")),
    }
    print(f"\nSeeded {counts} in {sum(timings.values()):.0f} s:")
    for step, seconds in timings.items():
        print(f"  {step:<10} {seconds:7.1f} s")


def seed_invoices(app, now) -> None:
    """A boleta (or a factura, for 10 %) per succeeded payment and a credit note per refund,
    numbered per series in issue order; lines mirror the documents."""
    from django.db import connection, transaction

    from billing.issuer import igv_percent, issuer, series_for
    from billing.models import Invoice, InvoiceLine

    the_issuer, percent = issuer(), igv_percent()
    divisor = f"(1 + {percent}::numeric / 100)"
    boleta, factura = series_for("boleta"), series_for("factura")
    note_b, note_f = (
        series_for("credit_note", credited_type="boleta"),
        series_for("credit_note", credited_type="factura"),
    )
    common = {
        "client_app_id": f"'{app.pk}'",
        "igv_percent": f"{percent}",
        "amount_in_words": "'SON ' || x.total || ' CENTIMOS'",
        "issue_date": "(x.at AT TIME ZONE 'America/Lima')::date",
        "issued_at": "x.at",
        "issuer_ruc": f"'{the_issuer.ruc}'",
        "issuer_name": f"'{the_issuer.name}'",
        "issuer_address": f"'{the_issuer.address}'",
        "issuer_ubigeo": f"'{the_issuer.ubigeo}'",
        "issuer_establishment": f"'{the_issuer.establishment}'",
        "status": "'accepted'",
        "status_changed_at": "x.at + interval '5 minutes'",
        "email_to": "x.email",
        "email_status": "'sent'",
        "emailed_at": "x.at + interval '1 minute'",
        "currency": "x.currency",
        "payment_id": "x.payment_id",
        "customer_id": "NULL",
        "series": "x.series",
        "correlative": "x.correlative",
        "subtotal": "x.subtotal",
        "tax": "x.total - x.subtotal",
        "total": "x.total",
    }
    documents = f"""(
      SELECT *, row_number() OVER (PARTITION BY series ORDER BY at, id) AS correlative FROM (
        SELECT p.id AS payment_id, 'inv_b' || substr(p.id, 6) AS id, p.email, p.currency,
               p.amount_captured AS total, round(p.amount_captured::numeric / {divisor})::bigint AS subtotal,
               p.updated_at + interval '3 seconds' AS at,
               CASE WHEN right(p.id, 1) = '7' THEN '{factura}' ELSE '{boleta}' END AS series,
               CASE WHEN right(p.id, 1) = '7' THEN 'factura' ELSE 'boleta' END AS document_type,
               p.id || ' (' || p.gateway || ' ' || p.gateway_payment_id || ')' AS reference
        FROM payments_payment p
        WHERE p.client_app_id = %s AND p.status IN ('succeeded', 'refunded', 'partially_refunded')
      ) d
    ) x"""  # noqa: S608 - our own SQL, no outside input
    with connection.cursor() as cursor, transaction.atomic():
        insert_select(
            cursor,
            Invoice,
            {
                **common,
                "id": "x.id",
                "document_type": "x.document_type",
                "buyer_document_type": "CASE x.document_type WHEN 'factura' THEN '6' ELSE '-' END",
                "buyer_document_number": "CASE x.document_type WHEN 'factura' THEN '20100070970' ELSE '-' END",
                "buyer_name": "CASE x.document_type WHEN 'factura' THEN 'EMPRESA DEMO S.A.C.' "
                "ELSE 'CLIENTES VARIOS' END",
                "payment_reference": "x.reference",
                "buyer_unidentified_over_limit": "x.document_type = 'boleta' AND x.total > "
                "CASE x.currency WHEN 'PEN' THEN 70000 ELSE 17500 END",
            },
            documents,
            [app.pk],
        )
        notes = f"""(
          SELECT *, row_number() OVER (PARTITION BY series ORDER BY at, id) AS correlative FROM (
            SELECT i.payment_id, 'inv_n' || substr(r.id, 5) AS id, r.id AS refund_id, i.id AS invoice_id,
                   i.email_to AS email, i.currency, r.created_at + interval '5 seconds' AS at,
                   CASE WHEN r.amount >= i.total THEN i.total ELSE r.amount END AS total,
                   CASE WHEN r.amount >= i.total THEN i.subtotal
                        ELSE round(r.amount::numeric / {divisor})::bigint END AS subtotal,
                   CASE WHEN r.amount >= i.total THEN '01' ELSE '09' END AS reason,
                   CASE i.document_type WHEN 'factura' THEN '{note_f}' ELSE '{note_b}' END AS series,
                   i.buyer_document_type, i.buyer_document_number, i.buyer_name
            FROM payments_refund r JOIN billing_invoice i
              ON i.payment_id = r.payment_id AND i.document_type IN ('boleta', 'factura')
            WHERE i.client_app_id = %s
          ) d
        ) x"""  # noqa: S608 - our own SQL, no outside input
        insert_select(
            cursor,
            Invoice,
            {
                **common,
                "id": "x.id",
                "document_type": "'credit_note'",
                "refund_id": "x.refund_id",
                "credited_invoice_id": "x.invoice_id",
                "credit_note_reason": "x.reason",
                "credit_note_description": "'solicitud_comprador'",
                "buyer_document_type": "x.buyer_document_type",
                "buyer_document_number": "x.buyer_document_number",
                "buyer_name": "x.buyer_name",
                "payment_reference": "x.refund_id || ' / ' || x.payment_id",
                "buyer_unidentified_over_limit": "false",
            },
            notes,
            [app.pk],
        )
        insert_select(
            cursor,
            InvoiceLine,
            {
                "id": None,
                "invoice_id": "i.id",
                "position": "1",
                "description": "'Pedido'",
                "quantity": "1",
                "unit_value": "i.subtotal",
                "unit_price": "i.total",
                "subtotal": "i.subtotal",
                "tax": "i.tax",
                "total": "i.total",
            },
            "billing_invoice i WHERE i.client_app_id = %s",
            [app.pk],
        )
        cursor.execute(
            "INSERT INTO billing_seriescounter (series, last_correlative, updated_at) "
            "SELECT series, max(correlative), %s FROM billing_invoice GROUP BY series "
            "ON CONFLICT (series) DO UPDATE SET last_correlative = EXCLUDED.last_correlative",
            [now],
        )


def check_igv_sample() -> None:
    """The SQL split is billing's own rule: compare 2,000 invoices with `igv_split`."""
    from billing.issuer import igv_rate
    from billing.models import Invoice
    from billing.taxes import igv_split

    rate = igv_rate()
    sample = Invoice.objects.exclude(document_type="credit_note").order_by("?")[:2000]
    wrong = [i.pk for i in sample if igv_split(total=i.total, rate=rate).subtotal != i.subtotal]
    if wrong:
        raise SystemExit(f"IGV split differs from billing.taxes.igv_split for {len(wrong)} invoices, e.g. {wrong[:3]}")
    print("  IGV split of a 2,000-invoice sample matches billing.taxes.igv_split")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--payments", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--seed", type=float, default=0.42, help="setseed() value, -1..1")
    parser.add_argument("--truncate", action="store_true", help="Replace the payments already in the database.")
    args = parser.parse_args()

    import django

    django.setup()
    from django.db import connection

    if connection.vendor != "postgresql":
        print("Set DATABASE_URL to a PostgreSQL database (e.g. .../smartpay_bench_reporting).")
        return 2
    seed(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
