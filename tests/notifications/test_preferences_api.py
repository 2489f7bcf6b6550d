"""`GET|PUT /api/v1/customers/{id}/preferences`: defaults without a row, replace on PUT, strict validation."""

import pytest

from notifications.models import CustomerPreferences
from notifications.services import customer_preferences_update
from payments.models import Customer

pytestmark = pytest.mark.django_db


@pytest.fixture
def customer(client_app):
    return Customer.objects.create(client_app=client_app, email="ana@example.pe", name="Ana Quispe")


def path(customer) -> str:
    return f"/api/v1/customers/{customer.pk}/preferences"


def test_get_answers_the_defaults_when_nothing_was_saved(api, customer, settings):
    settings.CREDITS_LOW_BALANCE_THRESHOLD = 20
    response = api.get(path(customer))
    assert response.status_code == 200
    assert response.json() == {
        "object": "customer_preferences",
        "customer": customer.pk,
        "language": "es",
        "email_alerts": True,
        "billing_email": "",
        "low_balance_threshold": None,
        "effective_low_balance_threshold": 20,
        "updated_at": None,
    }
    assert not CustomerPreferences.objects.exists()  # reading creates nothing


def test_put_saves_and_get_shows_it(api, customer):
    body = {
        "language": "en",
        "email_alerts": False,
        "billing_email": "conta@example.pe",
        "low_balance_threshold": 75,
    }
    response = api.put(path(customer), body, format="json")
    assert response.status_code == 200, response.json()
    data = response.json()
    assert {key: data[key] for key in body} == body
    assert data["effective_low_balance_threshold"] == 75
    assert data["updated_at"] is not None
    assert api.get(path(customer)).json() == data
    preferences = CustomerPreferences.objects.get(customer=customer)
    assert (preferences.language, preferences.email_alerts, preferences.low_balance_threshold) == ("en", False, 75)


def test_put_replaces_fields_left_out_take_their_defaults(api, customer, settings):
    settings.CREDITS_LOW_BALANCE_THRESHOLD = 35
    api.put(path(customer), {"language": "en", "low_balance_threshold": 5, "email_alerts": False}, format="json")
    data = api.put(path(customer), {"language": "en"}, format="json").json()
    assert (data["language"], data["email_alerts"], data["low_balance_threshold"]) == ("en", True, None)
    assert data["effective_low_balance_threshold"] == 35
    assert CustomerPreferences.objects.filter(customer=customer).count() == 1


def test_a_zero_threshold_is_the_customers_own(api, customer):
    data = api.put(path(customer), {"low_balance_threshold": 0}, format="json").json()
    assert (data["low_balance_threshold"], data["effective_low_balance_threshold"]) == (0, 0)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"language": "fr"}, "language"),
        ({"language": 1}, "language"),
        ({"language": None}, "language"),
        ({"email_alerts": "yes"}, "email_alerts"),
        ({"email_alerts": 1}, "email_alerts"),
        ({"email_alerts": None}, "email_alerts"),
        ({"billing_email": "not-an-email"}, "billing_email"),
        ({"billing_email": 5}, "billing_email"),
        ({"low_balance_threshold": -1}, "low_balance_threshold"),
        ({"low_balance_threshold": "10"}, "low_balance_threshold"),
        ({"low_balance_threshold": 1.5}, "low_balance_threshold"),
        ({"low_balance_threshold": True}, "low_balance_threshold"),
        ({"extra_billing_email": "a@example.pe"}, "extra_billing_email"),  # the contract's name is billing_email
        ({"customer": "cus_x"}, "customer"),
    ],
)
def test_put_validation_names_the_field(api, customer, body, field):
    response = api.put(path(customer), body, format="json")
    assert response.status_code == 400, response.json()
    assert response["Content-Type"].startswith("application/problem+json")
    assert field in response.json()["errors"]
    assert not CustomerPreferences.objects.exists()


def test_an_unknown_field_is_named_even_among_other_errors(api, customer):
    response = api.put(path(customer), {"language": "fr", "email_alerts": "no", "surprise": 1}, format="json")
    assert response.status_code == 400
    errors = response.json()["errors"]
    assert {"surprise"} <= set(errors)


def test_another_apps_customer_is_404_like_a_missing_one(other_api, api, customer):
    for client, customer_path in ((other_api, path(customer)), (api, "/api/v1/customers/cus_missing/preferences")):
        assert client.get(customer_path).status_code == 404
        response = client.put(customer_path, {"language": "en"}, format="json")
        assert response.status_code == 404
        assert response["Content-Type"].startswith("application/problem+json")
    assert not CustomerPreferences.objects.exists()


def test_the_service_validates_like_the_api(customer):
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError) as error:
        customer_preferences_update(customer=customer, language="fr")
    assert "language" in error.value.message_dict
    with pytest.raises(ValidationError) as error:
        customer_preferences_update(customer=customer, colour="blue")
    assert "colour" in error.value.message_dict
    assert not CustomerPreferences.objects.exists()
    saved = customer_preferences_update(customer=customer, language="en", low_balance_threshold=3)
    again = customer_preferences_update(customer=customer, language="es")
    assert saved.pk == again.pk and (again.language, again.low_balance_threshold) == ("es", None)
