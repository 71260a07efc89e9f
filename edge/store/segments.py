"""The journal's files: segments of CRC-framed records, as the writer and readers see them.

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

import os
import struct
import zlib
from pathlib import Path

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


def segment_firsts(directory: Path) -> list[int]:
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


def frame_checksum(seq: int, payload: bytes | memoryview) -> int:
    return zlib.crc32(payload, zlib.crc32(SEQ.pack(seq)))


def frames(first_seq: int, payloads: list[bytes]) -> bytes:
    parts: list[bytes] = []
    for seq, payload in enumerate(payloads, first_seq):
        parts.append(HEADER.pack(len(payload), frame_checksum(seq, payload), seq))
        parts.append(payload)
    return b"".join(parts)


def reason(err: BaseException) -> str:
    """What went wrong, for a message: never the data involved."""
    if isinstance(err, OSError) and err.strerror:
        return err.strerror
    return type(err).__name__


class Window:
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
        if payload is None or frame_checksum(seq, payload) != checksum:
            return None
        return payload


def valid_end(fd: int, first_seq: int) -> tuple[int, int]:
    """(offset just past the segment's last valid frame, that frame's seq); the seq is
    first_seq - 1 when the segment holds none."""
    window = Window(fd)
    offset, seq = 0, first_seq
    while (frame := window.frame(offset, seq)) is not None:
        length, checksum = frame
        if window.payload(offset, seq, length, checksum) is None:
            break
        offset += HEADER_SIZE + length
        seq += 1
    return offset, seq - 1


def fsync_directory(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
