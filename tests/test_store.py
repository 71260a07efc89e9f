"""The SQLite outbox: durable, idempotent appends; leases; group commit under concurrency."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from edge.errors import StoreError
from edge.schema import encode_stored
from edge.store import Decision, Settlement, keys
from edge.store.sqlite import SETTLE_CHUNK
from tests.support import QUEUED_FOR_META, opened_store, stored_event


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


event = stored_event
PENDING = QUEUED_FOR_META


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
async def test_event_ids_that_share_a_key_are_told_apart(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(keys, "crc", lambda text: 7)  # every event_id has the same key
    async with opened_store(tmp_path / "s.db") as store:
        assert await store.append([(event("a"), PENDING), (event("b"), PENDING)]) == [True, True]
        assert await store.append([(event("b"), PENDING), (event("c"), PENDING)]) == [False, True]
        await store.settle("meta", [Settlement("b", "dead", "rejected", 1)])
        assert {r.status for r in await store.deliveries("a") if r.destination == "meta"} == {
            "pending"
        }
        assert await store.requeue("meta", ["b"], now=5000.0) == 1
        assert (await store.get_event("c")) == event("c")
        assert [c.event.event_id for c in await store.claim("meta", 10, 9e9, 60)] == ["a", "b", "c"]


def test_keys_are_stable_across_processes_and_releases() -> None:
    # Stored keys outlive the process that wrote them: the same text, the same key, always.
    assert keys.text_key("fb.1.1763900000000.1234567890") == 4254581958
    assert keys.by_event_id("order-1001") == (keys.crc("order-1001"), "order-1001")
    assert keys.text_key(None) is None


@pytest.mark.anyio
async def test_big_claims_and_settlements_go_through_in_chunks(tmp_path: Path) -> None:
    async with opened_store(tmp_path / "s.db") as store:
        count = SETTLE_CHUNK * 2 + 7
        await store.append([(event(f"e{i:04}", 1000.0 + i), PENDING) for i in range(count)])
        claimed = await store.claim("meta", count, now=5000.0, lease_seconds=60)
        assert [c.event.event_id for c in claimed] == [f"e{i:04}" for i in range(count)]
        await store.settle("meta", [Settlement(c.event.event_id, "sent", "", 1) for c in claimed])
        assert (await store.counts())["meta"] == {"sent": count}


# The layouts of stores made before events were numbered: the first (deliveries keyed by
# destination, an extra index by event_id, no consent columns), and the one after it.
FIRST_LAYOUT = """
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
SECOND_LAYOUT = (
    FIRST_LAYOUT.replace("body BLOB NOT NULL)", "body BLOB NOT NULL, visitor TEXT, ip TEXT)")
    .replace("PRIMARY KEY (destination, event_id)", "PRIMARY KEY (event_id, destination)")
    .replace("CREATE INDEX deliveries_by_event ON deliveries (event_id);\n", "")
    + "CREATE INDEX events_by_visitor ON events (visitor) WHERE visitor IS NOT NULL;\n"
)


@pytest.mark.anyio
@pytest.mark.parametrize("layout", [FIRST_LAYOUT, SECOND_LAYOUT], ids=["first", "second"])
async def test_a_store_made_before_events_were_numbered_is_migrated_on_open(
    tmp_path: Path, layout: str
) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as old:
        old.executescript(layout)
        # rowids out of order on purpose: arrival order is the rowid, not the insert order
        for i, rowid in enumerate((7, 5)):
            old.execute(
                "INSERT INTO events (rowid, event_id, received_at, body) VALUES (?, ?, ?, ?)",
                (rowid, f"old{i}", 1000.0 + i, encode_stored(event(f"old{i}", 1000.0 + i))),
            )
        for i, (destination, status) in enumerate([("tiktok", "dead"), ("meta", "pending")]):
            old.execute(
                "INSERT INTO deliveries (rowid, destination, event_id, status, attempts,"
                " created_at, updated_at) VALUES (?, ?, ?, ?, 3, 1000, 1000)",
                (10 + i, destination, f"old{i}", status),
            )
    async with opened_store(path) as store:
        assert [(r.destination, r.status, r.attempts) for r in await store.deliveries("old1")] == [
            ("meta", "pending", 3)
        ]
        assert [(r.destination, r.status) for r in await store.deliveries("old0")] == [
            ("tiktok", "dead")
        ]
        assert [c.event.event_id for c in await store.claim("meta", 10, 2000.0, 60)] == ["old1"]
        assert await store.append([(event("new"), PENDING)]) == [True]
        assert [d.destination for d in await store.deliveries("new")] == ["meta", "tiktok"]
    with sqlite3.connect(path) as db:
        key = [row[2] for row in db.execute("PRAGMA index_info(sqlite_autoindex_deliveries_1)")]
        indexes = {row[1] for row in db.execute("PRAGMA index_list(deliveries)")}
        numbered = db.execute("SELECT seq, event_id FROM events ORDER BY seq").fetchall()
        rowids = db.execute(
            "SELECT rowid, event, event_id FROM deliveries ORDER BY rowid"
        ).fetchall()
        tables = {
            row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        }
    assert key == ["event", "destination"]
    assert "deliveries_due" in indexes
    assert "deliveries_by_event" not in indexes  # lookups go through the event's number
    assert numbered == [(5, "old1"), (7, "old0"), (8, "new")]  # rowids kept, then the next
    assert rowids[:2] == [(10, 7, "old0"), (11, 5, "old1")]  # arrival order kept
    assert not {"events_old", "deliveries_unnumbered"} & tables


# The layout before events were keyed by integers: a UNIQUE index on the event_id's text
# and an index on the visitor's.
NUMBERED_LAYOUT = """
CREATE TABLE events (
    seq INTEGER PRIMARY KEY, event_id TEXT NOT NULL UNIQUE, received_at REAL NOT NULL,
    body BLOB NOT NULL, visitor TEXT, ip TEXT
);
CREATE INDEX events_by_visitor ON events (visitor) WHERE visitor IS NOT NULL;
CREATE TABLE deliveries (
    event INTEGER NOT NULL, destination TEXT NOT NULL, event_id TEXT NOT NULL,
    status TEXT NOT NULL, reason TEXT NOT NULL DEFAULT '', attempts INTEGER NOT NULL DEFAULT 0,
    next_at REAL NOT NULL DEFAULT 0, lease_until REAL NOT NULL DEFAULT 0,
    created_at REAL NOT NULL, updated_at REAL NOT NULL, PRIMARY KEY (event, destination)
);
"""


@pytest.mark.anyio
async def test_a_store_indexed_by_texts_is_keyed_on_open(tmp_path: Path) -> None:
    path = tmp_path / "numbered.db"
    with sqlite3.connect(path) as old:
        old.executescript(NUMBERED_LAYOUT)
        for seq, event_id, visitor in ((3, "pending", "fb.1.1.42"), (9, "done", None)):
            old.execute(
                "INSERT INTO events VALUES (?, ?, 1000, ?, ?, '192.0.2.1')",
                (seq, event_id, encode_stored(event(event_id, 1000.0)), visitor),
            )
            old.execute(
                "INSERT INTO deliveries (event, destination, event_id, status, created_at,"
                " updated_at) VALUES (?, 'meta', ?, ?, 1000, 1000)",
                (seq, event_id, "pending" if visitor else "sent"),
            )
    async with opened_store(path) as store:
        assert (await store.get_event("done")) == event("done", 1000.0)
        assert [r.status for r in await store.deliveries("pending")] == ["pending"]
        assert await store.append([(event("pending"), PENDING), (event("new"), PENDING)]) == [
            False,
            True,
        ]
        assert await store.cancel_pending(["fb.1.1.42"], ["meta"], "withdrawn", 2000.0) == 1
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT seq, event_id, event_key, visitor_hash FROM events").fetchall()
        indexes = {row[1] for row in db.execute("PRAGMA index_list(events)")}
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
    assert rows == [
        (3, "pending", keys.crc("pending"), None),  # found by its visitor's key: now forgotten
        (9, "done", keys.crc("done"), None),
        (10, "new", keys.crc("new"), None),  # the next number after the kept ones
    ]
    assert indexes == {"events_by_key", "events_by_visitor_hash"}  # no index on the texts
    assert "events_old" not in tables


@pytest.mark.anyio
async def test_tables_capi_edge_did_not_make_are_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as other:
        other.execute("CREATE TABLE events (id INTEGER, payload TEXT)")
    with pytest.raises(StoreError, match="not ones capi-edge made"):
        async with opened_store(path):
            pass
    with sqlite3.connect(path) as other:
        assert [row[1] for row in other.execute("PRAGMA table_info(events)")] == ["id", "payload"]
