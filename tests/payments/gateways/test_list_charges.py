"""`list_charges`: a day of a gateway's records, page by page, with the wire mocked by `responses`.

Culqi: `GET /v2/charges` with epoch-second date filters and `after` cursors (culqi.md §3, §5.4).
Mercado Pago: `GET /v1/payments/search` by `date_created`, oldest first, offset paging (mercadopago.md §4).
"""

import copy
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import responses

from payments.gateways import culqi, mercadopago
from payments.gateways.base import ChargeStatus, GatewayConfig, GatewayInvalidRequest, GatewayUnavailable
from payments.gateways.culqi import CulqiAdapter
from payments.gateways.mercadopago import MercadoPagoAdapter

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
CULQI_API = "https://api.culqi.com"
MP_API = "https://api.mercadopago.com"
CHARGES = f"{CULQI_API}/v2/charges"
SEARCH = f"{MP_API}/v1/payments/search"

# 2024-05-06 in Lima (UTC-5): [05:00 UTC, next day 05:00 UTC).
DAY_START = datetime(2024, 5, 6, 5, 0, tzinfo=UTC)
DAY_END = DAY_START + timedelta(days=1)


def query(call) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(urlsplit(call.request.url).query).items()}


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


@pytest.fixture
def rsps():
    with responses.RequestsMock() as mock:
        yield mock


@pytest.fixture
def no_sleep(monkeypatch):
    slept: list[float] = []
    monkeypatch.setattr(culqi.time, "sleep", slept.append)
    monkeypatch.setattr(mercadopago.time, "sleep", slept.append)
    return slept


# --- Culqi ----------------------------------------------------------------------------------------


def culqi_charge(charge_id: str, created: datetime, *, reference: str | None = None, declined=False, **fields):
    name = "charge_declined" if declined else "charge_captured"
    charge = json.loads((FIXTURES / "culqi" / f"{name}.json").read_text(encoding="utf-8"))
    charge.update(
        id=charge_id, creation_date=ms(created), metadata={"smartpay_payment_id": reference} if reference else {}
    )
    charge.update(fields)
    return charge


def culqi_page(charges: list[dict], *, after: str | None, remaining: int) -> dict:
    return {
        "data": charges,
        "paging": {
            "previous": f"{CHARGES}?limit=100&before={charges[0]['id']}" if charges else None,
            "next": f"{CHARGES}?limit=100&after={after}" if after else None,
            "cursors": {"before": charges[0]["id"] if charges else None, "after": after},
            "remaining_items": remaining,
        },
    }


@pytest.fixture
def culqi_adapter():
    return CulqiAdapter(GatewayConfig(api_base=CULQI_API, secret_key="sk_test_x", public_key="pk_test_x"))


def test_culqi_lists_two_pages_with_epoch_second_filters_and_after_cursors(culqi_adapter, rsps):
    page1 = [
        culqi_charge("chr_test_000000000003", DAY_START + timedelta(hours=20), reference="pay_3"),
        culqi_charge("chr_test_000000000002", DAY_START + timedelta(hours=9), reference="pay_2", amount_refunded=500),
    ]
    page2 = [
        culqi_charge("chr_test_000000000001", DAY_START + timedelta(seconds=1), declined=True, reference="pay_1"),
        # In the first second of the next day: sent as epoch seconds, the filter cannot cut it; the adapter does.
        culqi_charge("chr_test_00000000next", DAY_END + timedelta(milliseconds=400)),
    ]
    rsps.get(CHARGES, json=culqi_page(page1, after="chr_test_000000000002", remaining=2))
    rsps.get(CHARGES, json=culqi_page(page2, after=None, remaining=0))

    charges = culqi_adapter.list_charges(day_start=DAY_START, day_end=DAY_END)
    first = next(charges)
    assert len(rsps.calls) == 1  # a generator: the second page is asked for only when needed
    results = [first, *charges]

    assert [(r.gateway_payment_id, r.status, r.reference, r.amount, r.amount_refunded) for r in results] == [
        ("chr_test_000000000003", ChargeStatus.SUCCEEDED, "pay_3", 12550, 0),
        ("chr_test_000000000002", ChargeStatus.PARTIALLY_REFUNDED, "pay_2", 12550, 500),
        ("chr_test_000000000001", ChargeStatus.FAILED, "pay_1", 12550, 0),
    ]
    assert results[0].created_at == DAY_START + timedelta(hours=20)
    assert [query(call) for call in rsps.calls] == [
        {"creation_date_from": "1714971600", "creation_date_to": "1715058000", "limit": "100"},
        {
            "creation_date_from": "1714971600",
            "creation_date_to": "1715058000",
            "limit": "100",
            "after": "chr_test_000000000002",
        },
    ]
    assert rsps.calls[0].request.headers["Authorization"] == "Bearer sk_test_x"


def test_culqi_asks_for_an_unavailable_page_again_from_the_same_cursor(culqi_adapter, rsps, no_sleep):
    page1 = [culqi_charge("chr_test_000000000002", DAY_START + timedelta(hours=2))]
    page2 = [culqi_charge("chr_test_000000000001", DAY_START + timedelta(hours=1))]
    rsps.get(CHARGES, json=culqi_page(page1, after="chr_test_000000000002", remaining=1))
    rsps.get(CHARGES, status=429, headers={"Retry-After": "3"}, json={"object": "error", "type": "limit_api_error"})
    rsps.get(CHARGES, json=culqi_page(page2, after=None, remaining=0))

    ids = [r.gateway_payment_id for r in culqi_adapter.list_charges(day_start=DAY_START, day_end=DAY_END)]

    assert ids == ["chr_test_000000000002", "chr_test_000000000001"]
    assert [query(call).get("after") for call in rsps.calls] == [None, "chr_test_000000000002", "chr_test_000000000002"]
    assert no_sleep == [3.0]


def test_culqi_listing_fails_when_the_gateway_stays_down(culqi_adapter, rsps, no_sleep):
    rsps.get(CHARGES, json=culqi_page([culqi_charge("chr_test_000000000002", DAY_START)], after="chr_x", remaining=5))
    rsps.get(CHARGES, status=503, body="<html>Service Unavailable</html>")

    charges = culqi_adapter.list_charges(day_start=DAY_START, day_end=DAY_END)
    assert next(charges).gateway_payment_id == "chr_test_000000000002"
    with pytest.raises(GatewayUnavailable):
        next(charges)
    assert len(rsps.calls) == 1 + culqi.LIST_PAGE_TRIES
    assert no_sleep == [1.0, 2.0]


def test_culqi_listing_without_a_usable_cursor_is_an_error_not_an_end(culqi_adapter, rsps):
    rsps.get(CHARGES, json=culqi_page([culqi_charge("chr_test_000000000002", DAY_START)], after=None, remaining=7))

    with pytest.raises(GatewayUnavailable, match="no usable `after` cursor"):
        list(culqi_adapter.list_charges(day_start=DAY_START, day_end=DAY_END))


def test_culqi_listing_refuses_an_unreadable_charge(culqi_adapter, rsps):
    rsps.get(CHARGES, json=culqi_page([{"object": "charge", "id": "chr_test_x"}], after=None, remaining=0))

    with pytest.raises(GatewayUnavailable, match="unreadable"):
        list(culqi_adapter.list_charges(day_start=DAY_START, day_end=DAY_END))


# --- Mercado Pago ---------------------------------------------------------------------------------

MP_APPROVED = json.loads((FIXTURES / "mercadopago" / "payment_approved.json").read_text())


def mp_payment(payment_id: int, created: datetime, **fields) -> dict:
    payment = copy.deepcopy(MP_APPROVED)
    payment.update(
        id=payment_id,
        date_created=created.astimezone(UTC).isoformat(timespec="milliseconds"),
        external_reference=f"pay_{payment_id}",
    )
    payment.update(fields)
    return payment


def mp_body(results: list[dict], *, total: int, offset: int) -> str:
    # `transaction_amount` as Mercado Pago writes it: a bare decimal number.
    return json.dumps({"paging": {"total": total, "limit": 100, "offset": offset}, "results": results})


@pytest.fixture
def mp_adapter():
    return MercadoPagoAdapter(GatewayConfig(api_base=MP_API, public_key="TEST-pk", secret_key="TEST-token"))


def test_mercadopago_lists_two_pages_by_offset_oldest_first(mp_adapter, rsps):
    page1 = [
        mp_payment(101, DAY_START + timedelta(minutes=1)),
        mp_payment(102, DAY_START + timedelta(hours=3), status="rejected", status_detail="cc_rejected_high_risk"),
    ]
    page2 = [mp_payment(103, DAY_START + timedelta(hours=23), transaction_amount_refunded=5.0)]
    rsps.get(SEARCH, body=mp_body(page1, total=3, offset=0), content_type="application/json")
    rsps.get(SEARCH, body=mp_body(page2, total=3, offset=2), content_type="application/json")

    charges = mp_adapter.list_charges(day_start=DAY_START, day_end=DAY_END)
    first = next(charges)
    assert len(rsps.calls) == 1
    results = [first, *charges]

    assert [(r.gateway_payment_id, r.status, r.reference, r.amount, r.amount_refunded) for r in results] == [
        ("101", ChargeStatus.SUCCEEDED, "pay_101", 1999, 0),
        ("102", ChargeStatus.FAILED, "pay_102", 1999, 0),
        ("103", ChargeStatus.PARTIALLY_REFUNDED, "pay_103", 1999, 500),
    ]
    assert results[0].created_at == DAY_START + timedelta(minutes=1)
    common = {
        "range": "date_created",
        "begin_date": "2024-05-06T05:00:00.000+00:00",
        "end_date": "2024-05-07T04:59:59.999+00:00",
        "sort": "date_created",
        "criteria": "asc",
        "limit": "100",
    }
    assert [query(call) for call in rsps.calls] == [{**common, "offset": "0"}, {**common, "offset": "2"}]
    assert rsps.calls[0].request.headers["Authorization"] == "Bearer TEST-token"


def test_mercadopago_splits_a_window_that_counts_too_many_payments(mp_adapter, rsps, monkeypatch):
    monkeypatch.setattr(mercadopago, "SEARCH_WINDOW_MAX_RESULTS", 2)
    day = [mp_payment(200 + hour, DAY_START + timedelta(hours=hour, minutes=30)) for hour in (1, 2, 13, 14, 22)]

    def search(request):
        params = {key: values[0] for key, values in parse_qs(urlsplit(request.url).query).items()}
        begin, end = datetime.fromisoformat(params["begin_date"]), datetime.fromisoformat(params["end_date"])
        inside = [p for p in day if begin <= datetime.fromisoformat(p["date_created"]) <= end]
        offset = int(params["offset"])
        return 200, {}, mp_body(inside[offset : offset + 2], total=len(inside), offset=offset)

    rsps.add_callback(responses.GET, SEARCH, callback=search, content_type="application/json")

    ids = [r.gateway_payment_id for r in mp_adapter.list_charges(day_start=DAY_START, day_end=DAY_END)]

    assert ids == ["201", "202", "213", "214", "222"]  # each once, oldest first
    windows = [(query(call)["begin_date"], query(call)["offset"]) for call in rsps.calls]
    assert windows[0] == ("2024-05-06T05:00:00.000+00:00", "0")  # counted 5 > 2: split, never paged deep
    assert all(int(offset) < 2 for _, offset in windows)


def test_mercadopago_listing_that_ends_short_is_an_error(mp_adapter, rsps):
    rsps.get(SEARCH, body=mp_body([mp_payment(101, DAY_START)], total=3, offset=0), content_type="application/json")
    rsps.get(SEARCH, body=mp_body([], total=3, offset=1), content_type="application/json")

    with pytest.raises(GatewayUnavailable, match="ended at 1 of the 3"):
        list(mp_adapter.list_charges(day_start=DAY_START, day_end=DAY_END))


def test_mercadopago_retries_an_unavailable_page_then_gives_up(mp_adapter, rsps, no_sleep):
    rsps.get(SEARCH, status=429, headers={"Retry-After": "2"}, json={"message": "too many requests", "status": 429})
    rsps.get(SEARCH, body=mp_body([mp_payment(101, DAY_START)], total=2, offset=0), content_type="application/json")
    for _ in range(mercadopago.SEARCH_PAGE_TRIES):
        rsps.get(SEARCH, status=503, json={"message": "unavailable", "status": 503})

    charges = mp_adapter.list_charges(day_start=DAY_START, day_end=DAY_END)
    assert next(charges).gateway_payment_id == "101"
    with pytest.raises(GatewayUnavailable):
        next(charges)
    assert [query(call)["offset"] for call in rsps.calls] == ["0", "0", "1", "1", "1"]
    assert no_sleep == [2.0, 1.0, 2.0]


def test_mercadopago_listing_refuses_a_bad_request_without_retrying(mp_adapter, rsps, no_sleep):
    rsps.get(SEARCH, status=400, json={"message": "Invalid range", "error": "bad_request", "status": 400, "cause": []})

    with pytest.raises(GatewayInvalidRequest):
        list(mp_adapter.list_charges(day_start=DAY_START, day_end=DAY_END))
    assert no_sleep == []
