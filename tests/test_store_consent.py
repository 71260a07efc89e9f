"""The store's consent duties: the full IP only while needed, cancelling on withdrawal."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from edge.schema import Client, Ids, StoredEvent
from edge.store import Decision, Settlement, sqlite
from edge.store.sqlite import visitor_hash
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
    assert hashed == visitor_hash(visitor)  # both set, or both cleared
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
async def test_visitors_whose_ids_share_a_hash_are_told_apart(tmp_path, monkeypatch):
    monkeypatch.setattr(sqlite, "visitor_hash", lambda visitor: None if visitor is None else 7)
    async with opened_store(tmp_path / "s.db") as store:
        other = "fb.1.1763900000000.999"
        await store.append([(event("mine"), META_PENDING), (event("theirs", other), META_PENDING)])
        assert await store.cancel_pending([FBP], ["meta"], "consent withdrawn", T) == 1
        assert {r.destination: r.status for r in await store.deliveries("theirs")} == {
            "meta": "pending",
            "tiktok": "pending",
        }


def test_visitor_hashes_are_stable_32_bit_keys() -> None:
    # Stored keys outlive the process: the hash must not change between runs or releases.
    assert visitor_hash(FBP) == visitor_hash(FBP) == 4254581958
    assert visitor_hash(None) is None
    assert 0 <= visitor_hash("fb.1.1763900000000.999") < 2**32  # type: ignore[operator]


@pytest.mark.anyio
async def test_a_store_indexed_by_the_visitor_text_is_indexed_by_its_hash(tmp_path):
    path = tmp_path / "text.db"
    async with opened_store(path) as store:  # the current layout, then taken back a step
        await store.append([(event("a"), META_PENDING), (event("b"), ALL_SKIPPED)])
    with sqlite3.connect(path) as conn:
        conn.execute("DROP INDEX events_by_visitor_hash")
        conn.execute("ALTER TABLE events DROP COLUMN visitor_hash")
        conn.execute("CREATE INDEX events_by_visitor ON events (visitor) WHERE visitor IS NOT NULL")
    async with opened_store(path) as store:
        assert columns(path, "a") == ("203.0.113.77", FBP)  # the hash filled in
        assert columns(path, "b") == (None, None)
        assert await store.cancel_pending([FBP], ["meta"], "consent withdrawn", T) == 1
    with sqlite3.connect(path) as conn:
        indexes = {row[1] for row in conn.execute("PRAGMA index_list(events)")}
    assert "events_by_visitor_hash" in indexes
    assert "events_by_visitor" not in indexes
