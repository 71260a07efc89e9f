"""Snapchat Conversions API v3: exact requests, Snap's hashing rules, answers and the probe.

Answer fixtures follow the shapes of Snap's v3 OpenAPI (EventResponse, ValidateResponse,
GetStatsResponse in Snapchat/business-sdk-v3-java) with the failure causes listed on Snap's
"Verify your setup" page; Snap publishes no list of error codes, so the ``codes`` values are
illustrative.
"""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from edge.schema import Client, Page, User
from tags import snapchat
from tags.base import Destination, Kind, PlatformResponse
from tests.tags.events import (
    ALL_IDS,
    EVENT_TIME,
    UA,
    assert_golden,
    destination,
    fixture,
    page_view,
    purchase,
)

PIXEL = "1ec32188-754e-4be2-8e55-c949a984a39f"
TOKEN = "snap.capi-token_0123456789abcdef"
CREDENTIALS = {"pixel_id": PIXEL, "access_token": TOKEN}


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def dest(**kwargs: Any) -> Destination:
    return destination(snapchat.SPEC, CREDENTIALS, **kwargs)


def answer(status: int, name: str, headers: dict[str, str] | None = None) -> PlatformResponse:
    return PlatformResponse(status, headers or {}, fixture("snapchat", name))


def test_purchase_request() -> None:
    [built] = snapchat.build([purchase()], dest())
    request = built.request
    assert request is not None
    assert_golden("snapchat_purchase", request)
    assert built.event_ids == ("evt-0001",) and not built.rejected
    assert request.method == "POST"
    assert request.url == f"https://tr.snapchat.com/v3/{PIXEL}/events"
    assert request.params == {"access_token": TOKEN}  # Snap's only documented place for it
    assert "Authorization" not in request.headers
    [event] = request.json["data"]
    assert event["event_name"] == "PURCHASE"
    assert event["event_time"] == EVENT_TIME  # seconds
    assert event["event_id"] == "evt-0001"  # the pixel's client_dedup_id
    assert event["action_source"] == "WEB"
    assert event["event_source_url"] == "https://shop.example/checkout/thanks?order=1001"
    assert "data_processing_options" not in event
    user = event["user_data"]
    assert user["em"] == [sha256("jane.doe@example.com")]
    assert user["ph"] == [sha256("16505551212")]  # digits, country code, no "+"
    assert user["fn"] == sha256("jane")
    assert user["ln"] == sha256("doesmith")
    assert user["ge"] == sha256("f")
    assert user["db"] == sha256("19900401")
    assert user["ct"] == sha256("menlopark")
    assert user["st"] == sha256("ca")
    assert user["zp"] == sha256("94025")
    assert user["country"] == sha256("us")
    assert user["external_id"] == sha256("cust-42")
    assert user["client_ip_address"] == "203.0.113.9"  # raw
    assert user["client_user_agent"] == UA
    assert user["sc_click_id"] == ALL_IDS.sccid  # raw ScCid
    assert user["sc_cookie1"] == ALL_IDS.scid  # raw _scid
    custom = event["custom_data"]
    assert custom["currency"] == "USD"
    assert custom["value"] == 59.8
    assert custom["order_id"] == "1001"
    assert custom["content_ids"] == ["SKU-1", "SKU-2"]
    assert custom["contents"][0] == {"id": "SKU-1", "quantity": "2", "item_price": "19.9"}
    assert custom["num_items"] == 3
    assert custom["custom_fields"] == {"coupon": "SPRING"}


def test_page_view_request() -> None:
    [built] = snapchat.build([page_view()], dest())
    assert built.request is not None
    assert_golden("snapchat_page_view", built.request)
    [event] = built.request.json["data"]
    assert event["event_name"] == "PAGE_VIEW"
    assert "custom_data" not in event
    assert set(event["user_data"]) == {
        "client_ip_address",
        "client_user_agent",
        "sc_click_id",
        "sc_cookie1",
    }


def test_snaps_own_normalization_examples() -> None:
    """The input/output pairs printed on Snap's Parameters page."""
    event = purchase(user=User(email="Person@Example.com", phone="+44 844 412 4653"))
    user = snapchat.user_data(event, "US")
    assert user["em"] == ["542d240129883c019e106e3b1b2d3f3cb3537c43c425364de8e951d5a3083345"]
    assert user["ph"] == ["dc008fda46e2e64002cf2f82a4906236282d431c4f75e5b60bfe79fc48546383"]


def test_already_hashed_email_passes_through() -> None:
    digest = sha256("jane.doe@example.com")
    user = snapchat.user_data(purchase(user=User(email=digest.upper())), "US")
    assert user["em"] == [digest]


def test_unmapped_event_is_refused_and_override_maps_it() -> None:
    newsletter = purchase(event="newsletter", event_id="evt-n")
    [built] = snapchat.build([newsletter], dest())
    assert built.request is None
    assert built.rejected == {"evt-n": "unmapped event: newsletter"}
    [built] = snapchat.build([newsletter], dest(events={"newsletter": "CUSTOM_EVENT_2"}))
    assert built.request is not None
    assert built.request.json["data"][0]["event_name"] == "CUSTOM_EVENT_2"
    assert dest(events={"page_view": ""}).platform_event(snapchat.SPEC, "page_view") is None
    assert dest().platform_event(snapchat.SPEC, "lead") == "SIGN_UP"


def test_batches_split_at_2000_events() -> None:
    events = [page_view(event_id=f"evt-{i}") for i in range(snapchat.MAX_EVENTS + 1)]
    first, second = snapchat.build(events, dest())
    assert first.request is not None and second.request is not None
    assert len(first.request.json["data"]) == 2000 and len(first.event_ids) == 2000
    assert second.event_ids == ("evt-2000",)
    assert snapchat.SPEC.limits.max_batch_events == 2000


def test_events_snap_cannot_match_are_refused_with_a_reason() -> None:
    no_url = page_view(event_id="evt-u", page=Page())
    anonymous = page_view(event_id="evt-a", client=Client(ip="203.0.113.9"))
    by_email = page_view(event_id="evt-e", client=Client(), user=User(email="a@b.example"))
    [built] = snapchat.build([no_url, anonymous, by_email], dest())
    assert built.rejected == {
        "evt-u": "web events need the page URL (page.url)",
        "evt-a": "no email, phone, or IP address + user agent to match on",
    }
    assert built.event_ids == ("evt-e",)


def test_gpc_with_ldu_mode_sends_limited_data_use() -> None:
    event = purchase(gpc=True)
    [built] = snapchat.build([event], dest(options={"gpc_mode": "ldu"}))
    assert built.request is not None
    assert built.request.json["data"][0]["data_processing_options"] == ["LMU"]
    [built] = snapchat.build([purchase()], dest(options={"gpc_mode": "ldu"}))
    assert built.request is not None
    assert "data_processing_options" not in built.request.json["data"][0]


def test_validate_only_posts_to_the_validate_endpoint() -> None:
    [built] = snapchat.build([purchase()], dest(options={"validate_only": "true"}))
    assert built.request is not None
    assert built.request.url == f"https://tr.snapchat.com/v3/{PIXEL}/events/validate"


def test_base_url_replaces_the_origin() -> None:
    [built] = snapchat.build([purchase()], dest(base_url="http://127.0.0.1:9100/snapchat"))
    assert built.request is not None
    assert built.request.url == f"http://127.0.0.1:9100/snapchat/v3/{PIXEL}/events"


def test_the_token_is_redacted_from_logged_requests() -> None:
    [built] = snapchat.build([purchase()], dest())
    assert built.request is not None
    assert TOKEN not in str(built.request.redacted(dest().secret_values(snapchat.SPEC)))


@pytest.mark.parametrize(
    ("name", "value", "ok"),
    [
        ("pixel_id", PIXEL, True),
        ("pixel_id", "1ec32188754e4be28e55c949a984a39f", False),
        ("pixel_id", "123456789012345", False),
        ("access_token", TOKEN, True),
        ("access_token", "short", False),
        ("access_token", "has spaces in the token value", False),
    ],
)
def test_credentials_are_validated_offline(name: str, value: str, ok: bool) -> None:
    credential = next(c for c in snapchat.SPEC.credentials if c.name == name)
    problem = credential.problem(value)
    assert (problem is None) is ok
    if problem and credential.secret:
        assert value not in problem  # never echo a secret


def test_probe_reads_stats_and_posts_nothing() -> None:
    request = snapchat.probe(dest())
    assert_golden("snapchat_probe", request)
    assert request.method == "GET"
    assert request.url == f"https://tr.snapchat.com/v3/{PIXEL}/events/validate/stats"
    assert request.params == {"access_token": TOKEN}
    assert request.json is None and request.body() is None
    assert snapchat.probe_verdict(answer(200, "stats_success.json")).kind is Kind.DELIVERED
    failure = snapchat.probe_verdict(answer(200, "stats_failure.json"))
    assert failure.kind is Kind.SETUP and "does not belong" in failure.reason
    assert snapchat.probe_verdict(answer(401, "unauthorized.json")).kind is Kind.SETUP
    assert snapchat.probe_verdict(answer(404, "stats_failure.json")).kind is Kind.SETUP


def test_success_is_delivered() -> None:
    verdict = snapchat.classify(answer(200, "success.json"), ["evt-a", "evt-b"])
    assert verdict.kind is Kind.DELIVERED and not verdict.rejected


def test_invalid_batch_is_split_naming_the_bad_event() -> None:
    verdict = snapchat.classify(answer(400, "invalid_batch.json"), ["evt-a", "evt-b"])
    assert verdict.kind is Kind.SPLIT
    assert "INVALID" in verdict.reason and "INVALID_EVENT_TIME" in verdict.reason
    assert set(verdict.rejected) == {"evt-b"}


def test_invalid_single_event_is_rejected() -> None:
    verdict = snapchat.classify(answer(400, "invalid_single.json"), ["evt-a"])
    assert verdict.kind is Kind.REJECTED
    assert "MISSING_CURRENCY" in verdict.reason and "currency" in verdict.reason


def test_http_200_carrying_invalid_is_not_delivered() -> None:
    verdict = snapchat.classify(answer(200, "invalid_batch.json"), ["evt-a", "evt-b"])
    assert verdict.kind is Kind.SPLIT


def test_validate_answers_per_event() -> None:
    verdict = snapchat.classify(answer(400, "validate_partial.json"), ["evt-a", "evt-b"])
    assert verdict.kind is Kind.DELIVERED
    assert list(verdict.rejected) == ["evt-b"]
    assert "UNHASHED_PII" in verdict.rejected["evt-b"]


def test_auth_error_pauses_the_destination() -> None:
    verdict = snapchat.classify(answer(401, "unauthorized.json"), ["evt-a"])
    assert verdict.kind is Kind.SETUP
    assert "401" in verdict.reason and "access token" in verdict.reason
    assert TOKEN not in verdict.reason


def test_rate_limit_is_throttled_with_retry_after() -> None:
    verdict = snapchat.classify(answer(429, "rate_limited.json", {"Retry-After": "30"}), ["evt-a"])
    assert verdict.kind is Kind.THROTTLED and verdict.retry_after == 30.0
    assert "429" in verdict.reason


def test_server_error_is_retried() -> None:
    verdict = snapchat.classify(answer(502, "server_error.html"), ["evt-a"])
    assert verdict.kind is Kind.RETRY and "502" in verdict.reason


def test_spec_is_complete() -> None:
    spec = snapchat.SPEC
    assert spec.consent == frozenset({"ad_storage", "ad_user_data"})
    assert spec.limits.freshness_seconds == 37 * 86_400
    assert spec.click_ids == ("sccid", "scid")
    assert spec.secret_names == frozenset({"access_token"})
    snap_enum = {"PAGE_VIEW", "VIEW_CONTENT", "SEARCH", "ADD_CART", "ADD_TO_WISHLIST"}
    snap_enum |= {"START_CHECKOUT", "ADD_BILLING", "PURCHASE", "SIGN_UP", "SUBSCRIBE"}
    snap_enum |= {"START_TRIAL", "CUSTOM_EVENT_1"}
    assert set(spec.event_map.values()) <= snap_enum
