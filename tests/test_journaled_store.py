"""The journaled store: acknowledged from the journal, filed by the indexer exactly once."""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
import threading
import time
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from edge.app import create_app
from edge.indexer import Indexer
from edge.schema import decode_stored
from edge.settings import parse
from edge.store.journaled import JournaledStore, applied_seq, journal_directory

from .support import (
    API_KEY,
    DENIED,
    GRANTED,
    META_HOST,
    QUEUED_FOR_META,
    TIKTOK_HOST,
    base_config,
    index,
    journaled,
    respond,
    stored_event,
    to_toml,
    wait_until,
)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


event = stored_event
PENDING = QUEUED_FOR_META


def rows(database: Path, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(database) as conn:
        return conn.execute(sql).fetchall()


@pytest.mark.anyio
async def test_acknowledged_from_the_journal_and_filed_by_the_indexer(tmp_path: Path) -> None:
    database = tmp_path / "s.db"
    async with journaled(database) as store:
        assert await store.append([(event("a", ip="203.0.113.7"), PENDING)]) == [True]
        assert await store.append([(event("b"), PENDING), (event("c"), PENDING)]) == [True, True]
        # acknowledged, durable in the journal, not yet in the tables
        assert rows(database, "SELECT COUNT(*) FROM events") == [(0,)]
        assert index(database) == 3
        stored = dict(rows(database, "SELECT event_id, ip FROM events"))
        assert stored == {"a": "203.0.113.7", "b": None, "c": None}
        body = rows(database, "SELECT body FROM events WHERE event_id = 'a'")[0][0]
        assert decode_stored(body).client.ip is None  # the body never holds the full IP
        deliveries = await store.deliveries("b")
        assert [(r.destination, r.status, r.reason) for r in deliveries] == [
            ("meta", "pending", "queued"),
            ("tiktok", "skipped", "gpc"),
        ]


@pytest.mark.anyio
async def test_a_read_waits_for_the_indexer_to_reach_what_was_acknowledged(
    tmp_path: Path,
) -> None:
    database = tmp_path / "s.db"
    async with journaled(database) as store:
        await store.append([(event("late"), PENDING)])
        read = asyncio.ensure_future(store.get_event("late"))
        await asyncio.sleep(0.05)
        assert not read.done()  # nothing filed yet: the read must not answer "not found"
        await asyncio.to_thread(index, database)
        found = await asyncio.wait_for(read, 5)
        assert found is not None and found.event_id == "late"


@pytest.mark.anyio
async def test_a_repeated_event_id_is_filed_once(tmp_path: Path) -> None:
    database = tmp_path / "s.db"
    async with journaled(database) as store:
        assert await store.append([(event("dup"), PENDING)]) == [True]
        # the guess from recently acknowledged ids, for the debug view
        assert await store.append([(event("dup", t=1_763_900_050.0), PENDING)]) == [False]
        index(database)
        assert rows(database, "SELECT event_id, received_at FROM events") == [
            ("dup", 1_763_900_000.0)
        ]
        assert rows(database, "SELECT COUNT(*) FROM deliveries WHERE event_id = 'dup'") == [(2,)]


@pytest.mark.anyio
async def test_two_indexers_never_apply_a_record_twice(tmp_path: Path) -> None:
    database = tmp_path / "s.db"
    async with journaled(database) as store:
        for i in range(200):
            await store.append([(event(f"e{i}"), PENDING)])
        first, second = Indexer(database), Indexer(database)
        applied: list[int] = []

        def work(indexer: Indexer) -> None:
            applied.append(indexer.drain())

        threads = [threading.Thread(target=work, args=(i,)) for i in (first, second)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        first.close()
        second.close()
        assert sum(applied) == 200
        assert rows(database, "SELECT COUNT(*) FROM deliveries") == [(400,)]
        with sqlite3.connect(database) as conn:
            assert applied_seq(conn) == 200


@pytest.mark.anyio
async def test_reopening_continues_the_journal_after_what_was_applied(tmp_path: Path) -> None:
    database = tmp_path / "s.db"
    async with journaled(database) as store:
        await store.append([(event("one"), PENDING)])
    index(database)
    # Even with the journal's files gone, new records must come after the applied position
    # (otherwise the indexer would take them for applied ones and skip them).
    for segment in journal_directory(database).glob("*.journal"):
        segment.unlink()
    async with journaled(database) as store:
        await store.append([(event("two"), PENDING)])
        assert index(database) == 1
        assert {r[0] for r in rows(database, "SELECT event_id FROM events")} == {"one", "two"}


@pytest.mark.anyio
async def test_the_store_runs_its_indexer_and_restarts_it(tmp_path: Path) -> None:
    database = tmp_path / "s.db"
    store = JournaledStore(database)
    await store.open()
    try:
        await store.append([(event("x"), PENDING)])
        assert [r.destination for r in await store.deliveries("x")] == ["meta", "tiktok"]
        process = store._indexer
        assert process is not None
        process.send_signal(signal.SIGKILL)
        await process.wait()
        await store.append([(event("y"), PENDING)])  # acknowledged while no indexer runs
        assert await asyncio.wait_for(store.get_event("y"), 15) is not None  # its successor
        assert store._indexer is not process
    finally:
        await store.close()
    indexer = store._indexer
    assert indexer is not None and indexer.returncode == 0  # stopped cleanly on close


def test_collect_through_a_journaled_edge(tmp_path: Path) -> None:
    config = base_config(str(tmp_path / "edge.db"), consent={"default": "granted"})
    config["server"]["ingest"] = "journal"
    app = create_app(parse(to_toml(config), base=tmp_path), dispatch=False)
    with TestClient(app, base_url="https://t.shop.example") as client:
        answer = client.post(
            "/collect",
            content=b'{"event": "purchase", "event_id": "j-1", "data": {"value": 5}}',
            headers={"content-type": "text/plain", "origin": "https://shop.example"},
        )
        assert answer.status_code == 200 and answer.json() == {"event_ids": ["j-1"]}
        status = client.get("/v1/events/j-1", headers={"authorization": f"Bearer {API_KEY}"})
        assert status.status_code == 200
        assert {name: d["status"] for name, d in status.json()["destinations"].items()} == {
            "meta": "pending",
            "tiktok": "pending",
        }
        pid = app.state.store._indexer.pid
    # the lifespan's end stopped the indexer after it filed everything
    wait_until(lambda: not Path(f"/proc/{pid}").exists() or _zombie(pid), timeout=10)
    assert rows(tmp_path / "edge.db", "SELECT COUNT(*) FROM events") == [(1,)]


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def test_an_orphaned_indexer_drains_and_exits(tmp_path: Path) -> None:
    """A killed edge leaves no indexer behind, and what the journal held is filed."""
    import subprocess
    import sys

    database = tmp_path / "s.db"

    async def write() -> None:
        async with journaled(database) as store:
            for i in range(50):
                await store.append([(event(f"o{i}"), PENDING)])

    asyncio.run(write())
    # A stand-in for the edge: it starts the indexer as its child, then is killed.
    script = (
        "import subprocess, sys, time\n"
        "p = subprocess.Popen([sys.executable, '-m', 'edge', 'indexer', '--database',"
        f" {str(database)!r}, '--supervised'], stdin=subprocess.PIPE)\n"
        "print(p.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    edge = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)  # noqa: S603
    assert edge.stdout is not None
    pid = int(edge.stdout.readline())
    try:
        time.sleep(0.5)
        assert not _zombie(pid)  # running while its parent lives
    finally:
        edge.kill()
        edge.wait()
        edge.stdout.close()
    wait_until(lambda: _zombie(pid), timeout=15)
    assert rows(database, "SELECT COUNT(*) FROM events") == [(50,)]


def journal_edge(make_edge, tmp_path: Path, **overrides):  # type: ignore[no-untyped-def]
    server = {"database": str(tmp_path / "edge.db"), "ingest": "journal"}
    return make_edge(server=server, **overrides)


def test_journaled_hits_reach_the_platform_once_per_event_id(make_edge, platforms, tmp_path):
    client = journal_edge(make_edge, tmp_path, consent={"default": "granted"})
    hit = json.dumps(
        {"event": "purchase", "event_id": "once-1", "page": {"url": "https://shop.example/t"}}
    )
    for _ in range(3):
        assert client.post("/collect", content=hit).json() == {"event_ids": ["once-1"]}
    wait_until(
        lambda: len(platforms.sent_to(META_HOST)) >= 1 and len(platforms.sent_to(TIKTOK_HOST)) >= 1
    )
    time.sleep(0.3)  # room for a wrong second delivery
    assert [e["event_id"] for e in platforms.events_to(META_HOST)] == ["once-1"]


def test_a_withdrawal_cancels_what_is_still_only_in_the_journal(make_edge, platforms, tmp_path):
    platforms.default[META_HOST] = respond(503, {"error": {"message": "down"}})
    client = journal_edge(make_edge, tmp_path)
    hit = {"event": "purchase", "event_id": "w-1", "page": {"url": "https://shop.example/t"}}
    first = client.post("/collect", content=json.dumps({**hit, "consent": GRANTED}))
    assert first.status_code == 200
    for cookie in first.headers.get_list("set-cookie"):
        name, value = cookie.split(";", 1)[0].split("=", 1)
        client.cookies.set(name, value)
    refusal = {"event": "consent_update", "page": {"url": "https://shop.example/t"}}
    answer = client.post("/consent", content=json.dumps({**refusal, "consent": DENIED}))
    assert answer.status_code == 204
    status = client.get("/v1/events/w-1", headers={"authorization": f"Bearer {API_KEY}"})
    meta = status.json()["destinations"]["meta"]
    assert meta["status"] in ("skipped",) and meta["reason"] == "consent withdrawn"


@pytest.mark.anyio
async def test_store_commits_run_on_their_own_thread_not_the_event_loop(tmp_path: Path) -> None:
    async with journaled(tmp_path / "s.db") as store:
        ran_on = await store._submit(lambda conn: threading.get_ident(), current=False)
    assert ran_on != threading.get_ident()


@pytest.mark.anyio
async def test_a_commit_waiting_for_the_indexers_lock_does_not_hold_up_hits(
    tmp_path: Path,
) -> None:
    """The indexer holds SQLite's write lock for a batch at a time; a claim that waits for
    it must leave the event loop free to answer hits meanwhile."""
    database = tmp_path / "s.db"
    async with journaled(database) as store:
        await store.append([(event("queued"), PENDING)])
        index(database)
        indexer = sqlite3.connect(database, isolation_level=None)
        try:
            indexer.execute("BEGIN IMMEDIATE")  # the write lock, as during an indexer batch
            claim = asyncio.ensure_future(store.claim("meta", 10, now=2e9, lease_seconds=60))
            ticks, started = 0, time.monotonic()
            while time.monotonic() - started < 0.3:
                await asyncio.sleep(0.01)
                ticks += 1
            assert not claim.done()  # still waiting for the lock...
            assert ticks >= 15  # ...while the loop went on (held up, it would tick once)
            assert await store.append([(event("meanwhile"), PENDING)]) == [True]
        finally:
            indexer.execute("COMMIT")
            indexer.close()
        claimed = await asyncio.wait_for(claim, 10)
        assert [c.event.event_id for c in claimed] == ["queued"]
