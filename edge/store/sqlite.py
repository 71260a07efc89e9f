"""The embedded store: SQLite in WAL mode, owned by one writer thread that group-commits.

Every operation is a job queued to the thread. The thread takes whatever jobs are waiting,
runs them in one transaction (each inside its own savepoint, so one failing job cannot
undo the others) and commits once. A collect request therefore waits for one fsync that it
shares with every request that arrived meanwhile: durable acknowledgement at the cost of a
single commit per burst, not per hit.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import sqlite3
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from edge.errors import StoreError
from edge.schema import StoredEvent, decode_stored, encode_stored

from . import Attempt, Claimed, Decision, DeliveryRow, Settlement

T = TypeVar("T")

MAX_JOBS_PER_COMMIT = 512  # bounds one transaction's latency under a flood
BUSY_TIMEOUT_MS = 5_000
SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    event_id    TEXT PRIMARY KEY,
    received_at REAL NOT NULL,
    body        BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS deliveries (
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
CREATE INDEX IF NOT EXISTS deliveries_due
    ON deliveries (destination, next_at) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS deliveries_by_event ON deliveries (event_id);
CREATE TABLE IF NOT EXISTS attempts (
    id          INTEGER PRIMARY KEY,
    destination TEXT NOT NULL,
    at          REAL NOT NULL,
    events      INTEGER NOT NULL,
    http_status INTEGER,
    verdict     TEXT NOT NULL,
    reason      TEXT NOT NULL,
    latency_ms  REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS attempts_recent ON attempts (destination, at);
"""

_STOP = object()


class _Job:
    __slots__ = ("fn", "future", "loop")

    def __init__(
        self, fn: Callable[[sqlite3.Connection], Any], future: asyncio.Future[Any], loop: Any
    ) -> None:
        self.fn = fn
        self.future = future
        self.loop = loop


def _resolve(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():  # the waiting request went away; the work is done regardless
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


class SQLiteStore:
    def __init__(self, path: str | Path, *, durability: str = "full") -> None:
        self.path = str(path)
        self.durability = durability
        self._jobs: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._conn: sqlite3.Connection | None = None

    # -- lifecycle -------------------------------------------------------------------------

    async def open(self) -> None:
        if self._thread is not None:
            return
        ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        loop = asyncio.get_running_loop()
        self._thread = threading.Thread(
            target=self._run, args=(loop, ready), name="capi-edge-store", daemon=True
        )
        self._thread.start()
        await ready

    async def close(self) -> None:
        if self._thread is None:
            return
        self._jobs.put(_STOP)
        await asyncio.to_thread(self._thread.join)
        self._thread = None

    def _connect(self) -> sqlite3.Connection:
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA journal_mode = WAL")
        # FULL: a commit survives power loss; NORMAL: survives a process crash only.
        conn.execute(f"PRAGMA synchronous = {'FULL' if self.durability == 'full' else 'NORMAL'}")
        conn.executescript(SCHEMA)
        # We are the only process using this file, so leases left by a killed
        # predecessor are stale: release them so those events are sent again now.
        conn.execute("UPDATE deliveries SET lease_until = 0 WHERE lease_until > 0")
        return conn

    def _run(self, loop: asyncio.AbstractEventLoop, ready: asyncio.Future[None]) -> None:
        try:
            conn = self._connect()
        except sqlite3.Error as err:
            failure = StoreError(f"cannot open the store at {self.path}: {err}")
            loop.call_soon_threadsafe(_resolve, ready, None, failure)
            return
        loop.call_soon_threadsafe(_resolve, ready, None, None)
        stopping = False
        while not stopping:
            jobs = [self._jobs.get()]
            while len(jobs) < MAX_JOBS_PER_COMMIT:
                try:
                    jobs.append(self._jobs.get_nowait())
                except queue.Empty:
                    break
            if any(job is _STOP for job in jobs):
                stopping = True
                jobs = [job for job in jobs if job is not _STOP]
            if jobs:
                self._commit_group(conn, jobs)
        conn.close()

    def _commit_group(self, conn: sqlite3.Connection, jobs: list[_Job]) -> None:
        results: list[tuple[_Job, Any, BaseException | None]] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            for job in jobs:
                conn.execute("SAVEPOINT job")
                try:
                    result = job.fn(conn)
                except Exception as err:  # one bad job must not fail its neighbours
                    conn.execute("ROLLBACK TO job")
                    conn.execute("RELEASE job")
                    results.append((job, None, StoreError(f"store operation failed: {err}")))
                else:
                    conn.execute("RELEASE job")
                    results.append((job, result, None))
            conn.execute("COMMIT")
        except sqlite3.Error as err:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            failure = StoreError(f"commit failed: {err}")
            results = [(job, None, failure) for job in jobs]
        for job, result, error in results:
            job.loop.call_soon_threadsafe(_resolve, job.future, result, error)

    async def _submit(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._thread is None:
            raise StoreError("the store is not open")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._jobs.put(_Job(fn, future, loop))
        return await future

    # -- operations ------------------------------------------------------------------------

    async def append(self, items: Sequence[tuple[StoredEvent, Sequence[Decision]]]) -> list[bool]:
        rows = [(event, encode_stored(event), decisions) for event, decisions in items]

        def run(conn: sqlite3.Connection) -> list[bool]:
            inserted = []
            for event, body, decisions in rows:
                cur = conn.execute(
                    "INSERT OR IGNORE INTO events (event_id, received_at, body) VALUES (?, ?, ?)",
                    (event.event_id, event.received_at, body),
                )
                new = cur.rowcount == 1
                inserted.append(new)
                if new and decisions:
                    conn.executemany(
                        "INSERT INTO deliveries (destination, event_id, status, reason,"
                        " next_at, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                        [
                            (
                                d.destination,
                                event.event_id,
                                d.status,
                                d.reason,
                                event.received_at,
                                event.received_at,
                                event.received_at,
                            )
                            for d in decisions
                        ],
                    )
            return inserted

        return await self._submit(run)

    async def claim(
        self, destination: str, limit: int, now: float, lease_seconds: float
    ) -> list[Claimed]:
        def run(conn: sqlite3.Connection) -> list[tuple[bytes, int]]:
            claimed = conn.execute(
                "UPDATE deliveries SET lease_until = ? WHERE destination = ? AND event_id IN ("
                " SELECT event_id FROM deliveries WHERE destination = ? AND status = 'pending'"
                " AND next_at <= ? AND lease_until <= ? ORDER BY next_at LIMIT ?)"
                " RETURNING event_id, attempts",
                (now + lease_seconds, destination, destination, now, now, limit),
            ).fetchall()
            if not claimed:
                return []
            attempts = dict(claimed)
            marks = ",".join("?" * len(attempts))
            bodies = conn.execute(
                f"SELECT event_id, body FROM events WHERE event_id IN ({marks})",  # noqa: S608
                list(attempts),
            ).fetchall()
            return [(body, attempts[event_id]) for event_id, body in bodies]

        rows = await self._submit(run)
        claimed = [Claimed(decode_stored(body), attempts) for body, attempts in rows]
        claimed.sort(key=lambda c: (c.event.time, c.event.event_id))
        return claimed

    async def settle(self, destination: str, settlements: Sequence[Settlement]) -> None:
        if not settlements:
            return

        def run(conn: sqlite3.Connection) -> None:
            stamp = _now()
            conn.executemany(
                "UPDATE deliveries SET status = ?, reason = ?, attempts = ?, next_at = ?,"
                " lease_until = 0, updated_at = ? WHERE destination = ? AND event_id = ?",
                [
                    (s.status, s.reason, s.attempts, s.next_at, stamp, destination, s.event_id)
                    for s in settlements
                ],
            )

        await self._submit(run)

    async def record_attempt(self, attempt: Attempt) -> None:
        def run(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO attempts (destination, at, events, http_status, verdict, reason,"
                " latency_ms) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    attempt.destination,
                    attempt.at,
                    attempt.events,
                    attempt.http_status,
                    attempt.verdict,
                    attempt.reason,
                    attempt.latency_ms,
                ),
            )

        await self._submit(run)

    async def deliveries(self, event_id: str) -> list[DeliveryRow]:
        def run(conn: sqlite3.Connection) -> list[DeliveryRow]:
            rows = conn.execute(
                "SELECT event_id, destination, status, reason, attempts, next_at, updated_at"
                " FROM deliveries WHERE event_id = ? ORDER BY destination",
                (event_id,),
            ).fetchall()
            return [DeliveryRow(*row) for row in rows]

        return await self._submit(run)

    async def counts(self) -> dict[str, dict[str, int]]:
        def run(conn: sqlite3.Connection) -> dict[str, dict[str, int]]:
            result: dict[str, dict[str, int]] = {}
            for destination, status, n in conn.execute(
                "SELECT destination, status, COUNT(*) FROM deliveries GROUP BY 1, 2"
            ):
                result.setdefault(destination, {})[status] = n
            return result

        return await self._submit(run)

    async def get_event(self, event_id: str) -> StoredEvent | None:
        def run(conn: sqlite3.Connection) -> bytes | None:
            row = conn.execute("SELECT body FROM events WHERE event_id = ?", (event_id,)).fetchone()
            return row[0] if row else None

        body = await self._submit(run)
        return decode_stored(body) if body is not None else None

    async def attempts(self, destination: str, limit: int = 50) -> list[Attempt]:
        def run(conn: sqlite3.Connection) -> list[Attempt]:
            rows = conn.execute(
                "SELECT destination, at, events, http_status, verdict, reason, latency_ms"
                " FROM attempts WHERE destination = ? ORDER BY at DESC LIMIT ?",
                (destination, limit),
            ).fetchall()
            return [Attempt(*row) for row in rows]

        return await self._submit(run)


def _now() -> float:
    import time

    return time.time()
