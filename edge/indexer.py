"""The indexer: applies the hits journal to the SQLite store, in order, exactly once.

``capi-edge serve`` starts it as a process of its own (``edge.store.journaled``), so the
SQLite work of a hit (random B-tree pages for its event_id and deliveries) runs beside the
HTTP process instead of inside it, and in batches of hundreds of events, where those pages
are shared, instead of one group commit's worth.

Exactly once: a batch is read and applied inside one write transaction that also moves the
position (``journal_applied``), so a crash at any point leaves either the batch and its
position or neither, and two indexers (a dying one and its replacement) cannot apply a
record twice. A repeated event_id is still stored once (``insert_events``). Segments the
store holds entirely are deleted after the commit.

Started by the edge, it stops when the edge closes its stdin, or dies (the system closes it
then), after applying what the journal holds: a killed edge leaves no indexer behind.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sqlite3
import sys
import threading
from pathlib import Path

from edge.store import Decision
from edge.store.journal_reader import JournalReader
from edge.store.journaled import CURSOR_TABLE, applied_seq, decode_record, journal_directory
from edge.store.sqlite import BUSY_TIMEOUT_MS, insert_events

log = logging.getLogger("capi_edge.indexer")

MAX_RECORDS_PER_BATCH = 1_000  # a record is one hit batch, usually one event
MAX_BYTES_PER_BATCH = 4 * 1024 * 1024
MAX_EVENTS_PER_BATCH = 1_000  # bounds how long a batch holds the write lock (~25 ms)
IDLE_POLL_SECONDS = 0.002  # how soon a new record is noticed when there was nothing to do
# After a batch that did not fill up, let records gather this long: per event, a batch of
# 500 costs less than half the CPU of a batch of 16 (the B-tree pages it writes are shared).
BATCH_LINGER_SECONDS = 0.2
INDEXER_NICENESS = 10
ERROR_BACKOFF_SECONDS = (0.1, 0.5, 1.0, 5.0)


class Indexer:
    def __init__(self, database: str | Path, *, durability: str = "full") -> None:
        self.database = str(database)
        self.reader = JournalReader(journal_directory(database))
        # one thread at a time, not always the one that opened it (tests drain from a thread)
        self.conn = sqlite3.connect(self.database, isolation_level=None, check_same_thread=False)
        self.conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        self.conn.execute("PRAGMA journal_mode = WAL")
        # The journal's segments are deleted once applied: the SQLite commit must be as
        # durable as the journal was.
        self.conn.execute(f"PRAGMA synchronous = {'FULL' if durability == 'full' else 'NORMAL'}")
        self.conn.execute(CURSOR_TABLE)
        self.position = applied_seq(self.conn)

    def close(self) -> None:
        self.reader.close()
        self.conn.close()

    def apply_batch(self) -> int:
        """Apply the next batch of records; how many events it held (0: nothing new)."""
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            after = applied_seq(conn)  # read under the write lock: another indexer may have run
            records = self.reader.read(after, MAX_RECORDS_PER_BATCH, MAX_BYTES_PER_BATCH)
            if not records:
                conn.execute("ROLLBACK")
                self.position = after
                return 0
            rows = []
            last = after
            for seq, payload in records:
                decoded = decode_record(payload)
                if rows and len(rows) + len(decoded) > MAX_EVENTS_PER_BATCH:
                    break
                rows += [
                    (
                        (r.event_id, r.received_at, r.body, r.visitor, r.ip),
                        [Decision(d, s, why) for d, s, why in r.decisions],  # type: ignore[arg-type]
                    )
                    for r in decoded
                ]
                last = seq
            if rows:
                insert_events(conn, rows)
            conn.execute(
                "INSERT INTO journal_applied (id, seq) VALUES (1, ?)"
                " ON CONFLICT (id) DO UPDATE SET seq = excluded.seq",
                (last,),
            )
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        self.position = last
        self.reader.release(last)
        return len(rows)

    def drain(self) -> int:
        """Apply everything the journal holds now; how many events."""
        total = 0
        while applied := self.apply_batch():
            total += applied
        return total

    def run(self, *, supervised: bool = False) -> None:
        """Apply records as they come until asked to stop, then drain.

        Supervised (started by the edge), it stops when its stdin closes: the edge closes it
        to stop it, and the system closes it when the edge dies, however it dies. It then
        ignores SIGINT and SIGTERM, which a terminal or systemd sends to the whole group:
        the edge decides when its indexer stops. On its own, SIGTERM or SIGINT stop it.
        """
        stop = threading.Event()
        if supervised:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            threading.Thread(target=_stop_at_eof, args=(stop,), daemon=True).start()
        else:
            for signum in (signal.SIGINT, signal.SIGTERM):
                signal.signal(signum, lambda *_: stop.set())
        failures = 0
        while not stop.is_set():
            if not self.reader.pending(self.position):  # no write lock taken to find out
                stop.wait(IDLE_POLL_SECONDS)
                continue
            try:
                applied = self.apply_batch()
                failures = 0
            except sqlite3.Error as err:
                # The journal keeps the records: log, wait, try again (a full disk, a lock).
                delay = ERROR_BACKOFF_SECONDS[min(failures, len(ERROR_BACKOFF_SECONDS) - 1)]
                failures += 1
                log.error("indexing failed (%s); retrying in %.1f s", err, delay)
                stop.wait(delay)
                continue
            if applied and applied < MAX_EVENTS_PER_BATCH:
                stop.wait(BATCH_LINGER_SECONDS)
            elif not applied:  # another indexer took them
                stop.wait(IDLE_POLL_SECONDS)
        self.drain()


def _stop_at_eof(stop: threading.Event) -> None:
    with contextlib.suppress(OSError, ValueError):
        while sys.stdin.buffer.read(4096):
            pass
    stop.set()


def run_indexer(database: str, *, durability: str = "full", supervised: bool = False) -> int:
    """``capi-edge indexer``: run until asked to stop (see ``Indexer.run``), then drain."""
    if supervised:
        # The edge answers hits; filing them can trail by a moment when both want the CPU.
        os.nice(INDEXER_NICENESS)
    indexer = Indexer(database, durability=durability)
    try:
        indexer.run(supervised=supervised)
    finally:
        indexer.close()
    return 0


__all__ = ["Indexer", "run_indexer"]
