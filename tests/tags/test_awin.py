"""Awin Conversion API: exact orders for canonical events, click-ID skip, classification.

Awin documents no response body for this API. The error fixtures use the envelope observed
on api.awin.com (``{"error": ..., "description": ...}``, recorded by the api-evangelist
survey of Awin's API) with the statuses Awin's response-code page lists.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from edge.schema import Content, Data, Ids
from tags import awin
from tags.base import Destination, Kind, PlatformResponse

from .events import ALL_IDS, EVENT_TIME, assert_golden, destination, fixture, page_view, purchase

TOKEN = "1a2b3c4d-5e6f-7a8b-9c0d-1e2f3a4b5c6d"
CREDENTIALS = {"advertiser_id": "1001", "api_token": TOKEN}


def dest(**kwargs: Any) -> Destination:
    return destination(awin.SPEC, CREDENTIALS, **kwargs)


def answer(name: str) -> PlatformResponse:
    recorded = json.loads(fixture("awin", name))
    body = recorded.get("body")
    raw = b"" if body is None else json.dumps(body).encode()
    return PlatformResponse(recorded["status"], recorded.get("headers", {}), raw)


def test_purchase_is_a_sale_order() -> None:
    [built] = awin.build([purchase()], dest())
    assert built.event_ids == ("evt-0001",) and not built.rejected
    request = built.request
    assert request is not None
    assert_golden("awin_purchase", request)
    assert request.method == "POST"
    assert request.url == "https://api.awin.com/s2s/advertiser/1001/orders"
    assert request.headers == {"x-api-key": TOKEN}
    assert not request.params  # the token never rides in a URL
    [order] = request.json["orders"]
    assert order["orderReference"] == "1001"
    assert order["amount"] == 59.8
    assert order["currency"] == "USD"
    assert order["channel"] == "aw"
    assert order["commissionGroups"] == [{"code": "DEFAULT", "amount": 59.8}]
    assert order["awc"] == ALL_IDS.awc
    assert order["isTest"] is False
    assert order["voucher"] == "SPRING"
    assert [line["id"] for line in order["basket"]] == ["SKU-1", "SKU-2"]
    assert order["basket"][0] == {
        "id": "SKU-1",
        "name": "Mug",
        "price": 19.9,
        "quantity": 2,
        "sku": "SKU-1",
        "category": "Kitchen",
        "commissionGroupCode": "DEFAULT",
    }
    assert "transactionTime" not in order and "webhook" not in request.json
    assert TOKEN not in json.dumps(request.redacted([TOKEN]))


def test_lead_counts_one_lead_in_its_commission_group() -> None:
    lead = page_view(event="lead", event_id="evt-lead", data=Data(currency="eur"))
    [built] = awin.build([lead], dest(options={"lead_commission_group": "LEAD"}))
    assert built.request is not None
    assert_golden("awin_lead", built.request)
    [order] = built.request.json["orders"]
    assert order["orderReference"] == "evt-lead"  # no order id: the event_id
    assert order["amount"] == 1.0
    assert order["currency"] == "EUR"
    assert order["commissionGroups"] == [{"code": "LEAD", "amount": 1.0}]
    assert "basket" not in order


def test_only_sales_and_leads_are_mapped() -> None:
    assert dict(awin.SPEC.event_map) == {"purchase": "sale", "lead": "lead"}
    destination_ = dest()
    assert destination_.platform_event(awin.SPEC, "page_view") is None
    signup = page_view(event="complete_registration", event_id="evt-reg", data=Data())
    [refused] = awin.build([signup], destination_)
    assert refused.request is None and "evt-reg" in refused.rejected
    paid_leads = dest(events={"complete_registration": "lead"}, options={"default_currency": "GBP"})
    [built] = awin.build([signup], paid_leads)
    assert built.request is not None
    assert built.request.json["orders"][0]["currency"] == "GBP"
    [wrong] = awin.build([purchase()], dest(events={"purchase": "Purchase"}))
    assert wrong.request is None and "sales and leads" in wrong.rejected["evt-0001"]


def test_skip_reason_without_awc() -> None:
    assert awin.skip_reason(purchase(ids=Ids(gclid="x")), dest()) == "no click id"
    several = purchase(ids=Ids(awc="1001_1763899000_aaa,1001_1763899100_bbb"))
    assert awin.skip_reason(several, dest()) is None
    [built] = awin.build([several], dest())
    assert built.request is not None
    assert built.request.json["orders"][0]["awc"] == "1001_1763899000_aaa,1001_1763899100_bbb"


def test_orders_that_cannot_be_sent_are_rejected_with_a_reason() -> None:
    no_currency = purchase(event_id="evt-a", data=Data(value=10.0))
    no_value = purchase(event_id="evt-b", data=Data(currency="USD"))
    [built] = awin.build([no_currency, no_value, purchase()], dest())
    assert built.event_ids == ("evt-0001",)
    assert "currency" in built.rejected["evt-a"]
    assert "value" in built.rejected["evt-b"]


def test_amount_from_contents_and_basket_needs_complete_lines() -> None:
    contents = [Content(id="A", price=2.5, quantity=2), Content(id="B", price=1.0)]
    event = purchase(data=Data(currency="USD", order_id="9", contents=contents))
    [built] = awin.build([event], dest())
    assert built.request is not None
    [order] = built.request.json["orders"]
    assert order["amount"] == 6.0
    assert "basket" not in order  # names and a quantity are missing


def test_long_order_reference_is_cut_to_awins_50_characters() -> None:
    event = purchase(data=Data(value=1.0, currency="USD", order_id="X" * 80))
    [built] = awin.build([event], dest())
    assert built.request is not None
    assert built.request.json["orders"][0]["orderReference"] == "X" * 50


def test_options_mark_tests_send_time_and_webhook() -> None:
    options = {
        "test_orders": "true",
        "send_transaction_time": "true",
        "webhook_url": "https://shop.example/awin-results",
        "commission_group": "SALE",
    }
    [built] = awin.build([purchase()], dest(options=options))
    assert built.request is not None
    body = built.request.json
    assert body["webhook"] == {"url": "https://shop.example/awin-results"}
    [order] = body["orders"]
    assert order["isTest"] is True
    assert order["transactionTime"] == EVENT_TIME
    assert order["commissionGroups"] == [{"code": "SALE", "amount": 59.8}]
    assert {line["commissionGroupCode"] for line in order["basket"]} == {"SALE"}


def test_batches_split_at_1000_orders() -> None:
    events = [
        purchase(event_id=f"evt-{n}", data=Data(value=1.0, currency="USD")) for n in range(1001)
    ]
    built = awin.build(events, dest())
    assert [len(b.event_ids) for b in built] == [1000, 1]
    assert built[0].request is not None and len(built[0].request.json["orders"]) == 1000
    assert built[1].request is not None
    assert built[1].request.json["orders"][0]["orderReference"] == "evt-1000"


def test_credentials_are_validated_offline() -> None:
    advertiser, token = awin.SPEC.credentials
    assert advertiser.problem("1001") is None
    assert advertiser.problem("AW-1001") is not None
    assert token.problem(TOKEN) is None
    assert token.problem("short") is not None
    assert token.problem("has spaces in it, not a token") is not None
    assert awin.SPEC.secret_names == frozenset({"api_token"})


def test_probe_posts_one_ignored_test_order() -> None:
    request = awin.probe(dest())
    assert_golden("awin_probe", request)
    [order] = request.json["orders"]
    assert order["isTest"] is True
    assert "awc" not in order and order["amount"] == 0.0
    assert request.headers == {"x-api-key": TOKEN}


@pytest.mark.parametrize(
    ("name", "event_ids", "kind", "words"),
    [
        ("accepted.json", ["evt-1"], Kind.DELIVERED, ""),
        ("unauthorized.json", ["evt-1"], Kind.SETUP, "unauthorized"),
        ("forbidden.json", ["evt-1"], Kind.SETUP, "403"),
        ("advertiser_not_found.json", ["evt-1"], Kind.SETUP, "advertiser_id"),
        ("bad_request.json", ["evt-1"], Kind.REJECTED, "400"),
        ("bad_request.json", ["evt-1", "evt-2"], Kind.SPLIT, "400"),
        ("duplicate_order.json", ["evt-1"], Kind.DELIVERED, "already recorded"),
        ("duplicate_order.json", ["evt-1", "evt-2"], Kind.SPLIT, "409"),
        ("rate_limited.json", ["evt-1"], Kind.THROTTLED, "429"),
        ("server_error.json", ["evt-1"], Kind.RETRY, "500"),
    ],
)
def test_classify_recorded_answers(name: str, event_ids: list[str], kind: Kind, words: str) -> None:
    verdict = awin.classify(answer(name), event_ids)
    assert verdict.kind is kind
    assert words in verdict.reason
    if kind is Kind.THROTTLED:
        assert verdict.retry_after == awin.RATE_WINDOW_SECONDS  # no Retry-After: a minute


def test_build_never_sends_an_order_without_awc() -> None:
    [built] = awin.build([purchase(ids=Ids())], dest())
    assert built.request is None and built.rejected == {"evt-0001": "no click id"}
