"""Meta Conversions API tag: exact payloads, Meta's normalization, and its answers."""

from __future__ import annotations

import hashlib

import msgspec
import pytest

from edge.schema import Client, Ids, User
from tags import meta
from tags.base import Kind, PlatformResponse

from .events import EVENT_TIME, assert_golden, destination, fixture, page_view, purchase

CREDENTIALS = {"pixel_id": "123456789012345", "access_token": "EAAB-meta-token-0123456789"}


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def dest(**kw):  # noqa: ANN003, ANN201
    return destination(meta.SPEC, CREDENTIALS, **kw)


def answer(name: str, status: int = 200, headers: dict | None = None) -> PlatformResponse:
    return PlatformResponse(status, headers or {}, fixture("meta", name))


def test_purchase_golden_and_meta_normalization():
    (built,) = meta.build([purchase()], dest(options={"test_event_code": "TEST12345"}))
    assert_golden("meta_purchase", built.request)
    request = built.request
    assert request.url == "https://graph.facebook.com/v25.0/123456789012345/events"
    assert request.headers == {"Authorization": "Bearer EAAB-meta-token-0123456789"}
    assert "EAAB" not in request.url  # the token never travels in a URL
    body = request.json
    assert body["test_event_code"] == "TEST12345"
    (event,) = body["data"]
    assert event["event_name"] == "Purchase" and event["event_id"] == "evt-0001"
    assert event["event_time"] == EVENT_TIME and event["action_source"] == "website"
    user = event["user_data"]
    assert user["em"] == [sha("jane.doe@example.com")]
    assert user["ph"] == [sha("16505551212")]  # digits with the country code, no +
    assert user["fn"] == sha("jane") and user["ln"] == sha("doesmith")
    assert user["ct"] == sha("menlopark") and user["st"] == sha("ca")
    assert user["zp"] == sha("94025") and user["country"] == sha("us")
    assert user["db"] == sha("19900401") and user["ge"] == sha("f")
    assert user["external_id"] == [sha("cust-42")]
    # sent raw, never hashed
    assert user["client_ip_address"] == "203.0.113.9"
    assert user["fbc"] == "fb.1.1763899000000.IwAR2Xyz_AbC-9"
    assert user["fbp"] == "fb.1.1763800000000.1234567890"
    custom = event["custom_data"]
    assert custom["value"] == 59.8 and custom["currency"] == "USD" and custom["order_id"] == "1001"
    assert custom["content_ids"] == ["SKU-1", "SKU-2"]
    assert custom["contents"][0] == {"id": "SKU-1", "quantity": 2, "item_price": 19.9}
    assert custom["coupon"] == "SPRING"  # custom properties travel too


def test_page_view_golden():
    (built,) = meta.build([page_view()], dest())
    assert_golden("meta_page_view", built.request)
    (event,) = built.request.json["data"]
    assert event["event_name"] == "PageView" and "custom_data" not in event
    assert "test_event_code" not in built.request.json


def test_already_hashed_values_pass_through():
    digest = sha("jane.doe@example.com")
    event = purchase(user=User(email=digest.upper(), phone=sha("16505551212")))
    (built,) = meta.build([event], dest())
    user = built.request.json["data"][0]["user_data"]
    assert user["em"] == [digest] and user["ph"] == [sha("16505551212")]


def test_phone_without_country_code_uses_the_visitors_country():
    event = purchase(user=User(phone="030 1234567", country="Germany"))
    (built,) = meta.build([event], dest(default_country=None))
    assert built.request.json["data"][0]["user_data"]["ph"] == [sha("49301234567")]


def test_event_name_override_and_custom_events():
    (built,) = meta.build([purchase(event="lead")], dest(events={"lead": "SubmitApplication"}))
    assert built.request.json["data"][0]["event_name"] == "SubmitApplication"
    (custom,) = meta.build([purchase(event="quiz_done")], dest())
    assert custom.request.json["data"][0]["event_name"] == "quiz_done"


def test_limited_data_use_under_gpc_when_configured():
    (built,) = meta.build([purchase(gpc=True)], dest(options={"gpc_mode": "ldu"}))
    event = built.request.json["data"][0]
    assert event["data_processing_options"] == ["LDU"]
    assert event["data_processing_options_country"] == 0
    assert event["data_processing_options_state"] == 0


def test_events_meta_would_refuse_are_rejected_not_sent():
    no_agent = purchase(event_id="no-ua", client=Client(ip="203.0.113.9"))
    nobody = purchase(
        event_id="nobody", user=User(), ids=Ids(), client=Client(user_agent="Mozilla/5.0")
    )
    (built,) = meta.build([no_agent, nobody, purchase()], dest())
    assert built.event_ids == ("evt-0001",)
    assert "user agent" in built.rejected["no-ua"]
    assert "customer information" in built.rejected["nobody"]


def test_batches_split_at_the_platform_limit():
    events = [
        msgspec.structs.replace(purchase(), event_id=f"e{i}") for i in range(meta.MAX_EVENTS + 5)
    ]
    first, second = meta.build(events, dest())
    assert len(first.request.json["data"]) == meta.MAX_EVENTS
    assert second.event_ids == tuple(f"e{i}" for i in range(meta.MAX_EVENTS, meta.MAX_EVENTS + 5))


@pytest.mark.parametrize(
    ("name", "status", "kind", "code"),
    [
        ("success.json", 200, Kind.DELIVERED, None),
        ("invalid_parameter.json", 400, Kind.SPLIT, "code 100/2804050"),
        ("event_too_old.json", 400, Kind.SPLIT, "code 100/2804003"),
        ("token_expired.json", 400, Kind.SETUP, "code 190/463"),
        ("unknown_pixel.json", 400, Kind.SETUP, "code 100/33"),
        ("permission.json", 403, Kind.SETUP, "code 200"),
        ("rate_limited.json", 400, Kind.THROTTLED, "code 17"),
        ("transient.json", 500, Kind.RETRY, "code 2"),
    ],
)
def test_classify_recorded_answers(name, status, kind, code):
    verdict = meta.classify(answer(name, status), ["a", "b"])
    assert verdict.kind is kind
    if code:
        assert code in verdict.reason
        assert "EAAB" not in verdict.reason


def test_a_single_invalid_event_is_rejected_with_metas_title():
    verdict = meta.classify(answer("invalid_parameter.json", 400), ["only"])
    assert verdict.kind is Kind.REJECTED
    assert "Invalid Customer Information Parameter" in verdict.reason


def test_html_error_page_and_bare_429_are_not_fatal():
    html = PlatformResponse(502, {}, b"<html>Bad gateway</html>")
    assert meta.classify(html, ["a"]).kind is Kind.RETRY
    throttled = PlatformResponse(429, {"Retry-After": "30"}, b"")
    verdict = meta.classify(throttled, ["a"])
    assert verdict.kind is Kind.THROTTLED and verdict.retry_after == 30


def test_probe_reads_the_pixel_and_posts_nothing():
    request = meta.probe(dest())
    assert_golden("meta_probe", request)
    assert request.method == "GET" and request.json is None
    assert request.params == {"fields": "id,name"}
    assert meta.classify(answer("probe_ok.json"), ()).kind is Kind.DELIVERED
    assert meta.classify(answer("token_expired.json", 400), ()).kind is Kind.SETUP


def test_credentials_are_validated_offline():
    pixel, token = meta.SPEC.credentials
    assert pixel.problem("123456789012345") is None
    assert "malformed" in pixel.problem("my-pixel")
    assert token.problem("EAAB-meta-token-0123456789") is None
    assert token.problem("short") is not None
