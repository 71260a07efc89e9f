"""The debug view: hits with every destination's decision and what was sent, never a
secret and never personal data in clear."""

from __future__ import annotations

import json

from edge.admin import pages
from edge.admin.debug import DebugHub, hit_entry, mask_ip, request_view
from edge.schema import Client, Consent, Page, StoredEvent, User
from edge.store import Decision
from tags import TAGS, meta
from tags.base import Destination, Kind, PlatformResponse, Verdict

from ..support import API_KEY, META_HOST, META_TOKEN, wait_until

EVENT = StoredEvent(
    event="purchase",
    event_id="dbg-1",
    time=1_800_000_000,
    received_at=1_800_000_000.0,
    page=Page(url="https://shop.example/thanks?email=jane%40example.com&utm_source=x"),
    user=User(
        email="Jane@Example.com",
        phone="+1 650 555 1212",
        first_name="Jane",
        last_name="Doe",
        city="Springfield",
    ),
    consent=Consent(ad_storage="granted", ad_user_data="granted"),
    client=Client(ip="203.0.113.9", user_agent="Mozilla/5.0 Chrome/120"),
    pixels=["meta"],
)
DEST = Destination(
    name="meta",
    credentials={"pixel_id": "123456789012345", "access_token": META_TOKEN},
    base_url="https://graph.facebook.com",
    event_map=dict(meta.SPEC.event_map),
)
CLEAR = (
    "jane@example.com",
    "Jane@Example.com",
    "6505551212",
    "Springfield",
    "Doe",
    "203.0.113.9",
    META_TOKEN,
)


def test_masks():
    assert mask_ip("203.0.113.9") == "203.0.113.x"
    assert mask_ip("2001:db8:1:2::9") == "2001:db8:1::x"


def test_a_hit_shows_hashes_not_personal_data():
    entry = hit_entry(EVENT, [Decision("meta", "pending", "queued")], True, {}, "US")
    text = json.dumps(entry)
    for value in CLEAR:
        assert value not in text
    from tags import pii

    assert entry["identity"]["email (sha256)"] == [pii.sha256("jane@example.com")]
    assert entry["page"] == "https://shop.example/thanks"
    assert entry["query_names"] == ["email", "utm_source"]
    assert entry["identity"]["ip"] == "203.0.113.x"


def test_a_request_is_shown_redacted():
    built = meta.build([EVENT], DEST)[0]
    view = request_view(built.request, [META_TOKEN], {"203.0.113.9": "203.0.113.x"})
    text = json.dumps(view)
    for value in CLEAR:
        assert value not in text
    assert view["headers"]["Authorization"] == "[redacted]"
    event = view["json"]["data"][0]
    assert event["user_data"]["client_ip_address"] == "203.0.113.x"
    assert len(event["user_data"]["em"][0]) == 64  # the hash is shown


def test_the_hub_records_only_while_watched():
    seen = []
    hub = DebugHub(lambda: [META_TOKEN], lambda: {}, on_watch=seen.append)
    queue = hub.subscribe()
    assert seen == [True]
    hub.on_hits([(EVENT, [Decision("meta", "pending", "queued")])], [True])
    request = meta.build([EVENT], DEST)[0].request
    answer = PlatformResponse(
        200, {}, json.dumps({"events_received": 1, "echo": META_TOKEN}).encode()
    )
    hub.on_attempt("meta", request, ["dbg-1"], answer, Verdict(Kind.DELIVERED), 12.5, {})
    hit, attempt = queue.get_nowait(), queue.get_nowait()
    assert hit["type"] == "hit" and attempt["type"] == "attempt"
    text = json.dumps(attempt)
    for value in CLEAR:
        assert value not in text  # the raw values were remembered from the hit
    assert attempt["http_status"] == 200 and "[redacted]" in attempt["answer"]
    hub.unsubscribe(queue)
    assert seen == [True, False]


def test_the_stream_sends_hits_and_what_was_sent(dashboard, platforms, monkeypatch):
    monkeypatch.setattr(pages, "STREAM_SECONDS", 0.5)
    assert dashboard.connect(
        "meta",
        {
            "pixel_id": "123456789012345",
            "access_token": META_TOKEN,
            "base_url": f"https://{META_HOST}",
        },
    )["ok"]
    hub = dashboard.admin.hub
    watcher = dashboard.client.portal.call(_subscribe, hub)  # as if a debug page were open
    body = {
        "event": "purchase",
        "event_id": "live-1",
        "page": {"url": "https://shop.example/"},
        "consent": {"ad_storage": "granted", "ad_user_data": "granted"},
        "user": {"email": "jane@example.com"},
        "user_agent": "Mozilla/5.0",
        "data": {"value": 20, "currency": "EUR"},
    }
    dashboard.client.post("/v1/events", json=body, headers={"authorization": f"Bearer {API_KEY}"})
    wait_until(
        lambda: any(e["type"] == "attempt" and e["destination"] == "meta" for e in hub.entries)
    )
    stream = dashboard.get("/admin/debug/stream")
    assert stream.headers["content-type"].startswith("text/event-stream")
    events = [block for block in stream.text.split("\n\n") if block.startswith("id:")]
    kinds = [block.split("\n")[1] for block in events]
    assert "event: hit" in kinds and "event: attempt" in kinds
    hit = json.loads(next(b for b in events if "event: hit" in b).split("data: ", 1)[1])
    assert hit["event_id"] == "live-1"
    assert {d["destination"]: d["status"] for d in hit["decisions"]} == {
        "meta": "pending",
        "tiktok": "pending",
    }
    assert "jane@example.com" not in stream.text and META_TOKEN not in stream.text
    # a viewer that reconnects gets only what is new
    last = events[-1].split("\n")[0].removeprefix("id: ")
    again = dashboard.get("/admin/debug/stream", headers={"last-event-id": last})
    assert "id:" not in again.text
    dashboard.client.portal.call(_unsubscribe, hub, watcher)
    assert dashboard.admin.collector.observe is None  # nobody watches: nothing recorded


def test_the_debug_page_names_test_codes(dashboard):
    dashboard.connect(
        "meta",
        {
            "pixel_id": "123456789012345",
            "access_token": META_TOKEN,
            "base_url": f"https://{META_HOST}",
            "test_event_code": "TEST4242",
        },
    )
    assert "TEST4242" in dashboard.get("/admin/debug").text
    assert TAGS["meta"].SPEC.title in dashboard.get("/admin/debug").text


async def _subscribe(hub):
    return hub.subscribe()


async def _unsubscribe(hub, queue):
    hub.unsubscribe(queue)
