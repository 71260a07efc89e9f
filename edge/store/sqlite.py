"""The embedded store: SQLite in WAL mode, written with group commit on the event loop.

Every operation is a job. Jobs submitted while the event loop runs one round of ready
callbacks are committed together by one flush scheduled right after that round: one
transaction, one commit. A collect request therefore waits for one fsync that it shares with
every request that arrived meanwhile: durable acknowledgement at the cost of a single commit
per burst, not per hit. If a job fails (rare: a constraint, a full disk), the group is
rolled back and every job is retried in a transaction of its own, so one bad job cannot
fail its neighbours.

The appends of one flush are written together, one statement per table for all their
events (``_Appends``), not a call per row; and deliveries are keyed by the event's arrival
number, so they are appended at the end of their index (see ``SCHEMA``).

The flush runs on the loop thread itself. A writer thread would hand the GIL back and forth
with the loop on every SQLite call; measured on two cores, what it saved the loop it lost
in those hand-offs (docs/benchmarks.md). Here the loop simply does the write. A store whose
appends go elsewhere (``JournaledStore``: the journal) asks for ``commit_thread`` instead, so
that a commit waiting for another process's write lock does not hold up the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from edge.errors import StoreError
from edge.identity import visitor_key
from edge.schema import StoredEvent, decode_stored, encode_stored

from . import Attempt, Claimed, Decision, DeliveryRow, Purged, Settlement
from .admin import AdminQueries
from .keys import EVENT_SEQ, TEXT_KEY_FUNCTION, by_event_id, text_key

T = TypeVar("T")
log = logging.getLogger("capi_edge.store")

MAX_JOBS_PER_COMMIT = 512  # bounds one transaction's latency under a flood
SETTLE_CHUNK = 250  # settlements per job: a 1,000-event batch settles in four commits
DECODE_CHUNK = 200  # claimed events decoded between two turns of the loop
BUSY_TIMEOUT_MS = 5_000
PURGE_CHUNK = 200  # rows a retention job looks at: it never holds the write lock for long
# Every index costs each hit a page write where its keys fall, and event_ids are random.
# Events are numbered in arrival order (``seq``, an explicit INTEGER PRIMARY KEY, so that
# VACUUM keeps it) and deliveries are keyed by that number: their rows go at the end of
# their index instead of at a random page, and an event's rows for every destination sit
# together. ``deliveries.event_id`` is a copy of the event's, for the reads that list
# deliveries; nothing looks it up. What lands at random, the event_id and the visitor's
# browser ID, is indexed by an integer key of the text (``edge.store.keys``): the indexer's
# CPU per event fell by about half (docs/benchmarks.md). ``insert_events`` keeps event_ids
# unique, as a UNIQUE constraint on the text used to.
EVENTS_TABLE = """
CREATE TABLE IF NOT EXISTS events (
    seq          INTEGER PRIMARY KEY,
    event_id     TEXT NOT NULL,
    received_at  REAL NOT NULL,
    body         BLOB NOT NULL,
    visitor      TEXT,
    ip           TEXT,
    visitor_hash INTEGER,
    event_key    INTEGER NOT NULL
)"""
DELIVERIES_TABLE = """
CREATE TABLE IF NOT EXISTS deliveries (
    event       INTEGER NOT NULL,
    destination TEXT NOT NULL,
    event_id    TEXT NOT NULL,
    status      TEXT NOT NULL,
    reason      TEXT NOT NULL DEFAULT '',
    attempts    INTEGER NOT NULL DEFAULT 0,
    next_at     REAL NOT NULL DEFAULT 0,
    lease_until REAL NOT NULL DEFAULT 0,
    created_at  REAL NOT NULL,
    updated_at  REAL NOT NULL,
    PRIMARY KEY (event, destination)
)"""
# The columns a store made before events were numbered may hold (``_number_events``).
UNNUMBERED_EVENT_COLUMNS = ("received_at", "body", "visitor", "ip")
UNNUMBERED_DELIVERY_COLUMNS = (
    "destination",
    "event_id",
    "status",
    "reason",
    "attempts",
    "next_at",
    "lease_until",
    "created_at",
    "updated_at",
)
SCHEMA = f"""
{EVENTS_TABLE};
CREATE INDEX IF NOT EXISTS events_by_key ON events (event_key);
{DELIVERIES_TABLE};
CREATE INDEX IF NOT EXISTS deliveries_due
    ON deliveries (destination, next_at) WHERE status = 'pending';
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
# Consent hooks (edge.consent): ``visitor`` files an event with pending deliveries under its
# browser ID, so a withdrawal can cancel them; ``ip`` keeps the full client address only
# while a delivery may still need it (the body holds the truncated one). Both stay NULL for
# events with nothing pending, which the partial index skips. The index is by the browser
# ID's hash (above).
CONSENT_INDEX = (
    "CREATE INDEX IF NOT EXISTS events_by_visitor_hash ON events (visitor_hash)"
    " WHERE visitor_hash IS NOT NULL"
)
FORGET_IPS = (
    "UPDATE events SET ip = NULL, visitor = NULL, visitor_hash = NULL"
    " WHERE event_key IN ({marks}) AND event_id IN ({marks})"
    " AND (ip IS NOT NULL OR visitor IS NOT NULL) AND NOT EXISTS (SELECT 1 FROM deliveries"
    " AS d WHERE d.event = events.seq AND d.status = 'pending')"
)


INSERT_EVENT = (
    "INSERT INTO events (seq, event_id, received_at, body, visitor, ip, visitor_hash, event_key)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
INSERT_DELIVERY = (
    "INSERT INTO deliveries (event, destination, event_id, status, reason,"
    " next_at, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
LOOKUP_CHUNK = 400  # event_ids looked up per statement (two parameters each)
# One event as ``append`` queues it: the events row, then its routing decisions.
EventRow = tuple[tuple[str, float, bytes, "str | None", "str | None"], Sequence[Decision]]


def stored_event_ids(conn: sqlite3.Connection, keyed: Sequence[tuple[int, str]]) -> set[str]:
    """Which of these event_ids, each with its key (``by_event_id``), the store holds."""
    found: set[str] = set()
    for start in range(0, len(keyed), LOOKUP_CHUNK):
        chunk = keyed[start : start + LOOKUP_CHUNK]
        marks = ",".join("?" * len(chunk))
        found.update(
            row[0]
            for row in conn.execute(
                f"SELECT event_id FROM events WHERE event_key IN ({marks})"  # noqa: S608
                f" AND event_id IN ({marks})",
                [*(key for key, _ in chunk), *(event_id for _, event_id in chunk)],
            )
        )
    return found


def insert_events(conn: sqlite3.Connection, rows: Sequence[EventRow]) -> list[bool]:
    """Insert events and the deliveries of the new ones; True where the event was new.

    An event_id the store holds already, or that came earlier in ``rows``, is not new: a
    repeated event_id keeps its first version, routing included. The new ones go in with
    one statement per table. Runs inside the caller's transaction (the group commit here,
    the indexer's batch there), which holds the write lock: nothing else inserts between
    the lookup and the insert, and the numbers given here are the next ones.
    """
    keyed = [by_event_id(event[0]) for event, _ in rows]
    stored = stored_event_ids(conn, keyed)
    seq = conn.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM events").fetchone()[0]
    new = []
    events = []
    deliveries = []
    for (event, decisions), (key, event_id) in zip(rows, keyed, strict=True):
        new.append(event_id not in stored)
        if not new[-1]:
            continue
        stored.add(event_id)  # a repeat later in the batch is not new either
        at, visitor = event[1], event[3]
        events.append((seq, *event, text_key(visitor), key))
        deliveries += [
            (seq, d.destination, event_id, d.status, d.reason, at, at, at) for d in decisions
        ]
        seq += 1
    if events:
        conn.executemany(INSERT_EVENT, events)
    if deliveries:
        conn.executemany(INSERT_DELIVERY, deliveries)
    return new


class _Job:
    """One operation waiting for the next group commit, and the future its caller awaits."""

    __slots__ = ("fn", "future", "result")

    def __init__(self, fn: Callable[[sqlite3.Connection], Any], future: asyncio.Future[Any]):
        self.fn = fn
        self.future = future
        self.result: Any = None

    def run(self, conn: sqlite3.Connection) -> None:
        self.result = self.fn(conn)

    def split(self) -> list[_Job | _Appends]:
        return [self]

    def succeed(self) -> None:
        if not self.future.done():  # the waiting request went away; the work is done anyway
            self.future.set_result(self.result)

    def fail(self, error: Exception) -> None:
        if not self.future.done():
            self.future.set_exception(error)


class _Append:
    """One ``append`` call waiting for the next group commit."""

    __slots__ = ("rows", "future")

    def __init__(self, rows: list[EventRow], future: asyncio.Future[list[bool]]) -> None:
        self.rows = rows
        self.future = future


class _Appends:
    """The appends of one flush as one job: ``insert_events`` over all their events."""

    __slots__ = ("appends", "new")

    def __init__(self, appends: list[_Append]) -> None:
        self.appends = appends
        self.new: list[bool] = []

    def run(self, conn: sqlite3.Connection) -> None:
        self.new = insert_events(conn, [row for append in self.appends for row in append.rows])

    def split(self) -> list[_Job | _Appends]:
        return [_Appends([append]) for append in self.appends]

    def succeed(self) -> None:
        start = 0
        for append in self.appends:
            end = start + len(append.rows)
            if not append.future.done():
                append.future.set_result(self.new[start:end])
            start = end

    def fail(self, error: Exception) -> None:
        for append in self.appends:
            if not append.future.done():
                append.future.set_exception(error)


# What a group commit did with each job: None where it succeeded, else the error to raise.
Outcomes = list[tuple["_Job | _Appends", "StoreError | None"]]


def answer(outcomes: Outcomes) -> None:
    """Resolve each job's future with its outcome (on the event loop)."""
    for job, error in outcomes:
        if error is None:
            job.succeed()
        else:
            job.fail(error)


class SQLiteStore(AdminQueries):  # the dashboard's queries: edge/store/admin.py
    """``commit_thread``: run the group commits on a thread of the store's own instead of the
    event loop (``JournaledStore``, where appends never come here)."""

    def __init__(
        self, path: str | Path, *, durability: str = "full", commit_thread: bool = False
    ) -> None:
        self.path = str(path)
        self.durability = durability
        self.commit_thread = commit_thread
        self._conn: sqlite3.Connection | None = None
        self._jobs: list[_Job | _Append] = []
        self._flush_scheduled = False
        self._commits: ThreadPoolExecutor | None = None  # the commit thread, while open
        self._commit_flight: asyncio.Future[Outcomes] | None = None  # the commit under way

    # -- lifecycle -------------------------------------------------------------------------

    async def open(self) -> None:
        if self._conn is not None:
            return
        try:
            self._conn = self._connect()
        except sqlite3.Error as err:
            raise StoreError(f"cannot open the store at {self.path}: {err}") from None
        if self.commit_thread:
            self._commits = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store")

    async def close(self) -> None:
        if self._conn is None:
            return
        # Acknowledged work is committed before the file closes.
        while self._commit_flight is not None or self._jobs:
            if self._commit_flight is None:
                self._flush()
            if self._commit_flight is not None:
                await asyncio.wait({self._commit_flight})  # unlike await, never cancels it
        if self._commits is not None:
            self._commits.shutdown(wait=False)  # idle: nothing is left for it
            self._commits = None
        self._conn.close()
        self._conn = None

    def _connect(self) -> sqlite3.Connection:
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        # Not tied to this thread: with commit_thread, commits run on the store's thread (one
        # at a time, so the connection is never used by two threads at once).
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA journal_mode = WAL")
        # FULL: a commit survives power loss; NORMAL: survives a process crash only.
        conn.execute(f"PRAGMA synchronous = {'FULL' if self.durability == 'full' else 'NORMAL'}")
        try:
            conn.create_function(TEXT_KEY_FUNCTION, 1, text_key, deterministic=True)
            _number_events(conn)
            _key_events(conn)
            conn.executescript(SCHEMA)
            conn.execute(CONSENT_INDEX)
            # We are the only process using this file, so leases left by a killed
            # predecessor are stale: release them so those events are sent again now.
            conn.execute("UPDATE deliveries SET lease_until = 0 WHERE lease_until > 0")
        except BaseException:
            conn.close()
            raise
        return conn

    def _flush(self) -> None:
        self._flush_scheduled = False
        if self._commit_flight is not None:  # the commit under way schedules the next
            return
        queued, self._jobs = self._jobs[:MAX_JOBS_PER_COMMIT], self._jobs[MAX_JOBS_PER_COMMIT:]
        if self._jobs:
            self._schedule()
        appends = [job for job in queued if isinstance(job, _Append)]
        group: list[_Job | _Appends] = [_Appends(appends)] if appends else []
        group += [job for job in queued if isinstance(job, _Job)]
        if not group:
            return
        if self._conn is None:
            failure = StoreError("the store is closed")
            for job in group:
                job.fail(failure)
            return
        self._commit(self._conn, group)

    def _commit(self, conn: sqlite3.Connection, group: Sequence[_Job | _Appends]) -> None:
        """Commit ``group`` and answer its callers: on the event loop, where a hit's append
        is cheapest, or on the commit thread, one commit at a time."""
        if self._commits is None:
            answer(self._commit_group(conn, group))
            return
        loop = asyncio.get_running_loop()
        flight = loop.run_in_executor(self._commits, self._commit_group, conn, group)
        flight.add_done_callback(functools.partial(self._committed, group))
        self._commit_flight = flight

    def _committed(
        self, group: Sequence[_Job | _Appends], flight: asyncio.Future[Outcomes]
    ) -> None:
        self._commit_flight = None
        error = None if flight.cancelled() else flight.exception()
        if not flight.cancelled() and error is None:
            answer(flight.result())
        else:  # _commit_group answers its own failures: this is the thread's, not a job's
            log.error(
                "a store commit did not run (%s)", type(error).__name__ if error else "cancelled"
            )
            failure = StoreError("store operation failed; nothing was stored")
            answer([(job, failure) for job in group])
        if self._jobs:
            self._schedule()

    def _schedule(self) -> None:
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _commit_group(self, conn: sqlite3.Connection, jobs: Sequence[_Job | _Appends]) -> Outcomes:
        """Run every job in one transaction; if one fails, redo them one by one. Touches no
        future: the outcomes are answered on the event loop (``answer``).

        The common case costs one BEGIN and one COMMIT for the whole group. A failing job
        (rare: a constraint or a full disk) rolls the group back and each job (each append
        of a batch) is retried in its own transaction, so one bad job cannot fail its
        neighbours.
        """
        try:
            conn.execute("BEGIN IMMEDIATE")
            for job in jobs:
                job.run(conn)
            conn.execute("COMMIT")
        except Exception:  # noqa: BLE001 - any failure: fall back to one job at a time
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            alone = [part for job in jobs for part in job.split()]
            if len(alone) > 1:
                return [outcome for job in alone for outcome in self._commit_group(conn, [job])]
            return [(alone[0], StoreError("store operation failed; nothing was stored"))]
        return [(job, None) for job in jobs]

    async def _submit(self, fn: Callable[[sqlite3.Connection], T], *, current: bool = True) -> T:
        """Run ``fn`` in the next group commit. ``current``: it must see every append
        acknowledged so far (a store that indexes appends later waits for that first)."""
        if current:
            await self._caught_up()
        if self._conn is None:
            raise StoreError("the store is not open")
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._jobs.append(_Job(fn, future))
        self._schedule()
        return await future

    async def _caught_up(self) -> None:
        """Appends are committed before they are acknowledged here: nothing to wait for."""

    # -- operations ------------------------------------------------------------------------

    async def append(self, items: Sequence[tuple[StoredEvent, Sequence[Decision]]]) -> list[bool]:
        if self._conn is None:
            raise StoreError("the store is not open")
        rows: list[EventRow] = []
        for event, decisions in items:
            body, visitor, ip = stored_row(event, decisions)
            rows.append(((event.event_id, event.received_at, body, visitor, ip), decisions))
        future: asyncio.Future[list[bool]] = asyncio.get_running_loop().create_future()
        self._jobs.append(_Append(rows, future))
        self._schedule()
        return await future

    async def claim(
        self, destination: str, limit: int, now: float, lease_seconds: float
    ) -> list[Claimed]:
        def run(conn: sqlite3.Connection) -> list[tuple[bytes, str | None, int]]:
            claimed = conn.execute(
                "UPDATE deliveries SET lease_until = ? WHERE destination = ? AND event IN ("
                " SELECT event FROM deliveries WHERE destination = ? AND status = 'pending'"
                " AND next_at <= ? AND lease_until <= ? ORDER BY next_at LIMIT ?)"
                " RETURNING event, attempts",
                (now + lease_seconds, destination, destination, now, now, limit),
            ).fetchall()
            if not claimed:
                return []
            attempts = dict(claimed)
            marks = ",".join("?" * len(attempts))
            bodies = conn.execute(
                f"SELECT seq, body, ip FROM events WHERE seq IN ({marks})",  # noqa: S608
                list(attempts),
            ).fetchall()
            return [(body, ip, attempts[seq]) for seq, body, ip in bodies]

        rows = await self._submit(run, current=False)  # what is not indexed yet comes next time
        claimed = []
        for start in range(0, len(rows), DECODE_CHUNK):
            if start:
                await asyncio.sleep(0)  # let hits through between chunks of a big claim
            claimed += [
                Claimed(_with_ip(decode_stored(body), ip), tries)
                for body, ip, tries in rows[start : start + DECODE_CHUNK]
            ]
        claimed.sort(key=lambda c: (c.event.time, c.event.event_id))
        return claimed

    async def settle(self, destination: str, settlements: Sequence[Settlement]) -> None:
        # A big batch settles in several jobs, so no single commit holds the loop for long.
        for start in range(0, len(settlements), SETTLE_CHUNK):
            await self._settle(destination, settlements[start : start + SETTLE_CHUNK])

    async def _settle(self, destination: str, settlements: Sequence[Settlement]) -> None:
        def run(conn: sqlite3.Connection) -> None:
            stamp = _now()
            # A delivery cancelled while in flight (consent withdrawn) may still end as sent
            # or dead, but is never queued again.
            conn.executemany(
                "UPDATE deliveries SET status = ?, reason = ?, attempts = ?, next_at = ?,"  # noqa: S608
                f" lease_until = 0, updated_at = ? WHERE destination = ? AND event = {EVENT_SEQ}"
                " AND (status = 'pending' OR (status = 'cancelled' AND ? != 'pending'))",
                [
                    (
                        s.status,
                        s.reason,
                        s.attempts,
                        s.next_at,
                        stamp,
                        destination,
                        *by_event_id(s.event_id),
                        s.status,
                    )
                    for s in settlements
                ],
            )
            if any(s.status != "pending" for s in settlements):
                _forget_ips(conn, [s.event_id for s in settlements if s.status != "pending"])

        await self._submit(run, current=False)  # settles rows it claimed: indexed already

    async def cancel_pending(
        self, visitors: Sequence[str], destinations: Sequence[str], reason: str, now: float
    ) -> int:
        """Cancel the not-yet-sent deliveries of a visitor's events to these destinations."""
        if not visitors or not destinations:
            return 0
        who, where = list(visitors), list(destinations)

        hashes = [text_key(visitor) for visitor in who]
        marks = ",".join("?" * len(who))

        def run(conn: sqlite3.Connection) -> int:
            events = conn.execute(
                f"SELECT seq, event_id FROM events WHERE visitor_hash IN ({marks})"  # noqa: S608
                f" AND visitor IN ({marks})",
                [*hashes, *who],
            ).fetchall()
            if not events:
                return 0
            cancelled = 0
            for start in range(0, len(events), 500):
                chunk = events[start : start + 500]
                cur = conn.execute(
                    "UPDATE deliveries SET status = 'cancelled', reason = ?, updated_at = ?"  # noqa: S608
                    f" WHERE status = 'pending' AND destination IN ({','.join('?' * len(where))})"
                    f" AND event IN ({','.join('?' * len(chunk))})",
                    [reason, now, *where, *(seq for seq, _ in chunk)],
                )
                cancelled += cur.rowcount
                _forget_ips(conn, [event_id for _, event_id in chunk])
            return cancelled

        return await self._submit(run)

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

        await self._submit(run, current=False)

    async def deliveries(self, event_id: str) -> list[DeliveryRow]:
        def run(conn: sqlite3.Connection) -> list[DeliveryRow]:
            rows = conn.execute(
                "SELECT event_id, destination, status, reason, attempts, next_at, updated_at"  # noqa: S608
                f" FROM deliveries WHERE event = {EVENT_SEQ} ORDER BY destination",
                by_event_id(event_id),
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
            row = conn.execute(
                "SELECT body FROM events WHERE event_key = ? AND event_id = ?",
                by_event_id(event_id),
            ).fetchone()
            return row[0] if row else None

        body = await self._submit(run)
        return decode_stored(body) if body is not None else None

    async def purge(self, before: float) -> Purged:
        # A job per chunk, so that hits and the dispatcher's commits go on between them.
        # current=False: what the indexer has not filed yet is not old.
        events = deliveries = attempts = 0
        after: int | None = 0
        while after is not None:
            job = functools.partial(_purge_events, before=before, after=after)
            (removed, removed_deliveries), after = await self._submit(job, current=False)
            events, deliveries = events + removed, deliveries + removed_deliveries
        after = 0
        while after is not None:
            job = functools.partial(_purge_attempts, before=before, after=after)
            removed, after = await self._submit(job, current=False)
            attempts += removed
        return Purged(events, deliveries, attempts)

    async def attempts(self, destination: str, limit: int = 50) -> list[Attempt]:
        def run(conn: sqlite3.Connection) -> list[Attempt]:
            rows = conn.execute(
                "SELECT destination, at, events, http_status, verdict, reason, latency_ms"
                " FROM attempts WHERE destination = ? ORDER BY at DESC LIMIT ?",
                (destination, limit),
            ).fetchall()
            return [Attempt(*row) for row in rows]

        return await self._submit(run)


# Retention (``purge``): rows are appended in arrival order, so the oldest come first by
# rowid, and the first row young enough to keep ends a pass; no index on time is needed.
EXPIRED_QUERIES = {
    "events": "SELECT rowid, received_at, seq FROM events",
    "attempts": "SELECT rowid, at, rowid FROM attempts",
}


def _expired(
    conn: sqlite3.Connection, table: str, before: float, after: int
) -> tuple[list[Any], int | None]:
    """The keys of ``table``'s rows older than ``before`` in the chunk after rowid ``after``,
    and where the next chunk starts (None: the pass is done)."""
    rows = conn.execute(
        f"{EXPIRED_QUERIES[table]} WHERE rowid > ? ORDER BY rowid LIMIT ?", (after, PURGE_CHUNK)
    ).fetchall()
    expired = [key for _, at, key in rows if at < before]
    done = len(rows) < PURGE_CHUNK or len(expired) < len(rows)
    return expired, None if done else rows[-1][0]


def _purge_events(
    conn: sqlite3.Connection, *, before: float, after: int
) -> tuple[tuple[int, int], int | None]:
    """One chunk: delete the old events and their deliveries, except events with a delivery
    pending (looked up in the same transaction: a replay may have queued one again)."""
    expired, next_chunk = _expired(conn, "events", before, after)
    if not expired:
        return (0, 0), next_chunk
    marks = ",".join("?" * len(expired))
    pending = {
        row[0]
        for row in conn.execute(
            f"SELECT event FROM deliveries WHERE status = 'pending' AND event IN ({marks})",  # noqa: S608
            expired,
        )
    }
    gone = [seq for seq in expired if seq not in pending]
    if not gone:
        return (0, 0), next_chunk
    marks = ",".join("?" * len(gone))
    deliveries = conn.execute(f"DELETE FROM deliveries WHERE event IN ({marks})", gone)  # noqa: S608
    events = conn.execute(f"DELETE FROM events WHERE seq IN ({marks})", gone)  # noqa: S608
    return (events.rowcount, deliveries.rowcount), next_chunk


def _purge_attempts(
    conn: sqlite3.Connection, *, before: float, after: int
) -> tuple[int, int | None]:
    expired, next_chunk = _expired(conn, "attempts", before, after)
    if not expired:
        return 0, next_chunk
    marks = ",".join("?" * len(expired))
    deleted = conn.execute(f"DELETE FROM attempts WHERE rowid IN ({marks})", expired)  # noqa: S608
    return deleted.rowcount, next_chunk


def stored_row(
    event: StoredEvent, decisions: Sequence[Decision]
) -> tuple[bytes, str | None, str | None]:
    """The body (never with the full IP), the visitor key and the IP column for an event."""
    pending = any(d.status == "pending" for d in decisions)
    ip = event.client.ip
    if ip is not None:
        event = msgspec.structs.replace(
            event, client=msgspec.structs.replace(event.client, ip=None)
        )
    if not pending:
        return encode_stored(event), None, None
    return encode_stored(event), visitor_key(event.ids), ip


def _number_events(conn: sqlite3.Connection) -> None:
    """Bring a store made before events were numbered to ``SCHEMA``'s layout, once.

    Each event's number is its rowid, which is its arrival order; each delivery keeps its
    rowid (the dashboard reads arrival order from it) and is keyed by its event's number.
    Either earlier key of deliveries is taken, ``(destination, event_id)`` or ``(event_id,
    destination)``, and columns added since are filled in (NULL, or their defaults). The
    old tables go with their indexes: ``SCHEMA`` and the dashboard make theirs again (the
    old index by event_id is not made again). One transaction: all or nothing.
    """
    event_columns = {row[1] for row in conn.execute("PRAGMA table_info(events)")}
    delivery_columns = {row[1] for row in conn.execute("PRAGMA table_info(deliveries)")}
    if not event_columns or "seq" in event_columns:
        return  # a new store (SCHEMA makes it), or numbered already
    if "event_id" not in event_columns or (
        delivery_columns and not {"destination", "event_id"} <= delivery_columns
    ):
        raise StoreError("the store's tables are not ones capi-edge made; not changing them")
    log.warning("numbering the store's events and rekeying its deliveries (once)")
    kept = [c for c in UNNUMBERED_DELIVERY_COLUMNS if c in delivery_columns]
    conn.execute("BEGIN IMMEDIATE")
    try:
        _copy_events(conn, "rowid", event_columns)
        if delivery_columns:  # a store with events only has no deliveries to rekey
            conn.execute("ALTER TABLE deliveries RENAME TO deliveries_unnumbered")
            conn.execute(DELIVERIES_TABLE)
            conn.execute(
                f"INSERT INTO deliveries (rowid, event, {', '.join(kept)})"  # noqa: S608
                f" SELECT d.rowid, e.seq, {', '.join('d.' + c for c in kept)}"
                " FROM deliveries_unnumbered AS d JOIN events AS e ON e.event_id = d.event_id"
                " ORDER BY d.rowid"
            )
            conn.execute("DROP TABLE deliveries_unnumbered")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _key_events(conn: sqlite3.Connection) -> None:
    """Bring a store whose events were indexed by their texts to ``SCHEMA``'s layout, once.

    Their event_ids had a UNIQUE index of their own, which only a new table drops: the rows
    are copied, numbers (``seq``) kept, keys computed on the way. Indexes of the old table
    go with it; ``SCHEMA`` and ``CONSENT_INDEX`` make the new ones. One transaction.
    """
    columns = {row[1] for row in conn.execute("PRAGMA table_info(events)")}
    if not columns or "event_key" in columns:
        return  # a new store (SCHEMA makes it), or keyed already
    log.warning("indexing the store's events by integer keys (once)")
    conn.execute("BEGIN IMMEDIATE")
    try:
        _copy_events(conn, "seq", columns)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _copy_events(conn: sqlite3.Connection, number: str, columns: set[str]) -> None:
    """Copy the events table into ``EVENTS_TABLE``'s layout, inside the caller's transaction.

    ``number`` is the old column that numbers the events (kept as ``seq``); of the other
    columns, the ones the old table lacks (``columns`` are the ones it has) are NULL; the
    keys are computed on the way. The old table goes, and its indexes with it.
    """
    received_at, body, visitor, ip = (
        c if c in columns else "NULL" for c in UNNUMBERED_EVENT_COLUMNS
    )
    conn.execute("ALTER TABLE events RENAME TO events_old")
    conn.execute(EVENTS_TABLE)
    conn.execute(
        "INSERT INTO events (seq, event_id, received_at, body, visitor, ip, visitor_hash,"  # noqa: S608
        f" event_key) SELECT {number}, event_id, {received_at}, {body}, {visitor}, {ip},"
        f" {TEXT_KEY_FUNCTION}({visitor}), {TEXT_KEY_FUNCTION}(event_id)"
        f" FROM events_old ORDER BY {number}"
    )
    conn.execute("DROP TABLE events_old")


def _with_ip(event: StoredEvent, ip: str | None) -> StoredEvent:
    if ip is None:
        return event
    return msgspec.structs.replace(event, client=msgspec.structs.replace(event.client, ip=ip))


def _forget_ips(conn: sqlite3.Connection, event_ids: Sequence[str]) -> None:
    """Drop the full IP (and the visitor key) of events that have no pending delivery left."""
    for start in range(0, len(event_ids), LOOKUP_CHUNK):
        chunk = event_ids[start : start + LOOKUP_CHUNK]
        marks = ",".join("?" * len(chunk))
        conn.execute(FORGET_IPS.format(marks=marks), [*(text_key(i) for i in chunk), *chunk])


def _now() -> float:
    import time

    return time.time()
