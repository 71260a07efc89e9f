"""Pinterest Conversions API v5: exact requests, hashing, batching, per-event answers."""

from __future__ import annotations

import hashlib
import json
import time

import pytest

from edge.schema import Client, Consent, Data, User
from tags import pinterest
from tags.base import Kind, PlatformResponse

from .events import EVENT_TIME, UA, assert_golden, destination, fixture, page_view, purchase

CREDS = {"ad_account_id": "549755885175", "access_token": "pina_AMAtestTOKENvalue0123456789"}
URL = "https://api.pinterest.com/v5/ad_accounts/549755885175/events"


def sha256(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def dest(**kwargs):  # type: ignore[no-untyped-def]
    return destination(pinterest.SPEC, CREDS, **kwargs)


def only_event(event, d=None):  # type: ignore[no-untyped-def]
    (built,) = pinterest.build([event], d or dest())
    assert built.request is not None and not built.rejected
    (payload,) = built.request.json["data"]
    return payload


def test_purchase_request_is_exact():
    (built,) = pinterest.build([purchase()], dest())
    request = built.request
    assert_golden("pinterest_purchase", request)
    assert built.event_ids == ("evt-0001",)
    assert (request.method, request.url) == ("POST", URL)
    assert dict(request.headers) == {"Authorization": f"Bearer {CREDS['access_token']}"}
    assert dict(request.params) == {}  # never ?test=true unless asked
    (event,) = request.json["data"]
    assert event["event_name"] == "checkout"
    assert event["action_source"] == "web"
    assert event["event_time"] == EVENT_TIME  # seconds
    assert event["event_id"] == "evt-0001"  # the Pinterest tag's event_id: the dedup key
    assert event["event_source_url"] == "https://shop.example/checkout/thanks?order=1001"
    assert event["opt_out"] is False
    assert "partner_name" not in event
    user = event["user_data"]
    assert user == {
        "em": [sha256("jane.doe@example.com")],
        "ph": [sha256("16505551212")],  # digits with country code, no +
        "fn": [sha256("jane")],
        "ln": [sha256("doesmith")],
        "ge": [sha256("f")],
        "db": [sha256("19900401")],
        "ct": [sha256("menlopark")],
        "st": [sha256("ca")],
        "zp": [sha256("94025")],
        "country": [sha256("us")],
        "external_id": [sha256("cust-42")],
        "client_ip_address": "203.0.113.9",  # raw
        "client_user_agent": UA,
        "click_id": "dj0yJnU9epik-value",  # the _epik cookie, raw
    }
    assert event["custom_data"] == {
        "currency": "USD",
        "value": "59.8",  # a string, as the spec asks
        "content_ids": ["SKU-1", "SKU-2"],
        "contents": [
            {
                "id": "SKU-1",
                "item_price": "19.9",
                "quantity": 2,
                "item_name": "Mug",
                "item_category": "Kitchen",
            },
            {
                "id": "SKU-2",
                "item_price": "20",
                "quantity": 1,
                "item_name": "Tea",
                "item_category": "Food",
            },
        ],
        "num_items": 3,
        "order_id": "1001",
    }  # no "coupon": custom_data admits no extra keys


def test_page_view_is_a_page_visit_without_custom_data():
    (built,) = pinterest.build([page_view()], dest())
    assert_golden("pinterest_page_view", built.request)
    (event,) = built.request.json["data"]
    assert event["event_name"] == "page_visit"
    assert "custom_data" not in event
    assert set(event["user_data"]) == {"client_ip_address", "client_user_agent", "click_id"}


def test_event_names_outside_pinterest_list_go_as_custom():
    assert only_event(purchase(event="newsletter_optin"))["event_name"] == "custom"
    assert only_event(purchase(event="subscribe"))["event_name"] == "custom"
    assert only_event(purchase(event="lead"))["event_name"] == "lead"
    tested = dest(events={"add_to_wishlist": "add_to_wishlist", "lead": "not_pinterest"})
    assert only_event(purchase(event="add_to_wishlist"), tested)["event_name"] == "add_to_wishlist"
    assert only_event(purchase(event="lead"), tested)["event_name"] == "custom"
    (built,) = pinterest.build([page_view()], dest(events={"page_view": ""}))
    assert built.request is None and built.rejected == {"evt-0002": "unmapped event"}


def test_batches_split_at_1000_events():
    events = [page_view(event_id=f"e{i}") for i in range(2_500)]
    built = pinterest.build(events, dest())
    assert [len(b.event_ids) for b in built] == [1_000, 1_000, 500]
    assert [len(b.request.json["data"]) for b in built] == [1_000, 1_000, 500]
    assert built[2].event_ids[-1] == "e2499"


def test_event_without_email_or_ip_and_agent_is_refused():
    anonymous = page_view(event_id="anon", client=Client(user_agent=UA))
    built = pinterest.build([anonymous, page_view()], dest())
    (b,) = built
    assert b.event_ids == ("evt-0002",)
    assert b.rejected == {"anon": pinterest.NO_MATCH_KEY}
    # An email alone is enough.
    emailed = page_view(client=Client(), user=User(email="a@b.co"))
    user = only_event(emailed)["user_data"]
    assert user == {"em": [sha256("a@b.co")], "click_id": "dj0yJnU9epik-value"}


def test_gpc_ldu_mode_flags_limited_data_processing():
    plain = only_event(purchase(gpc=True))
    assert "opt_out_type" not in plain["custom_data"]
    ldp = only_event(purchase(gpc=True), dest(options={"gpc_mode": "ldu"}))
    assert ldp["custom_data"]["opt_out_type"] == "LDP"
    assert only_event(page_view(gpc=True), dest(options={"gpc_mode": "ldu"}))["custom_data"] == {
        "opt_out_type": "LDP"
    }


def test_opt_out_mirrors_ad_personalization():
    denied = Consent(ad_storage="granted", ad_user_data="granted", ad_personalization="denied")
    assert only_event(purchase(consent=denied))["opt_out"] is True
    assert "opt_out" not in only_event(purchase(consent=Consent(ad_storage="granted")))


def test_options_test_mode_and_partner_name():
    (built,) = pinterest.build([purchase()], dest(options={"test": "true"}))
    assert dict(built.request.params) == {"test": "true"}
    assert (
        only_event(purchase(), dest(options={"partner_name": "ss-capiedge"}))["partner_name"]
        == "ss-capiedge"
    )


def test_pinterest_normalization_variants():
    user = User(phone="+44 (0)20 7946 0958", zip="SW1A 1AA", gender="non-binary", country="GB")
    event = only_event(purchase(user=user))["user_data"]
    assert event["ph"] == [sha256("442079460958")]
    assert event["zp"] == [sha256("sw1a1aa")]  # letters kept outside the US
    assert event["ge"] == [sha256("n")]
    assert event["country"] == [sha256("gb")]
    hashed = sha256("jane.doe@example.com")
    assert only_event(purchase(user=User(email=hashed.upper())))["user_data"]["em"] == [hashed]


def test_amounts_are_decimal_strings_and_num_items_is_counted():
    data = purchase().data
    custom = only_event(purchase(data=Data(value=1325.12, currency="eur")))["custom_data"]
    assert custom == {"currency": "EUR", "value": "1325.12"}
    counted = only_event(purchase(data=Data(contents=data.contents)))["custom_data"]
    assert counted["num_items"] == 3
    assert only_event(purchase(data=Data(value=0.0)))["custom_data"]["value"] == "0"


def test_credentials_are_validated_offline():
    account, token = pinterest.SPEC.credentials
    assert account.problem("549755885175") is None
    for bad in ("act_549755885175", "1234567890123456789", "12 34", ""):
        assert account.problem(bad) is not None
    assert token.secret and token.problem(CREDS["access_token"]) is None
    assert token.problem("short") is not None
    assert token.problem("pina_has spaces in the token value") is not None


def test_token_is_redacted_from_the_logged_request():
    (built,) = pinterest.build([purchase()], dest())
    logged = json.dumps(built.request.redacted(dest().secret_values(pinterest.SPEC)))
    assert CREDS["access_token"] not in logged and "[redacted]" in logged


def test_probe_is_a_test_request_that_records_nothing():
    request = pinterest.probe(dest())
    assert request.method == "POST" and request.url == URL
    assert dict(request.params) == {"test": "true"}
    assert dict(request.headers) == {"Authorization": f"Bearer {CREDS['access_token']}"}
    (event,) = request.json["data"]
    assert event["event_name"] == "page_visit" and event["action_source"] == "web"
    assert abs(event["event_time"] - time.time()) < 60
    assert set(event["user_data"]) == {"client_ip_address", "client_user_agent"}


def answer(status: int, name: str, headers: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return PlatformResponse(status, headers or {}, fixture("pinterest", name))


def test_classify_success():
    verdict = pinterest.classify(answer(200, "success.json"), ["a", "b"])
    assert verdict.kind is Kind.DELIVERED and not verdict.rejected


def test_classify_partial_failure_names_the_failed_event():
    verdict = pinterest.classify(answer(200, "partial_failure.json"), ["a", "b"])
    assert verdict.kind is Kind.DELIVERED
    assert list(verdict.rejected) == ["b"]
    assert "hashed_maids" in verdict.rejected["b"]


def test_classify_422_with_per_event_details():
    verdict = pinterest.classify(answer(422, "unprocessable_with_events.json"), ["a", "b"])
    assert verdict.kind is Kind.DELIVERED
    assert "too far in the past" in verdict.rejected["a"]
    assert "event_name" in verdict.rejected["b"]
    assert "code 4" in verdict.reason


@pytest.mark.parametrize(
    ("status", "name", "kind", "words"),
    [
        (422, "unprocessable.json", Kind.SPLIT, "http 422 code 4"),
        (400, "invalid_request.json", Kind.SPLIT, "code 4196"),
        (401, "unauthorized.json", Kind.SETUP, "code 2: Authentication failed"),
        (403, "forbidden.json", Kind.SETUP, "code 29"),
        (429, "rate_limited.json", Kind.THROTTLED, "code 8"),
        (503, "ramped_down.json", Kind.RETRY, "code 4197"),
    ],
)
def test_classify_errors(status, name, kind, words):  # type: ignore[no-untyped-def]
    verdict = pinterest.classify(answer(status, name, {"Retry-After": "30"}), ["a", "b"])
    assert verdict.kind is kind
    assert words in verdict.reason
    if kind is Kind.THROTTLED:
        assert verdict.retry_after == 30.0


def test_classify_single_invalid_event_is_rejected():
    verdict = pinterest.classify(answer(400, "invalid_request.json"), ["a"])
    assert verdict.kind is Kind.REJECTED and "4196" in verdict.reason


def test_classify_non_json_answers():
    html = PlatformResponse(502, {}, b"<html>Bad gateway</html>")
    assert pinterest.classify(html, ["a"]).kind is Kind.RETRY
    missing = PlatformResponse(404, {}, b'{"code": 2502, "message": "Ad account not found."}')
    assert pinterest.classify(missing, ["a"]).kind is Kind.SETUP


def test_probe_verdict():
    refused = pinterest.probe_verdict(answer(200, "partial_failure.json"))
    assert refused.kind is Kind.DELIVERED  # the token and the account worked
    assert pinterest.probe_verdict(answer(200, "success.json")).kind is Kind.DELIVERED
    assert pinterest.probe_verdict(answer(401, "unauthorized.json")).kind is Kind.SETUP
