"""The SQLite outbox: durable, idempotent appends; leases; group commit under concurrency."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from edge.errors import StoreError
from edge.schema import StoredEvent, User, encode_stored
from edge.store import Decision, Settlement
from edge.store.sqlite import SETTLE_CHUNK
from tests.support import opened_store


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def event(event_id: str, t: float = 1_763_900_000.0) -> StoredEvent:
    return StoredEvent(
        event="purchase", event_id=event_id, time=int(t), received_at=t, user=User(email="a@b.co")
    )


PENDING = [Decision("meta", "pending", "queued"), Decision("tiktok", "skipped", "gpc")]


@pytest.mark.anyio
async def test_append_is_idempotent_per_event_id(tmp_path: Path) -> None:
    async with opened_store(tmp_path / "s.db") as store:
        assert await store.append([(event("a"), PENDING), (event("b"), PENDING)]) == [True, True]
        assert await store.append([(event("a"), PENDING)]) == [False]
        rows = await store.deliveries("a")
        assert [(r.destination, r.status, r.reason) for r in rows] == [
            ("meta", "pending", "queued"),
            ("tiktok", "skipped", "gpc"),
        ]
        assert (await store.get_event("a")) == event("a")
        assert await store.counts() == {"meta": {"pending": 2}, "tiktok": {"skipped": 2}}


@pytest.mark.anyio
async def test_acknowledged_means_committed_to_disk(tmp_path: Path) -> None:
    async with opened_store(tmp_path / "s.db") as store:
        await store.append([(event("durable"), PENDING)])
        # Another connection sees it immediately: the append returned after COMMIT.
        with sqlite3.connect(tmp_path / "s.db") as other:
            assert other.execute("SELECT event_id FROM events").fetchall() == [("durable",)]


@pytest.mark.anyio
async def test_claims_lease_and_settle(tmp_path: Path) -> None:
    async with opened_store(tmp_path / "s.db") as store:
        await store.append([(event(f"e{i}", 1000.0 + i), PENDING) for i in range(5)])
        first = await store.claim("meta", 3, now=2000.0, lease_seconds=60)
        assert [c.event.event_id for c in first] == ["e0", "e1", "e2"]
        # leased rows are not handed out twice
        second = await store.claim("meta", 10, now=2001.0, lease_seconds=60)
        assert [c.event.event_id for c in second] == ["e3", "e4"]
        assert await store.claim("meta", 10, now=2002.0, lease_seconds=60) == []
        await store.settle(
            "meta",
            [
                Settlement("e0", "sent", "", 1),
                Settlement("e1", "pending", "retry: http 500", 1, next_at=2030.0),
                Settlement("e2", "dead", "rejected: bad", 1),
            ],
        )
        assert await store.claim("meta", 10, now=2020.0, lease_seconds=60) == []
        retry = await store.claim("meta", 10, now=2040.0, lease_seconds=60)
        assert [(c.event.event_id, c.attempts) for c in retry] == [("e1", 1)]
        # an expired lease (a crashed holder) makes the row claimable again
        again = await store.claim("meta", 10, now=2062.0, lease_seconds=60)
        assert {c.event.event_id for c in again} == {"e3", "e4"}


@pytest.mark.anyio
async def test_reopening_releases_stale_leases(tmp_path: Path) -> None:
    async with opened_store(tmp_path / "s.db") as store:
        await store.append([(event("x"), PENDING)])
        assert len(await store.claim("meta", 10, now=2e9, lease_seconds=3600)) == 1
    async with opened_store(tmp_path / "s.db") as reopened:
        assert len(await reopened.claim("meta", 10, now=2e9, lease_seconds=60)) == 1


@pytest.mark.anyio
async def test_concurrent_appends_share_commits(tmp_path: Path) -> None:
    async with opened_store(tmp_path / "s.db") as store:
        results = await asyncio.gather(
            *(store.append([(event(f"c{i}"), PENDING)]) for i in range(300))
        )
        assert all(r == [True] for r in results)
        assert (await store.counts())["meta"]["pending"] == 300


@pytest.mark.anyio
async def test_a_failing_job_does_not_undo_its_neighbours(tmp_path: Path) -> None:
    async with opened_store(tmp_path / "s.db") as store:

        def broken(conn: sqlite3.Connection) -> None:
            conn.execute("INSERT INTO no_such_table VALUES (1)")

        ok = store.append([(event("kept"), PENDING)])
        bad = store._submit(broken)
        results = await asyncio.gather(ok, bad, return_exceptions=True)
        assert results[0] == [True]
        assert isinstance(results[1], Exception)
        assert await store.get_event("kept") is not None


@pytest.mark.anyio
async def test_a_failing_append_does_not_fail_the_appends_committed_with_it(tmp_path: Path) -> None:
    async with opened_store(tmp_path / "s.db") as store:
        twice = [Decision("meta", "pending", "queued"), Decision("meta", "pending", "queued")]
        results = await asyncio.gather(
            store.append([(event("before"), PENDING)]),
            store.append([(event("broken"), twice)]),  # the same delivery twice: a constraint
            store.append([(event("after"), PENDING)]),
            return_exceptions=True,
        )
        assert results[0] == [True] and results[2] == [True]
        assert isinstance(results[1], StoreError)
        assert await store.get_event("broken") is None  # nothing of it was stored
        assert [r.destination for r in await store.deliveries("after")] == ["meta", "tiktok"]


@pytest.mark.anyio
async def test_a_repeated_event_id_in_one_commit_keeps_the_first(tmp_path: Path) -> None:
    async with opened_store(tmp_path / "s.db") as store:
        await store.append([(event("stored"), PENDING)])
        skipped = [Decision("meta", "skipped", "gpc")]
        results = await asyncio.gather(
            store.append([(event("twin"), PENDING), (event("stored"), skipped)]),
            store.append([(event("twin"), skipped), (event("new"), PENDING)]),
        )
        assert results == [[True, False], [False, True]]
        twin = await store.deliveries("twin")
        assert [(r.destination, r.status) for r in twin] == [
            ("meta", "pending"),
            ("tiktok", "skipped"),
        ]
        stored = await store.deliveries("stored")
        assert [(r.destination, r.status) for r in stored] == [
            ("meta", "pending"),
            ("tiktok", "skipped"),
        ]
        assert len(await store.deliveries("new")) == 2


@pytest.mark.anyio
async def test_big_claims_and_settlements_go_through_in_chunks(tmp_path: Path) -> None:
    async with opened_store(tmp_path / "s.db") as store:
        count = SETTLE_CHUNK * 2 + 7
        await store.append([(event(f"e{i:04}", 1000.0 + i), PENDING) for i in range(count)])
        claimed = await store.claim("meta", count, now=5000.0, lease_seconds=60)
        assert [c.event.event_id for c in claimed] == [f"e{i:04}" for i in range(count)]
        await store.settle("meta", [Settlement(c.event.event_id, "sent", "", 1) for c in claimed])
        assert (await store.counts())["meta"] == {"sent": count}


OLD_LAYOUT = """
CREATE TABLE events (event_id TEXT PRIMARY KEY, received_at REAL NOT NULL, body BLOB NOT NULL);
CREATE TABLE deliveries (
    destination TEXT NOT NULL,
    event_id    TEXT NOT NULL,
    status      TEXT NOT NULL,
    reason      TEXT NOT NULL DEFAULT '',
    attempts    INTEGER NOT NULL DEFAULT 0,
    next_at     REAL NOT NULL DEFAULT 0,
    lease_until REAL NOT NULL DEFAULT 0,
    created_at  REAL NOT NULL,
    updated_at  REAL NOT NULL,
    PRIMARY KEY (destination, event_id)
);
CREATE INDEX deliveries_due ON deliveries (destination, next_at) WHERE status = 'pending';
CREATE INDEX deliveries_by_event ON deliveries (event_id);
CREATE INDEX deliveries_dead ON deliveries (destination, updated_at) WHERE status = 'dead';
"""


@pytest.mark.anyio
async def test_a_store_keyed_by_destination_first_is_rekeyed_on_open(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as old:
        old.executescript(OLD_LAYOUT)
        for i, (destination, status) in enumerate([("tiktok", "dead"), ("meta", "pending")]):
            old.execute(
                "INSERT INTO events (event_id, received_at, body) VALUES (?, ?, ?)",
                (f"old{i}", 1000.0, encode_stored(event(f"old{i}", 1000.0))),
            )
            old.execute(
                "INSERT INTO deliveries (rowid, destination, event_id, status, created_at,"
                " updated_at) VALUES (?, ?, ?, ?, 1000, 1000)",
                (10 + i, destination, f"old{i}", status),
            )
    async with opened_store(path) as store:
        assert [(r.destination, r.status) for r in await store.deliveries("old1")] == [
            ("meta", "pending")
        ]
        assert [c.event.event_id for c in await store.claim("meta", 10, 2000.0, 60)] == ["old1"]
        assert await store.append([(event("new"), PENDING)]) == [True]
    with sqlite3.connect(path) as db:
        key = [row[2] for row in db.execute("PRAGMA index_info(sqlite_autoindex_deliveries_1)")]
        indexes = {row[1] for row in db.execute("PRAGMA index_list(deliveries)")}
        rowids = db.execute("SELECT rowid, event_id FROM deliveries ORDER BY rowid").fetchall()
    assert key == ["event_id", "destination"]
    assert {"deliveries_due", "deliveries_dead"} <= indexes
    assert "deliveries_by_event" not in indexes  # the new key serves lookups by event
    assert rowids[:2] == [(10, "old0"), (11, "old1")]  # arrival order kept
