"""Status pills, match quality, and the store queries behind them."""

from __future__ import annotations

import asyncio

from edge.admin.status import pill, quality
from edge.dispatcher import DestinationState
from edge.schema import Client, Ids, StoredEvent, User
from edge.store import Attempt, Decision, Settlement
from edge.store.sqlite import SQLiteStore
from tags import TAGS

from ..support import API_KEY, META_HOST, META_TOKEN, respond, wait_until

NOW = 1_800_000_000.0


def attempts(*verdicts: str) -> list[Attempt]:
    """Newest first."""
    return [
        Attempt("meta", NOW - i, 1, 200, v, "" if v == "delivered" else "http 500", 9.0)
        for i, v in enumerate(verdicts)
    ]


def test_pills():
    assert pill([], None, NOW).label == "IDLE"
    tested = DestinationState(last_test_ok_at=NOW)
    assert pill([], tested, NOW).detail == "credentials valid, no events yet"
    assert pill(attempts("delivered"), None, NOW).label == "OK"
    assert pill(attempts("delivered", *["delivered"] * 30, "retry"), None, NOW).label == "OK"
    assert pill(attempts("delivered", *["delivered"] * 8, "retry"), None, NOW).label == "DEGRADED"
    assert pill(attempts("retry", *["delivered"] * 30), None, NOW).label == "DEGRADED"
    assert (
        pill(attempts("retry", "retry", "retry", *["delivered"] * 30), None, NOW).label == "DROPPED"
    )
    assert pill(attempts("retry", "rejected", "delivered"), None, NOW).label == "DROPPED"
    paused = DestinationState(paused_until=NOW + 60, pause_reason="setup: http 401")
    assert pill(attempts("delivered"), paused, NOW).label == "DROPPED"
    assert pill([], None, NOW, enabled=False).label == "OFF"
    assert pill([], None, NOW, problems=["x"]).label == "SETUP"


def test_a_refresh_token_near_its_end_degrades_a_healthy_pill():
    ending = DestinationState(refresh_expires_at=NOW + 9.5 * 86_400)
    found = pill(attempts("delivered"), ending, NOW)
    assert found.label == "DEGRADED"
    assert found.detail.startswith("the OAuth refresh token runs out in 9 days")
    assert "last request delivered" in found.detail
    assert pill([], ending, NOW).label == "DEGRADED"  # idle too
    far = DestinationState(refresh_expires_at=NOW + 200 * 86_400)
    assert pill(attempts("delivered"), far, NOW).label == "OK"
    # a worse state keeps its own pill and reason
    assert pill(attempts("retry", "retry", "retry"), ending, NOW).label == "DROPPED"


def test_quality_shares():
    events = [
        StoredEvent(
            event="purchase",
            event_id="1",
            time=1,
            received_at=1.0,
            user=User(email="a@b.example", external_id="c-1"),
            ids=Ids(fbc="fb.1.1.abc", fbp="fb.1.1.1"),
            client=Client(ip="203.0.113.9", user_agent="UA"),
            pixels=["meta"],
        ),
        StoredEvent(
            event="purchase",
            event_id="2",
            time=1,
            received_at=1.0,
            user=User(phone="+16505551212"),
            client=Client(user_agent="UA"),
        ),
    ]
    q = quality(TAGS["meta"].SPEC, events)
    assert q.sampled == 2 and q.pixel == "meta" and q.pixel_share == 0.5
    assert q.keys == {
        "email": 0.5,
        "phone": 0.5,
        "external_id": 0.5,
        "fbc": 0.5,
        "fbp": 0.5,
        "ip": 0.5,
        "user agent": 1.0,
        "click ID": 0.5,
    }
    tiktok = quality(TAGS["tiktok"].SPEC, events)
    assert tiktok.click_ids == ("ttclid",) and tiktok.keys["click ID"] == 0.0
    assert quality(TAGS["criteo"].SPEC, events).pixel is None


def test_store_windows_and_samples(tmp_path):
    async def run() -> None:
        store = SQLiteStore(tmp_path / "s.db")
        await store.open()
        try:
            for i in range(40):
                event = StoredEvent(
                    event="purchase",
                    event_id=f"e{i}",
                    time=int(1000 + i),
                    received_at=1000.0 + i,
                    user=User(email=f"u{i}@x.example"),
                )
                status = "skipped" if i % 4 == 0 else "pending"
                await store.append([(event, [Decision("meta", status, "q")])])
            counts = await store.delivery_counts_since(1030.0)
            assert counts == {"meta": {"pending": 8, "skipped": 2}}
            assert await store.delivery_counts_since(5000.0) == {}
            assert sum((await store.delivery_counts_since(0))["meta"].values()) == 40
            recent = await store.recent_events("meta", 5)
            assert [e.event_id for e in recent] == ["e39", "e38", "e37", "e35", "e34"]
            await store.settle(
                "meta",
                [
                    Settlement("e1", "dead", "rejected: http 400", 1),
                    Settlement("e2", "dead", "gave up: http 500", 3),
                ],
            )
            letters, total = await store.dead_letters(None, "HTTP 500", 10)
            assert (
                total == 1 and letters[0].event_id == "e2" and letters[0].event.event == "purchase"
            )
            assert await store.dead_ids("meta", None, 10) in (["e2", "e1"], ["e1", "e2"])
            assert await store.requeue("meta", ["e1", "e3"], 2000.0) == 1  # e3 is not dead
            row = next(r for r in await store.deliveries("e1"))
            assert (row.status, row.reason, row.attempts) == ("pending", "replayed", 0)
            await store.record_attempt(Attempt("meta", 1500.0, 3, 200, "delivered", "", 5.0))
            assert len(await store.recent_attempts("meta", 1000.0, 50)) == 1
            assert await store.recent_attempts("meta", 1600.0, 50) == []
        finally:
            await store.close()

    asyncio.run(run())


def test_the_pill_follows_deliveries(dashboard, platforms):
    result = dashboard.connect(
        "meta",
        {
            "pixel_id": "123456789012345",
            "access_token": META_TOKEN,
            "base_url": f"https://{META_HOST}",
        },
    )
    assert result["ok"]

    def meta() -> dict:
        return dashboard.get("/admin/api/status").json()["meta"]

    assert meta()["pill"] == "IDLE"

    def purchase(event_id: str) -> None:
        body = {
            "event": "purchase",
            "event_id": event_id,
            "page": {"url": "https://shop.example/"},
            "consent": {"ad_storage": "granted", "ad_user_data": "granted"},
            "data": {"value": 20, "currency": "EUR"},
            "user_agent": "Mozilla/5.0",
            "user": {"email": "jane@example.com"},
        }
        answer = dashboard.client.post(
            "/v1/events", json=body, headers={"authorization": f"Bearer {API_KEY}"}
        )
        assert answer.status_code == 200

    purchase("p1")
    wait_until(lambda: meta()["pill"] == "OK")
    assert meta()["delivered"] == 1
    platforms.default[META_HOST] = respond(
        500, {"error": {"message": "down", "is_transient": True}}
    )
    purchase("p2")
    wait_until(lambda: meta()["pill"] in ("DEGRADED", "DROPPED"))
    wait_until(lambda: meta()["pill"] == "DROPPED")  # retries keep failing
    page = dashboard.get("/admin/").text
    assert 'class="pill dropped"' in page
