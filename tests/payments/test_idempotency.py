"""Idempotency-Key semantics, with the Culqi wire mocked by `responses`."""

import json
from datetime import timedelta
from pathlib import Path

import pytest
import responses
from django.utils import timezone

from payments import hooks, idempotency
from payments.models import IdempotencyRecord, Payment
from payments.tasks import purge_idempotency_records

pytestmark = pytest.mark.django_db

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "culqi"
BODY = {"amount": 2500, "currency": "PEN", "email": "p@example.com", "source": {"gateway": "culqi", "token": "tkn_x"}}


@pytest.fixture
def culqi_ok(settings):
    settings.CULQI_API_BASE = "https://api.culqi.test"
    from payments.gateways import registry

    registry._cache.clear()
    charge = json.loads((FIXTURES / "charge_captured.json").read_text())
    counter = iter(range(1000))

    def reply(request):
        sent = json.loads(request.body)
        body = {
            **charge,
            "id": f"chr_test_{next(counter):016d}",
            "amount": sent["amount"],
            "metadata": sent["metadata"],
        }
        return 201, {}, json.dumps(body)

    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.add_callback(responses.POST, "https://api.culqi.test/v2/charges", callback=reply)
        yield mock
    registry._cache.clear()


def post(api, body, key):
    return api.post("/api/v1/payments", body, format="json", HTTP_IDEMPOTENCY_KEY=key)


def test_replay_returns_the_first_response_and_charges_once(api, culqi_ok):
    first = post(api, BODY, "abc")
    second = post(api, BODY, "abc")
    assert first.status_code == second.status_code == 201
    assert second.json() == first.json()
    assert second["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first
    assert len(culqi_ok.calls) == 1
    assert Payment.objects.count() == 1


def test_same_key_different_body_is_422(api, culqi_ok):
    post(api, BODY, "abc")
    response = post(api, {**BODY, "amount": 2600}, "abc")
    assert response.status_code == 422
    assert response.json()["code"] == "idempotency_key_reused"
    assert len(culqi_ok.calls) == 1


def test_keys_are_scoped_per_client_app(api, other_api, culqi_ok):
    post(api, BODY, "shared")
    response = post(other_api, BODY, "shared")
    assert response.status_code == 201
    assert "Idempotent-Replayed" not in response
    assert len(culqi_ok.calls) == 2


def test_key_in_use_is_409(api, client_app, settings):
    settings.IDEMPOTENCY_WAIT_SECONDS = 0
    IdempotencyRecord.objects.create(
        client_app=client_app,
        key="busy",
        fingerprint=idempotency.fingerprint("POST", "/api/v1/payments", BODY),
    )
    response = post(api, BODY, "busy")
    assert response.status_code == 409
    assert response.json()["code"] == "idempotency_key_in_use"
    assert response["Retry-After"] == "1"
    assert Payment.objects.count() == 0


def test_a_rejected_request_does_not_hold_the_key(api, culqi_ok):
    bad = post(api, {**BODY, "amount": -1}, "fixme")
    assert bad.status_code == 400
    good = post(api, BODY, "fixme")
    assert good.status_code == 201
    assert "Idempotent-Replayed" not in good


def test_overlong_key_is_refused(api):
    response = post(api, BODY, "x" * 256)
    assert response.status_code == 400
    assert response.json()["code"] == "idempotency_key_invalid"


def test_records_are_kept_24_hours_then_purged(api, culqi_ok, client_app):
    post(api, BODY, "old")
    post(api, {**BODY, "amount": 2600}, "new")
    IdempotencyRecord.objects.filter(key="old").update(created_at=timezone.now() - timedelta(hours=25))
    IdempotencyRecord.objects.filter(key="new").update(created_at=timezone.now() - timedelta(hours=23))
    assert purge_idempotency_records.delay().get() == 1
    assert list(IdempotencyRecord.objects.values_list("key", flat=True)) == ["new"]


def test_payment_create_with_a_token_runs_a_bounded_number_of_queries(
    api, culqi_ok, django_assert_max_num_queries, monkeypatch
):
    post(api, BODY, "warm-up")  # API key last_used_at is written at most once a minute; series counters exist
    # With every success handler (the invoice is issued in the payment's success transaction):
    with django_assert_max_num_queries(31) as with_invoice:
        assert post(api, {**BODY, "amount": 2600}, "with-invoice").status_code == 201
    assert len(with_invoice.captured_queries) > 15  # the invoice is really written in the same transaction

    # The payment path alone: 20 statements, 12 queries (key lookup, idempotency claim, payment and
    # attempt inserts, the key's link to the payment, locked re-read, attempt and payment updates,
    # the payment.succeeded event: its attempts read and its outbox insert; attempts for the
    # response, idempotency completion) and 8 savepoint statements of its three short
    # transactions and the event's dedupe savepoint.
    monkeypatch.setitem(hooks._on_success, hooks.ANY_PURPOSE, [])
    with django_assert_max_num_queries(20) as captured:
        response = post(api, {**BODY, "amount": 2700}, "counted")
    assert response.status_code == 201
    writes = [q["sql"] for q in captured.captured_queries if q["sql"].startswith(("INSERT", "UPDATE"))]
    assert len(writes) == 8  # idempotency claim, link, completion; payment + attempt insert, their updates; event


def test_a_not_found_answer_is_not_stored_as_a_server_error(api):
    path = "/api/v1/payments/pay_missing/refunds"
    first = api.post(path, {}, format="json", HTTP_IDEMPOTENCY_KEY="nf")
    again = api.post(path, {}, format="json", HTTP_IDEMPOTENCY_KEY="nf")
    assert first.status_code == again.status_code == 404
    assert "Idempotent-Replayed" not in again
    assert IdempotencyRecord.objects.count() == 0
