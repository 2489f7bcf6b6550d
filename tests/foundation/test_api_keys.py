import hashlib

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from payments.models import ApiKey, ClientApp
from payments.services.clients import api_key_issue, api_key_revoke

pytestmark = pytest.mark.django_db


def _get(key: str | None, header: str | None = None):
    client = APIClient()
    if header is not None:
        client.credentials(HTTP_AUTHORIZATION=header)
    elif key is not None:
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client.get("/api/v1/customers")


def test_key_is_stored_only_as_sha256_with_visible_prefix(client_app):
    issued = api_key_issue(client_app=client_app)
    row = ApiKey.objects.get(pk=issued.api_key.pk)
    assert row.key_hash == hashlib.sha256(issued.raw_key.encode()).hexdigest()
    assert row.prefix == issued.raw_key[:12]
    assert issued.raw_key.startswith("sk_test_")  # the suite runs against the sandbox gateways
    assert len(issued.raw_key) > 40
    stored_text = " ".join(str(value) for value in ApiKey.objects.filter(pk=row.pk).values().first().values())
    assert issued.raw_key not in stored_text


def test_valid_key_authenticates_and_records_last_use(client_app, api_key):
    assert ApiKey.objects.get(client_app=client_app).last_used_at is None
    response = _get(api_key)
    assert response.status_code == 200
    assert ApiKey.objects.get(client_app=client_app).last_used_at is not None


@pytest.mark.parametrize(
    ("header", "code"),
    [
        (None, "unauthenticated"),
        ("Bearer", "invalid_api_key"),
        ("Token abc", "invalid_api_key"),
        ("Bearer sk_live_doesnotexist", "invalid_api_key"),
        ("Bearer a b", "invalid_api_key"),
    ],
)
def test_missing_malformed_and_unknown_keys_are_401_problems(db, header, code):
    response = _get(None, header=header)
    assert response.status_code == 401
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["code"] == code
    assert body["status"] == 401
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_revoked_key_is_refused_while_other_keys_of_the_app_work(client_app):
    first = api_key_issue(client_app=client_app)
    second = api_key_issue(client_app=client_app)
    api_key_revoke(api_key=first.api_key)
    assert _get(first.raw_key).json()["code"] == "invalid_api_key"
    assert _get(second.raw_key).status_code == 200


def test_inactive_client_app_is_refused(client_app, api_key):
    ClientApp.objects.filter(pk=client_app.pk).update(is_active=False)
    response = _get(api_key)
    assert response.status_code == 401
    assert response.json()["code"] == "client_app_inactive"


@pytest.mark.parametrize(("mode", "prefix"), [("sandbox", "sk_test_"), ("live", "sk_live_")])
def test_create_client_app_command_prints_the_key_alone_on_the_last_line(db, capsys, settings, mode, prefix):
    settings.GATEWAY_MODE = mode  # a sandbox key never looks like a live one
    call_command("create_client_app", "Shop One")
    lines = capsys.readouterr().out.strip().splitlines()
    key = lines[-1]
    assert key.startswith(prefix) and " " not in key
    app = ClientApp.objects.get(name="Shop One")
    assert _get(key).status_code == 200
    assert ApiKey.objects.get(client_app=app).key_hash == hashlib.sha256(key.encode()).hexdigest()


def test_seed_demo_is_idempotent_and_prints_a_working_key(db, capsys, settings):
    settings.DEBUG = True
    call_command("seed_demo")
    first_key = capsys.readouterr().out.split("API key:")[1].split()[0]
    call_command("seed_demo")
    second_key = capsys.readouterr().out.split("API key:")[1].split()[0]
    assert ClientApp.objects.filter(name="Demo client app").count() == 1
    assert _get(second_key).status_code == 200
    assert _get(first_key).status_code == 401  # rotated: one working demo key at a time
    from django.contrib.auth import get_user_model

    assert get_user_model().objects.filter(username="admin", is_superuser=True).count() == 1
