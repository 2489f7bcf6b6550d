"""Customers API: create, list (cursor pagination, filters), retrieve, update, tenant isolation."""

import time

import pytest

from payments.models import Customer

pytestmark = pytest.mark.django_db

URL = "/api/v1/customers"


def create(client, **fields):
    response = client.post(URL, fields, format="json")
    assert response.status_code == 201, response.content
    # Ids order by creation time at millisecond resolution: keep creations in distinct milliseconds.
    time.sleep(0.002)
    return response.json()


def test_create_returns_the_customer(api, client_app):
    response = api.post(
        URL,
        {
            "external_id": "user-42",
            "email": "ana@example.pe",
            "name": "Ana Quispe",
            "phone": "+51 987 654 321",
            "metadata": {"plan": "pro"},
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["id"].startswith("cus_") and len(body["id"]) == 30
    assert body["object"] == "customer"
    assert body["external_id"] == "user-42"
    assert body["email"] == "ana@example.pe"
    assert body["name"] == "Ana Quispe"
    assert body["phone"] == "+51 987 654 321"
    assert body["metadata"] == {"plan": "pro"}
    assert body["created_at"] and body["updated_at"]
    fields = {"id", "object", "external_id", "email", "name", "phone", "metadata", "created_at", "updated_at"}
    assert set(body) == fields
    row = Customer.objects.get(pk=body["id"])
    assert row.client_app_id == client_app.pk


def test_create_with_an_empty_body_is_allowed(api):
    body = create(api)
    assert body["external_id"] is None
    assert body["metadata"] == {}


def test_list_is_newest_first_with_cursor_pagination(api):
    ids = [create(api, name=f"c{index}")["id"] for index in range(5)]
    newest_first = list(reversed(ids))

    page1 = api.get(URL, {"limit": 2}).json()
    assert page1["object"] == "list"
    assert [row["id"] for row in page1["data"]] == newest_first[:2]
    assert page1["has_more"] is True
    assert page1["next_starting_after"] == newest_first[1]

    page2 = api.get(URL, {"limit": 2, "starting_after": page1["next_starting_after"]}).json()
    assert [row["id"] for row in page2["data"]] == newest_first[2:4]
    assert page2["has_more"] is True

    page3 = api.get(URL, {"limit": 2, "starting_after": page2["next_starting_after"]}).json()
    assert [row["id"] for row in page3["data"]] == newest_first[4:]
    assert page3["has_more"] is False
    assert page3["next_starting_after"] is None


def test_list_default_limit_is_10(api):
    for index in range(11):
        create(api, name=f"c{index}")
    body = api.get(URL).json()
    assert len(body["data"]) == 10
    assert body["has_more"] is True


def test_list_shows_only_the_callers_customers(api, other_api):
    mine = create(api, name="mine")["id"]
    create(other_api, name="theirs")
    body = api.get(URL).json()
    assert [row["id"] for row in body["data"]] == [mine]
    assert body["has_more"] is False


def test_list_filters_by_external_id_and_email(api, other_api):
    target = create(api, external_id="ext-1", email="Ana@Example.pe")["id"]
    create(api, external_id="ext-2", email="bob@example.pe")
    create(other_api, external_id="ext-1", email="ana@example.pe")
    assert [row["id"] for row in api.get(URL, {"external_id": "ext-1"}).json()["data"]] == [target]
    assert [row["id"] for row in api.get(URL, {"email": "ana@example.pe"}).json()["data"]] == [target]
    assert api.get(URL, {"external_id": "nope"}).json()["data"] == []


@pytest.mark.parametrize("limit", ["0", "101", "-1", "ten"])
def test_limit_out_of_range_is_400(api, limit):
    response = api.get(URL, {"limit": limit})
    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["code"] == "validation_error"
    assert list(body["errors"]) == ["limit"]


def test_retrieve(api):
    created = create(api, name="Ana", external_id="u1")
    response = api.get(f"{URL}/{created['id']}")
    assert response.status_code == 200
    assert response.json() == created


def test_patch_changes_only_the_given_fields(api):
    created = create(api, name="Ana", email="ana@example.pe", metadata={"a": "1"})
    response = api.patch(f"{URL}/{created['id']}", {"name": "Ana María", "metadata": {"b": "2"}}, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["name"] == "Ana María"
    assert body["email"] == "ana@example.pe"
    assert body["metadata"] == {"b": "2"}
    assert body["updated_at"] >= created["updated_at"]
    row = Customer.objects.get(pk=created["id"])
    assert (row.name, row.email, row.metadata) == ("Ana María", "ana@example.pe", {"b": "2"})


def test_another_apps_customer_is_404_for_retrieve_and_patch(api, other_api):
    theirs = create(other_api, name="Theirs", email="t@example.pe")["id"]
    for response in (api.get(f"{URL}/{theirs}"), api.patch(f"{URL}/{theirs}", {"name": "Hijacked"}, format="json")):
        assert response.status_code == 404
        assert response.json()["code"] == "not_found"
        assert "Theirs" not in response.content.decode()
    assert Customer.objects.get(pk=theirs).name == "Theirs"


def test_unknown_id_is_404(api):
    assert api.get(f"{URL}/cus_doesnotexist").status_code == 404


def test_duplicate_external_id_in_the_same_app_is_409(api, other_api):
    first = create(api, external_id="user-7", name="First")
    response = api.post(URL, {"external_id": "user-7", "name": "Second"}, format="json")
    assert response.status_code == 409
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["code"] == "customer_exists"
    assert list(Customer.objects.filter(external_id="user-7").values_list("pk", flat=True)) == [first["id"]]
    # The same external_id in another app is a different customer.
    other = other_api.post(URL, {"external_id": "user-7"}, format="json")
    assert other.status_code == 201


def test_patch_to_a_taken_external_id_is_409_and_changes_nothing(api):
    create(api, external_id="a")
    second = create(api, external_id="b", name="B")
    response = api.patch(f"{URL}/{second['id']}", {"external_id": "a", "name": "changed"}, format="json")
    assert response.status_code == 409
    assert response.json()["code"] == "customer_exists"
    row = Customer.objects.get(pk=second["id"])
    assert (row.external_id, row.name) == ("b", "B")


def test_customers_without_external_id_do_not_collide(api):
    create(api, name="one")
    create(api, name="two")
    assert Customer.objects.filter(external_id__isnull=True).count() == 2


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"email": "not-an-email"}, "email"),
        ({"phone": "call me"}, "phone"),
        ({"external_id": "x" * 121}, "external_id"),
        ({"metadata": {f"k{i}": "v" for i in range(51)}}, "metadata"),
        ({"metadata": {"k" * 41: "v"}}, "metadata"),
        ({"metadata": {"k": "v" * 501}}, "metadata.k"),
    ],
)
def test_invalid_fields_are_400_with_errors_by_field(api, payload, field):
    response = api.post(URL, payload, format="json")
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "validation_error"
    assert field in body["errors"], body
    assert Customer.objects.count() == 0


def test_invalid_email_on_patch_is_400(api):
    created = create(api, email="ok@example.pe")
    response = api.patch(f"{URL}/{created['id']}", {"email": "nope"}, format="json")
    assert response.status_code == 400
    assert "email" in response.json()["errors"]
    assert Customer.objects.get(pk=created["id"]).email == "ok@example.pe"
