"""What the dashboard asks of the store: figures for the pills, samples for the quality page,
dead letters and their replay, and the vault's encrypted destination tables.

A mixin for ``SQLiteStore`` (its ``_submit`` runs each query as a job of the group commit).
The dashboard's own table and one partial index are created on first use, so the hot path's
schema is untouched: the index covers dead deliveries only, which costs nothing per hit.
Every query is bounded: recent windows are found by rowid (rows are appended in time order),
never by scanning the whole deliveries table.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from edge.schema import StoredEvent, decode_stored

from . import Attempt, Store
from .keys import EVENT_SEQ, by_event_id

T = TypeVar("T")

ADMIN_SCHEMA = """
CREATE TABLE IF NOT EXISTS admin_destinations (
    name       TEXT PRIMARY KEY,
    body       BLOB NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS deliveries_dead
    ON deliveries (destination, updated_at) WHERE status = 'dead';
"""
MAX_REQUEUE = 1_000
DEAD_LETTERS_QUERY = (
    "SELECT d.event_id, d.destination, d.reason, d.attempts, d.updated_at, e.body"
    " FROM deliveries AS d LEFT JOIN events AS e ON e.seq = d.event"
    " WHERE {where} ORDER BY d.updated_at DESC LIMIT ? OFFSET ?"
)


@dataclass(frozen=True, slots=True)
class DeadLetter:
    event_id: str
    destination: str
    reason: str
    attempts: int
    updated_at: float
    event: StoredEvent | None


class AdminStore(Store, Protocol):
    """The store as the dashboard uses it (``SQLiteStore`` implements it)."""

    async def config_blobs(self) -> dict[str, bytes]: ...

    async def put_config_blob(self, name: str, body: bytes, now: float) -> None: ...

    async def delete_config_blobs(self, names: Sequence[str] | None = None) -> None: ...

    async def replace_config_blobs(self, blobs: dict[str, bytes], now: float) -> None: ...

    async def recent_attempts(
        self, destination: str, since: float, limit: int
    ) -> list[Attempt]: ...

    async def delivery_counts_since(self, since: float) -> dict[str, dict[str, int]]: ...

    async def recent_events(self, destination: str, limit: int) -> list[StoredEvent]: ...

    async def dead_letters(
        self, destination: str | None, reason: str | None, limit: int, offset: int = 0
    ) -> tuple[list[DeadLetter], int]: ...

    async def dead_ids(self, destination: str, reason: str | None, limit: int) -> list[str]: ...

    async def requeue(self, destination: str, event_ids: Sequence[str], now: float) -> int: ...


class AdminQueries:
    """Mixed into ``SQLiteStore``; every method runs on the store's connection."""

    _admin_schema_on: sqlite3.Connection | None = None

    if TYPE_CHECKING:  # provided by SQLiteStore

        async def _submit(self, fn: Callable[[sqlite3.Connection], T]) -> T: ...

    def _admin_schema(self, conn: sqlite3.Connection) -> None:
        if self._admin_schema_on is not conn:  # once per connection (":memory:" reopens empty)
            for statement in ADMIN_SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            self._admin_schema_on = conn

    async def _admin(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        def run(conn: sqlite3.Connection) -> T:
            self._admin_schema(conn)
            return fn(conn)

        return await self._submit(run)

    # -- the vault's destination tables ---------------------------------------------------

    async def config_blobs(self) -> dict[str, bytes]:
        def run(conn: sqlite3.Connection) -> dict[str, bytes]:
            return dict(conn.execute("SELECT name, body FROM admin_destinations").fetchall())

        return await self._admin(run)

    async def put_config_blob(self, name: str, body: bytes, now: float) -> None:
        def run(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO admin_destinations (name, body, updated_at) VALUES (?, ?, ?)"
                " ON CONFLICT (name) DO UPDATE SET body = excluded.body,"
                " updated_at = excluded.updated_at",
                (name, body, now),
            )

        await self._admin(run)

    async def delete_config_blobs(self, names: Sequence[str] | None = None) -> None:
        def run(conn: sqlite3.Connection) -> None:
            if names is None:
                conn.execute("DELETE FROM admin_destinations")
            else:
                conn.executemany(
                    "DELETE FROM admin_destinations WHERE name = ?", [(n,) for n in names]
                )

        await self._admin(run)

    async def replace_config_blobs(self, blobs: dict[str, bytes], now: float) -> None:
        """All of the vault's tables at once (a config apply, a key rotation)."""

        def run(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM admin_destinations")
            conn.executemany(
                "INSERT INTO admin_destinations (name, body, updated_at) VALUES (?, ?, ?)",
                [(name, body, now) for name, body in blobs.items()],
            )

        await self._admin(run)

    # -- figures ---------------------------------------------------------------------------

    async def recent_attempts(self, destination: str, since: float, limit: int) -> list[Attempt]:
        """The newest attempts first, at most ``limit``, none older than ``since``."""

        def run(conn: sqlite3.Connection) -> list[Attempt]:
            rows = conn.execute(
                "SELECT destination, at, events, http_status, verdict, reason, latency_ms"
                " FROM attempts WHERE destination = ? AND at >= ? ORDER BY at DESC LIMIT ?",
                (destination, since, limit),
            ).fetchall()
            return [Attempt(*row) for row in rows]

        return await self._admin(run)

    async def delivery_counts_since(self, since: float) -> dict[str, dict[str, int]]:
        """destination -> status -> deliveries created since ``since``."""

        def run(conn: sqlite3.Connection) -> dict[str, dict[str, int]]:
            start = _first_rowid_since(conn, since)
            result: dict[str, dict[str, int]] = {}
            if start is None:
                return result
            for destination, status, n in conn.execute(
                "SELECT destination, status, COUNT(*) FROM deliveries WHERE rowid >= ?"
                " GROUP BY 1, 2",
                (start,),
            ):
                result.setdefault(destination, {})[status] = n
            return result

        return await self._admin(run)

    async def recent_events(self, destination: str, limit: int) -> list[StoredEvent]:
        """The newest events routed to ``destination`` (not skipped), newest first."""

        def run(conn: sqlite3.Connection) -> list[bytes]:
            # "+d.destination" keeps the planner on a rowid-descending scan that stops
            # after ``limit`` rows instead of sorting every delivery of the destination.
            rows = conn.execute(
                "SELECT e.body FROM deliveries AS d JOIN events AS e ON e.seq = d.event"
                " WHERE +d.destination = ? AND d.status != 'skipped'"
                " ORDER BY d.rowid DESC LIMIT ?",
                (destination, limit),
            ).fetchall()
            return [row[0] for row in rows]

        return [decode_stored(body) for body in await self._admin(run)]

    # -- dead letters ----------------------------------------------------------------------

    async def dead_letters(
        self, destination: str | None, reason: str | None, limit: int, offset: int = 0
    ) -> tuple[list[DeadLetter], int]:
        """A page of dead deliveries, newest first, and how many match in all."""
        where, params = _dead_filter(destination, reason)

        def run(conn: sqlite3.Connection) -> tuple[list[tuple[Any, ...]], int]:
            total = conn.execute(
                f"SELECT COUNT(*) FROM deliveries AS d WHERE {where}",  # noqa: S608
                params,
            ).fetchone()[0]
            # ``where`` is built from fixed clauses; the values are parameters
            rows = conn.execute(
                DEAD_LETTERS_QUERY.format(where=where), [*params, limit, offset]
            ).fetchall()
            return rows, total

        rows, total = await self._admin(run)
        letters = [
            DeadLetter(
                event_id, dest, why, attempts, updated, decode_stored(body) if body else None
            )
            for event_id, dest, why, attempts, updated, body in rows
        ]
        return letters, total

    async def dead_ids(self, destination: str, reason: str | None, limit: int) -> list[str]:
        where, params = _dead_filter(destination, reason)

        def run(conn: sqlite3.Connection) -> list[str]:
            rows = conn.execute(
                f"SELECT d.event_id FROM deliveries AS d WHERE {where}"  # noqa: S608
                " ORDER BY d.updated_at DESC LIMIT ?",
                [*params, limit],
            ).fetchall()
            return [row[0] for row in rows]

        return await self._admin(run)

    async def requeue(self, destination: str, event_ids: Sequence[str], now: float) -> int:
        """Dead deliveries back to pending, due now, attempts from zero. Returns how many."""
        ids = list(event_ids)[:MAX_REQUEUE]
        if not ids:
            return 0

        def run(conn: sqlite3.Connection) -> int:
            cur = conn.executemany(
                "UPDATE deliveries SET status = 'pending', reason = 'replayed', attempts = 0,"  # noqa: S608
                " next_at = ?, lease_until = 0, updated_at = ?"
                " WHERE destination = ? AND status = 'dead'"
                f" AND event = {EVENT_SEQ}",
                [(now, now, destination, *by_event_id(event_id)) for event_id in ids],
            )
            return cur.rowcount

        return await self._admin(run)


def _dead_filter(destination: str | None, reason: str | None) -> tuple[str, list[Any]]:
    where = ["d.status = 'dead'"]
    params: list[Any] = []
    if destination:
        where.append("d.destination = ?")
        params.append(destination)
    if reason:
        where.append("instr(lower(d.reason), ?) > 0")
        params.append(reason.lower())
    return " AND ".join(where), params


def _first_rowid_since(conn: sqlite3.Connection, since: float) -> int | None:
    """The first deliveries rowid created at or after ``since``, by binary search.

    Rows are appended in arrival order, so ``created_at`` grows with the rowid; a few
    point lookups replace a scan of the whole table.
    """
    lo, hi = conn.execute("SELECT MIN(rowid), MAX(rowid) FROM deliveries").fetchone()
    if lo is None:
        return None
    last = conn.execute("SELECT created_at FROM deliveries WHERE rowid = ?", (hi,)).fetchone()
    if last[0] < since:
        return None
    while lo < hi:
        mid = (lo + hi) // 2
        row = conn.execute(
            "SELECT rowid, created_at FROM deliveries WHERE rowid >= ? ORDER BY rowid LIMIT 1",
            (mid,),
        ).fetchone()
        if row[1] >= since:
            hi = mid
        else:
            lo = row[0] + 1
    return int(lo)
