"""TikTok Events API tag: exact payloads, TikTok's normalization, and its answers."""

from __future__ import annotations

import hashlib

import msgspec
import pytest

from edge.schema import User
from tags import tiktok
from tags.base import Kind, PlatformResponse

from .events import EVENT_TIME, assert_golden, destination, fixture, page_view, purchase

CREDENTIALS = {"pixel_id": "C0ABCDEFGHIJKLMNOPQR", "access_token": "tiktok-token-0123456789"}


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def dest(**kw):  # noqa: ANN003, ANN201
    return destination(tiktok.SPEC, CREDENTIALS, **kw)


def answer(name: str, status: int = 200) -> PlatformResponse:
    return PlatformResponse(status, {}, fixture("tiktok", name))


def test_purchase_golden_and_tiktok_normalization():
    (built,) = tiktok.build([purchase()], dest(options={"test_event_code": "TEST67890"}))
    assert_golden("tiktok_purchase", built.request)
    request = built.request
    assert request.url == "https://business-api.tiktok.com/open_api/v1.3/event/track/"
    assert request.headers == {"Access-Token": "tiktok-token-0123456789"}
    body = request.json
    assert body["event_source"] == "web" and body["event_source_id"] == "C0ABCDEFGHIJKLMNOPQR"
    assert body["test_event_code"] == "TEST67890"
    (event,) = body["data"]
    assert event["event"] == "Purchase" and event["event_id"] == "evt-0001"
    assert event["event_time"] == EVENT_TIME
    user = event["user"]
    assert user["email"] == [sha("jane.doe@example.com")]
    assert user["phone"] == [sha("+16505551212")]  # E.164 with the +
    assert user["external_id"] == [sha("cust-42")]
    assert user["first_name"] == sha("jane") and user["zip_code"] == sha("94025")
    assert user["city"] == "menlopark" and user["state"] == "ca" and user["country"] == "us"
    assert user["ttclid"] == "E.C.P.abc123XYZ" and user["ttp"] == "2F7h37YkS1j57AYSKTI7IHhJPYH"
    assert user["ip"] == "203.0.113.9"
    props = event["properties"]
    assert props["currency"] == "USD" and props["value"] == 59.8 and props["order_id"] == "1001"
    assert props["contents"][0]["content_id"] == "SKU-1"
    assert event["page"]["url"] == "https://shop.example/checkout/thanks?order=1001"


def test_page_view_has_no_standard_name_and_is_not_mapped():
    assert dest().platform_event(tiktok.SPEC, "page_view") is None
    assert dest().platform_event(tiktok.SPEC, "quiz_done") is None  # no custom events
    overridden = dest(events={"page_view": "Pageview"})
    (built,) = tiktok.build([page_view()], overridden)
    assert_golden("tiktok_page_view_override", built.request)
    assert built.request.json["data"][0]["event"] == "Pageview"


def test_legacy_event_name_override():
    (built,) = tiktok.build([purchase()], dest(events={"purchase": "CompletePayment"}))
    assert built.request.json["data"][0]["event"] == "CompletePayment"


def test_limited_data_use_under_gpc_when_configured():
    (built,) = tiktok.build([purchase(gpc=True)], dest(options={"gpc_mode": "ldu"}))
    assert built.request.json["data"][0]["limited_data_use"] is True


def test_already_hashed_email_passes_through():
    digest = sha("jane.doe@example.com")
    (built,) = tiktok.build([purchase(user=User(email=digest))], dest())
    assert built.request.json["data"][0]["user"]["email"] == [digest]


def test_batches_split_at_the_platform_limit():
    events = [
        msgspec.structs.replace(purchase(), event_id=f"e{i}") for i in range(tiktok.MAX_EVENTS + 1)
    ]
    first, second = tiktok.build(events, dest())
    assert len(first.event_ids) == tiktok.MAX_EVENTS and second.event_ids == ("e1000",)


@pytest.mark.parametrize(
    ("name", "kind", "code"),
    [
        ("success.json", Kind.DELIVERED, None),
        ("partial.json", Kind.DELIVERED, "20001"),
        ("invalid_parameter.json", Kind.SPLIT, "40002"),
        ("no_permission.json", Kind.SETUP, "40001"),
        ("bad_token.json", Kind.SETUP, "40105"),
        ("rate_limited.json", Kind.THROTTLED, "40100"),
        ("system_error.json", Kind.RETRY, "50000"),
    ],
)
def test_classify_recorded_answers_all_http_200(name, kind, code):
    verdict = tiktok.classify(answer(name), ["a", "b"])
    assert verdict.kind is kind
    if code:
        assert code in verdict.reason


def test_invalid_single_event_is_rejected_and_http_errors_classified():
    assert tiktok.classify(answer("invalid_parameter.json"), ["a"]).kind is Kind.REJECTED
    assert tiktok.classify(PlatformResponse(503, {}, b"busy"), ["a"]).kind is Kind.RETRY
    throttled = tiktok.classify(PlatformResponse(429, {"retry-after": "2"}, b""), ["a"])
    assert throttled.kind is Kind.THROTTLED and throttled.retry_after == 2


def test_probe_is_a_test_event_only():
    request = tiktok.probe(dest())
    assert request.json["test_event_code"] == tiktok.CONNECTION_TEST_CODE
    (event,) = request.json["data"]
    assert event["event"] == "ViewContent" and event["event_time"] > EVENT_TIME
    configured = tiktok.probe(dest(options={"test_event_code": "TEST67890"}))
    assert configured.json["test_event_code"] == "TEST67890"


def test_credentials_are_validated_offline():
    pixel, token = tiktok.SPEC.credentials
    assert pixel.problem("C0ABCDEFGHIJKLMNOPQR") is None
    assert pixel.problem("c0abcdefghijklmnopqr") is not None
    assert token.problem("tiktok-token-0123456789") is None
