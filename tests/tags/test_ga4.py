"""GA4 Measurement Protocol: exact requests, consent handling, batching, answers."""

from __future__ import annotations

import hashlib
import json

import msgspec
import pytest

from edge.schema import Client, Consent, Content, Data, Ids, User
from tags import ga4
from tags.base import Kind, PlatformResponse

from .events import EVENT_TIME, UA, assert_golden, destination, fixture, page_view, purchase

CREDS = {"measurement_id": "G-ABCDE12345", "api_secret": "s3cr3t_Api-Secret_value"}
COLLECT = "https://www.google-analytics.com/mp/collect"


def sha256(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def dest(**kwargs):  # type: ignore[no-untyped-def]
    return destination(ga4.SPEC, CREDS, **kwargs)


def only_request(events, d=None):  # type: ignore[no-untyped-def]
    built = ga4.build(events, d or dest())
    assert len(built) == 1 and built[0].request is not None and not built[0].rejected
    return built[0]


def test_purchase_request_is_exact():
    built = only_request([purchase()])
    request = built.request
    assert_golden("ga4_purchase", request)
    assert built.event_ids == ("evt-0001",)
    assert (request.method, request.url) == ("POST", COLLECT)
    # The secret can only travel in the query: GA4 has no header for it.
    assert dict(request.params) == CREDS
    assert dict(request.headers) == {}
    body = request.json
    assert body["client_id"] == "1234567890.1763800000"
    assert body["user_id"] == sha256("cust-42")
    assert body["consent"] == {"ad_user_data": "GRANTED", "ad_personalization": "GRANTED"}
    assert body["ip_override"] == "203.0.113.9"
    assert body["user_agent"] == UA
    user = body["user_data"]
    assert user["sha256_email_address"] == [sha256("jane.doe@example.com")]
    assert user["sha256_phone_number"] == [sha256("+16505551212")]  # E.164 with the +
    assert user["address"] == [
        {
            "sha256_first_name": sha256("jane"),
            "sha256_last_name": sha256("doesmith"),
            "city": "menlo park",  # plain, not hashed
            "region": "california",
            "postal_code": "94025-1234",
            "country": "US",
        }
    ]
    (event,) = body["events"]
    assert event["name"] == "purchase"
    assert event["timestamp_micros"] == EVENT_TIME * 1_000_000
    params = event["params"]
    assert params["transaction_id"] == "1001"
    assert (params["value"], params["currency"]) == (59.8, "USD")
    assert params["session_id"] == "1763899000"
    assert params["engagement_time_msec"] == 1
    assert params["page_location"] == "https://shop.example/checkout/thanks?order=1001"
    assert params["coupon"] == "SPRING"  # a site's own data key, passed as a param
    assert params["items"][0] == {
        "item_id": "SKU-1",
        "item_name": "Mug",
        "item_category": "Kitchen",
        "price": 19.9,
        "quantity": 2,
    }
    assert "debug_mode" not in params


def test_page_view_has_no_user_data_and_no_transaction():
    request = only_request([page_view()]).request
    assert_golden("ga4_page_view", request)
    body = request.json
    assert "user_data" not in body
    (event,) = body["events"]
    assert event["name"] == "page_view"
    assert "transaction_id" not in event["params"]
    assert event["params"]["page_referrer"] == "https://www.google.com/"


def test_neutral_names_map_to_ga4_recommended_events():
    cases = {"lead": "generate_lead", "initiate_checkout": "begin_checkout"}
    cases |= {"view_content": "view_item", "complete_registration": "sign_up"}
    for neutral, expected in cases.items():
        request = only_request([purchase(event=neutral)]).request
        assert request.json["events"][0]["name"] == expected


def test_custom_names_pass_overrides_apply_and_bad_names_are_refused():
    custom = only_request([purchase(event="newsletter_optin")]).request
    assert custom.json["events"][0]["name"] == "newsletter_optin"
    renamed = only_request([purchase(event="lead")], dest(events={"lead": "quote_request"}))
    assert renamed.request.json["events"][0]["name"] == "quote_request"
    d = dest(events={"lead": "session_start", "contact": "x" * 41, "page_view": ""})
    built = ga4.build([purchase(event="lead"), purchase(event="contact", event_id="e2"),
                       page_view()], d)  # fmt: skip
    assert [b.request for b in built] == [None]
    rejected = built[0].rejected
    assert "reserves" in rejected["evt-0001"]
    assert "1-40" in rejected["e2"]
    assert rejected["evt-0002"] == "unmapped event: page_view"


def test_batches_hold_one_visitor_and_at_most_25_events():
    alice = [purchase(event_id=f"a{i}") for i in range(60)]
    bob_ids = msgspec.structs.replace(purchase().ids, ga_client_id="555.1763000000")
    bob = [purchase(event_id=f"b{i}", ids=bob_ids) for i in range(3)]
    built = ga4.build(alice[:30] + bob + alice[30:], dest())
    sizes = [(b.request.json["client_id"], len(b.event_ids)) for b in built]
    assert sizes == [
        ("1234567890.1763800000", 25),
        ("1234567890.1763800000", 25),
        ("1234567890.1763800000", 10),
        ("555.1763000000", 3),
    ]
    assert [i for b in built for i in b.event_ids] == [e.event_id for e in alice + bob]
    # Consent is request-level too: a visitor who changed it mid-batch gets two requests.
    denied = purchase(event_id="c", consent=Consent(analytics_storage="granted"))
    assert len(ga4.build([purchase(), denied], dest())) == 2


def test_batches_stay_under_130_kb():
    long = "x" * 100
    contents = [Content(id=f"{long}{i}", name=long, brand=long, category=long) for i in range(200)]
    heavy = [purchase(event_id=f"h{i}", data=Data(contents=contents)) for i in range(6)]
    built = ga4.build(heavy, dest())
    assert len(built) > 1
    for b in built:
        assert len(b.request.body()) <= ga4.MAX_BYTES
    assert sum(len(b.event_ids) for b in built) == 6


def test_an_event_alone_over_the_byte_limit_is_refused(monkeypatch):
    monkeypatch.setattr(ga4, "MAX_BYTES", 1_000)  # page_view 480 B, purchase 1.3 kB
    built = ga4.build([page_view(), purchase()], dest())
    assert built[0].event_ids == ("evt-0002",)
    assert built[-1].rejected == {"evt-0001": "event is larger than GA4's 1 kB limit"}


def test_no_client_id_is_skipped_unless_derived():
    bare = purchase(ids=Ids())
    assert ga4.skip_reason(bare, dest()) == "no ga client_id (_ga cookie)"
    assert ga4.skip_reason(purchase(), dest()) is None
    assert ga4.build([bare], dest())[0].rejected == {"evt-0001": "no ga client_id (_ga cookie)"}
    derive = dest(options={"client_id_fallback": "derive"})
    assert ga4.skip_reason(bare, derive) is None
    first = only_request([bare], derive).request.json["client_id"]
    again = only_request([purchase(ids=Ids(), event_id="other")], derive).request.json
    stranger = purchase(ids=Ids(), user=User(external_id="someone-else"))
    assert first == again["client_id"]  # stable per customer
    assert only_request([stranger], derive).request.json["client_id"] != first
    left, right = first.split(".")
    assert left.isdigit() and right.isdigit()


def test_a_whole_ga_cookie_is_reduced_to_the_client_id():
    ids = Ids(ga_client_id="GA1.1.987654321.1763000000")
    assert only_request([purchase(ids=ids)]).request.json["client_id"] == "987654321.1763000000"


def test_user_data_needs_ad_user_data_granted():
    for consent in (Consent(analytics_storage="granted", ad_user_data="denied"), Consent()):
        body = only_request([purchase(consent=consent)]).request.json
        assert "user_data" not in body
    body = only_request([purchase(consent=Consent(ad_user_data="denied"))]).request.json
    assert body["consent"] == {"ad_user_data": "DENIED"}
    assert "consent" not in only_request([purchase(consent=Consent())]).request.json


def test_gpc_denies_both_ad_purposes_and_withholds_user_data():
    assert ga4.SPEC.honours_gpc is False
    assert ga4.SPEC.consent == frozenset({"analytics_storage"})
    body = only_request([purchase(gpc=True)]).request.json
    assert body["consent"] == {"ad_user_data": "DENIED", "ad_personalization": "DENIED"}
    assert "user_data" not in body


def test_google_normalization_variants():
    user = User(email=["J.ane.Doe@GoogleMail.com", "a@b.co", "c@d.co", "e@f.co"],
                phone="+44 20 7946 0958", first_name=" Mary Ann ", zip="SW1A 1AA")  # fmt: skip
    body = only_request([purchase(user=user)]).request.json
    emails = body["user_data"]["sha256_email_address"]
    assert emails[0] == sha256("janedoe@googlemail.com")  # dots go on Google's domains only
    assert emails[1] == sha256("a@b.co") and len(emails) == 3
    assert body["user_data"]["sha256_phone_number"] == [sha256("+442079460958")]
    address = body["user_data"]["address"][0]
    assert address == {"sha256_first_name": sha256("mary ann"), "postal_code": "sw1a 1aa"}
    assert "user_id" not in body


def test_user_id_raw_option_and_debug_mode():
    d = dest(options={"user_id": "raw", "debug_mode": "true"})
    body = only_request([purchase()], d).request.json
    assert body["user_id"] == "Cust-42"
    assert body["events"][0]["params"]["debug_mode"] is True


def test_long_values_are_cut_to_ga4_limits():
    page = msgspec.structs.replace(purchase().page, url="https://s.example/" + "p" * 2000)
    data = Data(order_id="o" * 150, search="q" * 150)
    params = only_request([purchase(page=page, data=data)]).request.json["events"][0]["params"]
    assert len(params["page_location"]) == 1000
    assert len(params["transaction_id"]) == len(params["search_term"]) == 100


def test_custom_params_skip_emails_bad_names_and_non_scalars():
    custom = {"coupon": "X", "contact": " a@b.co ", "_x": 1, "ga_y": 2, "tags": ["a"], "n": 3}
    params = only_request([purchase(custom=custom)]).request.json["events"][0]["params"]
    assert params["coupon"] == "X" and params["n"] == 3
    assert not {"contact", "_x", "ga_y", "tags"} & set(params)


def test_request_without_ip_or_agent_omits_them():
    body = only_request([purchase(client=Client())]).request.json
    assert "ip_override" not in body and "user_agent" not in body


def test_credentials_are_validated_offline():
    measurement_id, api_secret = ga4.SPEC.credentials
    assert measurement_id.problem("G-ABCDE12345") is None
    assert measurement_id.problem("G-1A2B") is None
    for bad in ("UA-12345-1", "g-abcde12345", "G-ABC", "1234567890", "G-ABCDE12345 "):
        assert measurement_id.problem(bad) is not None
    assert api_secret.secret and api_secret.problem(CREDS["api_secret"]) is None
    assert api_secret.problem("has a space in it") is not None
    assert api_secret.problem("") is not None


def test_secret_is_redacted_from_the_logged_request():
    request = only_request([purchase()]).request
    logged = json.dumps(request.redacted(dest().secret_values(ga4.SPEC)))
    assert CREDS["api_secret"] not in logged and "[redacted]" in logged


def test_probe_goes_to_the_validation_server():
    request = ga4.probe(dest())
    assert_golden("ga4_probe", request)
    assert request.url == "https://www.google-analytics.com/debug/mp/collect"
    assert dict(request.params) == CREDS
    sink = ga4.probe(dest(base_url="http://127.0.0.1:9100/_demo/sinks/ga4"))
    assert sink.url == "http://127.0.0.1:9100/_demo/sinks/ga4/debug/mp/collect"


def answer(status: int, name: str | None = None, headers: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return PlatformResponse(status, headers or {}, fixture("ga4", name) if name else b"")


def test_classify_2xx_is_delivered():
    assert ga4.classify(answer(204), ["a", "b"]).kind is Kind.DELIVERED
    assert ga4.classify(answer(200, "debug_valid.json"), ["a"]).kind is Kind.DELIVERED


def test_classify_validation_messages():
    several = ga4.classify(answer(200, "debug_invalid_event_name.json"), ["a", "b"])
    assert several.kind is Kind.SPLIT and "NAME_INVALID" in several.reason
    one = ga4.classify(answer(200, "debug_missing_client_id.json"), ["a"])
    assert one.kind is Kind.REJECTED
    assert "VALUE_REQUIRED at client_id" in one.reason and "(+1 more)" in one.reason


@pytest.mark.parametrize(
    ("status", "name", "kind", "words"),
    [
        (429, "rate_limited.json", Kind.THROTTLED, "429"),
        (503, "server_error.json", Kind.RETRY, "503"),
        (500, None, Kind.RETRY, "500"),
        (400, "bad_request.json", Kind.SPLIT, "400"),
        (413, None, Kind.SPLIT, "413"),
        (404, None, Kind.SETUP, "404"),
        (405, None, Kind.REJECTED, "405"),
        (401, None, Kind.SETUP, "401"),
    ],
)
def test_classify_errors(status, name, kind, words):  # type: ignore[no-untyped-def]
    verdict = ga4.classify(answer(status, name, {"Retry-After": "7"}), ["a", "b"])
    assert verdict.kind is kind
    assert words in verdict.reason
    if kind is Kind.THROTTLED:
        assert verdict.retry_after == 7.0


def test_a_single_bad_request_is_rejected_not_split():
    assert ga4.classify(answer(400, "bad_request.json"), ["a"]).kind is Kind.REJECTED


def test_probe_verdict_reads_validation_messages_as_setup():
    ok = ga4.probe_verdict(answer(200, "debug_valid.json"))
    assert ok.kind is Kind.DELIVERED and "Realtime" in ok.reason
    bad = ga4.probe_verdict(answer(200, "debug_invalid_event_name.json"))
    assert bad.kind is Kind.SETUP and "NAME_INVALID" in bad.reason
    assert ga4.probe_verdict(answer(503, "server_error.json")).kind is Kind.RETRY
