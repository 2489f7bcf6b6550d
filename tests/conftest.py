import os

import pytest
from django.db import connection
from rest_framework.test import APIClient

from payments.services.clients import api_key_issue, client_app_create
from tests.transport_faults import servers  # noqa: F401 (a fixture: FaultyServers closed after each test)


@pytest.fixture
def client_app(db):
    return client_app_create(name="Acme Store", webhook_url="https://acme.example/hooks")


@pytest.fixture
def api_key(client_app):
    return api_key_issue(client_app=client_app, label="test").raw_key


@pytest.fixture
def api(api_key):
    """An API client authenticated as `client_app`."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key}")
    return client


@pytest.fixture
def other_api(db):
    other = client_app_create(name="Other App")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_issue(client_app=other).raw_key}")
    client.client_app = other
    return client


def on_postgres() -> bool:
    return connection.vendor == "postgresql"


@pytest.fixture
def require_postgres(db):
    """Concurrency tests need real row locks. In CI (REQUIRE_POSTGRES=1) a missing PostgreSQL fails."""
    if not on_postgres():
        if os.environ.get("REQUIRE_POSTGRES"):
            pytest.fail("REQUIRE_POSTGRES is set but the suite is not running on PostgreSQL")
        pytest.skip("needs PostgreSQL (run .ci/run or set DATABASE_URL)")
