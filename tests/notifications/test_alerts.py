"""Alerts (notifications/alerts.py, alert_rules.py, admin_alerts.py): one row per unresolved
problem, emailed once; rules raise and auto-resolve; the admin index shows them to every staff user."""

from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.db import transaction
from django.utils import timezone

from notifications import alert_rules
from notifications.alert_tasks import evaluate_alerts, send_alert_email
from notifications.alerts import AlertKind, alert_acknowledge, alert_raise, alert_resolve
from notifications.models import Alert, AlertResolution, AlertStatus, DeliveryState, OutgoingEvent
from payments import breaker
from payments.enums import AttemptOperation, AttemptOutcome, PaymentStatus
from payments.gateways.base import ChargeResult, ChargeStatus
from payments.models import Payment, PaymentAttempt, ReconciliationRun, StrayCharge, WebhookEvent
from payments.services import recording
from tests.concurrency import run_at_once

pytestmark = pytest.mark.django_db

OPS = ["ops@smartpay.example", "finance@smartpay.example"]


@pytest.fixture(autouse=True)
def _alert_emails(settings):
    settings.ALERT_EMAILS = OPS
    settings.ADMINS = [("Admins", "admins@smartpay.example")]


@pytest.fixture(autouse=True)
def _closed_breakers():
    for gateway in ("culqi", "mercadopago"):
        breaker.reset(gateway)
    yield
    for gateway in ("culqi", "mercadopago"):
        breaker.reset(gateway)


def raise_example(**overrides):
    values = {
        "kind": AlertKind.WEBHOOK_PROCESSING_FAILED,
        "dedupe_key": "culqi",
        "severity": "warning",
        "title": "2 culqi webhook event(s) failed",
        "detail": "Retry them from the admin.",
        "context": {"gateway": "culqi"},
        **overrides,
    }
    return alert_raise(**values)


def make_payment(client_app, **fields) -> Payment:
    return Payment.objects.create(client_app=client_app, amount=fields.pop("amount", 2500), currency="PEN", **fields)


# --- The service ---------------------------------------------------------------------------------------


def test_raised_twice_is_one_row_counted_twice_and_emailed_once(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        first = raise_example()
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        second = raise_example(title="3 culqi webhook event(s) failed", severity="critical")

    assert callbacks == []  # a known alert queues no email
    assert second.pk == first.pk and Alert.objects.count() == 1
    alert = Alert.objects.get()
    assert (alert.count, alert.status, alert.severity) == (2, AlertStatus.OPEN, "critical")
    assert alert.title == "3 culqi webhook event(s) failed"  # the latest sighting's words
    assert alert.last_seen_at >= alert.first_seen_at and alert.emailed_at is not None

    assert len(mail.outbox) == 1
    email = mail.outbox[0]
    assert email.to == OPS
    assert email.subject == "[SmartPay warning] 2 culqi webhook event(s) failed"
    assert f"/admin/notifications/alert/{alert.pk}/change/" in email.body
    assert "Retry them from the admin." in email.body

    assert send_alert_email(alert.pk) is False  # the task run again (a redelivered message): no second email
    assert len(mail.outbox) == 1


def test_raised_again_after_resolution_is_a_new_alert_emailed_again(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        first = raise_example()
    assert alert_resolve(AlertKind.WEBHOOK_PROCESSING_FAILED, "culqi") == 1
    assert alert_resolve(AlertKind.WEBHOOK_PROCESSING_FAILED, "culqi") == 0  # nothing left to resolve
    with django_capture_on_commit_callbacks(execute=True):
        second = raise_example()

    first.refresh_from_db()
    assert (first.status, first.resolution, first.count) == (AlertStatus.RESOLVED, AlertResolution.AUTO, 1)
    assert first.resolved_at is not None
    assert second.pk != first.pk and (second.status, second.count) == (AlertStatus.OPEN, 1)
    assert len(mail.outbox) == 2


def test_an_email_is_sent_only_after_commit_and_never_for_a_rolled_back_alert(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        try:
            with transaction.atomic():
                raise_example()
                assert mail.outbox == []  # not before the commit
                raise RuntimeError("the caller's transaction fails")
        except RuntimeError:
            pass
    assert Alert.objects.count() == 0 and mail.outbox == []


def test_info_alerts_and_an_empty_alert_emails_setting_send_nothing(settings, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        raise_example(severity="info")
        settings.ALERT_EMAILS = []
        raise_example(kind=AlertKind.BREAKER_OPEN, dedupe_key="culqi", severity="critical")
    assert Alert.objects.count() == 2 and mail.outbox == []


def test_a_lost_email_is_queued_again_by_the_evaluation_and_sent_once(settings, monkeypatch):
    monkeypatch.setattr("notifications.alerts.enqueue_after_commit", lambda *args, **kwargs: None)  # broker down
    alert = raise_example(kind=AlertKind.MONEY_MISMATCH, dedupe_key="pay_1:culqi:-")  # no rule resolves it
    Alert.objects.filter(pk=alert.pk).update(first_seen_at=timezone.now() - timedelta(minutes=5))

    evaluate_alerts()
    evaluate_alerts()

    assert len(mail.outbox) == 1
    alert.refresh_from_db()
    assert alert.emailed_at is not None


def test_acknowledged_alerts_stay_unresolved_and_count_new_sightings():
    staff = get_user_model().objects.create_user("ana", password="pw-ana-12345", is_staff=True)
    alert = raise_example()
    assert alert_acknowledge(alert, staff) is True
    assert alert_acknowledge(alert, staff) is False  # once
    again = raise_example()
    assert again.pk == alert.pk
    assert (again.status, again.count, again.acknowledged_by) == (AlertStatus.ACKNOWLEDGED, 2, staff)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_raises_make_one_row_and_one_email(require_postgres):
    results = run_at_once(8, lambda index: raise_example(detail=f"raised by thread {index}").pk)

    assert len(set(results)) == 1
    alert = Alert.objects.get()
    assert alert.count == 8
    assert len(mail.outbox) == 1


# --- Rules ---------------------------------------------------------------------------------------------


def test_breaker_alert_opens_with_the_breaker_and_resolves_when_it_closes(settings):
    settings.CIRCUIT_FAILURE_THRESHOLD = 3
    for _ in range(3):
        breaker.record_failure("culqi")
    assert breaker.state("culqi").state == breaker.OPEN

    alert_rules.breaker_open()
    alert_rules.breaker_open()

    alert = Alert.objects.get(kind=AlertKind.BREAKER_OPEN)
    assert (alert.dedupe_key, alert.severity, alert.count) == ("culqi", "critical", 2)
    assert alert.title == "culqi: circuit breaker open"

    breaker.record_success("culqi")  # the probe succeeded: closed
    alert_rules.breaker_open()

    alert.refresh_from_db()
    assert (alert.status, alert.resolution) == (AlertStatus.RESOLVED, AlertResolution.AUTO)


def _charges(payment, gateway: str, outcomes: list[str], *, start: int = 0) -> None:
    PaymentAttempt.objects.bulk_create(
        PaymentAttempt(
            payment=payment,
            number=start + n + 1,
            operation=AttemptOperation.CHARGE,
            gateway=gateway,
            idempotency_key=f"{payment.pk}:charge:{start + n + 1}",
            outcome=outcome,
        )
        for n, outcome in enumerate(outcomes)
    )


def test_success_rate_alert_needs_the_minimum_sample_and_resolves_when_the_rate_is_back(client_app, settings):
    settings.ALERT_SUCCESS_RATE_MIN_SAMPLE = 10
    settings.ALERT_SUCCESS_RATE_MIN_PERCENT = 50
    settings.ALERT_SUCCESS_RATE_WINDOW_MINUTES = 15
    payment = make_payment(client_app)
    _charges(payment, "culqi", [AttemptOutcome.DECLINED] * 8 + [AttemptOutcome.SUCCEEDED])
    _charges(payment, "culqi", [AttemptOutcome.STARTED, AttemptOutcome.PENDING], start=100)  # not final: not counted
    _charges(payment, "mercadopago", [AttemptOutcome.SUCCEEDED] * 12, start=200)

    alert_rules.gateway_success_rate()
    assert not Alert.objects.exists()  # 9 final outcomes at culqi: below the sample, no verdict

    _charges(payment, "culqi", [AttemptOutcome.UNAVAILABLE], start=300)
    alert_rules.gateway_success_rate()

    alert = Alert.objects.get()
    assert (alert.kind, alert.dedupe_key) == (AlertKind.GATEWAY_SUCCESS_RATE_LOW, "culqi")
    assert alert.title == "culqi: 10% of charges succeeded in the last 15 min"
    assert alert.context == {"gateway": "culqi", "charges": 10, "succeeded": 1, "window_minutes": 15}

    # Retries of one charge (same idempotency key) are one charge: its last try's success counts.
    retried = [
        PaymentAttempt(
            payment=payment,
            number=400 + n,
            operation=AttemptOperation.CHARGE,
            gateway="culqi",
            idempotency_key=f"{payment.pk}:charge:retried",
            outcome=outcome,
        )
        for n, outcome in enumerate([AttemptOutcome.UNAVAILABLE, AttemptOutcome.SUCCEEDED])
    ]
    PaymentAttempt.objects.bulk_create(retried)
    _charges(payment, "culqi", [AttemptOutcome.SUCCEEDED] * 9, start=500)  # 11 of 21: 52 %
    alert_rules.gateway_success_rate()

    alert.refresh_from_db()
    assert (alert.status, alert.resolution) == (AlertStatus.RESOLVED, AlertResolution.AUTO)

    # Outcomes older than the window do not count.
    PaymentAttempt.objects.update(created_at=timezone.now() - timedelta(minutes=16))
    _charges(payment, "culqi", [AttemptOutcome.DECLINED] * 9, start=600)
    alert_rules.gateway_success_rate()
    assert Alert.objects.filter(resolved_at__isnull=True).count() == 0


def test_failed_webhook_events_raise_per_gateway_and_resolve_when_retried():
    events = [
        WebhookEvent.objects.create(gateway="culqi", event_id=f"evt_{n}", status=WebhookEvent.FAILED) for n in range(2)
    ]
    WebhookEvent.objects.create(gateway="mercadopago", event_id="mp_1", status=WebhookEvent.PROCESSED)

    alert_rules.webhook_processing_failed()

    alert = Alert.objects.get()
    assert (alert.kind, alert.dedupe_key, alert.title) == (
        AlertKind.WEBHOOK_PROCESSING_FAILED,
        "culqi",
        "2 culqi webhook event(s) failed",
    )
    WebhookEvent.objects.filter(pk__in=[e.pk for e in events]).update(status=WebhookEvent.PROCESSED)
    alert_rules.webhook_processing_failed()
    alert.refresh_from_db()
    assert alert.status == AlertStatus.RESOLVED


def test_failed_event_deliveries_raise_per_client_app(client_app):
    OutgoingEvent.objects.create(client_app=client_app, type="payment.succeeded", delivery_state=DeliveryState.FAILED)

    alert_rules.event_delivery_failed()

    alert = Alert.objects.get()
    assert (alert.kind, alert.dedupe_key) == (AlertKind.EVENT_DELIVERY_FAILED, client_app.pk)
    assert alert.title == "Events to Acme Store failed: 1 undelivered"
    OutgoingEvent.objects.update(delivery_state=DeliveryState.DELIVERED)
    alert_rules.event_delivery_failed()
    alert.refresh_from_db()
    assert alert.status == AlertStatus.RESOLVED


def test_a_failed_reconciliation_run_alerts_until_a_later_run_of_the_day_finishes(settings):
    day = timezone.localdate() - timedelta(days=1)
    failed = ReconciliationRun.objects.create(gateway="culqi", day=day, status=ReconciliationRun.FAILED, error="boom")

    alert_rules.reconciliation()

    alert = Alert.objects.get()
    assert (alert.kind, alert.dedupe_key, alert.severity) == (
        AlertKind.RECONCILIATION_FAILED,
        f"culqi:{day}",
        "critical",
    )
    assert alert.context["run"] == failed.pk
    ReconciliationRun.objects.create(gateway="culqi", day=day, status=ReconciliationRun.FINISHED)
    alert_rules.reconciliation()
    alert.refresh_from_db()
    assert alert.status == AlertStatus.RESOLVED


def test_reconciliation_mails_through_the_alert_not_also_to_admins(settings, django_capture_on_commit_callbacks):
    from payments.services.reconciliation import _alert

    run = ReconciliationRun.objects.create(gateway="culqi", day="2025-03-14", status=ReconciliationRun.FAILED)
    with django_capture_on_commit_callbacks(execute=True):
        _alert("Reconciliation culqi 2025-03-14 failed", "The run stopped: boom", run)
        _alert("Reconciliation culqi 2025-03-14 failed", "The run stopped: boom", run)  # a rerun failing again

    assert [m.to for m in mail.outbox] == [OPS]  # the alert's email, once; no mail_admins copy
    assert Alert.objects.get().count == 2

    settings.ALERT_EMAILS = []  # without ALERT_EMAILS, the admins' mail as before
    _alert("Reconciliation culqi 2025-03-14 failed", "The run stopped: boom", run)
    assert mail.outbox[-1].to == ["admins@smartpay.example"]


# --- Right where it happens: recording.py ----------------------------------------------------------------


def test_a_stray_charge_recorded_by_recording_raises_its_alert(client_app, django_capture_on_commit_callbacks):
    payment = make_payment(client_app, status=PaymentStatus.FAILED, gateway="culqi")
    late = ChargeResult(
        status=ChargeStatus.SUCCEEDED, gateway_payment_id="chr_test_late00001", amount=2500, currency="PEN"
    )
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        locked = Payment.objects.select_for_update().get(pk=payment.pk)
        assert recording.record_charge_view(locked, late, gateway="culqi", source=recording.WEBHOOK) == "stray"

    stray = StrayCharge.objects.get()
    alert = Alert.objects.get()
    assert (alert.kind, alert.dedupe_key, alert.severity) == (AlertKind.STRAY_CHARGE, stray.pk, "critical")
    assert alert.title == f"Stray charge: culqi holds 25.00 PEN for {payment.pk}"
    assert alert.context["payment"] == payment.pk and alert.context["stray_charge"] == stray.pk
    assert "waits for staff" in alert.detail
    assert len(mail.outbox) == 1

    # Recorded again (the webhook delivered twice): no second stray charge, no second alert sighting.
    with transaction.atomic():
        locked = Payment.objects.select_for_update().get(pk=payment.pk)
        recording.record_charge_view(locked, late, gateway="culqi", source=recording.SETTLEMENT)
    assert Alert.objects.get().count == 1

    # The rule keeps it open while the money is held, and resolves it once refunded.
    alert_rules.stray_charges()
    assert Alert.objects.get().count == 2
    StrayCharge.objects.update(status=StrayCharge.REFUNDED)
    alert_rules.stray_charges()
    assert Alert.objects.get().status == AlertStatus.RESOLVED


def test_a_gateway_object_of_another_amount_raises_a_money_mismatch_alert(client_app):
    payment = make_payment(client_app, status=PaymentStatus.PROCESSING, gateway="mercadopago")
    other = ChargeResult(status=ChargeStatus.SUCCEEDED, gateway_payment_id="555", amount=9999, currency="PEN")
    with transaction.atomic():
        locked = Payment.objects.select_for_update().get(pk=payment.pk)
        outcome = recording.record_charge_view(locked, other, gateway="mercadopago", source=recording.SETTLEMENT)

    assert outcome == recording.Recorded.MISMATCH
    alert = Alert.objects.get()
    assert (alert.kind, alert.dedupe_key, alert.severity) == (
        AlertKind.MONEY_MISMATCH,
        f"{payment.pk}:mercadopago:555",
        "critical",
    )
    assert "reports 99.99 PEN" in alert.detail and "25.00 PEN" in alert.detail
    evaluate_alerts()  # no rule resolves a mismatch: staff do
    assert Alert.objects.get().status == AlertStatus.OPEN


# --- Admin -----------------------------------------------------------------------------------------------


@pytest.fixture
def staff(client):
    """A staff user with no model permission at all: alerts are for every staff user."""
    user = get_user_model().objects.create_user("luz", password="pw-luz-12345", is_staff=True)
    client.force_login(user)
    return user


def test_the_admin_index_shows_open_alerts_to_every_staff_user_and_not_resolved_ones(client, staff):
    open_alert = raise_example(title="culqi: circuit breaker open", severity="critical", kind=AlertKind.BREAKER_OPEN)
    seen = datetime(2025, 3, 14, 3, 4, tzinfo=UTC)  # 22:04 the day before in Lima
    Alert.objects.filter(pk=open_alert.pk).update(last_seen_at=seen)
    raise_example(title="An old problem, fixed", dedupe_key="old")
    alert_resolve(AlertKind.WEBHOOK_PROCESSING_FAILED, "old")

    response = client.get("/admin/")

    html = response.content.decode()
    assert response.status_code == 200
    assert 'id="alerts-panel"' in html
    assert "culqi: circuit breaker open" in html
    assert f"/admin/notifications/alert/{open_alert.pk}/change/" in html
    assert "An old problem, fixed" not in html
    assert "2025-03-13 22:04" in html  # last seen, in Lima time
    assert "Acknowledge" in html

    # The alert's own page opens for the same user.
    assert client.get(f"/admin/notifications/alert/{open_alert.pk}/change/").status_code == 200


def test_the_admin_index_says_when_nothing_is_open(client, staff):
    html = client.get("/admin/").content.decode()
    assert "No open alerts." in html


def test_acknowledge_from_the_index_panel(client, staff):
    alert = raise_example()

    response = client.post(f"/admin/notifications/alert/{alert.pk}/acknowledge/", {"next": "/admin/"})

    assert response.status_code == 302 and response["Location"] == "/admin/"
    alert.refresh_from_db()
    assert (alert.status, alert.acknowledged_by) == (AlertStatus.ACKNOWLEDGED, staff)
    html = client.get("/admin/").content.decode()
    assert "acknowledged by luz" in html  # still listed until resolved
    assert client.get(f"/admin/notifications/alert/{alert.pk}/acknowledge/").status_code == 405


def test_acknowledge_action_in_the_changelist(client, staff):
    alerts = [raise_example(dedupe_key=key) for key in ("culqi", "mercadopago")]

    response = client.post(
        "/admin/notifications/alert/",
        {"action": "acknowledge", "_selected_action": [a.pk for a in alerts]},
        follow=True,
    )

    assert response.status_code == 200
    assert "Acknowledged 2 alert(s)." in response.content.decode()
    assert set(Alert.objects.values_list("status", flat=True)) == {AlertStatus.ACKNOWLEDGED}


def test_resolving_by_hand_needs_the_change_permission(client, staff, admin_client):
    alert = raise_example()
    client.post("/admin/notifications/alert/", {"action": "resolve", "_selected_action": [alert.pk]})
    client.post(f"/admin/notifications/alert/{alert.pk}/resolve/")
    alert.refresh_from_db()
    assert alert.status == AlertStatus.OPEN  # plain staff may not

    admin_client.post("/admin/notifications/alert/", {"action": "resolve", "_selected_action": [alert.pk]})
    alert.refresh_from_db()
    assert (alert.status, alert.resolution, alert.resolved_by.username) == (
        AlertStatus.RESOLVED,
        AlertResolution.STAFF,
        "admin",
    )


def test_the_changelist_filters_by_status_kind_and_severity(admin_client):
    raise_example()
    raise_example(kind=AlertKind.BREAKER_OPEN, severity="critical", title="mercadopago: circuit breaker open")
    alert_resolve(AlertKind.WEBHOOK_PROCESSING_FAILED, "culqi")

    unresolved = admin_client.get("/admin/notifications/alert/?state=unresolved").content.decode()
    assert "mercadopago: circuit breaker open" in unresolved and "webhook event(s) failed" not in unresolved
    by_kind = admin_client.get("/admin/notifications/alert/?kind=webhook_processing_failed").content.decode()
    assert "webhook event(s) failed" in by_kind and "circuit breaker" not in by_kind
    critical = admin_client.get("/admin/notifications/alert/?severity__exact=critical").content.decode()
    assert "circuit breaker" in critical and "webhook event(s) failed" not in critical


def test_evaluate_alerts_is_scheduled_every_minute(settings):
    (entry,) = [e for e in settings.CELERY_BEAT_SCHEDULE.values() if e["task"] == "notifications.evaluate_alerts"]
    assert entry["schedule"] == 60.0
    report = evaluate_alerts()
    assert set(alert_rules.RULES) <= set(report)
    assert not any(r.get("error") for r in report.values() if isinstance(r, dict)), report


def test_every_kind_has_a_place_to_look_in_the_admin(admin_client):
    from notifications.admin_alerts import where_to_look

    context = {"gateway": "culqi", "client_app": "app_1", "payment": "pay_1", "run": 1}
    kinds = [value for name, value in vars(AlertKind).items() if name.isupper()]
    for kind in kinds:
        found = where_to_look(Alert(kind=kind, context=context))
        assert found is not None, kind
        assert admin_client.get(found[1]).status_code == 200, (kind, found)
    _label, url = where_to_look(Alert(kind=AlertKind.WEBHOOK_PROCESSING_FAILED, context={}))
    assert url == "/admin/payments/webhookevent/?status__exact=failed"  # what the context allows
