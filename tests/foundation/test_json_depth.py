"""JSON nested thousands deep is a 400 everywhere it is read, before it is parsed (never a 500)."""

import json

import pytest

from payments.models import Customer, WebhookEvent
from smartpay import jsonsafe
from tests.foundation.test_errors import assert_problem

pytestmark = pytest.mark.django_db

DEEP_ARRAY = "[" * 5000 + "]" * 5000
DEEP_OBJECT = '{"a":' * 5000 + "1" + "}" * 5000


@pytest.mark.parametrize("deep", [DEEP_ARRAY, DEEP_OBJECT])
def test_a_deep_body_to_the_api_is_a_400_and_creates_nothing(api, deep):
    body = '{"email": "a@example.com", "metadata": ' + deep + "}"
    response = api.post("/api/v1/customers", body, content_type="application/json")
    assert_problem(response, 400, "malformed_request")
    assert Customer.objects.count() == 0


@pytest.mark.parametrize("deep", [DEEP_ARRAY, DEEP_OBJECT])
def test_a_deep_body_to_the_mercadopago_webhook_is_a_400_before_any_check(client, deep):
    response = client.post("/webhooks/mercadopago?type=payment", deep, content_type="application/json")
    assert_problem(response, 400, "webhook_malformed")
    assert WebhookEvent.objects.count() == 0


def test_a_deep_body_to_the_culqi_webhook_is_a_400(client, settings):
    settings.CULQI_WEBHOOK_USERNAME = settings.CULQI_WEBHOOK_PASSWORD = ""
    response = client.post("/webhooks/culqi", DEEP_OBJECT, content_type="application/json")
    assert_problem(response, 400, "webhook_malformed")
    nested = json.dumps({"id": "evt_1", "type": "charge.succeeded", "data": DEEP_ARRAY})  # Culqi's data is a string
    response = client.post("/webhooks/culqi", nested, content_type="application/json")
    assert_problem(response, 400, "webhook_malformed")
    assert WebhookEvent.objects.count() == 0


def test_depth_counts_brackets_outside_strings_only():
    jsonsafe.check_depth(json.dumps({"note": "[" * 10_000}).encode())  # brackets inside a string
    jsonsafe.check_depth(json.dumps({"a": [[{"b": 1}]] * 1000}))  # wide, not deep
    with pytest.raises(jsonsafe.JSONTooDeep):
        jsonsafe.check_depth("[" * (jsonsafe.MAX_JSON_DEPTH + 1) + "]" * (jsonsafe.MAX_JSON_DEPTH + 1))
    jsonsafe.check_depth("[" * jsonsafe.MAX_JSON_DEPTH + "]" * jsonsafe.MAX_JSON_DEPTH)
    escaped = json.dumps({"q": 'say \\"[[[[ and "' + "{" * 100})
    jsonsafe.check_depth(escaped)
