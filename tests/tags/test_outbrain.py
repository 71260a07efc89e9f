"""Outbrain S2S conversions: one exact unifiedPixel GET per event, click-ID skip, verdicts.

Outbrain documents no answers for this endpoint beyond "2xx is success"; the fixtures record
whole answers (status, headers, body), since the status is the whole verdict.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from edge.schema import Data, Ids
from tags import outbrain
from tags.base import Destination, Kind, PlatformResponse

from .events import ALL_IDS, assert_golden, destination, fixture, page_view, purchase

CREDENTIALS = {"marketer_id": "00f4b02153ee75f3c9dc4fc128ab041962"}
PIXEL = "https://tr.outbrain.com/unifiedPixel"


def dest(**kwargs: Any) -> Destination:
    return destination(outbrain.SPEC, CREDENTIALS, **kwargs)


def answer(name: str) -> PlatformResponse:
    recorded = json.loads(fixture("outbrain", name))
    body = recorded.get("body")
    raw = b"" if body is None else json.dumps(body).encode()
    return PlatformResponse(recorded["status"], recorded.get("headers", {}), raw)


def test_purchase_is_one_unified_pixel_get() -> None:
    [built] = outbrain.build([purchase()], dest())
    assert built.event_ids == ("evt-0001",) and not built.rejected
    request = built.request
    assert request is not None
    assert_golden("outbrain_purchase", request)
    assert (request.method, request.url) == ("GET", PIXEL)
    assert dict(request.params) == {
        "ob_click_id": ALL_IDS.ob_click_id,
        "name": "Purchase",
        "orderId": "1001",
        "orderValue": "59.8",
        "currency": "USD",
    }
    assert request.json is None and not request.headers


def test_add_to_cart_keeps_the_dashboard_name_as_written() -> None:
    event = page_view(event="add_to_cart", data=Data(value=19.9, currency="usd"))
    [built] = outbrain.build([event], dest())
    assert built.request is not None
    assert_golden("outbrain_add_to_cart", built.request)
    assert built.request.params["name"] == "Add to cart"  # case and spaces kept
    assert built.request.params["orderId"] == "evt-0002"
    assert built.request.params["currency"] == "USD"


def test_unmapped_events_and_overrides() -> None:
    assert dest().platform_event(outbrain.SPEC, "page_view") is None
    assert dest().platform_event(outbrain.SPEC, "newsletter_signup") is None
    [built] = outbrain.build([purchase()], dest(events={"purchase": "Order Complete"}))
    assert built.request is not None and built.request.params["name"] == "Order Complete"
    [view] = outbrain.build([page_view()], dest(events={"page_view": "Page View"}))
    assert view.request is not None and view.request.params["name"] == "Page View"
    [refused] = outbrain.build([page_view()], dest())
    assert refused.request is None and "not mapped" in refused.rejected["evt-0002"]


def test_no_click_id_is_skipped_and_never_sent() -> None:
    without = purchase(ids=Ids(tblci="x"))
    assert outbrain.skip_reason(without, dest()) == "no click id"
    assert outbrain.skip_reason(purchase(), dest()) is None
    [built] = outbrain.build([without], dest())
    assert built.request is None and built.rejected == {"evt-0001": "no click id"}


def test_one_request_per_event() -> None:
    events = [purchase(event_id=f"evt-{n}") for n in range(3)]
    built = outbrain.build(events, dest())
    assert [b.event_ids for b in built] == [("evt-0",), ("evt-1",), ("evt-2",)]
    assert outbrain.SPEC.limits.max_batch_events == 1


def test_marketer_id_is_optional_hex() -> None:
    [marketer] = outbrain.SPEC.credentials
    assert not marketer.required
    assert marketer.problem("00f4b02153ee75f3c9dc4fc128ab041962") is None
    assert marketer.problem("my-marketer") is not None
    assert outbrain.SPEC.secret_names == frozenset()


def test_probe_carries_no_click_and_no_name() -> None:
    request = outbrain.probe(dest())
    assert_golden("outbrain_probe", request)
    assert not request.params
    assert outbrain.probe_verdict(answer("ok.json")).kind is Kind.DELIVERED
    assert outbrain.probe_verdict(answer("bad_request.json")).kind is Kind.DELIVERED
    assert outbrain.probe_verdict(answer("not_found.json")).kind is Kind.SETUP


@pytest.mark.parametrize(
    ("name", "kind", "words"),
    [
        ("ok.json", Kind.DELIVERED, ""),
        ("bad_request.json", Kind.REJECTED, "400"),
        ("not_found.json", Kind.SETUP, "404"),
        ("rate_limited.json", Kind.THROTTLED, "429"),
        ("server_error.json", Kind.RETRY, "500"),
    ],
)
def test_classify_recorded_answers(name: str, kind: Kind, words: str) -> None:
    verdict = outbrain.classify(answer(name), ["evt-0001"])
    assert verdict.kind is kind
    assert words in verdict.reason
