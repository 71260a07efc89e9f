"""The foundation's promises, end to end through the app with the platforms mocked."""

from __future__ import annotations

import hashlib
import json
import re
import time

from .support import (
    API_KEY,
    GRANTED,
    META_HOST,
    META_TOKEN,
    TIKTOK_HOST,
    TIKTOK_TOKEN,
    respond,
    wait_until,
)
from .support import SAFARI_UA as UA

LANDING = (
    "https://shop.example/p/1?fbclid=IwAR2Xyz_AbC-9&ttclid=E.C.P.abc123XYZ&gclid=Cj0KCQ_gclid-1"
)


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def purchase(**extra: object) -> dict[str, object]:
    event: dict[str, object] = {
        "event": "purchase",
        "page": {"url": LANDING, "title": "Order confirmed"},
        "user": {"email": "  Jane.Doe@Example.COM ", "phone": "(650) 555-1212"},
        "data": {"value": 49.9, "currency": "eur", "order_id": "A-1", "coupon": "SPRING"},
        "consent": GRANTED,
    }
    event.update(extra)
    return event


def post(client, body, **kw):  # noqa: ANN001, ANN201
    kw.setdefault("headers", {"content-type": "text/plain;charset=UTF-8", "user-agent": UA})
    return client.post("/collect", content=json.dumps(body), **kw)


def test_granted_hit_sets_cookies_and_reaches_both_platforms_with_one_event_id(
    make_edge, platforms
):
    client = make_edge()
    answer = post(client, purchase())
    assert answer.status_code == 200
    (event_id,) = answer.json()["event_ids"]
    assert re.fullmatch(r"[0-9a-f-]{36}", event_id)

    cookies = {c.split("=", 1)[0]: c for c in answer.headers.get_list("set-cookie")}
    assert re.match(r"_fbc=fb\.1\.\d{13}\.IwAR2Xyz_AbC-9;", cookies["_fbc"])
    assert re.match(r"_fbp=fb\.1\.\d{13}\.\d{10};", cookies["_fbp"])
    assert re.match(r"_gcl_aw=GCL\.\d{10}\.Cj0KCQ_gclid-1;", cookies["_gcl_aw"])
    assert cookies["ttclid"].startswith("ttclid=E.C.P.abc123XYZ;")
    for header in (cookies["_fbc"], cookies["_fbp"], cookies["_gcl_aw"], cookies["ttclid"]):
        assert "Domain=shop.example" in header
        assert "Path=/" in header and "Secure" in header and "SameSite=Lax" in header
        assert re.search(r"Max-Age=\d+", header)
        assert "HttpOnly" not in header  # the platforms' browser tags read these

    wait_until(lambda: platforms.events_to(META_HOST) and platforms.events_to(TIKTOK_HOST))
    (meta,) = platforms.events_to(META_HOST)
    (tiktok,) = platforms.events_to(TIKTOK_HOST)
    assert meta["event_id"] == tiktok["event_id"] == event_id
    assert meta["event_name"] == "Purchase" and tiktok["event"] == "Purchase"
    assert meta["user_data"]["em"] == [sha("jane.doe@example.com")]
    assert meta["user_data"]["ph"] == [sha("16505551212")]  # Meta: digits with country code
    assert tiktok["user"]["email"] == [sha("jane.doe@example.com")]
    assert tiktok["user"]["phone"] == [sha("+16505551212")]  # TikTok: E.164 with +
    assert meta["user_data"]["fbc"].endswith(".IwAR2Xyz_AbC-9")
    assert tiktok["user"]["ttclid"] == "E.C.P.abc123XYZ"
    assert meta["user_data"]["client_user_agent"] == UA

    # Tokens travel in headers, never in URLs.
    (meta_request,) = platforms.sent_to(META_HOST)
    assert META_TOKEN not in str(meta_request.url)
    (tiktok_request,) = platforms.sent_to(TIKTOK_HOST)
    assert tiktok_request.headers["access-token"] == TIKTOK_TOKEN


def test_denied_consent_sends_nothing_and_sets_no_ad_cookies(make_edge, platforms):
    client = make_edge()
    denied = {k: "denied" for k in GRANTED}
    answer = post(client, purchase(consent=denied))
    assert answer.status_code == 200
    assert answer.headers.get_list("set-cookie") == []
    (event_id,) = answer.json()["event_ids"]
    status = client.get(f"/v1/events/{event_id}", headers={"authorization": f"Bearer {API_KEY}"})
    assert status.json()["destinations"]["meta"] == {
        "status": "skipped",
        "reason": "consent: ad_storage denied",
        "attempts": 0,
        "updated_at": status.json()["destinations"]["meta"]["updated_at"],
    }
    time.sleep(0.3)
    assert platforms.requests == []


def test_missing_consent_counts_as_denied_by_default(make_edge, platforms):
    client = make_edge()
    body = purchase()
    del body["consent"]
    assert post(client, body).status_code == 200
    time.sleep(0.3)
    assert platforms.requests == []


def test_gpc_header_is_an_opt_out(make_edge, platforms):
    client = make_edge()
    answer = post(
        client,
        purchase(),
        headers={"content-type": "text/plain", "user-agent": UA, "sec-gpc": "1"},
    )
    assert answer.headers.get_list("set-cookie") == []
    event_id = answer.json()["event_ids"][0]
    status = client.get(f"/v1/events/{event_id}", headers={"authorization": f"Bearer {API_KEY}"})
    assert {d["reason"] for d in status.json()["destinations"].values()} == {"gpc"}


def test_duplicate_event_id_is_stored_once_and_delivered_once(make_edge, platforms):
    client = make_edge()
    for _ in range(3):
        assert post(client, purchase(event_id="order-A-1")).json() == {"event_ids": ["order-A-1"]}
    wait_until(lambda: platforms.events_to(META_HOST) and platforms.events_to(TIKTOK_HOST))
    time.sleep(0.3)
    assert [e["event_id"] for e in platforms.events_to(META_HOST)] == ["order-A-1"]
    assert [e["event_id"] for e in platforms.events_to(TIKTOK_HOST)] == ["order-A-1"]


def test_outage_then_recovery_delivers_every_event_with_unchanged_ids(make_edge, platforms):
    platforms.script(META_HOST, *[respond(500, {"error": {"message": "boom"}})] * 4)
    client = make_edge()
    sent = []
    for i in range(5):
        sent += post(client, purchase(event_id=f"evt-{i}")).json()["event_ids"]
    wait_until(lambda: _statuses(client, sent, "meta") == {"sent"})
    requests = platforms.sent_to(META_HOST)
    assert len(requests) >= 5  # four refused attempts, then the ones that went through
    after_outage = [e["event_id"] for r in requests[4:] for e in json.loads(r.content)["data"]]
    assert sorted(after_outage) == sorted(sent)  # every event, ids unchanged, none twice


def _statuses(client, event_ids, destination):  # noqa: ANN001, ANN202
    headers = {"authorization": f"Bearer {API_KEY}"}
    return {
        client.get(f"/v1/events/{i}", headers=headers).json()["destinations"][destination]["status"]
        for i in event_ids
    }


def test_throttling_with_retry_after_is_honoured(make_edge, platforms):
    platforms.script(
        TIKTOK_HOST,
        respond(429, {"code": 40100, "message": "Too many requests"}, {"retry-after": "1"}),
    )
    client = make_edge()
    post(client, purchase(event_id="throttled-1"))
    wait_until(lambda: len(platforms.sent_to(TIKTOK_HOST)) >= 2, timeout=5)
    first, second = platforms.times(TIKTOK_HOST)[:2]
    assert second - first >= 0.95
    assert [e["event_id"] for e in platforms.events_to(TIKTOK_HOST)] == ["throttled-1"] * 2


def test_one_invalid_event_in_a_meta_batch_does_not_block_the_rest(make_edge, platforms):
    def meta(request):  # noqa: ANN001, ANN202
        events = json.loads(request.content)["data"]
        if any(e["event_id"] == "bad" for e in events):
            return respond(
                400,
                {
                    "error": {
                        "message": "Invalid parameter",
                        "type": "OAuthException",
                        "code": 100,
                        "error_subcode": 2804050,
                        "error_user_title": "Invalid value",
                        "fbtrace_id": "A1",
                    }
                },
            )(request)
        return respond(200, {"events_received": len(events)})(request)

    platforms.default[META_HOST] = meta
    client = make_edge(dispatch={"linger_ms": 300})
    ids = [f"ok-{i}" for i in range(6)]
    body = {"events": [purchase(event_id=i) for i in ids[:3]] + [purchase(event_id="bad")]}
    body["events"] += [purchase(event_id=i) for i in ids[3:]]
    assert post(client, body).status_code == 200
    wait_until(lambda: _statuses(client, ids, "meta") == {"sent"})
    headers = {"authorization": f"Bearer {API_KEY}"}
    bad = client.get("/v1/events/bad", headers=headers).json()["destinations"]["meta"]
    assert bad["status"] == "failed"  # the store's "dead", as the API names it
    assert "Invalid value" in bad["reason"] or "100" in bad["reason"]
    delivered = [
        e["event_id"]
        for r in platforms.sent_to(META_HOST)
        if r.method == "POST"
        for e in json.loads(r.content)["data"]
    ]
    assert set(ids) <= set(delivered)


def test_events_past_the_freshness_window_are_dead_lettered_not_sent(make_edge, platforms):
    client = make_edge()
    eight_days_ago = time.time() - 8 * 86_400
    event_id = post(client, purchase(time=eight_days_ago)).json()["event_ids"][0]
    headers = {"authorization": f"Bearer {API_KEY}"}
    wait_until(
        lambda: (
            client.get(f"/v1/events/{event_id}", headers=headers).json()["destinations"]["meta"][
                "status"
            ]
            == "failed"
        )
    )
    meta = client.get(f"/v1/events/{event_id}", headers=headers).json()["destinations"]["meta"]
    assert "7-day" in meta["reason"]
    assert platforms.sent_to(META_HOST) == []


def test_a_revoked_token_pauses_the_destination_and_keeps_events(make_edge, platforms):
    expired = {
        "error": {
            "message": "Session expired",
            "type": "OAuthException",
            "code": 190,
            "error_subcode": 463,
            "fbtrace_id": "x",
        }
    }
    platforms.script(META_HOST, respond(400, expired))
    client = make_edge()
    event_id = post(client, purchase()).json()["event_ids"][0]
    wait_until(lambda: len(platforms.sent_to(META_HOST)) == 1)
    headers = {"authorization": f"Bearer {API_KEY}"}
    meta = client.get(f"/v1/events/{event_id}", headers=headers).json()["destinations"]["meta"]
    assert meta["status"] == "pending"
    # after setup_recheck_seconds the destination tries again and the event goes through
    wait_until(lambda: _statuses(client, [event_id], "meta") == {"sent"}, timeout=5)


def test_server_events_need_an_api_key_and_carry_visitor_identifiers(make_edge, platforms):
    client = make_edge()
    body = purchase(
        event_id="order-9",
        ids={"fbp": "fb.1.1700000000000.1234567890", "ttp": "2F7h37YkS1j57AYSKTI7IHhJPYH"},
        ip="203.0.113.9",
        user_agent=UA,
    )
    assert client.post("/v1/events", json=body).status_code == 401
    bad = client.post(
        "/v1/events", json=body, headers={"authorization": "Bearer nope-nope-nope-nope"}
    )
    assert bad.status_code == 401
    ok = client.post("/v1/events", json=body, headers={"authorization": f"Bearer {API_KEY}"})
    assert ok.status_code == 200 and ok.json() == {"event_ids": ["order-9"]}
    wait_until(lambda: platforms.events_to(META_HOST) and platforms.events_to(TIKTOK_HOST))
    (meta,) = platforms.events_to(META_HOST)
    assert meta["user_data"]["fbp"] == "fb.1.1700000000000.1234567890"
    assert meta["user_data"]["client_ip_address"] == "203.0.113.9"
    assert platforms.events_to(TIKTOK_HOST)[0]["user"]["ttp"] == "2F7h37YkS1j57AYSKTI7IHhJPYH"


def test_browser_hits_may_not_speak_for_the_visitor(make_edge):
    client = make_edge()
    answer = post(client, purchase(ip="203.0.113.9"))
    assert answer.status_code == 400
    assert answer.json()["field"] == "$.ip"


def test_unmapped_events_are_skipped_with_the_reason(make_edge, platforms):
    client = make_edge()
    event_id = post(client, purchase(event="page_view")).json()["event_ids"][0]
    headers = {"authorization": f"Bearer {API_KEY}"}
    destinations = client.get(f"/v1/events/{event_id}", headers=headers).json()["destinations"]
    assert destinations["tiktok"]["status"] == "skipped"
    assert destinations["tiktok"]["reason"] == "unmapped event: page_view"
    assert destinations["meta"]["status"] in ("pending", "sent")
