"""The store as ``capi-edge serve`` runs it: hits acknowledged from a journal, indexed apart.

Writing a hit into indexed SQLite tables costs far more CPU than the rest of the hit: every
event_id lands on a random page of two B-trees, and each group commit rewrites those pages.
``JournaledStore`` takes that work off the process that answers HTTP. ``append`` writes the
batch as one record to an append-only journal (``edge.store.journal``: one write and one
fdatasync shared by every hit of the moment) and acknowledges once it is durable; the
indexer (``edge.indexer``, a process of its own, started and watched here) applies the
journal to the SQLite store in order and in large batches, and keeps its position in the
same transaction, so each record is applied exactly once whatever stops when.

Everything else is the SQLite store's: the dispatcher claims what the indexer has filed,
and a read that must see every acknowledged hit (an event's status, a consent withdrawal,
the dashboard) first waits until the indexer has reached the journal's end as it was when
the read began (``_caught_up``). Those group commits run on a thread of their own, not on
the event loop as the direct store's do: the indexer holds SQLite's write lock for up to
a batch at a time, and a claim or a settlement that waited for it there, or for its own
fsync, would hold up every hit (measured with the dispatcher running: commits of 5 ms at
the median and 44 ms at the 99th percentile, a quarter of the loop's time). The indexer
trails by up to a fifth of a second (it lets records gather into large batches:
edge.indexer).

What is not known when the hit is acknowledged: whether its event_id was seen before. The
indexer still stores a repeated event_id once; ``append`` guesses from the event_ids this
process acknowledged lately (the dashboard's debug view shows the guess).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import msgspec

from edge.errors import StoreError
from edge.schema import StoredEvent

from . import Decision
from .journal import Journal
from .sqlite import SQLiteStore, stored_row

log = logging.getLogger("capi_edge.store")

CAUGHT_UP_TIMEOUT_SECONDS = 10.0  # a read waits this long for the indexer, then fails (503)
CAUGHT_UP_POLL_SECONDS = 0.002
INDEXER_STOP_TIMEOUT_SECONDS = 30.0  # it drains the journal before it exits
INDEXER_RESTART_DELAY_SECONDS = 1.0
RECENT_IDS = 100_000  # event_ids remembered for the "seen before?" guess
CURSOR_TABLE = """
CREATE TABLE IF NOT EXISTS journal_applied (
    id  INTEGER PRIMARY KEY CHECK (id = 1),
    seq INTEGER NOT NULL
)
"""


class JournalRow(msgspec.Struct, array_like=True, frozen=True):
    """One event as the journal carries it: the events row and its routing decisions."""

    event_id: str
    received_at: float
    body: bytes
    visitor: str | None
    ip: str | None
    decisions: list[tuple[str, str, str]]  # (destination, status, reason)


_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder(list[JournalRow]).decode


def encode_record(items: Sequence[tuple[StoredEvent, Sequence[Decision]]]) -> bytes:
    rows = []
    for event, decisions in items:
        body, visitor, ip = stored_row(event, decisions)
        rows.append(
            JournalRow(
                event.event_id,
                event.received_at,
                body,
                visitor,
                ip,
                [(d.destination, d.status, d.reason) for d in decisions],
            )
        )
    return _encode(rows)


def decode_record(payload: bytes) -> list[JournalRow]:
    return _decode(payload)


def journal_directory(database: str | Path) -> Path:
    """Where a store's journal lives: next to its database file."""
    return Path(f"{database}.journal")


def applied_seq(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT seq FROM journal_applied WHERE id = 1").fetchone()
    return int(row[0]) if row else 0


class JournaledStore(SQLiteStore):
    def __init__(
        self, path: str | Path, *, durability: str = "full", start_indexer: bool = True
    ) -> None:
        if str(path) == ":memory:":
            raise StoreError("a journaled store needs a database file, not :memory:")
        # Commits on a thread: the indexer holds the write lock a batch at a time (above).
        super().__init__(path, durability=durability, commit_thread=True)
        self.journal_dir = journal_directory(path)
        self.start_indexer = start_indexer  # tests drive edge.indexer themselves
        self._journal: Journal | None = None
        self._written = 0  # the last seq this process appended
        self._recent: dict[str, None] = {}
        self._indexer: asyncio.subprocess.Process | None = None
        self._watch: asyncio.Task[None] | None = None
        self._stopping = False
        self._reader: sqlite3.Connection | None = None  # _caught_up's reads, on the loop

    # -- lifecycle -------------------------------------------------------------------------

    async def open(self) -> None:
        if self._conn is not None:
            return
        await super().open()
        assert self._conn is not None
        self._conn.execute(CURSOR_TABLE)
        journal = Journal(self.journal_dir, sync=self.durability == "full")
        # Read under the write lock: an indexer still running from before is not halfway
        # through moving the position past records the journal may have lost unsynced.
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            applied = applied_seq(self._conn)
        finally:
            self._conn.execute("COMMIT")
        journal.open(after=applied)
        self._journal = journal
        self._written = journal.last_seq
        self._reader = sqlite3.connect(self.path, isolation_level=None)
        if self.start_indexer:
            self._indexer = await self._spawn_indexer()
            self._watch = asyncio.create_task(self._supervise())

    async def close(self) -> None:
        if self._journal is None:
            await super().close()
            return
        self._stopping = True
        journal, self._journal = self._journal, None
        await journal.close()  # every acknowledged hit is in the journal file now
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
        if self._indexer is not None:
            await self._stop_indexer(self._indexer)  # it applies the rest before it exits
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        await super().close()

    async def _spawn_indexer(self) -> asyncio.subprocess.Process:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "edge",
            "indexer",
            "--database",
            self.path,
            "--durability",
            self.durability,
            "--supervised",
            stdin=asyncio.subprocess.PIPE,  # closing it stops the indexer (so does our death)
        )
        log.info("indexer started (pid %d)", process.pid)
        return process

    async def _supervise(self) -> None:
        """Start the indexer again if it dies: the journal keeps what it has not applied."""
        while not self._stopping and self._indexer is not None:
            code = await self._indexer.wait()
            if self._stopping:
                return
            log.error("the indexer exited with %s; starting it again", code)
            await asyncio.sleep(INDEXER_RESTART_DELAY_SECONDS)
            self._indexer = await self._spawn_indexer()

    async def _stop_indexer(self, process: asyncio.subprocess.Process) -> None:
        if process.returncode is not None:
            return
        if process.stdin is not None:
            process.stdin.close()
        try:
            await asyncio.wait_for(process.wait(), INDEXER_STOP_TIMEOUT_SECONDS)
        except TimeoutError:
            log.error("the indexer did not stop in time; killed (the journal keeps the rest)")
            process.kill()
            await process.wait()

    # -- the journaled write ----------------------------------------------------------------

    async def append(self, items: Sequence[tuple[StoredEvent, Sequence[Decision]]]) -> list[bool]:
        if self._journal is None:
            raise StoreError("the store is not open")
        record = encode_record(items)
        seq = await self._journal.append(record)
        self._written = max(self._written, seq)
        return [self._first_seen(event.event_id) for event, _ in items]

    def _first_seen(self, event_id: str) -> bool:
        recent = self._recent
        if event_id in recent:
            return False
        recent[event_id] = None
        if len(recent) > RECENT_IDS:
            del recent[next(iter(recent))]
        return True

    async def _caught_up(self) -> None:
        """Wait until the indexer has applied everything acknowledged before this call."""
        target = self._written
        if self._reader is None or target == 0:
            return
        deadline = time.monotonic() + CAUGHT_UP_TIMEOUT_SECONDS
        while applied_seq(self._reader) < target:
            if time.monotonic() > deadline:
                raise StoreError("the indexer is behind; the store cannot answer yet")
            await asyncio.sleep(CAUGHT_UP_POLL_SECONDS)


__all__ = [
    "JournalRow",
    "JournaledStore",
    "applied_seq",
    "decode_record",
    "encode_record",
    "journal_directory",
]
