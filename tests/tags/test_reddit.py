"""Reddit Conversions API v3: exact requests, Reddit's hashing rules, answers and the probe.

Answer fixtures are Reddit's documented bodies (ads-api.reddit.com/docs/v3 as captured in
Segment's V3-API-REFERENCE.md) and the recorded shapes in RudderStack's reddit fixtures.
"""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from edge.schema import Client, User
from tags import reddit
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

ACCOUNT = "a2_abc123"
TOKEN = "eyJhbGciOiJSUzI1NiJ9.reddit-conversion-token"
CREDENTIALS = {"account_id": ACCOUNT, "access_token": TOKEN}
URL = f"https://ads-api.reddit.com/api/v3/pixels/{ACCOUNT}/conversion_events"


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def dest(**kwargs: Any) -> Destination:
    return destination(reddit.SPEC, CREDENTIALS, **kwargs)


def answer(status: int, name: str, headers: dict[str, str] | None = None) -> PlatformResponse:
    return PlatformResponse(status, headers or {}, fixture("reddit", name))


def test_purchase_request() -> None:
    [built] = reddit.build([purchase()], dest())
    request = built.request
    assert request is not None
    assert_golden("reddit_purchase", request)
    assert built.event_ids == ("evt-0001",) and not built.rejected
    assert request.method == "POST" and request.url == URL
    assert request.headers == {"Authorization": f"Bearer {TOKEN}"}
    assert not request.params
    assert list(request.json) == ["data"] and "test_id" not in request.json["data"]
    [event] = request.json["data"]["events"]
    assert event["event_at"] == EVENT_TIME * 1000  # milliseconds
    assert event["action_source"] == "WEBSITE"
    assert event["type"] == {"tracking_type": "PURCHASE"}
    assert event["click_id"] == ALL_IDS.rdt_cid  # raw
    assert event["event_source_url"] == "https://shop.example/checkout/thanks?order=1001"
    user = event["user"]
    assert user["email"] == sha256("janedoe@example.com")  # dots gone from the local part
    assert user["phone_number"] == sha256("+16505551212")  # E.164 with "+"
    assert user["external_id"] == sha256("cust-42")
    assert user["ip_address"] == sha256("203.0.113.9")
    assert user["user_agent"] == UA  # never hashed
    assert user["uuid"] == "1763800000000.b2f0c6c8-5a2e-4c1e-9a7d-3f2b1e0d9c8a"  # full value
    assert "data_processing_options" not in user
    meta = event["metadata"]
    assert meta["conversion_id"] == "evt-0001"  # dedup with the pixel's conversionId
    assert meta["currency"] == "USD" and meta["value"] == 59.8
    assert meta["item_count"] == 3
    assert meta["products"][0] == {
        "id": "SKU-1",
        "name": "Mug",
        "category": "Kitchen",
        "quantity": 2,
        "item_price": 19.9,
    }


def test_page_view_request() -> None:
    [built] = reddit.build([page_view()], dest())
    assert built.request is not None
    assert_golden("reddit_page_view", built.request)
    [event] = built.request.json["data"]["events"]
    assert event["type"] == {"tracking_type": "PAGE_VISIT"}
    assert event["metadata"] == {"conversion_id": "evt-0002"}  # no value for page visits
    assert set(event["user"]) == {"ip_address", "user_agent", "uuid"}


def test_reddits_own_normalization_examples() -> None:
    """The canonical forms and digests printed in Reddit's v3 documentation."""
    digest = "ff8d9819fc0e12bf0d24892e45987e249a28dce836a85cad60e28eaaa8c6d976"
    for address in ("alice@example.com", " Al.ice+Apple@Example.Com "):
        assert reddit.email(address) == "alice@example.com"
        user = reddit.user(purchase(user=User(email=address)), dest())
        assert user["email"] == digest
    user = reddit.user(purchase(user=User(phone="+1 (555) 444-1234")), dest())
    assert user["phone_number"] == (
        "e5b124c58580eb16bd959b8d0cac12b12c952e2ceae0203d416cff94f10b994a"
    )
    assert reddit.email(sha256("x@y.example")) == sha256("x@y.example")  # already hashed


def test_events_without_a_standard_type_go_as_custom() -> None:
    checkout = purchase(event="initiate_checkout", event_id="evt-c")
    newsletter = page_view(event="newsletter_signup", event_id="evt-n")
    [built] = reddit.build([checkout, newsletter], dest())
    assert built.request is not None
    first, second = built.request.json["data"]["events"]
    assert first["type"] == {"tracking_type": "CUSTOM", "custom_event_name": "InitiateCheckout"}
    assert first["metadata"]["value"] == 59.8  # custom events keep value and currency
    assert second["type"] == {"tracking_type": "CUSTOM", "custom_event_name": "newsletter_signup"}


def test_event_map_overrides() -> None:
    lead = purchase(event="lead", event_id="evt-l")
    [built] = reddit.build([lead], dest(events={"lead": "SIGN_UP", "page_view": ""}))
    assert built.request is not None
    event = built.request.json["data"]["events"][0]
    assert event["type"] == {"tracking_type": "SIGN_UP"}
    assert "item_count" not in event["metadata"]  # Reddit keeps item_count on fewer types
    [built] = reddit.build([page_view()], dest(events={"page_view": ""}))
    assert built.request is None and built.rejected == {"evt-0002": "unmapped event: page_view"}


def test_batches_split_at_1000_events() -> None:
    events = [page_view(event_id=f"evt-{i}") for i in range(2 * reddit.MAX_EVENTS + 1)]
    built = reddit.build(events, dest())
    assert [len(b.event_ids) for b in built] == [1000, 1000, 1]
    assert built[0].request is not None
    assert len(built[0].request.json["data"]["events"]) == 1000
    assert reddit.SPEC.limits.max_batch_events == 1000


def test_test_id_goes_into_the_data_wrapper() -> None:
    [built] = reddit.build([purchase()], dest(options={"test_id": "t2_test_abc"}))
    assert built.request is not None
    assert built.request.json["data"]["test_id"] == "t2_test_abc"


def test_gpc_with_ldu_mode_sends_data_processing_options() -> None:
    event = purchase(gpc=True)
    [built] = reddit.build([event], dest(options={"gpc_mode": "ldu"}))
    assert built.request is not None
    user = built.request.json["data"]["events"][0]["user"]
    assert user["data_processing_options"] == {"modes": ["LDU"], "country": "US", "region": "US-CA"}
    no_geo = purchase(gpc=True, client=Client(ip="203.0.113.9", user_agent=UA))
    assert reddit.user(no_geo, dest(options={"gpc_mode": "ldu"}))["data_processing_options"] == {
        "modes": ["LDU"]
    }


@pytest.mark.parametrize(
    ("name", "value", "ok"),
    [
        ("account_id", "a2_abc123", True),
        ("account_id", "t2_9xyz", True),
        ("account_id", "abc123", False),
        ("account_id", "a2_", False),
        ("access_token", TOKEN, True),
        ("access_token", "short", False),
        ("access_token", "token with spaces 0123456789", False),
    ],
)
def test_credentials_are_validated_offline(name: str, value: str, ok: bool) -> None:
    credential = next(c for c in reddit.SPEC.credentials if c.name == name)
    problem = credential.problem(value)
    assert (problem is None) is ok
    if problem and credential.secret:
        assert value not in problem  # never echo a secret


def test_probe_without_test_id_posts_an_empty_event_list() -> None:
    request = reddit.probe(dest())
    assert_golden("reddit_probe", request)
    assert request.method == "POST" and request.url == URL
    assert request.headers == {"Authorization": f"Bearer {TOKEN}"}
    assert request.json == {"data": {"events": []}}


def test_probe_with_test_id_posts_one_test_event() -> None:
    request = reddit.probe(dest(options={"test_id": "t2_test_abc"}))
    assert request.json["data"]["test_id"] == "t2_test_abc"
    [event] = request.json["data"]["events"]
    assert event["type"] == {"tracking_type": "PAGE_VISIT"}
    assert event["event_at"] > EVENT_TIME * 1000


def test_probe_verdicts() -> None:
    assert reddit.probe_verdict(answer(200, "success.json")).kind is Kind.DELIVERED
    refused = reddit.probe_verdict(answer(400, "invalid_events.json"))
    assert refused.kind is Kind.DELIVERED and "credentials accepted" in refused.reason
    assert reddit.probe_verdict(answer(401, "unauthorized.json")).kind is Kind.SETUP
    assert reddit.probe_verdict(answer(403, "forbidden.json")).kind is Kind.SETUP


def test_success_is_delivered() -> None:
    verdict = reddit.classify(answer(200, "success.json"), ["evt-a", "evt-b"])
    assert verdict.kind is Kind.DELIVERED and not verdict.rejected


def test_one_invalid_event_splits_the_batch() -> None:
    verdict = reddit.classify(answer(400, "invalid_events.json"), ["evt-a", "evt-b"])
    assert verdict.kind is Kind.SPLIT  # "None were processed": evt-a must go again
    assert verdict.rejected == {
        "evt-b": "reddit: event_at timestamp must be less than 168h0m0s old"
    }
    assert "400" in verdict.reason and "invalid conversion events" in verdict.reason


def test_single_invalid_event_is_rejected_with_reddits_reason() -> None:
    verdict = reddit.classify(answer(400, "invalid_events.json"), ["evt-b"])
    assert verdict.kind is Kind.REJECTED
    assert "168h0m0s" in verdict.reason


def test_all_events_invalid_rejects_the_batch_matching_hashed_ids_too() -> None:
    verdict = reddit.classify(answer(400, "invalid_events_all.json"), ["evt-a", "evt-b"])
    assert verdict.kind is Kind.REJECTED
    assert set(verdict.rejected) == {"evt-a", "evt-b"}


def test_plain_bad_request_for_too_many_events_splits() -> None:
    verdict = reddit.classify(answer(400, "bad_request.txt"), ["evt-a", "evt-b"])
    assert verdict.kind is Kind.SPLIT and "Bad Request" in verdict.reason


@pytest.mark.parametrize(
    ("status", "name", "words"),
    [
        (401, "unauthorized.json", "UNAUTHORIZED"),
        (401, "unauthorized.txt", "Authorization Required"),
        (403, "forbidden.json", "not authorized to post conversions"),
    ],
)
def test_auth_errors_pause_the_destination(status: int, name: str, words: str) -> None:
    verdict = reddit.classify(answer(status, name), ["evt-a"])
    assert verdict.kind is Kind.SETUP
    assert str(status) in verdict.reason and words in verdict.reason
    assert TOKEN not in verdict.reason


def test_rate_limit_is_throttled() -> None:
    verdict = reddit.classify(answer(429, "rate_limited.json", {"retry-after": "12"}), ["e"])
    assert verdict.kind is Kind.THROTTLED and verdict.retry_after == 12.0
    assert "Too many requests" in verdict.reason


def test_server_error_is_retried() -> None:
    verdict = reddit.classify(answer(500, "server_error.json"), ["evt-a"])
    assert verdict.kind is Kind.RETRY and "currently unavailable" in verdict.reason


def test_spec_is_complete() -> None:
    spec = reddit.SPEC
    assert spec.consent == frozenset({"ad_storage", "ad_user_data"})
    assert spec.limits.freshness_seconds == 7 * 86_400
    assert spec.click_ids == ("rdt_cid", "rdt_uuid")
    assert spec.secret_names == frozenset({"access_token"})
    assert spec.custom_events
