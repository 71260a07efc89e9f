"""The demo shop in Debian's Chromium: the drop-in script, consent, cookies and dedup, for real.

The shop is ``capi-edge demo`` (the README's run command) as a real process; Meta's and
TikTok's APIs are its local recording sinks; the browser pixels are the page's stubs, which
record the event_id they were handed.
"""

from __future__ import annotations

import re
import time
from typing import Any

import pytest

from . import tcf
from .conftest import Shop
from .support import FAKE_FBEVENTS, FAKE_TIKTOK, FBEVENTS_URLS, TIKTOK_URLS

pytestmark = [pytest.mark.slow, pytest.mark.browser]

FBCLID = "IwAR2F4-dbP0l7Mn1IawQQGCINEz7PYXQvwjNwB_qa2ofrHyiLjcbCRxTDMEo"
TTCLID = "E.C.P.CqgBv3Zk1Q2xT9mN"
GCLID = "Cj0KCQiA2eKtBhDcARIsAEGTG41aBcD"
DAY = 86_400
# The first consent rule that fails is the reason: the TC string's purpose 1 (storage) or
# Consent Mode's ad_storage, depending on the order the edge checks them in.
CONSENT_REASONS = {"tcf: purpose 1 has no consent", "consent: ad_storage denied"}


def pixel_ids(shop: Shop, event_name: str) -> dict[str, str]:
    """The event_id each pixel got for its ``event_name`` call, by pixel."""
    ids = {}
    for call in shop.pixel_calls():
        args = call["args"]
        if call["pixel"] == "meta" and args[1] == event_name:
            ids["meta"] = args[3]["eventID"]
        if call["pixel"] == "tiktok" and args[0] == event_name:
            ids["tiktok"] = args[2]["event_id"]
    return ids


def skipped_for_consent(decision: dict[str, Any]) -> bool:
    return decision["status"] == "skipped" and decision["reason"] in CONSENT_REASONS


def decisions(shop: Shop, event_id: str) -> dict[str, dict[str, Any]]:
    status = shop.wait(lambda: shop.demo.status(event_id), f"the status of {event_id}")
    return {
        name: {"status": d["status"], "reason": d["reason"]}
        for name, d in status["destinations"].items()
        if name in ("meta", "tiktok")  # the platforms with browser pixels on the page
    }


def accept(shop: Shop) -> None:
    shop.page.click("#accept")
    assert shop.page.is_hidden("#banner")


def test_landing_with_click_ids_leaves_server_set_first_party_cookies(shop: Shop) -> None:
    landing = f"/?fbclid={FBCLID}&ttclid={TTCLID}&gclid={GCLID}"
    shop.open(landing)
    assert shop.cookies() == {}, "nothing may be stored before the visitor consents"

    accept(shop)
    started = time.time()
    shop.page.click("#add")  # the first hit after consent, still on the landing URL
    hit = shop.hit("add_to_cart")
    assert hit["page"]["url"].endswith(landing)
    expected = {"_fbc", "_fbp", "ttclid", "_ttp", "_gcl_aw"}
    shop.wait(lambda: expected <= set(shop.cookies()), "the click-ID cookies")
    cookies = shop.cookies()

    # fb.{subdomainIndex}.{ms}.{fbclid}; the index depends on the host (an IP here)
    fbc = re.fullmatch(r"fb\.\d\.(\d{13})\.(.+)", cookies["_fbc"]["value"])
    assert fbc and fbc.group(2) == FBCLID  # the fbclid's case is kept
    assert abs(int(fbc.group(1)) / 1000 - started) < 30
    assert cookies["ttclid"]["value"] == TTCLID
    gcl = re.fullmatch(r"GCL\.(\d+)\.(.+)", cookies["_gcl_aw"]["value"])
    assert gcl and gcl.group(2) == GCLID and abs(int(gcl.group(1)) - started) < 30
    assert re.fullmatch(r"fb\.\d\.\d{13}\.\d{10}", cookies["_fbp"]["value"])
    assert re.fullmatch(r"[A-Za-z0-9]{27}", cookies["_ttp"]["value"])

    lifetimes = {"_fbc": 90, "_fbp": 90, "_gcl_aw": 90, "ttclid": 30, "_ttp": 395}
    for name, days in lifetimes.items():
        cookie = cookies[name]
        # host-only on an IP address (a registrable domain gets Domain=: see tests/deploy)
        assert cookie["domain"] == "127.0.0.1"
        assert cookie["path"] == "/"
        assert cookie["secure"] is True
        assert cookie["sameSite"] == "Lax"
        assert cookie["httpOnly"] is False, "the platforms' own tags read these cookies"
        assert abs(cookie["expires"] - (started + days * DAY)) < 60, name
    # written by the edge's answers (/consent or /collect), not by script
    set_cookie = " ".join(shop.set_cookies)
    assert f"ttclid={TTCLID}" in set_cookie and f".{FBCLID};" in set_cookie
    # and readable by the pixels' scripts
    assert FBCLID in shop.page.evaluate("document.cookie")


def test_a_purchase_reaches_the_platforms_with_the_event_id_the_pixels_got(shop: Shop) -> None:
    shop.open()
    accept(shop)
    shop.page.click("#buy")
    hit = shop.hit("purchase")
    event_id = hit["event_id"]

    assert pixel_ids(shop, "Purchase") == {"meta": event_id, "tiktok": event_id}
    assert event_id in shop.page.inner_text("#status")
    assert {
        c["state"]
        for c in shop.pixel_calls()
        if c["args"][-1].get("eventID") == event_id or c["args"][-1].get("event_id") == event_id
    } == {"sent"}

    meta = shop.delivered("meta", event_id)
    tiktok = shop.delivered("tiktok", event_id)
    assert meta["event_name"] == "Purchase" and tiktok["event"] == "Purchase"
    assert meta["user_data"]["em"] and "jane" not in str(meta["user_data"])  # hashed
    assert meta["custom_data"]["value"] == 24.9
    for platform, code in (("meta", "TEST12345"), ("tiktok", "TEST67890")):
        # the demo sets each platform's test code, as a dedup check in Events Manager does
        batch = shop.demo.batch_with(platform, event_id)
        assert batch["test_event_code"] == code
    shop.wait(
        lambda: {d["status"] for d in decisions(shop, event_id).values()} == {"sent"},
        "both destinations marked sent",
    )
    # and the page shows the pair, as a user of the demo sees it
    shop.wait(
        lambda: shop.page.locator("#pixel-rows td.paired").count() >= 2,
        "the page showing both pairs",
    )


def test_consent_alone_keeps_the_landing_click_ids(shop: Shop) -> None:
    """A visitor who lands from an ad, accepts and leaves: the click IDs are still kept."""
    shop.open(f"/?fbclid={FBCLID}&ttclid={TTCLID}&gclid={GCLID}")
    assert shop.cookies() == {}
    accept(shop)  # no event follows: the loader posts the banner's answer to /consent
    expected = {"_fbc", "_fbp", "ttclid", "_ttp", "_gcl_aw"}
    shop.wait(lambda: expected <= set(shop.cookies()), "the click-ID cookies after consent")
    assert shop.cookies()["_fbc"]["value"].endswith(f".{FBCLID}")
    assert shop.cookies()["ttclid"]["value"] == TTCLID


def test_nothing_reaches_an_ad_platform_before_consent(shop: Shop) -> None:
    page_view = shop.open()
    shop.page.click("#add")
    early = shop.hit("add_to_cart")
    assert early["consent"]["ad_storage"] == "denied"

    # the edge stored both hits and skipped both platforms, saying why
    for hit in (page_view, early):
        kept = decisions(shop, hit["event_id"])
        assert set(kept) == {"meta", "tiktok"} and all(map(skipped_for_consent, kept.values()))
    # the browser pixels hold their calls while consent is revoked/held
    assert {c["state"] for c in shop.pixel_calls()} == {"held"}
    assert shop.cookies() == {}

    # A later grant: the pixels release what they held (Meta's and TikTok's consent APIs
    # do that), the edge does not resend what it skipped (README, "Consent"), and what
    # follows flows normally.
    accept(shop)
    assert {c["state"] for c in shop.pixel_calls()} == {"sent after consent"}
    shop.page.click("#buy")
    later = shop.hit("purchase")
    shop.delivered("meta", later["event_id"])
    shop.delivered("tiktok", later["event_id"])
    shop.page.wait_for_timeout(600)  # several dispatch lingers after the purchase went out
    for platform in ("meta", "tiktok"):
        received = shop.demo.received_ids(platform)
        assert page_view["event_id"] not in received and early["event_id"] not in received
    assert skipped_for_consent(decisions(shop, early["event_id"])["meta"])


def test_rejecting_keeps_everything_away_from_ad_platforms(shop: Shop) -> None:
    shop.open()
    shop.page.click("#reject")
    shop.page.click("#buy")
    hit = shop.hit("purchase")
    assert hit["consent"] == {
        "ad_storage": "denied",
        "analytics_storage": "denied",
        "ad_user_data": "denied",
        "ad_personalization": "denied",
    }
    kept = decisions(shop, hit["event_id"])
    assert set(kept) == {"meta", "tiktok"} and all(map(skipped_for_consent, kept.values()))
    assert {c["state"] for c in shop.pixel_calls()} == {"held"}
    assert shop.cookies() == {}
    shop.page.wait_for_timeout(600)
    assert hit["event_id"] not in shop.demo.received_ids("meta")


def test_global_privacy_control_blocks_ad_platforms(new_shop: Any) -> None:
    # Chromium has no GPC switch (Brave and Firefox do): give the page what they give it.
    shop: Shop = new_shop(extra_http_headers={"Sec-GPC": "1"})
    shop.context.add_init_script(
        "Object.defineProperty(Navigator.prototype, 'globalPrivacyControl',"
        " {get: () => true, configurable: true})"
    )
    shop.open(f"/?fbclid={FBCLID}")
    accept(shop)  # consent does not override the browser's opt-out of sale/sharing
    shop.page.click("#buy")
    hit = shop.hit("purchase")
    assert hit["gpc"] is True and hit["consent"]["ad_user_data"] == "granted"
    assert decisions(shop, hit["event_id"]) == {
        "meta": {"status": "skipped", "reason": "gpc"},
        "tiktok": {"status": "skipped", "reason": "gpc"},
    }
    assert shop.cookies() == {}, "no ad cookies under GPC"
    shop.page.wait_for_timeout(600)
    assert hit["event_id"] not in shop.demo.received_ids("meta")


def test_a_single_page_app_navigation_sends_a_page_view(shop: Shop) -> None:
    shop.open()
    accept(shop)
    shop.page.evaluate("history.pushState({}, '', '/mugs/capi-edge?colour=blue')")
    url = f"{shop.demo.base}/mugs/capi-edge?colour=blue"
    view = shop.wait(
        lambda: next(
            (h for h in shop.hits if h["event"] == "page_view" and h["page"]["url"] == url), None
        ),
        "a page_view for the pushState navigation",
    )
    assert view["event_id"] in {
        c["args"][3]["eventID"] for c in shop.pixel_calls() if c["args"][1] == "PageView"
    }
    meta = shop.delivered("meta", view["event_id"])
    assert meta["event_name"] == "PageView" and meta["event_source_url"] == url

    shop.page.go_back()  # popstate is a navigation too
    shop.wait(
        lambda: sum(h["event"] == "page_view" for h in shop.hits) == 3,
        "a page_view for the back navigation",
    )
    assert shop.hits[-1]["page"]["url"] == f"{shop.demo.base}/"


@pytest.mark.parametrize("transport", ["sendBeacon", "fetch"])
def test_an_unreachable_collect_endpoint_causes_no_script_error(
    new_shop: Any, transport: str
) -> None:
    shop: Shop = new_shop()
    if transport == "fetch":  # browsers without sendBeacon take the fetch(keepalive) path
        shop.context.add_init_script(
            "Object.defineProperty(Navigator.prototype, 'sendBeacon',"
            " {value: undefined, configurable: true})"
        )
    failed: list[str] = []
    shop.page.on("requestfailed", lambda request: failed.append(request.url))
    shop.page.route("**/collect", lambda route: route.abort("connectionrefused"))
    shop.page.goto(shop.demo.base + "/")
    accept(shop)
    shop.page.click("#add")
    shop.page.click("#buy")
    shop.wait(lambda: len(failed) >= 3, "three failed posts to /collect")
    shop.page.wait_for_timeout(300)  # let any rejection surface

    assert shop.errors == []
    assert "Thank you!" in shop.page.inner_text("#status")
    assert pixel_ids(shop, "Purchase"), "the pixels still got their event_id"


def test_the_shop_works_when_the_loader_itself_cannot_be_fetched(shop: Shop) -> None:
    shop.page.route("**/loader.js", lambda route: route.abort("connectionrefused"))
    shop.page.goto(shop.demo.base + "/")
    accept(shop)
    shop.page.click("#buy")
    status = shop.page.inner_text("#status")
    assert shop.errors == []
    # the stub queued the call and minted its id, as the README promises
    assert re.search(r"event_id [0-9a-f-]{36}$", status)
    assert shop.page.evaluate("edge.q.length") == 1


def test_the_cmp_speaks_tcf_with_real_tc_strings(shop: Shop) -> None:
    page_view = shop.open()
    events = shop.page.evaluate(
        """() => { window.tcfEvents = [];
                   __tcfapi('addEventListener', 2, (data, ok) => tcfEvents.push(
                     {ok, status: data.eventStatus, gdpr: data.gdprApplies, tc: data.tcString,
                      id: data.listenerId}));
                   return tcfEvents; }"""
    )
    assert len(events) == 1 and events[0]["ok"] and events[0]["gdpr"] is True
    assert events[0]["status"] == "cmpuishown"
    ping = shop.page.evaluate("new Promise(r => __tcfapi('ping', 2, d => r(d)))")
    assert ping["cmpLoaded"] and ping["apiVersion"] == "2.2" and ping["gdprApplies"] is True

    # before a choice the CMP's string is provisional (UI shown): the loader sends none
    assert "tcf" not in page_view
    provisional = tcf.decode(events[0]["tc"])
    assert provisional.purpose_consents == frozenset() == provisional.vendor_consents

    decided = time.time()
    accept(shop)
    events = shop.page.evaluate("tcfEvents")
    assert [e["status"] for e in events] == ["cmpuishown", "useractioncomplete"]
    shop.page.click("#buy")
    hit = shop.hit("purchase")
    assert hit["tcf"] == events[-1]["tc"]
    after = tcf.decode(hit["tcf"])
    assert after.version == 2 and after.policy_version >= 4
    assert abs(after.created - decided) < 30 and after.created == after.last_updated
    assert after.purpose_consents == frozenset(tcf.ALL_PURPOSES)
    assert after.vendor_consents == frozenset(tcf.DEMO_VENDORS)
    assert 755 in after.vendor_consents  # Google, for the Google Ads destination
    assert after.disclosed_vendors == frozenset(tcf.DEMO_VENDORS)
    assert after.consent_language == "EN" and after.publisher_cc == "DE"
    # the page's JavaScript encoder and the test's encoder agree bit for bit
    assert hit["tcf"] == tcf.demo_string(accepted=True, now=after.created)

    # the visitor reopens the banner: until a new choice, the last final string holds
    shop.page.click("#privacy")
    shop.page.click("#add")
    assert shop.hit("add_to_cart")["tcf"] == hit["tcf"]
    shop.page.click("#reject")
    shop.page.click("#buy")
    rejected = tcf.decode(shop.hit("purchase", index=-1)["tcf"])
    assert rejected.purpose_consents == frozenset() and rejected.vendor_consents == frozenset()
    shop.page.click("#privacy")
    shop.page.click("#accept")

    # a returning visitor: the stored choice is loaded, no banner, granted from the start
    again = shop.open("/")
    assert shop.page.is_hidden("#banner")
    assert again["consent"]["ad_user_data"] == "granted"
    assert tcf.decode(again["tcf"]).purpose_consents == frozenset(tcf.ALL_PURPOSES)
    status = shop.page.evaluate(
        "new Promise(r => __tcfapi('addEventListener', 2, d => r(d.eventStatus)))"
    )
    assert status == "tcloaded"


def test_the_page_encoder_matches_the_reference_encoder(shop: Shop) -> None:
    shop.open()
    for accepted in (True, False):
        for now in (1_700_000_000.0, 1_795_454_882.3):
            from_page = shop.page.evaluate(f"demoCmp.encode({str(accepted).lower()}, {now})")
            assert from_page == tcf.demo_string(accepted=accepted, now=now)


def test_real_pixels_get_the_same_event_id_in_dedup_test_mode(shop: Shop) -> None:
    """``?meta_pixel=…&tiktok_pixel=…`` loads the platforms' own pixels instead of stubs."""
    fetched: list[str] = []

    def serve(body: str) -> Any:
        def handler(route: Any) -> None:
            fetched.append(route.request.url)
            route.fulfill(status=200, content_type="application/javascript", body=body)

        return handler

    shop.page.route(FBEVENTS_URLS, serve(FAKE_FBEVENTS))
    shop.page.route(TIKTOK_URLS, serve(FAKE_TIKTOK))
    shop.open("/?meta_pixel=1234567890123456&tiktok_pixel=C0ABCDEFGHIJKLMNOPQR")
    shop.page.wait_for_function("window.metaGot && window.tiktokGot")
    assert any(u.endswith("/en_US/fbevents.js") for u in fetched)
    assert any("sdkid=C0ABCDEFGHIJKLMNOPQR" in u for u in fetched)
    accept(shop)
    shop.page.click("#buy")
    event_id = shop.hit("purchase")["event_id"]

    meta_got = shop.page.evaluate("metaGot")
    assert meta_got[:2] == [["consent", "revoke"], ["init", "1234567890123456"]]
    assert ["consent", "grant"] in meta_got
    purchase = next(c for c in meta_got if c[:2] == ["track", "Purchase"])
    assert purchase[3] == {"eventID": event_id}
    tiktok_got = shop.page.evaluate("tiktokGot")
    assert ["holdConsent"] in tiktok_got and ["grantConsent"] in tiktok_got
    track = next(c for c in tiktok_got if c[:2] == ["track", "Purchase"])
    assert track[3] == {"event_id": event_id}
    # the page's side-by-side table still shows what each pixel got
    assert pixel_ids(shop, "Purchase") == {"meta": event_id, "tiktok": event_id}
    shop.delivered("meta", event_id)
