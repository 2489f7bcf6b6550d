"""Filters several apps' list endpoints share."""

from datetime import UTC, timedelta

import django_filters
from django import forms
from django_filters.fields import IsoDateTimeField

# Real UTC offsets run from -12:00 to +14:00; ISO 8601 and Python accept up to ±23:59, which
# databases then refuse (PostgreSQL answers an error, not an empty result).
MAX_UTC_OFFSET = timedelta(hours=14)


class BoundedIsoDateTimeField(IsoDateTimeField):
    def to_python(self, value):
        parsed = super().to_python(value)
        if parsed is None:
            return None
        offset = parsed.utcoffset()
        if offset is not None and abs(offset) > MAX_UTC_OFFSET:
            raise forms.ValidationError("The UTC offset must be between -14:00 and +14:00.", code="invalid")
        try:
            parsed.astimezone(UTC)
        except OverflowError:
            raise forms.ValidationError("The date is out of range.", code="invalid") from None
        if parsed.year < 1900:
            raise forms.ValidationError("The date is out of range (year 1900 or later).", code="invalid")
        return parsed


class BoundedIsoDateTimeFilter(django_filters.IsoDateTimeFilter):
    """An ISO 8601 date-time with a real UTC offset (±14 h at most) and a year from 1900: anything
    else is a 400 naming the parameter, never a database error."""

    field_class = BoundedIsoDateTimeField
