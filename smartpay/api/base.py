"""Building blocks shared by every API view: strict serializers, cursor lists, tenant scoping."""

from drf_spectacular.utils import OpenApiParameter
from rest_framework import serializers
from rest_framework.metadata import BaseMetadata
from rest_framework.pagination import BasePagination
from rest_framework.response import Response

from smartpay.api.errors import CardDataNotAllowed
from smartpay.carddata import find_card_data


class StrictSerializer(serializers.Serializer):
    """Refuses fields it does not declare, so a typo never silently does nothing."""

    def to_internal_value(self, data):
        if isinstance(data, dict):
            writable = {name for name, field in self.fields.items() if not field.read_only}
            unknown = sorted(set(data) - writable)
            if unknown:
                raise serializers.ValidationError({name: ["Unknown field."] for name in unknown})
            # DRF turns 0 into "0" for text fields; a wrong JSON type is an error here.
            wrong_type = {
                name: ["Must be a string."]
                for name, field in self.fields.items()
                if isinstance(field, serializers.CharField)
                and name in data
                and data[name] is not None
                and not isinstance(data[name], str)
            }
            if wrong_type:
                rest = {key: value for key, value in data.items() if key not in wrong_type}
                try:
                    super().to_internal_value(rest)
                except serializers.ValidationError as exc:
                    if isinstance(exc.detail, dict):
                        raise serializers.ValidationError({**exc.detail, **wrong_type}) from None
                raise serializers.ValidationError(wrong_type)
        return super().to_internal_value(data)


class StrictModelSerializer(StrictSerializer, serializers.ModelSerializer):
    pass


class StrictCharField(serializers.CharField):
    """A string only: numbers and booleans are refused rather than silently turned into text."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class MetadataField(serializers.DictField):
    """A flat map of string keys to string values (at most 50 keys, 500 chars each)."""

    def __init__(self, **kwargs):
        kwargs.setdefault("child", StrictCharField(max_length=500, allow_blank=True))
        kwargs.setdefault("required", False)
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if len(value) > 50:
            raise serializers.ValidationError("At most 50 keys.")
        if any(len(key) > 40 for key in value):
            raise serializers.ValidationError("Keys may be at most 40 characters.")
        return value


def reject_card_data_in_query(request) -> None:
    where = find_card_data(dict(request.query_params.lists()))
    if where:
        raise CardDataNotAllowed(f"Query parameter '{where}' looks like a card number.", field=where)


class TenantScopedMixin:
    """Views see only the calling client app's rows; another app's id is simply not found."""

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        reject_card_data_in_query(request)

    @property
    def client_app(self):
        return self.request.user


class CursorPagination(BasePagination):
    """`?limit=&starting_after=<id>`, newest first. Ids are time-ordered, so the cursor is the id."""

    default_limit = 10
    max_limit = 100

    def paginate_queryset(self, queryset, request, view=None):
        try:
            limit = int(request.query_params.get("limit", self.default_limit))
        except ValueError:
            raise serializers.ValidationError({"limit": ["Must be an integer."]}) from None
        if not 1 <= limit <= self.max_limit:
            raise serializers.ValidationError({"limit": [f"Must be between 1 and {self.max_limit}."]})
        queryset = queryset.order_by("-pk")
        starting_after = request.query_params.get("starting_after")
        if starting_after:
            queryset = queryset.filter(pk__lt=starting_after)
        rows = list(queryset[: limit + 1])
        self.has_more = len(rows) > limit
        self.page = rows[:limit]
        return self.page

    def get_paginated_response(self, data):
        return Response(
            {
                "object": "list",
                "data": data,
                "has_more": self.has_more,
                "next_starting_after": self.page[-1].pk if self.has_more and self.page else None,
            }
        )

    def get_paginated_response_schema(self, schema):
        return {
            "type": "object",
            "required": ["object", "data", "has_more", "next_starting_after"],
            "properties": {
                "object": {"type": "string", "enum": ["list"]},
                "data": schema,
                "has_more": {"type": "boolean"},
                "next_starting_after": {"type": "string", "nullable": True},
            },
        }

    def get_schema_operation_parameters(self, view):
        return [
            {
                "name": "limit",
                "in": OpenApiParameter.QUERY,
                "required": False,
                "description": f"Page size, 1 to {self.max_limit} (default {self.default_limit}).",
                "schema": {"type": "integer", "minimum": 1, "maximum": self.max_limit},
            },
            {
                "name": "starting_after",
                "in": OpenApiParameter.QUERY,
                "required": False,
                "description": "An id from the previous page: returns the objects created before it.",
                "schema": {"type": "string"},
            },
        ]


class ApiMetadata(BaseMetadata):
    """OPTIONS answers with the view's name and description; the OpenAPI schema is the real reference.

    (DRF's default introspects serializers by fetching an object, which these views do not expose.)
    """

    def determine_metadata(self, request, view):
        return {"name": view.get_view_name(), "description": view.get_view_description(), "schema": "/api/schema/"}
