"""The demo history that `make run` seeds: its shape, its consistency, and that it is written once."""

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db.models import Count, F, Q, Sum
from django.utils import timezone

from billing.enums import DocumentType
from billing.models import Invoice, SeriesCounter
from billing.taxes import igv_split
from credits.models import CreditConsumption, CreditLedgerEntry, CreditLot, CreditPurchase, EntryType
from notifications.models import DeliveryState, OutgoingEvent
from payments.enums import AttemptOperation, AttemptOutcome, PaymentStatus
from payments.models import Payment, PaymentAttempt, Refund
from reporting import demo
from smartpay.clock import business_date

SUCCEEDED = (PaymentStatus.SUCCEEDED, PaymentStatus.PARTIALLY_REFUNDED, PaymentStatus.REFUNDED)
N = 1200


@pytest.fixture
def no_rollups(monkeypatch):
    """The rollup job is tested on its own; here it only has to be called with the period's past days."""
    calls = []
    monkeypatch.setattr(demo, "_rollups", lambda first, last: calls.append((first, last)) or 0)
    return calls


@pytest.fixture
def seeded(client_app, no_rollups):
    return demo.demo_history_seed(client_app=client_app, payments=N, days=90)


@pytest.mark.django_db
def test_history_spreads_over_ninety_days_both_gateways_and_currencies(client_app, seeded, no_rollups):
    assert not seeded.skipped
    payments = Payment.objects.filter(client_app=client_app)
    assert payments.count() == seeded.payments == N
    assert payments.filter(metadata__demo=True).count() == N
    today = business_date(timezone.now())
    days = {business_date(at) for at in payments.values_list("created_at", flat=True)}
    assert min(days) >= today - timedelta(days=89)
    assert max(days) <= today
    assert len(days) >= 85  # nearly every day has traffic
    assert all(at <= timezone.now() for at in payments.values_list("created_at", flat=True))
    assert no_rollups == [(today - timedelta(days=89), today - timedelta(days=1))]

    by_currency = dict(payments.values_list("currency").annotate(n=Count("id")))
    assert set(by_currency) == {"PEN", "USD"} and by_currency["PEN"] > 3 * by_currency["USD"]
    attempts = PaymentAttempt.objects.filter(payment__client_app=client_app, operation=AttemptOperation.CHARGE)
    assert set(attempts.values_list("gateway", flat=True).distinct()) == {"culqi", "mercadopago"}
    assert not payments.filter(currency="USD", gateway="mercadopago").exists()  # Mercado Pago Peru: PEN only

    succeeded = payments.filter(status__in=SUCCEEDED).count()
    failed = payments.filter(status=PaymentStatus.FAILED).count()
    assert 0.80 <= succeeded / (succeeded + failed) <= 0.90
    declined = attempts.filter(outcome=AttemptOutcome.DECLINED)
    assert {"insufficient_funds", "incorrect_cvc", "call_issuer"} <= set(declined.values_list("error_code", flat=True))
    assert declined.filter(gateway="mercadopago", raw_response__status_detail__startswith="cc_rejected_").exists()
    assert attempts.filter(outcome=AttemptOutcome.UNAVAILABLE).exists()
    assert attempts.filter(outcome=AttemptOutcome.UNKNOWN, duration_ms__gte=20_000).exists()
    # failovers: a payment whose charge attempts went to both gateways
    assert attempts.values("payment").annotate(g=Count("gateway", distinct=True)).filter(g=2).exists()
    assert payments.filter(status=PaymentStatus.CANCELED).exists()
    assert payments.filter(status=PaymentStatus.FAILED, failure_code="checkout_expired").exists()
    durations = sorted(attempts.filter(outcome=AttemptOutcome.SUCCEEDED).values_list("duration_ms", flat=True))
    assert 300 <= durations[len(durations) // 2] <= 900  # median in the usual range of a card charge

    # succeeded payments captured everything; refunds never exceed what was captured
    assert not payments.filter(status__in=SUCCEEDED).exclude(amount_captured=F("amount")).exists()
    refunds = Refund.objects.filter(payment__client_app=client_app)
    assert refunds.count() == seeded.refunds > 0
    assert payments.filter(status=PaymentStatus.REFUNDED).exists()
    assert payments.filter(status=PaymentStatus.PARTIALLY_REFUNDED).exists()
    for payment in payments.filter(amount_refunded__gt=0):
        assert payment.amount_refunded == sum(r.amount for r in payment.refunds.all())
        assert all(r.created_at >= payment.created_at for r in payment.refunds.all())


@pytest.mark.django_db
def test_invoices_follow_payments_and_refunds_with_igv_split(client_app, seeded):
    paid = Payment.objects.filter(client_app=client_app, status__in=SUCCEEDED)
    invoices = Invoice.objects.filter(client_app=client_app)
    kinds = dict(invoices.values_list("document_type").annotate(n=Count("id")))
    assert kinds[DocumentType.BOLETA] + kinds[DocumentType.FACTURA] == paid.count() == seeded.invoices
    assert kinds[DocumentType.CREDIT_NOTE] == seeded.credit_notes > 0
    assert kinds[DocumentType.FACTURA] > 0
    for invoice in invoices.exclude(document_type=DocumentType.CREDIT_NOTE)[:200]:
        split = igv_split(total=invoice.total, rate=invoice.igv_percent / 100)
        assert (invoice.subtotal, invoice.tax) == (split.subtotal, split.tax)
        assert invoice.total == invoice.payment.amount_captured
    facturas = invoices.filter(document_type=DocumentType.FACTURA)
    assert not facturas.exclude(buyer_document_type="6").exists()  # a factura names a RUC
    # credit notes never credit more than their invoice
    over = invoices.filter(document_type=DocumentType.CREDIT_NOTE).values("credited_invoice")
    over = over.annotate(s=Sum("total")).filter(s__gt=F("credited_invoice__total"))
    assert not over.exists()
    # numbers: gap-free per series, and the counters know the last one
    for counter in SeriesCounter.objects.all():
        numbers = sorted(invoices.filter(series=counter.series).values_list("correlative", flat=True))
        assert numbers == list(range(1, counter.last_correlative + 1))


@pytest.mark.django_db
def test_credit_history_keeps_the_ledger_invariants(client_app, seeded):
    call_command("check_credit_ledger")  # raises CommandError on any drift
    purchases = CreditPurchase.objects.filter(client_app=client_app)
    assert purchases.count() == seeded.credit_purchases > 0
    assert set(purchases.values_list("plan__code", flat=True)) == {"basic", "professional", "enterprise"}
    assert purchases.filter(status="granted").exists() and purchases.filter(status="failed").exists()
    assert CreditConsumption.objects.filter(account__client_app=client_app).count() == seeded.consumptions > 0
    entries = CreditLedgerEntry.objects.filter(account__client_app=client_app)
    assert entries.filter(entry_type=EntryType.EXPIRY).exists()
    assert CreditLot.objects.filter(account__client_app=client_app, expired_at__isnull=False).exists()
    assert entries.filter(entry_type=EntryType.GRANT, lot__kind="bonus").exists()
    # the history is dated in the past, not at seeding time
    assert entries.filter(created_at__lt=timezone.now() - timedelta(days=30)).exists()
    # events recorded for the past are not delivered again now
    assert not OutgoingEvent.objects.filter(client_app=client_app, delivery_state=DeliveryState.PENDING).exists()


@pytest.mark.django_db
def test_seeding_twice_does_not_double_the_history(client_app, seeded):
    counts = (Payment.objects.count(), Refund.objects.count(), Invoice.objects.count(), CreditPurchase.objects.count())
    again = demo.demo_history_seed(client_app=client_app, payments=N, days=90)
    assert again.skipped
    assert counts == (
        Payment.objects.count(),
        Refund.objects.count(),
        Invoice.objects.count(),
        CreditPurchase.objects.count(),
    )


@pytest.mark.django_db
def test_same_seed_same_history(client_app, other_api, no_rollups):
    demo.demo_history_seed(client_app=client_app, payments=300, days=30, seed=5)
    demo.demo_history_seed(client_app=other_api.client_app, payments=300, days=30, seed=5)

    def shape(app):
        rows = Payment.objects.filter(client_app=app).order_by("created_at")
        return list(rows.values_list("amount", "currency", "status", "gateway"))

    assert shape(client_app) == shape(other_api.client_app)


@pytest.mark.django_db
def test_seed_demo_command_adds_the_history_once(settings, no_rollups, capsys):
    settings.DEBUG = True
    call_command("seed_demo", "--history-payments", "400")
    first = Payment.objects.count()
    assert first == 400
    call_command("seed_demo", "--history-payments", "400")
    assert Payment.objects.count() == first
    out = capsys.readouterr().out
    assert "Demo history: 400 payments" in out and "already there" in out
    assert Payment.objects.filter(~Q(metadata__demo=True)).count() == 0


@pytest.mark.django_db
def test_rollups_of_the_past_days_are_computed(client_app):
    from reporting.models import DailyRollup

    history = demo.demo_history_seed(client_app=client_app, payments=300, days=10, seed=3)
    today = business_date(timezone.now())
    past = [p for p in Payment.objects.filter(client_app=client_app) if business_date(p.created_at) < today]
    rollups = DailyRollup.objects.filter(client_app=client_app)
    assert history.rollup_rows == rollups.count() > 0
    assert rollups.aggregate(n=Sum("payments_created"))["n"] == len(past)
    assert not rollups.filter(day__gte=today).exists()  # today is always read live
