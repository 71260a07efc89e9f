"""The store's consent duties: the full IP only while needed, cancelling on withdrawal."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from edge.schema import Client, Ids, StoredEvent
from edge.store import Decision, Settlement, keys
from edge.store.keys import text_key
from tests.support import opened_store

T = 1_763_900_000.0
FBP = "fb.1.1763900000000.1234567890"
META_PENDING = [Decision("meta", "pending", "queued"), Decision("tiktok", "pending", "queued")]
ALL_SKIPPED = [Decision("meta", "skipped", "gpc")]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def event(event_id: str, fbp: str | None = FBP, ip: str | None = "203.0.113.77") -> StoredEvent:
    return StoredEvent(
        event="purchase",
        event_id=event_id,
        time=int(T),
        received_at=T,
        ids=Ids(fbp=fbp),
        client=Client(ip=ip, ip_truncated="203.0.113.0" if ip else None, user_agent="UA"),
    )


def columns(path: Path, event_id: str) -> tuple[str | None, str | None]:
    """The event's IP and visitor columns (checked against the visitor's hash on the way)."""
    with sqlite3.connect(path) as conn:
        ip, visitor, hashed = conn.execute(
            "SELECT ip, visitor, visitor_hash FROM events WHERE event_id = ?", (event_id,)
        ).fetchone()
    assert hashed == text_key(visitor)  # both set, or both cleared
    return ip, visitor


@pytest.mark.anyio
async def test_the_full_ip_is_kept_beside_the_event_only_while_a_delivery_needs_it(tmp_path):
    path = tmp_path / "s.db"
    async with opened_store(path) as store:
        await store.append([(event("a"), META_PENDING), (event("b"), ALL_SKIPPED)])
        assert (await store.get_event("a")).client.ip is None  # never in the body
        assert columns(path, "a") == ("203.0.113.77", FBP)
        assert columns(path, "b") == (None, None)  # nothing pending: never kept
        (claimed,) = await store.claim("meta", 10, T, 60)
        assert claimed.event.client.ip == "203.0.113.77"  # put back for the platform
        await store.settle("meta", [Settlement("a", "sent", "", 1)])
        assert columns(path, "a") == ("203.0.113.77", FBP)  # tiktok still pending
        await store.settle("tiktok", [Settlement("a", "dead", "rejected", 1)])
        assert columns(path, "a") == (None, None)
        kept = await store.get_event("a")
        assert kept is not None and kept.client.ip_truncated == "203.0.113.0"


@pytest.mark.anyio
async def test_cancel_pending_for_a_visitor(tmp_path):
    path = tmp_path / "s.db"
    async with opened_store(path) as store:
        await store.append(
            [
                (event("mine-1"), META_PENDING),
                (event("mine-2"), META_PENDING),
                (event("theirs", fbp="fb.1.1763900000000.999"), META_PENDING),
            ]
        )
        await store.settle("meta", [Settlement("mine-2", "sent", "", 1)])
        count = await store.cancel_pending([FBP, "unknown"], ["meta"], "consent withdrawn", T)
        assert count == 1  # mine-2 was already sent to meta
        rows: dict[tuple[str, str], tuple[str, str]] = {}
        for eid in ("mine-1", "mine-2", "theirs"):
            for row in await store.deliveries(eid):
                rows[(eid, row.destination)] = (row.status, row.reason)
        assert rows[("mine-1", "meta")] == ("cancelled", "consent withdrawn")
        assert rows[("mine-1", "tiktok")] == ("pending", "queued")  # not refused
        assert rows[("mine-2", "meta")] == ("sent", "")
        assert rows[("theirs", "meta")] == ("pending", "queued")
        assert [c.event.event_id for c in await store.claim("meta", 10, T, 60)] == ["theirs"]
        assert await store.cancel_pending([], ["meta"], "x", T) == 0


@pytest.mark.anyio
async def test_a_cancelled_delivery_is_never_queued_again(tmp_path):
    async with opened_store(tmp_path / "s.db") as store:
        await store.append([(event("a"), META_PENDING), (event("b"), META_PENDING)])
        claimed = await store.claim("meta", 10, T, 60)  # in flight...
        assert len(claimed) == 2
        await store.cancel_pending([FBP], ["meta"], "consent withdrawn", T)  # ...withdrawn
        await store.settle(
            "meta",
            [Settlement("a", "pending", "http 500", 1, T + 5), Settlement("b", "sent", "", 1)],
        )
        a = {r.destination: r.status for r in await store.deliveries("a")}
        b = {r.destination: r.status for r in await store.deliveries("b")}
        assert a["meta"] == "cancelled"  # a retry does not bring it back
        assert b["meta"] == "sent"  # it had already gone: the record says so
        assert await store.claim("meta", 10, T + 10, 60) == []


@pytest.mark.anyio
async def test_a_store_from_before_the_consent_columns_is_upgraded(tmp_path):
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:
        conn.execute(
            "CREATE TABLE events (event_id TEXT PRIMARY KEY, received_at REAL NOT NULL,"
            " body BLOB NOT NULL)"
        )
        conn.execute("INSERT INTO events VALUES ('old', 1, '{}')")
    async with opened_store(path) as store:
        await store.append([(event("new"), META_PENDING)])
        assert columns(path, "new") == ("203.0.113.77", FBP)
        assert columns(path, "old") == (None, None)


@pytest.mark.anyio
async def test_visitors_whose_ids_share_a_key_are_told_apart(tmp_path, monkeypatch):
    monkeypatch.setattr(keys, "crc", lambda text: 7)  # every browser ID (and event_id) alike
    async with opened_store(tmp_path / "s.db") as store:
        other = "fb.1.1763900000000.999"
        await store.append([(event("mine"), META_PENDING), (event("theirs", other), META_PENDING)])
        assert await store.cancel_pending([FBP], ["meta"], "consent withdrawn", T) == 1
        assert {r.destination: r.status for r in await store.deliveries("theirs")} == {
            "meta": "pending",
            "tiktok": "pending",
        }
