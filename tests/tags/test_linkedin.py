"""LinkedIn Conversions API: exact requests, rule routing, matching, answers and the probe.

Answer fixtures are LinkedIn's recorded bodies (RudderStack's linkedin_ads network fixtures,
the measured answers in the platform reference) in LinkedIn's error shape
``{status, serviceErrorCode?, code?, message}``.
"""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from edge.schema import Ids, User
from tags import linkedin
from tags.base import Destination, Kind, PlatformResponse
from tests.tags.events import (
    ALL_IDS,
    EVENT_TIME,
    assert_golden,
    destination,
    fixture,
    page_view,
    purchase,
)

TOKEN = "AQVlinkedin_member-token.0123456789"
CREDENTIALS = {"access_token": TOKEN, "conversion_id": "104567", "ad_account_id": "508123456"}
URL = "https://api.linkedin.com/rest/conversionEvents"


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def dest(credentials: dict[str, str] | None = None, **kwargs: Any) -> Destination:
    return destination(linkedin.SPEC, credentials or CREDENTIALS, **kwargs)


def answer(status: int, name: str, headers: dict[str, str] | None = None) -> PlatformResponse:
    return PlatformResponse(status, headers or {}, fixture("linkedin", name))


def test_purchase_request() -> None:
    [built] = linkedin.build([purchase()], dest())
    request = built.request
    assert request is not None
    assert_golden("linkedin_purchase", request)
    assert built.event_ids == ("evt-0001",) and not built.rejected
    assert request.method == "POST" and request.url == URL
    assert request.headers == {
        "Authorization": f"Bearer {TOKEN}",
        "LinkedIn-Version": linkedin.API_VERSION,
        "X-Restli-Protocol-Version": "2.0.0",
        "X-RestLi-Method": "BATCH_CREATE",
    }
    [element] = request.json["elements"]
    assert element["conversion"] == "urn:lla:llaPartnerConversion:104567"
    assert element["conversionHappenedAt"] == EVENT_TIME * 1000  # milliseconds
    assert element["conversionValue"] == {"currencyCode": "USD", "amount": "59.8"}  # a string
    assert element["eventId"] == "evt-0001"
    assert element["user"] == {
        "userIds": [
            {"idType": "SHA256_EMAIL", "idValue": sha256("jane.doe@example.com")},
            {"idType": "LINKEDIN_FIRST_PARTY_ADS_TRACKING_UUID", "idValue": ALL_IDS.li_fat_id},
        ]
    }  # no plaintext userInfo unless asked for


def test_user_info_only_when_asked_and_with_both_names() -> None:
    event = purchase(custom={"company_name": "Acme Inc.", "job_title": "Buyer"})
    [built] = linkedin.build([event], dest(options={"send_user_info": "true"}))
    assert built.request is not None
    assert_golden("linkedin_purchase_user_info", built.request)
    assert built.request.json["elements"][0]["user"]["userInfo"] == {
        "firstName": "Jane",
        "lastName": "Doe-Smith",
        "countryCode": "US",
        "companyName": "Acme Inc.",
        "title": "Buyer",
    }
    first_only = purchase(user=User(email="jane@example.com", first_name="Jane"))
    assert linkedin.user_info(first_only) is None


def test_amounts_are_strings() -> None:
    assert linkedin.amount(59.8) == "59.8"
    assert linkedin.amount(60.0) == "60"
    assert linkedin.amount(0.1 + 0.2) == "0.3"
    assert linkedin.amount(1234567.5) == "1234567.5"


def test_only_purchase_is_mapped_and_others_need_a_rule() -> None:
    [built] = linkedin.build([page_view()], dest())
    assert built.request is None and built.rejected == {"evt-0002": "unmapped event: page_view"}
    lead = purchase(event="lead", event_id="evt-l")
    [built] = linkedin.build([lead, purchase()], dest(events={"lead": "998877"}))
    assert built.request is not None
    rules = [e["conversion"] for e in built.request.json["elements"]]
    assert rules == ["urn:lla:llaPartnerConversion:998877", "urn:lla:llaPartnerConversion:104567"]
    assert dest(events={"purchase": ""}).platform_event(linkedin.SPEC, "purchase") is None


def test_events_without_li_fat_id_or_email_are_skipped() -> None:
    anonymous = page_view(event="purchase", ids=Ids(), user=User(first_name="Jane"))
    assert linkedin.skip_reason(anonymous, dest()) == "no li_fat_id or email to match on"
    assert linkedin.skip_reason(purchase(ids=Ids()), dest()) is None  # email alone
    assert linkedin.skip_reason(purchase(user=User()), dest()) is None  # li_fat_id alone
    [built] = linkedin.build([anonymous], dest())
    assert built.request is None
    assert built.rejected == {"evt-0002": "no li_fat_id or email to match on"}


def test_api_version_can_be_overridden() -> None:
    [built] = linkedin.build([purchase()], dest(options={"api_version": "202610"}))
    assert built.request is not None
    assert built.request.headers["LinkedIn-Version"] == "202610"


def test_batches_split_at_5000_events() -> None:
    events = [purchase(event_id=f"evt-{i}") for i in range(linkedin.MAX_EVENTS + 1)]
    first, second = linkedin.build(events, dest())
    assert first.request is not None and len(first.request.json["elements"]) == 5000
    assert second.event_ids == ("evt-5000",)
    assert linkedin.SPEC.limits.max_batch_events == 5000


@pytest.mark.parametrize(
    ("name", "value", "ok"),
    [
        ("conversion_id", "104567", True),
        ("conversion_id", "urn:lla:llaPartnerConversion:104567", False),
        ("ad_account_id", "508123456", True),
        ("ad_account_id", "urn:li:sponsoredAccount:508123456", False),
        ("access_token", TOKEN, True),
        ("access_token", "short", False),
        ("access_token", "a token with spaces in it", False),
    ],
)
def test_credentials_are_validated_offline(name: str, value: str, ok: bool) -> None:
    credential = next(c for c in linkedin.SPEC.credentials if c.name == name)
    problem = credential.problem(value)
    assert (problem is None) is ok
    if problem and credential.secret:
        assert value not in problem  # never echo a secret


def test_probe_reads_the_conversion_rule() -> None:
    request = linkedin.probe(dest())
    assert_golden("linkedin_probe", request)
    assert request.method == "GET" and request.json is None
    assert request.url == (
        "https://api.linkedin.com/rest/conversions/104567"
        "?account=urn%3Ali%3AsponsoredAccount%3A508123456"
    )
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert request.headers["X-Restli-Protocol-Version"] == "2.0.0"
    assert "X-RestLi-Method" not in request.headers
    without_account = {k: v for k, v in CREDENTIALS.items() if k != "ad_account_id"}
    assert linkedin.probe(dest(without_account)).url == (
        "https://api.linkedin.com/rest/adAccounts?q=search"
    )


def test_probe_verdicts() -> None:
    assert linkedin.probe_verdict(answer(200, "probe_rule.json")).kind is Kind.DELIVERED
    wrong = linkedin.probe_verdict(answer(200, "probe_rule_insight_tag.json"))
    assert wrong.kind is Kind.SETUP and "INSIGHT_TAG" in wrong.reason
    denied = linkedin.probe_verdict(answer(403, "no_ad_accounts.json"))
    assert denied.kind is Kind.SETUP and "r_ads" in denied.reason
    assert linkedin.probe_verdict(answer(401, "invalid_token.json")).kind is Kind.SETUP


def test_batch_success_is_delivered() -> None:
    verdict = linkedin.classify(answer(200, "batch_success.json"), ["evt-a", "evt-b"])
    assert verdict.kind is Kind.DELIVERED and not verdict.rejected


def test_batch_with_a_failed_element_rejects_that_event_only() -> None:
    verdict = linkedin.classify(answer(200, "batch_partial.json"), ["evt-a", "evt-b"])
    assert verdict.kind is Kind.DELIVERED
    assert list(verdict.rejected) == ["evt-b"]
    assert "INVALID_EVENT" in verdict.rejected["evt-b"] and "90 days" in verdict.rejected["evt-b"]


def test_schema_errors_naming_every_event_reject_the_batch() -> None:
    verdict = linkedin.classify(answer(422, "schema_errors.json"), ["evt-a", "evt-b"])
    assert verdict.kind is Kind.REJECTED
    assert set(verdict.rejected) == {"evt-a", "evt-b"}
    assert "/conversionValue/amount" in verdict.rejected["evt-a"]
    assert "/user/userInfo/firstName" in verdict.rejected["evt-a"]
    assert "cannot be coerced to String" in verdict.rejected["evt-b"]
    assert "linkedin 422" in verdict.reason


def test_errors_naming_some_events_split_the_batch() -> None:
    verdict = linkedin.classify(answer(400, "time_window.json"), ["evt-a", "evt-b", "evt-c"])
    assert verdict.kind is Kind.SPLIT  # the whole batch was refused: the others go again
    assert list(verdict.rejected) == ["evt-b"]
    assert "90 days" in verdict.rejected["evt-b"]
    single = linkedin.classify(answer(400, "time_window.json"), ["evt-a"])
    assert single.kind is Kind.REJECTED and "90 days" in single.reason


@pytest.mark.parametrize(
    ("status", "name", "words"),
    [
        (400, "wrong_method.json", "CONVERSIONS_API"),
        (400, "version_missing.json", "VERSION_MISSING"),
        (426, "version_sunset.json", "NONEXISTENT_VERSION"),
        (401, "revoked_token.json", "REVOKED_ACCESS_TOKEN"),
        (401, "invalid_token.json", "INVALID_ACCESS_TOKEN"),
        (403, "no_ad_accounts.json", "No ad accounts found"),
    ],
)
def test_setup_problems_pause_the_destination(status: int, name: str, words: str) -> None:
    verdict = linkedin.classify(answer(status, name), ["evt-a", "evt-b"])
    assert verdict.kind is Kind.SETUP
    assert words in verdict.reason
    assert TOKEN not in verdict.reason


def test_rate_limit_is_throttled() -> None:
    verdict = linkedin.classify(answer(429, "rate_limited.json", {"Retry-After": "60"}), ["e"])
    assert verdict.kind is Kind.THROTTLED and verdict.retry_after == 60.0
    assert "throttle" in verdict.reason


def test_server_error_is_retried() -> None:
    verdict = linkedin.classify(answer(500, "server_error.json"), ["evt-a"])
    assert verdict.kind is Kind.RETRY and "500" in verdict.reason


def test_spec_is_complete() -> None:
    spec = linkedin.SPEC
    assert spec.consent == frozenset({"ad_storage", "ad_user_data"})
    assert spec.limits.freshness_seconds == 90 * 86_400
    assert spec.click_ids == ("li_fat_id",)
    assert spec.secret_names == frozenset({"access_token", "client_secret", "refresh_token"})
    assert not spec.custom_events and spec.honours_gpc
    assert spec.event_map == {"purchase": "PURCHASE"}
