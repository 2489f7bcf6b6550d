"""Date-time filters: an impossible UTC offset or an out-of-range date is a 400, never a 500."""

import pytest

from tests.foundation.test_errors import assert_problem

pytestmark = pytest.mark.django_db

BAD = [
    "2026-01-01T00:00:00+20:00",
    "2026-01-01T00:00:00-15:00",
    "2026-01-01T00:00:00+14:01",
    "0001-01-01T00:00:00+14:00",
    "9999-12-31T23:59:59-12:00",
    "0500-01-01T00:00:00Z",
]
GOOD = ["2026-01-01T00:00:00+14:00", "2026-01-01T00:00:00-12:00", "2026-01-01T00:00:00Z", "2026-01-01T05:00:00"]


@pytest.mark.parametrize("path", ["/api/v1/payments", "/api/v1/events"])
@pytest.mark.parametrize("value", BAD)
@pytest.mark.parametrize("name", ["created_gte", "created_lt"])
def test_an_impossible_date_time_is_a_400_naming_the_parameter(api, path, value, name):
    response = api.get(path, {name: value})
    body = assert_problem(response, 400, "validation_error")
    assert name in body["errors"], body


@pytest.mark.parametrize("value", GOOD)
def test_real_offsets_are_accepted(api, value):
    assert api.get("/api/v1/payments", {"created_gte": value}).status_code == 200
