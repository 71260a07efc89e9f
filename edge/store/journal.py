"""An append-only, crash-safe journal of opaque records: group-committed writes, ordered reads.

The process that answers HTTP appends each accepted batch as one record and acknowledges it
once the record is durable (``Journal``); the indexer, a process of its own, reads the records
in order (``JournalReader``). Nothing here knows what a record holds.

The files' layout, and why a failed flush leaves a gap, are in ``edge.store.segments``;
the reading end is ``edge.store.journal_reader``.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import logging
import os
import socket
import subprocess
import sys
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from edge import syncer as helper_protocol
from edge.errors import StoreError

from .segments import (
    DIRECTORY_MODE,
    MAX_RECORD_BYTES,
    SEGMENT_BYTES,
    SEGMENT_MODE,
    frames,
    fsync_directory,
    reason,
    segment_firsts,
    segment_name,
    valid_end,
)

log = logging.getLogger("capi_edge.store")

# Flushes written and waiting for their sync at once. More would let a busy moment's records
# go to disk while the loop answers the hits before them, but each extra flush costs the loop
# more than that overlap gains (docs/benchmarks.md); the pipeline is kept, and tested with 3.
MAX_SYNCS_IN_FLIGHT = 1
# The sync helper's command; the socket's descriptor is appended.
SYNC_HELPER_COMMAND = [sys.executable, "-m", "edge.syncer"]
HELPER_EXIT_SECONDS = 2.0  # for the helper to exit once the journal closes its end
REPLY_BYTES = 4096

Reply = Callable[[int], None]  # a sync's outcome: 0, or the errno


class _Flight:
    """One flush: its records written, its sync awaited."""

    __slots__ = ("first", "waiters", "start", "failed")

    def __init__(self, first: int, waiters: list[asyncio.Future[int]], start: int) -> None:
        self.first = first
        self.waiters = waiters
        self.start = start  # where its frames begin in the segment
        self.failed = False


class _ThreadSyncer:
    """Syncs on one background thread, in order. The fallback when no helper process runs."""

    def __init__(self, reply: Reply) -> None:
        self._reply = reply
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="journal")
        self._segment = helper_protocol.HeldSegment()  # used on the thread only

    def sync(self, new_segment: tuple[int, int] | None) -> None:
        loop = asyncio.get_running_loop()
        if new_segment is not None:
            new_segment = (os.dup(new_segment[0]), os.dup(new_segment[1]))
        job = loop.run_in_executor(self._executor, self._sync, new_segment)
        job.add_done_callback(self._done)

    def _sync(self, new_segment: tuple[int, int] | None) -> int:
        if new_segment is None:
            return self._segment.sync()
        return self._segment.adopt(*new_segment)

    def _done(self, job: asyncio.Future[int]) -> None:
        if job.cancelled():
            self._reply(errno.ECANCELED)
        elif job.exception() is not None:
            self._reply(errno.EIO)
        else:
            self._reply(job.result())

    def close(self) -> None:
        self._executor.submit(self._close_segment)
        self._executor.shutdown(wait=False)  # the jobs queued still run

    def _close_segment(self) -> None:
        with contextlib.suppress(OSError):
            self._segment.close()


class _ProcessSyncer:
    """Syncs in a helper process (``edge.syncer``), in order; ``died`` is called if it goes."""

    def __init__(self, reply: Reply, died: Callable[[], None]) -> None:
        self._reply = reply
        self._died = died
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self.process = subprocess.Popen(
                [*SYNC_HELPER_COMMAND, str(theirs.fileno())],
                pass_fds=[theirs.fileno()],
                stdin=subprocess.DEVNULL,
            )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        ours.setblocking(False)
        self._channel: socket.socket | None = ours
        self._loop: asyncio.AbstractEventLoop | None = None

    def sync(self, new_segment: tuple[int, int] | None) -> None:
        channel = self._channel
        assert channel is not None, "the journal stops asking once the helper is lost"
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
            self._loop.add_reader(channel.fileno(), self._read)
        try:
            if new_segment is None:
                channel.send(helper_protocol.SYNC)
            else:
                socket.send_fds(channel, [helper_protocol.NEW_SEGMENT], list(new_segment))
        except OSError as err:  # its end is closed, or (never with few in flight) full
            self._lost(f"cannot reach it ({reason(err)})")

    def _read(self) -> None:
        channel = self._channel
        while channel is not None:
            try:
                statuses = channel.recv(REPLY_BYTES)
            except BlockingIOError:
                return
            except OSError as err:
                self._lost(f"its socket failed ({reason(err)})")
                return
            if not statuses:
                self._lost(f"it exited ({self.process.poll()})")
                return
            for status in statuses:
                self._reply(status)
            channel = self._channel

    def _lost(self, why: str) -> None:
        log.warning("journal sync helper (pid %d): %s; syncing on a thread", self.process.pid, why)
        self._shut()
        with contextlib.suppress(OSError):
            self.process.kill()  # if it still runs, it is no longer asked anything
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(HELPER_EXIT_SECONDS)  # at once, unless stuck in the disk
        self._died()

    def _shut(self) -> None:
        channel, self._channel = self._channel, None
        if channel is None:
            return
        if self._loop is not None:
            self._loop.remove_reader(channel.fileno())
        channel.close()  # the helper sees the end and exits

    def close(self) -> None:
        """Let the helper go: it exits at once when its socket closes (nothing is in flight
        by now), so this blocks the loop for a moment, at shutdown only."""
        self._shut()
        try:
            self.process.wait(HELPER_EXIT_SECONDS)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class Journal:
    """The writing end. One per directory (``open`` takes an exclusive lock on it), used from
    one event loop.

    ``open`` is synchronous and blocks (it reads and repairs the newest segment): call it at
    startup, before serving. ``append`` and ``close`` are coroutines. Records are written on
    the loop (into the page cache: no wait for the disk), and the wait for ``fdatasync`` runs
    elsewhere while the loop goes on: in a helper process (``edge.syncer``) by default, or on
    a background thread with ``sync_helper=False``, when the helper cannot start, or if it
    dies. ``sync=False`` skips fdatasync: records then survive a crash of the process, not of
    the machine.
    """

    def __init__(
        self,
        directory: str | Path,
        *,
        sync: bool = True,
        segment_bytes: int = SEGMENT_BYTES,
        sync_helper: bool = True,
    ) -> None:
        if segment_bytes <= 0:
            raise ValueError("segment_bytes must be positive")
        self.directory = Path(directory)
        self.sync = sync
        self.segment_bytes = segment_bytes
        self.sync_helper = sync_helper
        self._last_seq = 0
        self._next_seq = 1
        self._opened = False
        self._closed = False
        self._syncer: _ThreadSyncer | _ProcessSyncer | None = None
        self._dir_fd: int | None = None  # also holds the writer's lock
        # Records appended since the last flush.
        self._payloads: list[bytes] = []
        self._waiters: list[asyncio.Future[int]] = []
        self._scheduled = False
        # Flushes written, oldest first; each has one sync request out, answered in order.
        self._flights: deque[_Flight] = deque()
        self._settled: asyncio.Future[None] | None = None  # close() waits on it
        # The loop appends come from, kept at the first: asking asyncio for the running loop
        # on every append costs a getpid() system call (CPython 3.11 checks for a fork).
        self._loop: asyncio.AbstractEventLoop | None = None
        # The segment written.
        self._fd: int | None = None
        self._segment = 0  # its first seq
        self._size = 0  # its length written; every byte before it is a good frame
        self._segment_next = 0  # the seq its next frame must carry
        self._announced = False  # whether the syncer holds this segment

    @property
    def last_seq(self) -> int:
        """The seq of the last durable record (or ``after`` given to ``open``, if higher)."""
        return self._last_seq

    @property
    def helper_pid(self) -> int | None:
        """The sync helper's pid while one runs."""
        syncer = self._syncer
        return syncer.process.pid if isinstance(syncer, _ProcessSyncer) else None

    def open(self, *, after: int = 0) -> None:
        """Recover the directory and get ready to append.

        ``after`` is the last seq a consumer has applied: new records come after it even when
        the segments that held it are gone (released, or lost with writes never synced).
        """
        if self._opened or self._closed:
            raise StoreError(f"journal {self.directory} was opened already")
        try:
            self._recover(after)
        except OSError as err:
            self._close_files()
            raise StoreError(f"journal {self.directory} cannot be opened: {reason(err)}") from err
        except BaseException:
            self._close_files()
            raise
        if self.sync:
            self._syncer = self._start_syncer()
        self._opened = True

    def _start_syncer(self) -> _ThreadSyncer | _ProcessSyncer:
        if self.sync_helper:
            try:
                return _ProcessSyncer(self._synced, self._helper_died)
            except OSError as err:
                log.warning(
                    "journal sync helper cannot start (%s); syncing on a thread", reason(err)
                )
        return _ThreadSyncer(self._synced)

    def _recover(self, after: int) -> None:
        created = not self.directory.exists()
        self.directory.mkdir(mode=DIRECTORY_MODE, parents=True, exist_ok=True)
        if created and self.sync:
            fsync_directory(self.directory.parent)
        self._dir_fd = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(self._dir_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            # Two writers would interleave frames and lose acknowledged records.
            raise StoreError(f"journal {self.directory} is open in another writer") from None
        segments = segment_firsts(self.directory)
        last = 0
        # Usually only the newest segment is read; when it holds no valid record, the last
        # record is in an older one.
        for first in reversed(segments):
            newest = first == segments[-1]
            path = self.directory / segment_name(first)
            try:
                fd = os.open(path, (os.O_RDWR | os.O_APPEND) if newest else os.O_RDONLY)
            except FileNotFoundError:
                continue  # released by a reader meanwhile
            end, last_in_segment = valid_end(fd, first)
            if newest:
                size = os.fstat(fd).st_size
                if end < size:
                    log.warning(
                        "journal %s: dropping %d bytes after the last whole record "
                        "(an interrupted write, never acknowledged)",
                        path,
                        size - end,
                    )
                    os.ftruncate(fd, end)
                self._fd, self._segment, self._size = fd, first, end
                self._segment_next = last_in_segment + 1
            else:
                os.close(fd)
            if last_in_segment >= first:
                last = last_in_segment
                break
        self._last_seq = max(last, after)
        # Seqs below the newest segment's name may have been given to a failed flush.
        self._next_seq = max(self._last_seq, segments[-1] - 1 if segments else 0) + 1

    async def append(self, payload: bytes) -> int:
        """Add one record; return its seq once the record is durable.

        Records appended in the same loop turn, or while earlier flushes fill the pipeline,
        share the next flush. Cancelling the caller does not take the record back.
        """
        if not self._opened or self._closed:
            state = "closed" if self._closed else "not open"
            raise StoreError(f"journal {self.directory} is {state}")
        if len(payload) > MAX_RECORD_BYTES:
            raise ValueError(
                f"a journal record holds at most {MAX_RECORD_BYTES} bytes, not {len(payload)}"
            )
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        waiter: asyncio.Future[int] = loop.create_future()
        self._payloads.append(bytes(payload))  # a copy only if the caller could still change it
        self._waiters.append(waiter)
        self._next_seq += 1
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush)
        return await waiter

    def _flush(self) -> None:
        """Write every record appended so far and ask for its sync, unless the pipeline is
        full (then ``_synced`` calls this again)."""
        self._scheduled = False
        if not self._payloads or len(self._flights) >= MAX_SYNCS_IN_FLIGHT:
            return
        first = self._next_seq - len(self._payloads)
        new_segment = (
            self._fd is None
            or first != self._segment_next  # a gap: after a failed flush, or open(after=)
            or self._size >= self.segment_bytes
        )
        if new_segment and self._flights:
            return  # a segment ends only once every flush in it is synced
        payloads, waiters = self._payloads, self._waiters
        self._payloads, self._waiters = [], []
        start = 0 if new_segment else self._size
        try:
            if new_segment:
                self._start_segment(first)
            assert self._fd is not None
            data = frames(first, payloads)
            self._write_all(self._fd, data)
        except Exception as err:
            self._undo(start)
            self._fail(waiters, self._failure(err))
            self._reschedule()
            return
        self._size += len(data)
        self._segment_next = first + len(payloads)
        flight = _Flight(first, waiters, start)
        if self._syncer is None:  # sync=False: written is all there is to wait for
            self._acknowledge(flight)
            return
        self._flights.append(flight)
        self._syncer.sync(self._announce())

    @staticmethod
    def _write_all(fd: int, data: bytes) -> None:
        with memoryview(data) as view:
            written = 0
            while written < len(view):
                count = os.write(fd, view[written:])
                if count == 0:
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                written += count

    def _synced(self, status: int) -> None:
        """The answer to the oldest sync request out."""
        if not self._flights:
            log.error("journal %s: a sync answer with no flush waiting", self.directory)
            return
        flight = self._flights.popleft()
        if flight.failed:
            pass  # an earlier flush's sync failed: this one was failed with it
        elif status == helper_protocol.OK:
            self._acknowledge(flight)
        else:
            # Every later flush was written after this one's bytes: fail them too, and cut
            # the segment back to before them all.
            error = self._failure(OSError(status, os.strerror(status)))
            self._fail(flight.waiters, error)
            for later in self._flights:
                later.failed = True
                self._fail(later.waiters, error)
            self._undo(flight.start)
        if self._settled is not None and not self._settled.done():
            self._settled.set_result(None)
        self._reschedule()

    def _helper_died(self) -> None:
        """Sync what the helper left unanswered, and all that follows, on a thread instead.

        Its answers arrive in order, so the flushes still waiting are exactly the requests
        it never answered: each is asked again, none twice."""
        syncer = self._syncer = _ThreadSyncer(self._synced)
        self._announced = False
        for _ in range(len(self._flights)):
            syncer.sync(self._announce())

    def _announce(self) -> tuple[int, int] | None:
        """The segment for the syncer's next request, if it does not know it yet."""
        if self._announced or self._fd is None or self._dir_fd is None:
            return None
        self._announced = True
        return (self._dir_fd, self._fd)

    def _acknowledge(self, flight: _Flight) -> None:
        self._last_seq = flight.first + len(flight.waiters) - 1
        for seq, waiter in enumerate(flight.waiters, flight.first):
            if not waiter.done():  # done: its caller was cancelled
                waiter.set_result(seq)

    def _failure(self, error: BaseException) -> StoreError:
        if isinstance(error, StoreError):
            return error
        segment = self.directory / segment_name(self._segment)
        failure = StoreError(f"journal segment {segment}: {reason(error)}")
        failure.__cause__ = error
        return failure

    @staticmethod
    def _fail(waiters: list[asyncio.Future[int]], error: StoreError) -> None:
        for waiter in waiters:
            if not waiter.done():
                failure = StoreError(str(error))  # one each: they are raised in many tasks
                failure.__cause__ = error.__cause__
                waiter.set_exception(failure)

    def _reschedule(self) -> None:
        if self._payloads and not self._scheduled:
            self._scheduled = True
            (self._loop or asyncio.get_running_loop()).call_soon(self._flush)

    def _start_segment(self, first: int) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)
        path = self.directory / segment_name(first)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND
        self._fd = os.open(path, flags, SEGMENT_MODE)
        # The syncer fsyncs the directory too, so the new name survives a power loss.
        self._segment, self._size, self._segment_next = first, 0, first
        self._announced = False

    def _undo(self, size: int) -> None:
        """Cut the segment back to ``size``, so no later record follows garbage."""
        self._size = min(self._size, size)
        self._segment_next = -1  # the next flush starts a new segment (seqs are not reused)
        if self._fd is None:
            return
        try:
            os.ftruncate(self._fd, size)
        except OSError as err:
            # Leave the segment: the next flush starts a new one, and readers stop at the
            # first bad frame of a segment that has a successor.
            log.error("journal %s: cannot cut a failed flush off (%s)", self.directory, err)
            fd, self._fd = self._fd, None
            with contextlib.suppress(OSError):
                os.close(fd)

    async def close(self) -> None:
        """Finish every append accepted so far, then release the files and the syncer."""
        if self._closed:
            return
        self._closed = True
        loop = asyncio.get_running_loop()
        while self._payloads or self._flights:
            if self._flights:
                self._settled = loop.create_future()
                await asyncio.wait({self._settled})  # unlike await, never cancelled by us
            else:
                self._flush()
        self._settled = None
        if self._syncer is not None:
            self._syncer.close()
            self._syncer = None
        self._close_files()

    def _close_files(self) -> None:
        for fd in (self._fd, self._dir_fd):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._fd = self._dir_fd = None
