"""Billing API: billing profiles and invoices, per the contract; tenant scoping; strict input."""

import pytest

from billing.models import BillingProfile, Invoice
from payments.models import Customer
from tests.billing.conftest import pay, refund

pytestmark = pytest.mark.django_db

PROFILE = {
    "document_type": "RUC",
    "document_number": "20131312955",
    "legal_name": "DISTRIBUIDORA ANDINA S.A.C.",
    "address": "AV. ARGENTINA 2020, CALLAO",
    "invoice_email": "facturas@andina.example.pe",
    "preferred_document": "factura",
}


def put_profile(api, customer, body):
    return api.put(f"/api/v1/customers/{customer.pk}/billing-profile", body, format="json")


def test_put_then_get_a_profile(api, customer):
    response = put_profile(api, customer, PROFILE)
    assert response.status_code == 200
    body = response.json()
    assert body["object"] == "billing_profile" and body["customer"] == customer.pk
    assert {key: body[key] for key in PROFILE} == PROFILE
    assert body["created_at"].endswith("Z")
    assert api.get(f"/api/v1/customers/{customer.pk}/billing-profile").json() == body


def test_put_replaces_the_profile(api, customer):
    put_profile(api, customer, PROFILE)
    response = put_profile(
        api, customer, {"document_type": "DNI", "document_number": "45678912", "legal_name": "ANA QUISPE"}
    )
    assert response.status_code == 200
    body = response.json()
    assert (body["document_type"], body["preferred_document"], body["address"], body["invoice_email"]) == (
        "DNI",
        "boleta",
        "",
        None,  # no address of its own: the customer's email is used (null, never "" against format: email)
    )
    assert BillingProfile.objects.count() == 1


def test_no_profile_is_404(api, customer):
    response = api.get(f"/api/v1/customers/{customer.pk}/billing-profile")
    assert response.status_code == 404 and response.json()["code"] == "not_found"


def test_factura_without_ruc_is_a_400_naming_the_field(api, customer):
    response = put_profile(
        api,
        customer,
        {"document_type": "DNI", "document_number": "45678912", "legal_name": "ANA", "preferred_document": "factura"},
    )
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "validation_error"
    assert list(body["errors"]) == ["preferred_document"]
    assert "RUC" in body["errors"]["preferred_document"][0]
    assert not BillingProfile.objects.exists()


@pytest.mark.parametrize(
    ("document_type", "number", "message"),
    [
        ("RUC", "20131312954", "The RUC's check digit is wrong."),
        ("RUC", "30131312955", "A RUC starts with 10, 15, 17 or 20."),
        ("RUC", "2013131295", "A RUC has exactly 11 digits."),
        ("DNI", "1234567", "A DNI has exactly 8 digits."),
    ],
)
def test_document_numbers_are_validated(api, customer, document_type, number, message):
    response = put_profile(api, customer, {**PROFILE, "document_type": document_type, "document_number": number})
    assert response.status_code == 400
    assert response.json()["errors"]["document_number"] == [message]


def test_profile_input_is_strict(api, customer):
    response = put_profile(api, customer, {**PROFILE, "ruc": "20131312955"})
    assert response.status_code == 400 and response.json()["errors"] == {"ruc": ["Unknown field."]}
    response = put_profile(api, customer, {**PROFILE, "document_number": 20131312955})
    assert response.status_code == 400 and "document_number" in response.json()["errors"]
    response = put_profile(api, customer, {**PROFILE, "document_type": "NIT"})
    assert response.status_code == 400 and "document_type" in response.json()["errors"]
    response = put_profile(api, customer, {**PROFILE, "legal_name": "   "})
    assert response.status_code == 400 and "legal_name" in response.json()["errors"]


def test_another_apps_customer_is_404(api, other_api):
    theirs = Customer.objects.create(client_app=other_api.client_app, email="x@example.pe")
    assert api.get(f"/api/v1/customers/{theirs.pk}/billing-profile").status_code == 404
    assert put_profile(api, theirs, PROFILE).status_code == 404
    assert not BillingProfile.objects.exists()


def test_invoice_object_per_contract(api, wire, ruc_customer):
    payment = pay(api, amount=11800, customer=ruc_customer)
    invoice = Invoice.objects.get(payment_id=payment["id"])
    body = api.get(f"/api/v1/invoices/{invoice.pk}").json()
    assert body == {
        "id": invoice.pk,
        "object": "invoice",
        "number": "F001-00000001",
        "document_type": "factura",
        "sunat_document_type": "01",
        "customer": ruc_customer.pk,
        "payment": payment["id"],
        "refund": None,
        "credited_invoice": None,
        "credit_note_reason": None,
        "currency": "PEN",
        "subtotal": 10000,
        "tax": 1800,
        "tax_rate": "18.00",
        "total": 11800,
        "amount_in_words": "SON: CIENTO DIECIOCHO CON 00/100 SOLES",
        "buyer": {"document_type": "6", "document_number": "20131312955", "name": "DISTRIBUIDORA ANDINA S.A.C."},
        "lines": [
            {
                "description": "Plan Pro",
                "quantity": 1,
                "unit_code": "ZZ",
                "unit_value": 10000,
                "unit_price": 11800,
                "subtotal": 10000,
                "tax": 1800,
                "total": 11800,
            }
        ],
        "status": "issued",
        "issued_at": body["issued_at"],
    }
    assert body["issued_at"].endswith("Z")


def test_credit_note_object_names_the_invoice_and_refund(api, wire):
    payment = pay(api)
    refund_body = refund(api, payment["id"], amount=100)
    note = Invoice.objects.get(document_type="credit_note")
    body = api.get(f"/api/v1/invoices/{note.pk}").json()
    invoice = Invoice.objects.get(document_type="boleta")
    assert (body["document_type"], body["sunat_document_type"], body["number"]) == (
        "credit_note",
        "07",
        "BC01-00000001",
    )
    assert (body["credited_invoice"], body["refund"], body["credit_note_reason"]) == (
        invoice.pk,
        refund_body["id"],
        "09",
    )
    assert (body["subtotal"], body["tax"], body["total"]) == (85, 15, 100)


def test_list_newest_first_with_filters_and_cursor(api, wire, customer, ruc_customer):
    first = pay(api, customer=customer, key="1")
    second = pay(api, customer=ruc_customer, key="2")
    third = pay(api, key="3")
    refund(api, third["id"], amount=100)
    listing = api.get("/api/v1/invoices").json()
    assert listing["object"] == "list" and listing["has_more"] is False
    assert [row["number"] for row in listing["data"]] == [
        "BC01-00000001",
        "B001-00000002",
        "F001-00000001",
        "B001-00000001",
    ]
    by_customer = api.get(f"/api/v1/invoices?customer={ruc_customer.pk}").json()["data"]
    assert [row["payment"] for row in by_customer] == [second["id"]]
    by_payment = api.get(f"/api/v1/invoices?payment={third['id']}").json()["data"]
    assert [row["document_type"] for row in by_payment] == ["credit_note", "boleta"]
    assert [r["payment"] for r in api.get(f"/api/v1/invoices?payment={first['id']}").json()["data"]] == [first["id"]]
    page = api.get("/api/v1/invoices?limit=3").json()
    assert page["has_more"] is True and len(page["data"]) == 3
    rest = api.get(f"/api/v1/invoices?limit=3&starting_after={page['next_starting_after']}").json()
    assert [row["number"] for row in rest["data"]] == ["B001-00000001"] and rest["has_more"] is False


def test_another_apps_invoices_are_invisible(api, other_api, wire):
    invoice = Invoice.objects.get(payment_id=pay(api)["id"])
    assert other_api.get("/api/v1/invoices").json()["data"] == []
    for suffix in ("", "/pdf", "/xml"):
        response = other_api.get(f"/api/v1/invoices/{invoice.pk}{suffix}")
        assert response.status_code == 404, suffix
        assert response["Content-Type"] == "application/problem+json"
    assert other_api.get(f"/api/v1/invoices?payment={invoice.payment_id}").json()["data"] == []


def test_files_are_served_whatever_the_accept_header(api, wire):
    invoice = Invoice.objects.get(payment_id=pay(api)["id"])
    pdf = api.get(f"/api/v1/invoices/{invoice.pk}/pdf", HTTP_ACCEPT="application/json")
    assert pdf.status_code == 200 and pdf["Content-Type"] == "application/pdf"
    xml = api.get(f"/api/v1/invoices/{invoice.pk}/xml", HTTP_ACCEPT="text/html")
    assert xml.status_code == 200 and xml["Content-Type"] == "application/xml"
    assert xml.content.startswith(b"<?xml")


def test_unauthenticated_is_401(client, wire):
    assert client.get("/api/v1/invoices").status_code == 401
    assert client.get("/api/v1/invoices/inv_x/pdf").status_code == 401
