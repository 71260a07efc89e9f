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
import functools
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

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


class Journal:
    """The writing end. One per directory (``open`` takes an exclusive lock on it), used from
    one event loop.

    ``open`` is synchronous and blocks (it reads and repairs the newest segment): call it at
    startup, before serving. ``append`` and ``close`` are coroutines; every write and sync
    runs on one background thread, one flush at a time, while the loop goes on.
    ``sync=False`` skips fdatasync: records then survive a crash of the process, not of the
    machine.
    """

    def __init__(
        self, directory: str | Path, *, sync: bool = True, segment_bytes: int = SEGMENT_BYTES
    ) -> None:
        if segment_bytes <= 0:
            raise ValueError("segment_bytes must be positive")
        self.directory = Path(directory)
        self.sync = sync
        self.segment_bytes = segment_bytes
        self._last_seq = 0
        self._next_seq = 1
        self._closed = False
        self._executor: ThreadPoolExecutor | None = None
        self._dir_fd: int | None = None  # also holds the writer's lock
        # The event loop's side: records appended since the last flush began.
        self._payloads: list[bytes] = []
        self._waiters: list[asyncio.Future[int]] = []
        self._scheduled = False
        self._in_flight: asyncio.Future[None] | None = None
        # The flush thread's side (``open``'s before the thread exists): the segment written.
        self._fd: int | None = None
        self._segment = 0  # its first seq
        self._size = 0  # its length; every byte before it is a good frame
        self._segment_next = 0  # the seq its next frame must carry

    @property
    def last_seq(self) -> int:
        """The seq of the last durable record (or ``after`` given to ``open``, if higher)."""
        return self._last_seq

    def open(self, *, after: int = 0) -> None:
        """Recover the directory and get ready to append.

        ``after`` is the last seq a consumer has applied: new records come after it even when
        the segments that held it are gone (released, or lost with writes never synced).
        """
        if self._executor is not None or self._closed:
            raise StoreError(f"journal {self.directory} was opened already")
        try:
            self._recover(after)
        except OSError as err:
            self._close_files()
            raise StoreError(f"journal {self.directory} cannot be opened: {reason(err)}") from err
        except BaseException:
            self._close_files()
            raise
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="journal")

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

        Records appended in the same loop turn, or while a flush is under way, share the next
        flush. Cancelling the caller does not take the record back.
        """
        if self._executor is None or self._closed:
            state = "closed" if self._closed else "not open"
            raise StoreError(f"journal {self.directory} is {state}")
        if len(payload) > MAX_RECORD_BYTES:
            raise ValueError(
                f"a journal record holds at most {MAX_RECORD_BYTES} bytes, not {len(payload)}"
            )
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[int] = loop.create_future()
        self._payloads.append(bytes(payload))  # a copy only if the caller could still change it
        self._waiters.append(waiter)
        self._next_seq += 1
        if not self._scheduled and self._in_flight is None:
            self._scheduled = True
            loop.call_soon(self._flush)
        return await waiter

    def _flush(self) -> None:
        """Hand every record appended so far to the flush thread, unless a flush is under way
        (then ``_flushed`` calls this again)."""
        self._scheduled = False
        if self._in_flight is not None or not self._payloads or self._executor is None:
            return
        payloads, waiters = self._payloads, self._waiters
        self._payloads, self._waiters = [], []
        first = self._next_seq - len(payloads)
        loop = asyncio.get_running_loop()
        flight = loop.run_in_executor(self._executor, self._write, first, payloads)
        flight.add_done_callback(functools.partial(self._flushed, first, waiters))
        self._in_flight = flight

    def _flushed(
        self, first: int, waiters: list[asyncio.Future[int]], flight: asyncio.Future[None]
    ) -> None:
        self._in_flight = None
        error = StoreError("the flush was cancelled") if flight.cancelled() else flight.exception()
        if error is None:
            self._last_seq = first + len(waiters) - 1
            for seq, waiter in enumerate(waiters, first):
                if not waiter.done():  # done: its caller was cancelled
                    waiter.set_result(seq)
        else:
            if isinstance(error, StoreError):
                message = str(error)
            else:
                message = f"journal {self.directory}: the flush failed ({reason(error)})"
            for waiter in waiters:
                if not waiter.done():
                    failure = StoreError(message)  # one each: they are raised in many tasks
                    failure.__cause__ = error
                    waiter.set_exception(failure)
        if self._payloads and not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _write(self, first: int, payloads: list[bytes]) -> None:
        """Write and sync one flush; on failure leave no trace of it. On the flush thread."""
        try:
            if (
                self._fd is None
                or first != self._segment_next  # a gap: after a failed flush, or open(after=)
                or self._size >= self.segment_bytes
            ):
                self._start_segment(first)
            assert self._fd is not None
            data = frames(first, payloads)
            with memoryview(data) as view:
                written = 0
                while written < len(view):
                    count = os.write(self._fd, view[written:])
                    if count == 0:
                        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                    written += count
            if self.sync:
                os.fdatasync(self._fd)
        except BaseException as err:
            self._undo()
            if not isinstance(err, OSError):
                raise
            segment = self.directory / segment_name(self._segment)
            raise StoreError(f"journal segment {segment}: {reason(err)}") from err
        self._size += len(data)
        self._segment_next = first + len(payloads)

    def _start_segment(self, first: int) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)
        path = self.directory / segment_name(first)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND
        self._fd = os.open(path, flags, SEGMENT_MODE)
        self._segment, self._size, self._segment_next = first, 0, first
        if self.sync and self._dir_fd is not None:
            os.fsync(self._dir_fd)  # so that the new file's name survives a power loss too

    def _undo(self) -> None:
        """Cut the segment back to its last good frame, so no later record follows garbage."""
        if self._fd is None:
            return
        try:
            os.ftruncate(self._fd, self._size)
        except OSError as err:
            # Leave the segment: the next flush starts a new one, and readers stop at the
            # first bad frame of a segment that has a successor.
            log.error("journal %s: cannot cut a failed flush off (%s)", self.directory, err)
            fd, self._fd = self._fd, None
            with contextlib.suppress(OSError):
                os.close(fd)

    async def close(self) -> None:
        """Finish every append accepted so far, then release the files and the thread."""
        if self._closed:
            return
        self._closed = True
        while self._in_flight is not None or (self._payloads and self._executor is not None):
            if self._in_flight is None:
                self._flush()
            assert self._in_flight is not None
            await asyncio.wait({self._in_flight})  # unlike await, never cancels the flush
        if self._executor is not None:
            self._executor.shutdown(wait=False)  # idle: nothing is left for it
            self._executor = None
        self._close_files()

    def _close_files(self) -> None:
        for fd in (self._fd, self._dir_fd):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._fd = self._dir_fd = None
