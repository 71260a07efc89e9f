"""Google Ads: Data Manager events:ingest (default) and the legacy uploadClickConversions."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import msgspec
import pytest

from edge.schema import Client, Consent, Data, Ids, User
from tags import google_ads as tag
from tags import oauth
from tags.base import Built, Kind, PlatformRequest, PlatformResponse, Token, Verdict
from tests.tags.events import (
    EVENT_TIME,
    UA,
    assert_golden,
    destination,
    fixture,
    page_view,
    purchase,
)

CREDS = {
    "customer_id": "123-456-7890",
    "conversion_action_id": "987654321",
    "client_id": "123456789012-abc123def456.apps.googleusercontent.com",
    "client_secret": "GOCSPX-abcdefghijklmnopqrstuvwxyz12",
    "refresh_token": "1//0gTESTrefreshTOKEN-abcdefghijklmnopqrstuvwxyz",
    "login_customer_id": "111-222-3333",
}
BEARER = "ya29.a0AfB_byCtestAccessToken0123456789"
DEV_TOKEN = "ABcdEFghIJklMNopQRstUV"
LEGACY = {"api": "legacy", "developer_token": DEV_TOKEN}
GCLID = "Cj0KCQiA-gclid_123"


def sha256(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def dest(**kwargs: Any) -> Any:
    kwargs.setdefault("bearer", BEARER)
    return destination(tag.SPEC, dict(CREDS), **kwargs)


def one(events: list[Any], **kwargs: Any) -> PlatformRequest:
    built = tag.build(events, dest(**kwargs))
    assert len(built) == 1 and built[0].request is not None and not built[0].rejected
    return built[0].request


def answer(name: str, status: int, headers: dict[str, str] | None = None) -> PlatformResponse:
    return PlatformResponse(status, headers or {}, fixture("google_ads", name))


def lead(**changes: Any) -> Any:
    event = purchase(event="lead", event_id="evt-0003", data=Data(), custom={})
    return msgspec.structs.replace(event, **changes) if changes else event


# -- Data Manager requests ---------------------------------------------------------------------


def test_purchase_golden_and_fields() -> None:
    request = one([purchase()])
    assert_golden("google_ads_purchase", request)
    assert request.method == "POST"
    assert request.url == "https://datamanager.googleapis.com/v1/events:ingest"
    assert request.headers == {"Authorization": f"Bearer {BEARER}"}
    body = request.json
    assert body["destinations"] == [
        {
            "operatingAccount": {"accountType": "GOOGLE_ADS", "accountId": "1234567890"},
            "loginAccount": {"accountType": "GOOGLE_ADS", "accountId": "1112223333"},
            "productDestinationId": "987654321",
        }
    ]
    assert body["encoding"] == "HEX" and body["validateOnly"] is False
    [event] = body["events"]
    assert event["transactionId"] == "1001"  # the order ID wins over the event_id
    assert event["eventTimestamp"] == "2025-11-23T12:13:20Z"
    assert event["eventSource"] == "WEB"
    assert event["conversionValue"] == 59.8 and event["currency"] == "USD"
    assert event["adIdentifiers"] == {"gclid": GCLID}  # raw, and the only click ID
    assert event["eventDeviceInfo"] == {"userAgent": UA, "ipAddress": "203.0.113.9"}
    assert event["userData"]["userIdentifiers"] == [
        {"emailAddress": sha256("jane.doe@example.com")},  # dots kept: not a Gmail address
        {"phoneNumber": sha256("+16505551212")},
        {
            "address": {
                "givenName": sha256("jane"),
                "familyName": sha256("doesmith"),
                "regionCode": "US",
                "postalCode": "94025",
            }
        },
    ]
    assert event["consent"] == {
        "adUserData": "CONSENT_GRANTED",
        "adPersonalization": "CONSENT_GRANTED",
    }
    assert "Jane" not in json.dumps(body) and "650" not in json.dumps(body)


def test_lead_golden_uses_event_id_without_order() -> None:
    request = one([lead()])
    assert_golden("google_ads_lead", request)
    [event] = request.json["events"]
    assert event["transactionId"] == "evt-0003"
    assert "conversionValue" not in event and "currency" not in event


def test_page_view_is_unmapped_and_rejected_with_reason() -> None:
    built = tag.build([page_view()], dest())
    assert built == [Built(None, (), {"evt-0002": "unmapped event: page_view"})]
    assert tag.build([lead()], dest(events={"lead": ""}))[0].rejected == {
        "evt-0003": "unmapped event: lead"
    }


def test_override_maps_events_to_other_actions_one_request_each() -> None:
    signup = purchase(event="complete_registration", event_id="evt-0004", data=Data())
    built = tag.build(
        [purchase(), signup, lead()], dest(events={"complete_registration": "555666777"})
    )
    assert [b.event_ids for b in built] == [("evt-0001", "evt-0003"), ("evt-0004",)]
    actions = [b.request.json["destinations"][0]["productDestinationId"] for b in built]
    assert actions == ["987654321", "555666777"]


def test_override_with_a_name_instead_of_an_id_is_rejected() -> None:
    [built] = tag.build([lead()], dest(events={"lead": "Lead"}))
    assert built.request is None
    assert "conversion action ID" in built.rejected["evt-0003"]


def test_batches_split_at_2000_events() -> None:
    events = [purchase(event_id=f"evt-{i}") for i in range(tag.MAX_EVENTS + 1)]
    built = tag.build(events, dest())
    assert [len(b.event_ids) for b in built] == [2000, 1]
    assert len(built[0].request.json["events"]) == 2000
    assert built[1].event_ids == ("evt-2000",)


def test_batches_split_at_the_byte_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tag, "MAX_BATCH_BYTES", 3_000)
    events = [purchase(event_id=f"evt-{i}") for i in range(6)]
    built = tag.build(events, dest())
    assert len(built) > 1
    assert [i for b in built for i in b.event_ids] == [e.event_id for e in events]
    for b in built:
        assert len(b.request.body()) <= 3_000


def test_one_click_id_gclid_then_gbraid_then_wbraid() -> None:
    ids = Ids(gclid="G-1", gbraid="B-1", wbraid="W-1")
    assert one([purchase(ids=ids)]).json["events"][0]["adIdentifiers"] == {"gclid": "G-1"}
    ids = Ids(gbraid="B-1", wbraid="W-1")
    assert one([purchase(ids=ids)]).json["events"][0]["adIdentifiers"] == {"gbraid": "B-1"}
    ids = Ids(wbraid="W-1")
    assert one([purchase(ids=ids)]).json["events"][0]["adIdentifiers"] == {"wbraid": "W-1"}


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        ("Cloudy.SanFrancisco+shopping@Gmail.com", "cloudysanfrancisco@gmail.com"),
        (" j.doe+news@googlemail.com ", "jdoe@googlemail.com"),
        ("jane.doe+news@example.com", "jane.doe+news@example.com"),
    ],
)
def test_email_follows_googles_gmail_rule(raw: str, normalized: str) -> None:
    event = purchase(user=User(email=raw))
    [identifier] = one([event]).json["events"][0]["userData"]["userIdentifiers"]
    assert identifier == {"emailAddress": sha256(normalized)}


def test_prehashed_values_pass_through() -> None:
    digest = sha256("someone@example.com").upper()
    event = purchase(user=User(email=digest, first_name=sha256("ann"), last_name="Lee"))
    ids = one([event]).json["events"][0]["userData"]["userIdentifiers"]
    assert ids == [{"emailAddress": digest.lower()}]  # no address: no country, no zip


def test_names_drop_punctuation_prefixes_and_suffixes() -> None:
    assert tag.google_name("  Mrs. Mary-Ann ") == "maryann"
    assert tag.google_name("Jean Luc") == "jean luc"
    assert tag.google_name("Martin Luther King Jr.") == "martin luther king"
    assert tag.google_name("Dr") == "dr"


def test_non_us_address_keeps_postal_code_plain() -> None:
    user = User(first_name="Zoë", last_name="O'Brien", country="United Kingdom", zip=" SW1A 1AA ")
    event = purchase(user=user, client=Client(ip="81.2.69.160", user_agent=UA, country="GB"))
    payload = one([event]).json["events"][0]
    assert payload["userData"]["userIdentifiers"] == [
        {
            "address": {
                "givenName": sha256("zoë"),
                "familyName": sha256("obrien"),
                "regionCode": "GB",
                "postalCode": "SW1A 1AA",
            }
        }
    ]
    assert payload["eventDeviceInfo"] == {"userAgent": UA}  # no IP matching in the UK


def test_consent_fields_follow_the_event() -> None:
    partly = Consent(ad_storage="granted", ad_user_data="granted", ad_personalization="denied")
    event = one([purchase(consent=partly)]).json["events"][0]
    assert event["consent"] == {
        "adUserData": "CONSENT_GRANTED",
        "adPersonalization": "CONSENT_DENIED",
    }
    unknown = one([purchase(consent=Consent())]).json["events"][0]
    assert "consent" not in unknown  # unset = unspecified


def test_denied_user_data_sends_no_identifiers_or_device() -> None:
    denied = Consent(ad_storage="granted", ad_user_data="denied")
    event = one([purchase(consent=denied)]).json["events"][0]
    assert event["consent"] == {"adUserData": "CONSENT_DENIED"}
    assert "userData" not in event and "eventDeviceInfo" not in event
    assert event["adIdentifiers"] == {"gclid": GCLID}


def test_future_time_is_clamped_to_receipt() -> None:
    early = purchase(time=EVENT_TIME + 300, received_at=EVENT_TIME + 0.9)
    assert one([early]).json["events"][0]["eventTimestamp"] == "2025-11-23T12:13:20Z"


# -- skip reason -------------------------------------------------------------------------------


def test_skip_reason_no_click_id_and_no_identifiers() -> None:
    bare = purchase(ids=Ids(), user=User())
    assert tag.skip_reason(bare, dest()) == "no click id"
    assert tag.skip_reason(purchase(ids=Ids(wbraid="W-1"), user=User()), dest()) is None
    assert tag.skip_reason(purchase(ids=Ids(), user=User(phone="+4930123456")), dest()) is None
    denied = Consent(ad_storage="granted", ad_user_data="denied")
    with_email = purchase(ids=Ids(), user=User(email="a@b.co"), consent=denied)
    assert tag.skip_reason(with_email, dest()) == "no click id"
    [built] = tag.build([bare], dest())
    assert built.request is None and built.rejected["evt-0001"].startswith("no click id")


# -- legacy Google Ads API ---------------------------------------------------------------------


def test_legacy_purchase_golden_and_fields() -> None:
    request = one([purchase()], options=LEGACY)
    assert_golden("google_ads_legacy_purchase", request)
    assert request.url == (
        "https://googleads.googleapis.com/v25/customers/1234567890:uploadClickConversions"
    )
    assert request.headers == {
        "Authorization": f"Bearer {BEARER}",
        "developer-token": DEV_TOKEN,
        "login-customer-id": "1112223333",
    }
    body = request.json
    assert body["partialFailure"] is True and body["validateOnly"] is False
    assert body["conversions"] == [
        {
            "gclid": GCLID,
            "conversionAction": "customers/1234567890/conversionActions/987654321",
            "conversionDateTime": "2025-11-23 12:13:20+00:00",
            "conversionValue": 59.8,
            "currencyCode": "USD",
            "orderId": "1001",
            "userIdentifiers": [
                {
                    "userIdentifierSource": "FIRST_PARTY",
                    "hashedEmail": sha256("jane.doe@example.com"),
                },
                {
                    "userIdentifierSource": "FIRST_PARTY",
                    "hashedPhoneNumber": sha256("+16505551212"),
                },
            ],
            "consent": {"adUserData": "GRANTED"},  # adPersonalization is not for click uploads
        }
    ]


def test_legacy_braid_drops_user_identifiers_and_actions_share_a_request() -> None:
    options = {"api": "legacy", "legacy_api_version": "v24"}
    signup = lead(event="complete_registration", event_id="evt-0004", ids=Ids(gbraid="B-1"))
    built = tag.build(
        [signup, lead()], dest(options=options, events={"complete_registration": "42"})
    )
    [request] = [b.request for b in built]
    assert request.url.endswith("/v24/customers/1234567890:uploadClickConversions")
    assert "developer-token" not in request.headers
    first, second = request.json["conversions"]
    assert first["gbraid"] == "B-1" and "userIdentifiers" not in first
    assert first["conversionAction"].endswith("/conversionActions/42")
    assert first["orderId"] == "evt-0004"
    assert second["gclid"] == GCLID and len(second["userIdentifiers"]) == 2


def test_legacy_follows_a_configured_base_url() -> None:
    request = one([purchase()], options=LEGACY, base_url="http://127.0.0.1:8081")
    assert request.url.startswith("http://127.0.0.1:8081/v25/customers/1234567890:")


# -- probe -------------------------------------------------------------------------------------


def test_probe_is_validate_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tag.time, "time", lambda: EVENT_TIME + 0.5)
    request = tag.probe(dest())
    assert_golden("google_ads_probe", request)
    assert request.url == "https://datamanager.googleapis.com/v1/events:ingest"
    assert request.json["validateOnly"] is True
    [event] = request.json["events"]
    assert event == {
        "transactionId": "capi-edge-connection-test",
        "eventTimestamp": "2025-11-23T12:13:20Z",
        "eventSource": "WEB",
        "userData": {"userIdentifiers": [{"emailAddress": sha256(tag.PROBE_EMAIL)}]},
    }


def test_legacy_probe_is_validate_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tag.time, "time", lambda: EVENT_TIME + 0.5)
    request = tag.probe(dest(options=LEGACY))
    assert_golden("google_ads_legacy_probe", request)
    assert request.json["validateOnly"] is True and request.json["partialFailure"] is True
    assert request.json["conversions"][0]["orderId"] == "capi-edge-connection-test"


def test_probe_verdicts() -> None:
    assert tag.probe_verdict(answer("dm_validate_only.json", 200)).kind is Kind.DELIVERED
    assert tag.probe_verdict(answer("dm_service_disabled.json", 403)).kind is Kind.SETUP
    verdict = tag.probe_verdict(answer("legacy_probe_click_not_found.json", 200))
    assert verdict.kind is Kind.DELIVERED and "CLICK_NOT_FOUND" in verdict.reason
    not_allowed = tag.probe_verdict(answer("legacy_not_allowlisted.json", 403))
    assert not_allowed.kind is Kind.SETUP and 'api = "data_manager"' in not_allowed.reason


# -- credentials and secrets -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "good", "bad"),
    [
        ("customer_id", ["123-456-7890", "1234567890"], ["12-3456-7890", "12345678901", "abc"]),
        ("conversion_action_id", ["987654321"], ["0123", "AW-123/abc", "customers/1/x"]),
        (
            "client_id",
            ["123456789012-abc123def456.apps.googleusercontent.com"],
            ["abc.apps.googleusercontent.com", "123-abc"],
        ),
        ("client_secret", ["GOCSPX-abcdefghijklmnopqrstuvwxyz12"], ["short", "has space x" * 3]),
        ("refresh_token", ["1//0gTESTrefreshTOKEN-abcdefghijklmnop"], ["1//x", "tok en" * 5]),
        ("login_customer_id", ["111-222-3333"], ["111-222"]),
    ],
)
def test_credential_validation(name: str, good: list[str], bad: list[str]) -> None:
    credential = next(c for c in tag.SPEC.credentials if c.name == name)
    for value in good:
        assert credential.problem(value) is None, value
    for value in bad:
        problem = credential.problem(value)
        assert problem is not None and value not in problem
    assert credential.problem("") is not None


def test_options_validate() -> None:
    options = {o.name: o for o in tag.SPEC.options}
    assert options["api"].problem("legacy") is None
    assert options["api"].problem("v2") is not None
    assert options["developer_token"].problem(DEV_TOKEN) is None
    assert options["developer_token"].problem("short") is not None
    assert options["token_url"].problem("http://127.0.0.1:9000/token") is None
    assert tag.SPEC.secret_names == {"client_secret", "refresh_token", "developer_token"}


def test_secrets_are_redacted_from_loggable_requests() -> None:
    destination_ = dest(options=LEGACY)
    secrets = destination_.secret_values(tag.SPEC)
    text = json.dumps(one([purchase()], options=LEGACY).redacted(secrets))
    assert BEARER not in text and DEV_TOKEN not in text and "[redacted]" in text
    token_text = json.dumps(tag.token_request(destination_).redacted(secrets))
    assert CREDS["refresh_token"] not in token_text and CREDS["client_secret"] not in token_text


# -- OAuth -------------------------------------------------------------------------------------


def test_token_request_golden() -> None:
    request = tag.token_request(dest())
    assert_golden("google_ads_token", request)
    assert request.url == "https://oauth2.googleapis.com/token"
    assert request.form == {
        "grant_type": "refresh_token",
        "client_id": CREDS["client_id"],
        "client_secret": CREDS["client_secret"],
        "refresh_token": CREDS["refresh_token"],
    }
    local = tag.token_request(dest(options={"token_url": "http://127.0.0.1:9000/token"}))
    assert local.url == "http://127.0.0.1:9000/token"


def test_parse_token() -> None:
    token = tag.parse_token(answer("oauth_token.json", 200))
    assert token == Token(BEARER, 3599.0)


@pytest.mark.parametrize(
    ("name", "status", "kind"),
    [
        ("oauth_invalid_grant.json", 400, Kind.SETUP),
        ("oauth_invalid_client.json", 401, Kind.SETUP),
        ("dm_unavailable.json", 503, Kind.RETRY),
    ],
)
def test_token_errors_are_classified(name: str, status: int, kind: Kind) -> None:
    with pytest.raises(oauth.TokenError) as caught:
        tag.parse_token(answer(name, status))
    assert isinstance(caught.value, ValueError)
    assert caught.value.verdict.kind is kind
    message = str(caught.value)
    assert message.startswith("google oauth ")
    for secret in (CREDS["refresh_token"], CREDS["client_secret"]):
        assert secret not in message
    if name == "oauth_invalid_grant.json":
        assert caught.value.code == "invalid_grant" and "invalid_grant" in message


# -- classify: Data Manager --------------------------------------------------------------------

IDS = ("evt-a", "evt-b", "evt-c")


def test_success_is_delivered_with_the_request_id() -> None:
    verdict = tag.classify(answer("dm_success.json", 200), IDS)
    assert verdict.kind is Kind.DELIVERED and not verdict.rejected
    assert "t-6b4c2f0e-8a1d-4e57-9c3b-2d0f1a7e5c91" in verdict.reason


def test_invalid_event_names_it_and_splits_the_rest() -> None:
    verdict = tag.classify(answer("dm_invalid_event.json", 400), IDS)
    # Fast fail: nothing was ingested, so the others are resent, not marked delivered.
    assert verdict.kind is Kind.SPLIT
    assert list(verdict.rejected) == ["evt-b"]
    assert "INVALID_CURRENCY_CODE" in verdict.rejected["evt-b"]
    assert "events[1].currency" in verdict.rejected["evt-b"]
    assert "INVALID_ARGUMENT" in verdict.reason and "INVALID_CURRENCY_CODE" in verdict.reason
    pair = tag.classify(answer("dm_invalid_event.json", 400), ("x", "z"))
    assert pair.kind is Kind.SPLIT and list(pair.rejected) == ["z"]


def test_invalid_event_alone_is_rejected() -> None:
    body = json.loads(fixture("google_ads", "dm_invalid_event.json"))
    body["error"]["details"][2]["fieldViolations"][0]["field"] = "events[0].currency"
    verdict = tag.classify(PlatformResponse(400, {}, json.dumps(body).encode()), ("evt-a",))
    assert verdict.kind is Kind.REJECTED and "INVALID_CURRENCY_CODE" in verdict.reason


def test_invalid_without_index_splits_or_rejects() -> None:
    assert tag.classify(answer("dm_invalid_unindexed.json", 400), IDS).kind is Kind.SPLIT
    single = tag.classify(answer("dm_invalid_unindexed.json", 400), ("evt-a",))
    assert single.kind is Kind.REJECTED and "INVALID_ARGUMENT" in single.reason


@pytest.mark.parametrize(
    ("name", "status", "code"),
    [
        ("dm_invalid_conversion_action.json", 400, "INVALID_CONVERSION_ACTION_ID"),
        ("dm_unauthenticated.json", 401, "UNAUTHENTICATED"),
        ("dm_service_disabled.json", 403, "SERVICE_DISABLED"),
        ("dm_scope_insufficient.json", 403, "ACCESS_TOKEN_SCOPE_INSUFFICIENT"),
        ("dm_permission_denied.json", 403, "PERMISSION_DENIED"),
        ("dm_not_found.json", 404, "NOT_FOUND"),
    ],
)
def test_setup_problems_pause_the_destination(name: str, status: int, code: str) -> None:
    verdict = tag.classify(answer(name, status), IDS)
    assert verdict.kind is Kind.SETUP
    assert code in verdict.reason and verdict.reason.startswith("google_ads ")


def test_setup_reasons_carry_a_hint() -> None:
    disabled = tag.classify(answer("dm_service_disabled.json", 403), IDS)
    assert "enable the Data Manager API" in disabled.reason
    scope = tag.classify(answer("dm_scope_insufficient.json", 403), IDS)
    assert "auth/datamanager" in scope.reason


def test_rate_limits_throttle() -> None:
    minute = tag.classify(answer("dm_rate_limited.json", 429), IDS)
    assert minute.kind is Kind.THROTTLED and "RESOURCE_EXHAUSTED" in minute.reason
    assert minute.retry_after == tag.MINUTE_QUOTA_WAIT
    daily = tag.classify(answer("dm_quota_daily.json", 429), IDS)
    assert daily.kind is Kind.THROTTLED and daily.retry_after == tag.DAILY_QUOTA_WAIT
    told = tag.classify(answer("dm_rate_limited.json", 429, {"Retry-After": "7"}), IDS)
    assert told.retry_after == 7.0


@pytest.mark.parametrize(
    ("name", "status", "code"),
    [
        ("dm_unavailable.json", 503, "UNAVAILABLE"),
        ("dm_internal.json", 500, "INTERNAL"),
        ("dm_bad_gateway.html", 502, "http 502"),
    ],
)
def test_server_errors_retry(name: str, status: int, code: str) -> None:
    verdict = tag.classify(answer(name, status), IDS)
    assert verdict.kind is Kind.RETRY and code in verdict.reason


# -- classify: legacy partial failures ---------------------------------------------------------


def test_legacy_success_is_delivered() -> None:
    verdict = tag.classify(answer("legacy_success.json", 200), ("evt-a",))
    assert verdict == Verdict(Kind.DELIVERED)


def test_legacy_partial_failure_rejects_only_the_indexed_row() -> None:
    verdict = tag.classify(answer("legacy_partial_failure.json", 200), IDS)
    assert verdict.kind is Kind.DELIVERED
    assert list(verdict.rejected) == ["evt-b"]
    assert "UNPARSEABLE_GCLID" in verdict.rejected["evt-b"]
    assert "conversions[1].gclid" in verdict.rejected["evt-b"]


def test_legacy_duplicates_count_as_delivered() -> None:
    verdict = tag.classify(answer("legacy_duplicate.json", 200), IDS)
    assert verdict.kind is Kind.DELIVERED
    assert list(verdict.rejected) == ["evt-c"] and "CLICK_NOT_FOUND" in verdict.rejected["evt-c"]


def test_legacy_too_recent_click_retries_in_six_hours() -> None:
    verdict = tag.classify(answer("legacy_too_recent.json", 200), IDS[:2])
    assert verdict.kind is Kind.RETRY and verdict.retry_after == 6 * 3600
    assert "TOO_RECENT_EVENT" in verdict.reason


@pytest.mark.parametrize("status", [400, 403])
def test_legacy_not_allowlisted_is_setup(status: int) -> None:
    verdict = tag.classify(answer("legacy_not_allowlisted.json", status), IDS)
    assert verdict.kind is Kind.SETUP
    assert "CUSTOMER_NOT_ALLOWLISTED_FOR_THIS_FEATURE" in verdict.reason
    assert 'api = "data_manager"' in verdict.reason


def test_legacy_auth_and_quota() -> None:
    auth = tag.classify(answer("legacy_unauthenticated.json", 401), IDS)
    assert auth.kind is Kind.SETUP and "OAUTH_TOKEN_INVALID" in auth.reason
    quota = tag.classify(answer("legacy_quota.json", 429), IDS)
    assert quota.kind is Kind.THROTTLED and quota.retry_after == 86400.0
    assert "RESOURCE_EXHAUSTED" in quota.reason
