"""Business time: Peru's calendar (settings.TIME_ZONE), whatever timezone a request has activated.

API responses render timestamps in UTC by activating UTC for `/api/` requests; invoice dates,
reconciliation days and printed times must not follow that, so they convert explicitly here.
"""

from datetime import date, datetime
from zoneinfo import ZoneInfo

from django.conf import settings
from django.utils import timezone


def business_zone() -> ZoneInfo:
    return ZoneInfo(settings.TIME_ZONE)


def business_time(value: datetime | None = None) -> datetime:
    """`value` (default: now) as a wall-clock time in the business time zone."""
    return (value or timezone.now()).astimezone(business_zone())


def business_date(value: datetime | None = None) -> date:
    """The calendar day of `value` (default: now) in the business time zone."""
    return business_time(value).date()
