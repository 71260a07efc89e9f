"""The embedded store: SQLite in WAL mode, written with group commit on the event loop.

Every operation is a job. Jobs submitted while the event loop runs one round of ready
callbacks are committed together by one flush scheduled right after that round: one
transaction, each job inside its own savepoint (one failing job cannot undo the others),
one commit. A collect request therefore waits for one fsync that it shares with every
request that arrived meanwhile: durable acknowledgement at the cost of a single commit per
burst, not per hit.

The flush runs on the loop thread itself. A writer thread would hand the GIL back and forth
with the loop on every commit, which on a small machine costs more than the commit (an
fsync of the WAL, well under a millisecond on an SSD); here the loop simply does the write.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
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


Job = tuple[Callable[[sqlite3.Connection], Any], "asyncio.Future[Any]"]


class SQLiteStore:
    def __init__(self, path: str | Path, *, durability: str = "full") -> None:
        self.path = str(path)
        self.durability = durability
        self._conn: sqlite3.Connection | None = None
        self._jobs: list[Job] = []
        self._flush_scheduled = False

    # -- lifecycle -------------------------------------------------------------------------

    async def open(self) -> None:
        if self._conn is not None:
            return
        try:
            self._conn = self._connect()
        except sqlite3.Error as err:
            raise StoreError(f"cannot open the store at {self.path}: {err}") from None

    async def close(self) -> None:
        if self._conn is None:
            return
        while self._jobs:  # acknowledged work is committed before the file closes
            self._flush()
        self._conn.close()
        self._conn = None

    def _connect(self) -> sqlite3.Connection:
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, isolation_level=None)
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA journal_mode = WAL")
        # FULL: a commit survives power loss; NORMAL: survives a process crash only.
        conn.execute(f"PRAGMA synchronous = {'FULL' if self.durability == 'full' else 'NORMAL'}")
        conn.executescript(SCHEMA)
        # We are the only process using this file, so leases left by a killed
        # predecessor are stale: release them so those events are sent again now.
        conn.execute("UPDATE deliveries SET lease_until = 0 WHERE lease_until > 0")
        return conn

    def _flush(self) -> None:
        self._flush_scheduled = False
        jobs, self._jobs = self._jobs[:MAX_JOBS_PER_COMMIT], self._jobs[MAX_JOBS_PER_COMMIT:]
        if self._jobs:
            self._schedule()
        if self._conn is None:
            failure = StoreError("the store is closed")
            for _, future in jobs:
                if not future.done():
                    future.set_exception(failure)
            return
        self._commit_group(self._conn, jobs)

    def _schedule(self) -> None:
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _commit_group(self, conn: sqlite3.Connection, jobs: list[Job]) -> None:
        """Run every job in one transaction; if one fails, redo them one by one.

        The common case costs one BEGIN and one COMMIT for the whole group. A failing job
        (rare: a constraint or a full disk) rolls the group back and each job is retried in
        its own transaction, so one bad job cannot fail its neighbours.
        """
        try:
            conn.execute("BEGIN IMMEDIATE")
            results = [fn(conn) for fn, _ in jobs]
            conn.execute("COMMIT")
        except Exception:  # noqa: BLE001 - any failure: fall back to one job at a time
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            if len(jobs) > 1:
                for job in jobs:
                    self._commit_group(conn, [job])
                return
            _, future = jobs[0]
            if not future.done():
                future.set_exception(StoreError("store operation failed; nothing was stored"))
            return
        for (_, future), result in zip(jobs, results, strict=True):
            if not future.done():  # the waiting request went away; the work is done anyway
                future.set_result(result)

    async def _submit(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._conn is None:
            raise StoreError("the store is not open")
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._jobs.append((fn, future))
        self._schedule()
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
