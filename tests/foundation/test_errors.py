"""Every error the API returns is RFC 9457 problem+json with a stable code and the request id."""

import json

import pytest
from django.conf import settings
from django.http import HttpResponse
from django.test import Client
from django.urls import path
from rest_framework.permissions import AllowAny
from rest_framework.test import APIClient
from rest_framework.views import APIView

from payments.models import Customer
from smartpay.urls import urlpatterns as project_urlpatterns

pytestmark = pytest.mark.django_db

PROBLEM_KEYS = {"type", "title", "status", "detail", "code", "request_id"}
CARD = "4111111111111111"  # Visa test number: Luhn-valid
NOT_A_CARD = "4111111111111112"  # 16 digits, fails Luhn
SECRET_TEXT = "kaboom: internal state db-password=hunter2"


def assert_problem(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert set(body) >= PROBLEM_KEYS, body
    assert body["status"] == status
    assert body["code"] == code
    assert body["type"] == f"urn:smartpay:problem:{code}"
    assert body["title"] and body["detail"]
    assert body["request_id"] == response["Request-Id"]
    return body


# --- A test-only URLconf: the project's routes plus views that fail unexpectedly --------------------


class BoomApiView(APIView):
    authentication_classes = []
    permission_classes = [AllowAny]

    def get(self, request):
        raise RuntimeError(SECRET_TEXT)


def boom_plain_view(request):
    raise RuntimeError(SECRET_TEXT)


def ok_plain_view(request):
    return HttpResponse("ok")


urlpatterns = [
    path("api/v1/test-boom", BoomApiView.as_view()),  # before the project's /api/ catch-all 404
    *project_urlpatterns,
    path("test-boom-plain", boom_plain_view),
]
handler404 = "smartpay.urls.handler404"
handler500 = "smartpay.urls.handler500"


# --- 404 / 405 ------------------------------------------------------------------------------------


def test_unknown_api_path_is_404_problem(api):
    assert_problem(api.get("/api/v1/no-such-thing"), 404, "not_found")


def test_unknown_path_without_auth_is_404_problem(db):
    assert_problem(APIClient().get("/nothing/here"), 404, "not_found")


def test_another_apps_customer_is_404_exactly_like_a_missing_one(api, other_api):
    foreign = other_api.post("/api/v1/customers", {"name": "Theirs"}, format="json").json()["id"]
    foreign_body = assert_problem(api.get(f"/api/v1/customers/{foreign}"), 404, "not_found")
    missing_body = assert_problem(api.get("/api/v1/customers/cus_00000000000000000000000000"), 404, "not_found")
    assert foreign not in json.dumps(foreign_body)
    assert {k: v for k, v in foreign_body.items() if k != "request_id"} == {
        k: v for k, v in missing_body.items() if k != "request_id"
    }


def test_wrong_method_is_405_with_allow_header(api):
    response = api.delete("/api/v1/customers")
    assert_problem(response, 405, "method_not_allowed")
    assert "GET" in response["Allow"] and "POST" in response["Allow"]


# --- 400: bodies --------------------------------------------------------------------------------------


def test_malformed_json_is_400(api):
    response = api.post("/api/v1/customers", data='{"name": "x",', content_type="application/json")
    assert_problem(response, 400, "malformed_request")
    assert Customer.objects.count() == 0


def test_json_array_body_is_400(api):
    response = api.post("/api/v1/customers", data='[{"name": "x"}]', content_type="application/json")
    body = assert_problem(response, 400, "malformed_request")
    assert "object" in body["detail"]
    assert Customer.objects.count() == 0


def test_wrong_types_are_400_with_errors_per_field(api):
    response = api.post("/api/v1/customers", {"email": 123, "name": ["x"], "metadata": "not-a-map"}, format="json")
    body = assert_problem(response, 400, "validation_error")
    assert set(body["errors"]) == {"email", "name", "metadata"}
    assert all(isinstance(messages, list) and messages for messages in body["errors"].values())
    assert Customer.objects.count() == 0


def test_unknown_field_is_400(api):
    response = api.post("/api/v1/customers", {"name": "Ana", "nmae": "typo"}, format="json")
    body = assert_problem(response, 400, "validation_error")
    assert body["errors"] == {"nmae": ["Unknown field."]}
    assert Customer.objects.count() == 0


def test_body_over_the_limit_is_413(api):
    big = json.dumps({"name": "x" * (settings.MAX_REQUEST_BODY_BYTES + 1)})
    response = api.post("/api/v1/customers", data=big, content_type="application/json")
    assert_problem(response, 413, "payload_too_large")
    assert Customer.objects.count() == 0


def test_declared_content_length_over_the_limit_is_413_before_reading(db):
    response = Client().post(
        "/api/v1/customers",
        data="{}",
        content_type="application/json",
        CONTENT_LENGTH=str(settings.MAX_REQUEST_BODY_BYTES + 1),
    )
    assert_problem(response, 413, "payload_too_large")


def test_wrong_content_type_is_415(api):
    response = api.post("/api/v1/customers", data="name=Ana", content_type="application/x-www-form-urlencoded")
    assert_problem(response, 415, "unsupported_media_type")
    assert Customer.objects.count() == 0


# --- 500 --------------------------------------------------------------------------------------------


@pytest.mark.urls(__name__)
def test_unhandled_error_in_an_api_view_is_500_without_the_exception_text(db):
    response = APIClient().get("/api/v1/test-boom")
    assert_problem(response, 500, "internal_error")
    assert b"kaboom" not in response.content
    assert b"hunter2" not in response.content
    assert b"RuntimeError" not in response.content


@pytest.mark.urls(__name__)
def test_unhandled_error_outside_drf_is_500_problem_too(db):
    response = Client(raise_request_exception=False).get("/test-boom-plain")
    assert_problem(response, 500, "internal_error")
    assert b"kaboom" not in response.content
    assert b"RuntimeError" not in response.content


# --- Card data ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "payload",
    [
        {"name": CARD},
        {"name": f"card {CARD[:4]} {CARD[4:8]} {CARD[8:12]} {CARD[12:]} thanks"},
        {"name": "4111-1111-1111-1111"},
        {"metadata": {"note": f"pan={CARD}"}},
        {"metadata": {"nested": {"deeper": ["ok", CARD]}}},
        {"description": CARD},
        {"metadata": {CARD: "as a key"}},
    ],
)
def test_card_number_anywhere_in_the_body_is_refused_and_nothing_is_created(api, payload):
    response = api.post("/api/v1/customers", payload, format="json")
    assert_problem(response, 400, "card_data_not_allowed")
    assert CARD not in response.content.decode()
    assert CARD[-4:] + '"' not in response.content.decode()
    assert Customer.objects.count() == 0


def test_card_number_in_a_patch_is_refused_and_nothing_changes(api):
    customer_id = api.post("/api/v1/customers", {"name": "Ana"}, format="json").json()["id"]
    response = api.patch(f"/api/v1/customers/{customer_id}", {"name": CARD}, format="json")
    assert_problem(response, 400, "card_data_not_allowed")
    assert Customer.objects.get(pk=customer_id).name == "Ana"


def test_card_number_in_a_query_parameter_is_refused(api):
    response = api.get("/api/v1/customers", {"email": CARD})
    body = assert_problem(response, 400, "card_data_not_allowed")
    assert CARD not in json.dumps(body)


def test_sixteen_digits_failing_luhn_are_accepted(api):
    response = api.post("/api/v1/customers", {"name": NOT_A_CARD, "metadata": {"ref": NOT_A_CARD}}, format="json")
    assert response.status_code == 201, response.content
    assert Customer.objects.get().name == NOT_A_CARD


# --- Request ids -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "url"),
    [("get", "/healthz"), ("get", "/readyz"), ("get", "/api/v1/customers"), ("get", "/api/schema/")],
)
def test_every_response_carries_a_request_id(api, method, url):
    response = getattr(api, method)(url)
    assert response.status_code < 500
    assert response["Request-Id"].startswith("req_")


def test_unauthenticated_error_carries_the_request_id(db):
    response = APIClient().get("/api/v1/customers")
    assert_problem(response, 401, "unauthenticated")


def test_incoming_request_id_is_echoed_in_header_and_body(db):
    response = APIClient().get("/api/v1/customers", HTTP_X_REQUEST_ID="client-trace.42:a_b")
    assert response["Request-Id"] == "client-trace.42:a_b"
    assert response.json()["request_id"] == "client-trace.42:a_b"


@pytest.mark.parametrize(
    "incoming",
    ["has spaces in it", "line\nInjected: header", "x" * 129, "", "<script>", "caf\u00e9"],
)
def test_unsafe_incoming_request_id_is_replaced(db, incoming):
    response = APIClient().get("/api/v1/customers", HTTP_X_REQUEST_ID=incoming)
    assert response["Request-Id"] != incoming
    assert response["Request-Id"].startswith("req_")
    assert response.json()["request_id"] == response["Request-Id"]


def test_each_request_gets_its_own_id(api):
    first = api.get("/api/v1/customers")["Request-Id"]
    second = api.get("/api/v1/customers")["Request-Id"]
    assert first != second
