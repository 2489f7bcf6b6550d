"""A NUL character anywhere in a request is a clear 400, never a 500 from the database."""

import json

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


def assert_refused(response):
    assert response.status_code == 400, response.content
    assert response["Content-Type"].startswith("application/problem+json")
    body = response.json()
    assert body["code"] == "malformed_request" and "NUL" in body["detail"]


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/payments/pay_%00x",  # a path id
        "/api/v1/payments?starting_after=pay_%00",  # a cursor
        "/api/v1/customers?email=a%00@example.pe",  # a filter
        "/api/v1/customers?external_id=%00",
        "/api/v1/payments?%00=1",  # a query key
    ],
)
def test_nul_in_the_path_or_query_is_refused(api, path):
    assert_refused(api.get(path))


def test_nul_in_a_json_body_is_refused_and_changes_nothing(api):
    from payments.models import Customer

    body = '{"email": "ana@example.pe", "external_id": "x\\u0000y"}'
    assert_refused(api.generic("POST", "/api/v1/customers", body, content_type="application/json"))
    metadata_key = json.dumps({"amount": 1000, "currency": "PEN", "metadata": {"k\u0000": "v"}})
    assert_refused(api.generic("POST", "/api/v1/payments", metadata_key, content_type="application/json"))
    assert not Customer.objects.exists()


def test_nul_in_a_webhook_event_id_is_refused_before_anything_is_stored():
    from payments.models import WebhookEvent

    event = {"object": "event", "id": "evt_\u0000", "type": "charge.creation.succeeded", "data": "{}"}
    assert_refused(Client().post("/webhooks/culqi", json.dumps(event), content_type="application/json"))
    assert not WebhookEvent.objects.exists()


def test_an_escaped_backslash_before_u0000_is_text_not_a_nul(api):
    body = json.dumps({"email": "ana@example.pe", "name": "C:\\u0000 folder"})  # backslash + "u0000"
    assert "\\\\u0000" in body
    response = api.generic("POST", "/api/v1/customers", body, content_type="application/json")
    assert response.status_code == 201, response.content
    assert response.json()["name"] == "C:\\u0000 folder"
