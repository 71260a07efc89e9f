"""Taboola S2S postbacks: one exact GET per event, click-ID skip, classification.

The fixtures record whole answers (status, headers, body) because the postback's verdict is
its status: Taboola's error-code page lists 204 on success and 400 for a missing or
unparsable ``click-id`` or a missing ``name``; the bodies are empty.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from edge.schema import Data, Ids
from tags import taboola
from tags.base import Destination, Kind, PlatformResponse

from .events import ALL_IDS, assert_golden, destination, fixture, page_view, purchase

CREDENTIALS = {"account_id": "1234567"}
POSTBACK = "https://trc.taboola.com/actions-handler/log/3/s2s-action"


def dest(**kwargs: Any) -> Destination:
    return destination(taboola.SPEC, CREDENTIALS, **kwargs)


def answer(name: str) -> PlatformResponse:
    recorded = json.loads(fixture("taboola", name))
    body = recorded.get("body")
    raw = b"" if body is None else json.dumps(body).encode()
    return PlatformResponse(recorded["status"], recorded.get("headers", {}), raw)


def test_purchase_is_one_make_purchase_postback() -> None:
    [built] = taboola.build([purchase()], dest())
    assert built.event_ids == ("evt-0001",) and not built.rejected
    request = built.request
    assert request is not None
    assert_golden("taboola_purchase", request)
    assert (request.method, request.url) == ("GET", POSTBACK)
    assert dict(request.params) == {
        "click-id": ALL_IDS.tblci,
        "name": "make_purchase",
        "revenue": "59.8",
        "currency": "USD",
        "orderid": "1001",
        "quantity": "3",
    }
    assert request.json is None and request.form is None and not request.headers


def test_page_view_postback_uses_the_event_id_as_orderid() -> None:
    [built] = taboola.build([page_view()], dest())
    assert built.request is not None
    assert_golden("taboola_page_view", built.request)
    assert dict(built.request.params) == {
        "click-id": ALL_IDS.tblci,
        "name": "page_view",
        "orderid": "evt-0002",
    }


def test_event_names_follow_the_pixel_and_config_overrides() -> None:
    names = taboola.SPEC.event_map
    assert names["purchase"] == "make_purchase"
    assert names["initiate_checkout"] == "start_checkout"
    custom = page_view(event="newsletter_signup", event_id="evt-news")
    [built] = taboola.build([custom], dest())
    assert built.request is not None and built.request.params["name"] == "newsletter_signup"
    [renamed] = taboola.build([purchase()], dest(events={"purchase": "order_s2s"}))
    assert renamed.request is not None and renamed.request.params["name"] == "order_s2s"
    [off] = taboola.build([purchase()], dest(events={"purchase": ""}))
    assert off.request is None and "not mapped" in off.rejected["evt-0001"]


def test_revenue_is_a_plain_decimal() -> None:
    event = purchase(data=Data(value=1234567.5, currency="eur", order_id="A-1"))
    [built] = taboola.build([event], dest())
    assert built.request is not None
    assert built.request.params["revenue"] == "1234567.5"
    assert built.request.params["currency"] == "EUR"
    assert taboola.number(100.0) == "100" and taboola.number(0.1 + 0.2) == "0.3"


def test_no_click_id_is_skipped_and_never_sent() -> None:
    without = purchase(ids=Ids(fbclid="x"))
    assert taboola.skip_reason(without, dest()) == "no click id"
    assert taboola.skip_reason(purchase(), dest()) is None
    [built] = taboola.build([without], dest())
    assert built.request is None and built.rejected == {"evt-0001": "no click id"}


def test_one_request_per_event() -> None:
    events = [purchase(event_id=f"evt-{n}") for n in range(3)]
    built = taboola.build(events, dest())
    assert [b.event_ids for b in built] == [("evt-0",), ("evt-1",), ("evt-2",)]
    assert taboola.SPEC.limits.max_batch_events == 1


def test_account_id_is_optional_and_numeric() -> None:
    [account] = taboola.SPEC.credentials
    assert not account.required
    assert account.problem("1234567") is None
    assert account.problem("acme-advertiser") is not None
    assert taboola.SPEC.secret_names == frozenset()


def test_probe_is_a_postback_without_click_id() -> None:
    request = taboola.probe(dest())
    assert_golden("taboola_probe", request)
    assert "click-id" not in request.params
    assert taboola.probe_verdict(answer("missing_click_id.json")).kind is Kind.DELIVERED
    assert taboola.probe_verdict(answer("no_content.json")).kind is Kind.DELIVERED
    assert taboola.probe_verdict(answer("not_found.json")).kind is Kind.SETUP
    assert taboola.probe_verdict(answer("server_error.json")).kind is Kind.RETRY


@pytest.mark.parametrize(
    ("name", "kind", "words"),
    [
        ("no_content.json", Kind.DELIVERED, ""),
        ("missing_click_id.json", Kind.REJECTED, "click-id"),
        ("not_found.json", Kind.SETUP, "404"),
        ("rate_limited.json", Kind.THROTTLED, "429"),
        ("server_error.json", Kind.RETRY, "502"),
    ],
)
def test_classify_recorded_answers(name: str, kind: Kind, words: str) -> None:
    verdict = taboola.classify(answer(name), ["evt-0001"])
    assert verdict.kind is kind
    assert words in verdict.reason
    if kind is Kind.THROTTLED:
        assert verdict.retry_after == 10.0
