"""The journal's reading end: ordered reads, in any process, alongside the writer.

The indexer reads with it; the layout it reads is ``edge.store.segments``.
"""

from __future__ import annotations

import bisect
import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path

from .segments import (
    HEADER_SIZE,
    Window,
    segment_firsts,
    segment_name,
)


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
        segments = segment_firsts(self.directory)
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
        segments = segment_firsts(self.directory)
        if not segments:
            return None
        first = segments[max(bisect.bisect_right(segments, after + 1) - 1, 0)]
        return _Cursor(first, 0, first)

    def _scan(self, cursor: _Cursor, after: int, batch: _Batch) -> bool:
        """Read on in the cursor's segment to its valid end; True if a record did not fit."""
        fd = self._open(cursor.segment)
        if fd is None:
            return False  # released: every record in it was applied
        window = Window(fd)
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
        for first in segment_firsts(self.directory):
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
