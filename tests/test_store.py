"""The SQLite outbox: durable, idempotent appends; leases; group commit under concurrency."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from edge.schema import StoredEvent, User
from edge.store import Decision, Settlement
from edge.store.sqlite import SQLiteStore


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
    store = SQLiteStore(tmp_path / "s.db")
    await store.open()
    try:
        assert await store.append([(event("a"), PENDING), (event("b"), PENDING)]) == [True, True]
        assert await store.append([(event("a"), PENDING)]) == [False]
        rows = await store.deliveries("a")
        assert [(r.destination, r.status, r.reason) for r in rows] == [
            ("meta", "pending", "queued"),
            ("tiktok", "skipped", "gpc"),
        ]
        assert (await store.get_event("a")) == event("a")
        assert await store.counts() == {"meta": {"pending": 2}, "tiktok": {"skipped": 2}}
    finally:
        await store.close()


@pytest.mark.anyio
async def test_acknowledged_means_committed_to_disk(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.db")
    await store.open()
    await store.append([(event("durable"), PENDING)])
    # Another connection sees it immediately: the append returned after COMMIT.
    with sqlite3.connect(tmp_path / "s.db") as other:
        assert other.execute("SELECT event_id FROM events").fetchall() == [("durable",)]
    await store.close()


@pytest.mark.anyio
async def test_claims_lease_and_settle(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.db")
    await store.open()
    try:
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
    finally:
        await store.close()


@pytest.mark.anyio
async def test_reopening_releases_stale_leases(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.db")
    await store.open()
    await store.append([(event("x"), PENDING)])
    assert len(await store.claim("meta", 10, now=2e9, lease_seconds=3600)) == 1
    await store.close()
    reopened = SQLiteStore(tmp_path / "s.db")
    await reopened.open()
    try:
        assert len(await reopened.claim("meta", 10, now=2e9, lease_seconds=60)) == 1
    finally:
        await reopened.close()


@pytest.mark.anyio
async def test_concurrent_appends_share_commits(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.db")
    await store.open()
    try:
        results = await asyncio.gather(
            *(store.append([(event(f"c{i}"), PENDING)]) for i in range(300))
        )
        assert all(r == [True] for r in results)
        assert (await store.counts())["meta"]["pending"] == 300
    finally:
        await store.close()


@pytest.mark.anyio
async def test_a_failing_job_does_not_undo_its_neighbours(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.db")
    await store.open()
    try:

        def broken(conn: sqlite3.Connection) -> None:
            conn.execute("INSERT INTO no_such_table VALUES (1)")

        ok = store.append([(event("kept"), PENDING)])
        bad = store._submit(broken)
        results = await asyncio.gather(ok, bad, return_exceptions=True)
        assert results[0] == [True]
        assert isinstance(results[1], Exception)
        assert await store.get_event("kept") is not None
    finally:
        await store.close()
