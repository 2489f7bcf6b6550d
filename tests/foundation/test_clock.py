from datetime import UTC, date, datetime

from django.utils import timezone

from smartpay.clock import business_date, business_time


def test_business_dates_follow_lima_even_when_a_request_activated_utc():
    late_evening_in_lima = datetime(2026, 11, 26, 3, 28, tzinfo=UTC)  # 22:28 on the 25th in Lima
    with timezone.override(UTC):
        assert business_date(late_evening_in_lima) == date(2026, 11, 25)
        assert business_time(late_evening_in_lima).strftime("%d/%m/%Y %H:%M") == "25/11/2026 22:28"
