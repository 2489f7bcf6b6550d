"""The admin: documents read-only with downloads and a re-send action; profiles validated like the API."""

import pytest
from django.core import mail
from django.urls import reverse

from billing.models import BillingProfile, Invoice
from tests.billing.conftest import pay

pytestmark = pytest.mark.django_db


@pytest.fixture
def invoice(api, wire):
    return Invoice.objects.get(payment_id=pay(api)["id"])


def test_documents_are_listed_and_shown_read_only(admin_client, invoice):
    listing = admin_client.get(reverse("admin:billing_invoice_changelist"))
    assert listing.status_code == 200 and b"B001-00000001" in listing.content
    detail = admin_client.get(reverse("admin:billing_invoice_change", args=[invoice.pk]))
    assert detail.status_code == 200
    assert b'name="total"' not in detail.content  # no editable inputs
    assert b"Save" not in detail.content
    assert admin_client.post(reverse("admin:billing_invoice_delete", args=[invoice.pk])).status_code == 403
    assert admin_client.get(reverse("admin:billing_invoice_add")).status_code == 403


def test_downloads(admin_client, invoice):
    pdf = admin_client.get(reverse("admin:billing_invoice_pdf", args=[invoice.pk]))
    assert pdf.status_code == 200 and pdf["Content-Type"] == "application/pdf" and pdf.content.startswith(b"%PDF")
    assert pdf["Content-Disposition"] == 'attachment; filename="20000000001-03-B001-00000001.pdf"'
    xml = admin_client.get(reverse("admin:billing_invoice_xml", args=[invoice.pk]))
    assert xml.status_code == 200 and b"<cbc:ID>B001-00000001</cbc:ID>" in xml.content


def test_resend_action_sends_again_on_purpose(admin_client, invoice):
    assert len(mail.outbox) == 1
    response = admin_client.post(
        reverse("admin:billing_invoice_changelist"),
        {"action": "resend_email", "_selected_action": [invoice.pk]},
        follow=True,
    )
    assert response.status_code == 200
    assert len(mail.outbox) == 2 and mail.outbox[1].attachments[0][0].endswith(".pdf")
    invoice.refresh_from_db()
    assert (invoice.email_status, invoice.email_resends, invoice.email_attempts) == ("sent", 1, 2)


def test_staff_without_permission_cannot_download(client, invoice, django_user_model):
    staff = django_user_model.objects.create_user("clerk", password="pw-clerk-123", is_staff=True)
    client.force_login(staff)
    assert client.get(reverse("admin:billing_invoice_pdf", args=[invoice.pk])).status_code == 403


def test_profile_admin_validates_like_the_api(admin_client, customer):
    url = reverse("admin:billing_billingprofile_add")
    bad = admin_client.post(
        url,
        {
            "customer": customer.pk,
            "document_type": "DNI",
            "document_number": "45678912",
            "legal_name": "ANA",
            "preferred_document": "factura",
        },
    )
    assert bad.status_code == 200 and b"A factura needs a RUC" in bad.content
    good = admin_client.post(
        url,
        {
            "customer": customer.pk,
            "document_type": "RUC",
            "document_number": "20131312955",
            "legal_name": "ANDINA S.A.C.",
            "preferred_document": "factura",
        },
    )
    assert good.status_code == 302
    assert BillingProfile.objects.get(customer=customer).document_number == "20131312955"
