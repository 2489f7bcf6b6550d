"""Billing API: customers' billing profiles and the invoices (and credit notes) issued for payments.
Parse, call one service or selector, serialize."""

from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.generics import GenericAPIView
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.renderers import BaseRenderer
from rest_framework.response import Response

from billing import selectors, services
from billing.api.filters import InvoiceFilter
from billing.api.serializers import BillingProfileSerializer, BillingProfileWriteSerializer, InvoiceSerializer
from billing.models import BillingProfile, Invoice
from payments.api.mixins import CustomerScopedMixin
from smartpay.api.base import CursorPagination, TenantScopedMixin

PROBLEM = OpenApiResponse(description="application/problem+json")


class InvoiceLookupMixin(TenantScopedMixin):
    def get_invoice(self, invoice_id: str) -> Invoice:
        try:
            return selectors.invoice_get(client_app=self.client_app, invoice_id=invoice_id)
        except Invoice.DoesNotExist:
            raise Http404 from None


class BillingProfileView(CustomerScopedMixin, GenericAPIView):
    queryset = BillingProfile.objects.none()  # schema introspection only
    serializer_class = BillingProfileSerializer

    @extend_schema(
        operation_id="customers_billing_profile_retrieve", responses={200: BillingProfileSerializer, 404: PROBLEM}
    )
    def get(self, request, customer_id: str):
        try:
            profile = selectors.billing_profile_get(customer=self.get_customer(customer_id))
        except BillingProfile.DoesNotExist:
            raise Http404 from None
        return Response(BillingProfileSerializer(profile).data)

    @extend_schema(
        operation_id="customers_billing_profile_update",
        request=BillingProfileWriteSerializer,
        responses={200: BillingProfileSerializer, 400: PROBLEM, 404: PROBLEM},
        description="Create or replace the customer's billing profile. DNI: 8 digits; RUC: 11 digits starting "
        "with 10, 15, 17 or 20 and a valid check digit. `preferred_document: factura` needs a RUC (400 naming "
        "`preferred_document` otherwise). Applies to documents issued from then on.",
    )
    def put(self, request, customer_id: str):
        customer = self.get_customer(customer_id)
        payload = BillingProfileWriteSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        try:
            profile = services.billing_profile_set(customer=customer, **payload.validated_data)
        except DjangoValidationError as error:
            raise serializers.ValidationError(error.message_dict) from None
        return Response(BillingProfileSerializer(profile).data)


class InvoiceListView(TenantScopedMixin, GenericAPIView):
    serializer_class = InvoiceSerializer
    pagination_class = CursorPagination
    filterset_class = InvoiceFilter

    def get_queryset(self):
        return selectors.invoice_list(client_app=self.client_app)

    @extend_schema(
        operation_id="invoices_list",
        responses=InvoiceSerializer(many=True),
        description="Invoices (boletas, facturas) and credit notes, newest first.",
    )
    def get(self, request):
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        return self.get_paginated_response(InvoiceSerializer(page, many=True).data)


class InvoiceDetailView(InvoiceLookupMixin, GenericAPIView):
    serializer_class = InvoiceSerializer

    @extend_schema(operation_id="invoices_retrieve", responses={200: InvoiceSerializer, 404: PROBLEM})
    def get(self, request, invoice_id: str):
        return Response(InvoiceSerializer(self.get_invoice(invoice_id)).data)


class _FileRenderer(BaseRenderer):
    charset = None

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return data


class PdfRenderer(_FileRenderer):
    media_type = "application/pdf"
    format = "pdf"


class XmlRenderer(_FileRenderer):
    media_type = "application/xml"
    format = "xml"


class ServeTheFile(BaseContentNegotiation):
    """A file endpoint has one representation; errors are problem+json whatever Accept says."""

    def select_parser(self, request, parsers):
        return parsers[0] if parsers else None

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


def _file_response(content: bytes, *, content_type: str, filename: str) -> HttpResponse:
    response = HttpResponse(content, content_type=content_type)
    response["Content-Disposition"] = f'inline; filename="{filename}"'
    return response


class InvoicePdfView(InvoiceLookupMixin, GenericAPIView):
    renderer_classes = [PdfRenderer]
    content_negotiation_class = ServeTheFile

    @extend_schema(
        operation_id="invoices_pdf",
        responses={(200, "application/pdf"): OpenApiTypes.BINARY, 404: PROBLEM},
        description="The printed representation of the document (PDF).",
    )
    def get(self, request, invoice_id: str):
        invoice = self.get_invoice(invoice_id)
        filename = f"{invoice.issuer_ruc}-{invoice.sunat_code}-{invoice.number}.pdf"
        return _file_response(services.invoice_pdf(invoice=invoice), content_type="application/pdf", filename=filename)


class InvoiceXmlView(InvoiceLookupMixin, GenericAPIView):
    renderer_classes = [XmlRenderer]
    content_negotiation_class = ServeTheFile

    @extend_schema(
        operation_id="invoices_xml",
        responses={(200, "application/xml"): OpenApiTypes.BINARY, 404: PROBLEM},
        description="The document as UBL 2.1 XML (Invoice or CreditNote), signed when a certificate is configured.",
    )
    def get(self, request, invoice_id: str):
        invoice = self.get_invoice(invoice_id)
        filename = f"{invoice.issuer_ruc}-{invoice.sunat_code}-{invoice.number}.xml"
        return _file_response(services.invoice_xml(invoice=invoice), content_type="application/xml", filename=filename)
