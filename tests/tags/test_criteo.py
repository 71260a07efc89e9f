"""Criteo S2S events: exact requests for canonical events, identity hashing, classification.

Criteo documents no error body for this endpoint; the fixtures record the status (and, for
the redirect, the Location header) the reference and Criteo's own server tag describe.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import msgspec
import pytest

from edge.schema import Content, Data, Ids, Page, User
from tags import criteo
from tags.base import Destination, Kind, PlatformResponse

from .events import ALL_IDS, EVENT_TIME, assert_golden, destination, fixture, page_view, purchase

CREDENTIALS = {"partner_id": "12345"}
OPTIONS = {"caller_id": "678"}
GUM = "gum-3f2b1e0d9c8a"
EMAIL = "jane.doe@example.com"
IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1"
)
IPAD = IPHONE.replace("iPhone; CPU iPhone OS", "iPad; CPU OS")


def criteo_ids(**changes: str) -> Ids:
    """Every click ID plus Criteo's own cookies, as the edge captures them."""
    return msgspec.structs.replace(ALL_IDS, crto_mapped_user_id=GUM, **changes)


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def md5(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


def dest(**kwargs: Any) -> Destination:
    kwargs.setdefault("options", OPTIONS)
    return destination(criteo.SPEC, CREDENTIALS, **kwargs)


def answer(name: str) -> PlatformResponse:
    recorded = json.loads(fixture("criteo", name))
    body = recorded.get("body")
    raw = b"" if body is None else json.dumps(body).encode()
    return PlatformResponse(recorded["status"], recorded.get("headers", {}), raw)


def test_purchase_is_one_track_transaction_with_hashed_email_and_raw_ids() -> None:
    [built] = criteo.build([purchase(ids=criteo_ids())], dest())
    assert built.event_ids == ("evt-0001",) and not built.rejected
    request = built.request
    assert request is not None
    assert_golden("criteo_purchase", request)
    assert request.method == "POST"
    assert request.url == "https://widget.criteo.com/m/event"
    assert dict(request.params) == {"version": "s2s_v0"}
    body = request.json
    assert body["account"] == "12345"
    assert body["site_type"] == "d"  # Safari on a Mac
    assert body["id"]["mapping_key"] == "678"
    assert body["id"]["mapped_user_id"] == GUM
    assert body["id"]["email"] == {
        "md5": md5(EMAIL),
        "sha256": sha256(EMAIL),
        "sha256_md5": sha256(md5(EMAIL)),
    }
    assert body["retailer_visitor_id"] == sha256("cust-42")
    assert body["ip"] == "203.0.113.9"
    assert body["useragent"].startswith("Mozilla/5.0 (Macintosh")
    assert body["full_url"] == "https://shop.example/checkout/thanks?order=1001"
    assert body["previous_url"] == "https://shop.example/cart"
    [event] = body["events"]
    assert event == {
        "event": "trackTransaction",
        "timestamp": "2025-11-23T12:13:20.000Z",
        "id": "1001",
        "item": [
            {"id": "SKU-1", "price": 19.9, "quantity": 2},
            {"id": "SKU-2", "price": 20.0, "quantity": 1},
        ],
        "deduplication_page_view_id": "evt-0001",
    }
    assert EMAIL not in json.dumps(body)  # never raw


def test_home_page_view_sends_view_home_and_view_page() -> None:
    event = page_view(page=Page(url="https://shop.example/"), ids=criteo_ids())
    [built] = criteo.build([event], dest())
    assert built.request is not None
    assert_golden("criteo_page_view_home", built.request)
    body = built.request.json
    assert [e["event"] for e in body["events"]] == ["viewHome", "viewPage"]
    assert all(e["deduplication_page_view_id"] == "evt-0002" for e in body["events"])
    assert body["id"] == {"mapping_key": "678", "mapped_user_id": GUM}
    assert "retailer_visitor_id" not in body


def test_other_page_view_is_view_page_only() -> None:
    [built] = criteo.build([page_view()], dest(options={}))
    assert built.request is not None
    body = built.request.json
    assert [e["event"] for e in body["events"]] == ["viewPage"]
    assert body["id"] == {}  # no caller ID configured, no GUM cookie, no email


def test_search_is_view_list_with_keywords() -> None:
    event = page_view(event="search", data=Data(search="green tea"))
    [built] = criteo.build([event], dest())
    assert built.request is not None
    [entry] = built.request.json["events"]
    assert entry["event"] == "viewList" and entry["keywords"] == "green tea"


def test_opt_out_cookie_blanks_identity_like_criteos_tag() -> None:
    event = purchase(ids=criteo_ids(crto_is_user_optout="true"))
    [built] = criteo.build([event], dest())
    assert built.request is not None
    body = built.request.json
    assert body["id"] == {}
    assert "ip" not in body and "retailer_visitor_id" not in body
    assert body["events"][0]["event"] == "trackTransaction"


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (sha256(EMAIL), {"sha256": sha256(EMAIL)}),
        (md5(EMAIL).upper(), {"md5": md5(EMAIL), "sha256_md5": sha256(md5(EMAIL))}),
    ],
)
def test_prehashed_email_passes_through(given: str, expected: dict[str, str]) -> None:
    [built] = criteo.build([purchase(user=User(email=given))], dest())
    assert built.request is not None
    assert built.request.json["id"]["email"] == expected


@pytest.mark.parametrize(("agent", "site_type"), [(IPHONE, "m"), (IPAD, "t")])
def test_site_type_follows_the_device(agent: str, site_type: str) -> None:
    event = purchase()
    event = msgspec.structs.replace(
        event, client=msgspec.structs.replace(event.client, user_agent=agent)
    )
    [built] = criteo.build([event], dest())
    assert built.request is not None and built.request.json["site_type"] == site_type
    [forced] = criteo.build([event], dest(options={"site_type": "d"}))
    assert forced.request is not None and forced.request.json["site_type"] == "d"


def test_unmapped_event_and_overrides() -> None:
    lead = purchase(event="lead", event_id="evt-lead")
    [refused] = criteo.build([lead], dest())
    assert refused.request is None and "lead" in refused.rejected["evt-lead"]
    wishlist = page_view(
        event="add_to_wishlist", data=Data(contents=[Content(id="SKU-9", price=5.0)])
    )
    [built] = criteo.build([wishlist], dest(events={"add_to_wishlist": "addToWishlist"}))
    assert built.request is not None
    assert built.request.json["events"][0]["event"] == "addToWishlist"
    assert built.request.json["events"][0]["item"] == [{"id": "SKU-9", "price": 5.0}]
    [off] = criteo.build([purchase()], dest(events={"purchase": ""}))
    assert off.request is None and off.rejected


def test_one_request_per_event() -> None:
    events = [purchase(event_id=f"evt-{n}", time=EVENT_TIME + n) for n in range(3)]
    built = criteo.build(events, dest())
    assert [b.event_ids for b in built] == [("evt-0",), ("evt-1",), ("evt-2",)]
    assert criteo.SPEC.limits.max_batch_events == 1


def test_credentials_and_options_are_validated_offline() -> None:
    [partner] = criteo.SPEC.credentials
    assert partner.problem("12345") is None
    assert partner.problem("abc") is not None
    assert partner.problem("") is not None
    options = {o.name: o for o in criteo.SPEC.options}
    assert options["caller_id"].problem("678") is None
    assert options["caller_id"].problem("x1") is not None
    assert options["site_type"].problem("q") is not None
    assert criteo.SPEC.secret_names == frozenset()


def test_probe_posts_no_event() -> None:
    request = criteo.probe(dest())
    assert_golden("criteo_probe", request)
    assert request.json["events"] == []
    assert request.json["account"] == "12345"
    assert request.json["id"] == {"mapping_key": "678"}


@pytest.mark.parametrize(
    ("name", "kind", "words"),
    [
        ("ok.json", Kind.DELIVERED, ""),
        ("redirect.json", Kind.SETUP, "eu.widget.criteo.com"),
        ("bad_request.json", Kind.REJECTED, "400"),
        ("not_found.json", Kind.SETUP, "404"),
        ("rate_limited.json", Kind.THROTTLED, "429"),
        ("server_error.json", Kind.RETRY, "503"),
        ("forbidden.json", Kind.SETUP, "403"),
    ],
)
def test_classify_recorded_answers(name: str, kind: Kind, words: str) -> None:
    verdict = criteo.classify(answer(name), ["evt-0001"])
    assert verdict.kind is kind
    assert words in verdict.reason
    if kind is Kind.THROTTLED:
        assert verdict.retry_after == 30.0
