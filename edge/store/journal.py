"""An append-only, crash-safe journal of opaque records: group-committed writes, ordered reads.

The process that answers HTTP appends each accepted batch as one record and acknowledges it
once the record is durable (``Journal``); the indexer, a process of its own, reads the records
in order (``JournalReader``). Nothing here knows what a record holds.

Layout: a directory of segments, each named by the seq of its first record, zero-padded to 20
digits (``00000000000000000001.journal``). A frame is the header ``<IIQ`` (payload length,
CRC32 of the seq's 8 little-endian bytes followed by the payload, seq), then the payload.
Within a segment the seqs go up by one, so a segment's name is the seq its first frame must
carry; a gap in the numbering starts a new segment. A frame that is cut short, or whose seq or
checksum is wrong, ends the valid data: acknowledgement waits for the sync, so those bytes
were never acknowledged.

Seqs are never reused, not even those of a flush that failed: readers see bytes before they
are synced, so the indexer may already hold such a record, and would take a later record with
the same seq for one it had applied. A failed flush therefore leaves a gap (the next flush
starts a new segment), and so does ``Journal.open(after=...)`` past the journal's end.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import errno
import fcntl
import functools
import logging
import os
import struct
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from edge.errors import StoreError

log = logging.getLogger("capi_edge.store")

HEADER = struct.Struct("<IIQ")  # payload length, CRC32 of (seq bytes + payload), seq
HEADER_SIZE = HEADER.size
SEQ = struct.Struct("<Q")
MAX_RECORD_BYTES = 16 * 1024 * 1024
SEGMENT_BYTES = 64 * 1024 * 1024  # a segment this large gets no more records
READ_CHUNK_BYTES = 256 * 1024  # a reader fetches frames this many bytes at a time
SEGMENT_SUFFIX = ".journal"
SEGMENT_NAME_DIGITS = 20
DIRECTORY_MODE = 0o700
SEGMENT_MODE = 0o600


def segment_name(first_seq: int) -> str:
    return f"{first_seq:0{SEGMENT_NAME_DIGITS}d}{SEGMENT_SUFFIX}"


def _segments(directory: Path) -> list[int]:
    """The first seqs of the directory's segments, oldest first."""
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    digits = SEGMENT_NAME_DIGITS
    return sorted(
        int(name[:digits])
        for name in names
        if len(name) == digits + len(SEGMENT_SUFFIX)
        and name.endswith(SEGMENT_SUFFIX)
        and name[:digits].isascii()
        and name[:digits].isdigit()
    )


def _checksum(seq: int, payload: bytes | memoryview) -> int:
    return zlib.crc32(payload, zlib.crc32(SEQ.pack(seq)))


def _frames(first_seq: int, payloads: list[bytes]) -> bytes:
    parts: list[bytes] = []
    for seq, payload in enumerate(payloads, first_seq):
        parts.append(HEADER.pack(len(payload), _checksum(seq, payload), seq))
        parts.append(payload)
    return b"".join(parts)


def _reason(err: BaseException) -> str:
    """What went wrong, for a message: never the data involved."""
    if isinstance(err, OSError) and err.strerror:
        return err.strerror
    return type(err).__name__


class _Window:
    """One segment as far as it is written now, fetched a chunk at a time: many small frames
    cost one read, and a payload that is skipped over is not read at all unless it shares a
    chunk with a header."""

    __slots__ = ("fd", "size", "start", "data", "last_length")

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.size = os.fstat(fd).st_size
        self.start = 0
        self.data = b""
        self.last_length = 0  # of the last frame's payload

    def get(self, offset: int, length: int, ahead: int = READ_CHUNK_BYTES) -> memoryview | None:
        """The bytes at [offset, offset + length), or None if the segment does not hold them.
        A read fetches ``ahead`` bytes if that is more."""
        if offset + length > self.size:
            return None
        index = offset - self.start
        if index < 0 or index + length > len(self.data):
            chunk = min(max(length, ahead), self.size - offset)
            self.data, self.start, index = os.pread(self.fd, chunk, offset), offset, 0
            if len(self.data) < length:  # truncated since the fstat (a failed flush)
                return None
        return memoryview(self.data)[index : index + length]

    def frame(self, offset: int, seq: int) -> tuple[int, int] | None:
        """(payload length, checksum) of the frame at offset, if it is whole and carries seq."""
        # After a payload larger than a chunk the next one is likely large too: fetch the
        # header alone, so that skipping it reads nothing more.
        large = self.last_length >= READ_CHUNK_BYTES
        header = self.get(offset, HEADER_SIZE, HEADER_SIZE if large else READ_CHUNK_BYTES)
        if header is None:
            return None
        length, checksum, found = HEADER.unpack(header)
        self.last_length = length
        if found != seq or length > MAX_RECORD_BYTES:
            return None
        if offset + HEADER_SIZE + length > self.size:
            return None
        return length, checksum

    def payload(self, offset: int, seq: int, length: int, checksum: int) -> memoryview | None:
        """The frame's payload, if it matches its checksum."""
        payload = self.get(offset + HEADER_SIZE, length)
        if payload is None or _checksum(seq, payload) != checksum:
            return None
        return payload


def _valid_end(fd: int, first_seq: int) -> tuple[int, int]:
    """(offset just past the segment's last valid frame, that frame's seq); the seq is
    first_seq - 1 when the segment holds none."""
    window = _Window(fd)
    offset, seq = 0, first_seq
    while (frame := window.frame(offset, seq)) is not None:
        length, checksum = frame
        if window.payload(offset, seq, length, checksum) is None:
            break
        offset += HEADER_SIZE + length
        seq += 1
    return offset, seq - 1


def _fsync_directory(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


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
            raise StoreError(f"journal {self.directory} cannot be opened: {_reason(err)}") from err
        except BaseException:
            self._close_files()
            raise
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="journal")

    def _recover(self, after: int) -> None:
        created = not self.directory.exists()
        self.directory.mkdir(mode=DIRECTORY_MODE, parents=True, exist_ok=True)
        if created and self.sync:
            _fsync_directory(self.directory.parent)
        self._dir_fd = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(self._dir_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            # Two writers would interleave frames and lose acknowledged records.
            raise StoreError(f"journal {self.directory} is open in another writer") from None
        segments = _segments(self.directory)
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
            end, last_in_segment = _valid_end(fd, first)
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
                message = f"journal {self.directory}: the flush failed ({_reason(error)})"
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
            data = _frames(first, payloads)
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
            raise StoreError(f"journal segment {segment}: {_reason(err)}") from err
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


@dataclass(slots=True)
class _Cursor:
    segment: int  # the segment's first seq
    offset: int  # where its next frame starts
    seq: int  # the seq that frame must carry


@dataclass(slots=True)
class _Batch:
    max_records: int
    max_bytes: int
    records: list[tuple[int, bytes]] = field(default_factory=list)
    size: int = 0

    def full(self, length: int) -> bool:
        """Whether a record of this length no longer fits (the first always does)."""
        if len(self.records) >= self.max_records:
            return True
        return bool(self.records) and self.size + length > self.max_bytes


class JournalReader:
    """The reading end: any number of them, in any process, alongside the writer.

    A reader keeps its position (segment, offset, seq) between calls, so reading on from the
    last seq it returned costs no search. Not safe for use by several threads at once.
    """

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self._cursor: _Cursor | None = None
        self._behind = -1  # every record up to this seq lies behind the cursor
        self._fd: int | None = None  # the cursor's segment, opened read-only
        self._fd_segment = 0

    def read(self, after_seq: int, max_records: int, max_bytes: int) -> list[tuple[int, bytes]]:
        """(seq, payload) of the records after after_seq, in order: at most max_records, and
        at most max_bytes of payload unless the first record alone is larger.

        Stops at the end of the valid data: a frame still being written is left for a later
        call.
        """
        batch = _Batch(max_records, max_bytes)
        self._advance(after_seq, batch)
        return batch.records

    def pending(self, after_seq: int) -> bool:
        """Whether a whole frame of a record after after_seq is on disk (read checks its
        checksum).

        Cost when there is none and after_seq is where the last call left off (an idle poll):
        one fstat of the current segment and one listing of the directory; no data is read.
        """
        return self._advance(after_seq, _Batch(0, 0))

    def release(self, upto_seq: int) -> None:
        """Delete the segments whose records are all <= upto_seq, except the newest (the
        writer may still be appending to it)."""
        segments = _segments(self.directory)
        for first, following in zip(segments, segments[1:], strict=False):
            if following - 1 > upto_seq:
                break
            if self._fd_segment == first:
                self._close_fd()
            with contextlib.suppress(FileNotFoundError):  # another reader was first
                os.unlink(self.directory / segment_name(first))

    def close(self) -> None:
        self._close_fd()
        self._cursor = None

    def _advance(self, after: int, batch: _Batch) -> bool:
        """Skip the records up to after, then fill batch; True if a record did not fit."""
        cursor = self._cursor
        if cursor is None or self._behind != after:
            cursor = self._cursor = self._seek(after)
            if cursor is None:
                return False
        try:
            while not self._scan(cursor, after, batch):
                later = self._later(cursor.segment)
                if later is None:
                    return False
                # A later segment exists, so the writer is done with this one: take what it
                # added since the scan, then move on.
                if self._scan(cursor, after, batch):
                    return True
                cursor.segment = cursor.seq = later
                cursor.offset = 0
            return True
        finally:
            self._behind = batch.records[-1][0] if batch.records else after

    def _seek(self, after: int) -> _Cursor | None:
        """The start of the segment holding after + 1, judged by the segments' names."""
        segments = _segments(self.directory)
        if not segments:
            return None
        first = segments[max(bisect.bisect_right(segments, after + 1) - 1, 0)]
        return _Cursor(first, 0, first)

    def _scan(self, cursor: _Cursor, after: int, batch: _Batch) -> bool:
        """Read on in the cursor's segment to its valid end; True if a record did not fit."""
        fd = self._open(cursor.segment)
        if fd is None:
            return False  # released: every record in it was applied
        window = _Window(fd)
        while (frame := window.frame(cursor.offset, cursor.seq)) is not None:
            length, checksum = frame
            if cursor.seq > after:  # frames up to after are skipped by their header alone
                if batch.full(length):
                    return True
                payload = window.payload(cursor.offset, cursor.seq, length, checksum)
                if payload is None:
                    return False
                batch.records.append((cursor.seq, bytes(payload)))
                batch.size += length
            cursor.offset += HEADER_SIZE + length
            cursor.seq += 1
        return False

    def _later(self, segment: int) -> int | None:
        for first in _segments(self.directory):
            if first > segment:
                return first
        return None

    def _open(self, segment: int) -> int | None:
        if self._fd is not None and self._fd_segment == segment:
            return self._fd
        self._close_fd()
        try:
            self._fd = os.open(self.directory / segment_name(segment), os.O_RDONLY)
        except FileNotFoundError:
            return None
        self._fd_segment = segment
        return self._fd

    def _close_fd(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            self._fd_segment = 0
            os.close(fd)
