"""The OpenAPI schema generates without a single warning, and the docs need no CDN."""

import contextlib
import io
import re

import pytest
import yaml
from django.core.management import call_command
from django.test import Client
from drf_spectacular.drainage import GENERATOR_STATS
from drf_spectacular.management.commands.spectacular import SchemaGenerationError, SchemaValidationError

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def schema(tmp_path_factory):
    """`manage.py spectacular --fail-on-warn --validate`: any warning or error fails the build."""
    target = tmp_path_factory.mktemp("schema") / "openapi.yaml"
    GENERATOR_STATS.reset()  # the counters are process-wide: count only this generation's warnings
    output = io.StringIO()
    try:
        with contextlib.redirect_stderr(output):
            call_command("spectacular", "--fail-on-warn", "--validate", "--file", str(target))
    except (SchemaGenerationError, SchemaValidationError) as exc:
        pytest.fail(f"{type(exc).__name__}: {exc}\n{output.getvalue()}")
    finally:
        GENERATOR_STATS.reset()
    return yaml.safe_load(target.read_text())


def test_schema_generates_and_validates_without_warnings(schema):
    assert schema["openapi"].startswith("3.")
    assert schema["info"]["title"] == "SmartPay API"


def test_schema_documents_the_customer_endpoints(schema):
    paths = schema["paths"]
    assert set(paths["/api/v1/customers"]) >= {"get", "post"}
    assert set(paths["/api/v1/customers/{customer_id}"]) >= {"get", "patch"}
    list_params = {param["name"] for param in paths["/api/v1/customers"]["get"]["parameters"]}
    assert {"limit", "starting_after", "external_id", "email"} <= list_params


def test_schema_declares_bearer_api_key_auth(schema):
    scheme = schema["components"]["securitySchemes"]["ApiKeyAuth"]
    assert scheme["type"] == "http"
    assert scheme["scheme"] == "bearer"
    operation = schema["paths"]["/api/v1/customers"]["get"]
    assert {"ApiKeyAuth": []} in operation.get("security", schema.get("security", []))


def test_schema_endpoint_is_public(client):
    response = client.get("/api/schema/")
    assert response.status_code == 200
    assert b"openapi" in response.content


def _asset_urls(html: str) -> list[str]:
    return re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", html)


def test_docs_page_uses_only_local_assets(client):
    response = client.get("/api/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    assets = _asset_urls(html)
    assert any(url.endswith(".js") for url in assets)
    assert any(url.endswith(".css") for url in assets)
    remote = [url for url in assets if re.match(r"^(?:https?:)?//", url)]
    assert remote == [], f"docs load assets from a CDN: {remote}"
    assert not re.search(r"https?://(?:cdn|unpkg|fastly|jsdelivr)", html)


def test_docs_assets_are_served_by_this_service(settings):
    # Production serves them from collectstatic's output; here WhiteNoise reads the finders.
    settings.WHITENOISE_USE_FINDERS = True
    client = Client()  # middleware is built per client, after the override
    for url in _asset_urls(client.get("/api/docs/").content.decode()):
        if url.startswith("/static/"):
            assert client.get(url).status_code == 200, url
