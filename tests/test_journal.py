"""The ingest journal: durable before acknowledged, group-committed, read in order elsewhere."""

from __future__ import annotations

import asyncio
import errno
import os
import struct
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from edge.errors import StoreError
from edge.store import journal as journal_module
from edge.store.journal import Journal
from edge.store.journal_reader import JournalReader
from edge.store.segments import MAX_RECORD_BYTES

REPO = Path(__file__).resolve().parent.parent
EVERYTHING = 1_000_000  # max_records / max_bytes that never bind in these tests
WAIT_SECONDS = 5.0  # a bound for anything that should take milliseconds


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def reader(tmp_path: Path) -> Iterator[JournalReader]:
    reader = JournalReader(tmp_path / "j")
    yield reader
    reader.close()


def frame(seq: int, payload: bytes) -> bytes:
    """A frame as the format documents it, built independently of the module."""
    seq_bytes = struct.pack("<Q", seq)
    return struct.pack("<IIQ", len(payload), zlib.crc32(seq_bytes + payload), seq) + payload


def segments(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.glob("*.journal"))


def read_all(reader: JournalReader, after: int = 0) -> list[tuple[int, bytes]]:
    return reader.read(after, EVERYTHING, EVERYTHING)


def fresh_read(directory: Path, after: int = 0) -> list[tuple[int, bytes]]:
    """What a reader that never read before finds (no cursor kept from earlier calls)."""
    reader = JournalReader(directory)
    try:
        return read_all(reader, after)
    finally:
        reader.close()


def count_calls(monkeypatch: pytest.MonkeyPatch, name: str) -> list[int]:
    """Count calls of os.<name> as the journal module sees it."""
    calls: list[int] = []
    real = getattr(os, name)

    def counted(*args: Any) -> Any:
        calls.append(1)
        return real(*args)

    monkeypatch.setattr(journal_module.os, name, counted)
    return calls


async def open_journal(directory: Path, **options: Any) -> Journal:
    journal = Journal(directory, **options)
    journal.open()
    return journal


@pytest.mark.anyio
async def test_records_read_back_in_order_numbered_from_one(
    tmp_path: Path, reader: JournalReader
) -> None:
    journal = await open_journal(tmp_path / "j")
    assert journal.last_seq == 0
    seqs = [await journal.append(b"record %d" % i) for i in range(5)]
    assert seqs == [1, 2, 3, 4, 5]
    assert journal.last_seq == 5
    await journal.close()
    assert segments(tmp_path / "j") == ["00000000000000000001.journal"]
    assert read_all(reader) == [(i + 1, b"record %d" % i) for i in range(5)]
    assert read_all(reader, after=3) == [(4, b"record 3"), (5, b"record 4")]
    assert (tmp_path / "j").stat().st_mode & 0o777 == 0o700


@pytest.mark.anyio
async def test_the_appends_of_one_loop_turn_share_one_flush(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, reader: JournalReader
) -> None:
    syncs = count_calls(monkeypatch, "fdatasync")
    writes = count_calls(monkeypatch, "write")
    journal = await open_journal(tmp_path / "j", sync_helper=False)  # syncs in this process
    seqs = await asyncio.gather(*(journal.append(b"hit %d" % i) for i in range(50)))
    assert seqs == list(range(1, 51))  # in call order
    assert len(syncs) == 1 and len(writes) == 1
    await journal.close()
    assert read_all(reader) == [(i + 1, b"hit %d" % i) for i in range(50)]


@pytest.mark.anyio
async def test_an_append_is_acknowledged_only_after_its_sync_and_the_loop_runs_meanwhile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, reader: JournalReader
) -> None:
    release = threading.Event()
    syncing = threading.Event()
    active, most_active, synced = [0], [0], [0]
    real = os.fdatasync

    def slow_fdatasync(fd: int) -> None:
        active[0] += 1
        most_active[0] = max(most_active[0], active[0])
        syncing.set()
        release.wait(WAIT_SECONDS)
        real(fd)
        synced[0] += 1
        active[0] -= 1

    monkeypatch.setattr(journal_module.os, "fdatasync", slow_fdatasync)
    journal = await open_journal(tmp_path / "j", sync_helper=False)
    try:
        first = asyncio.ensure_future(journal.append(b"first"))
        await asyncio.to_thread(syncing.wait, WAIT_SECONDS)
        assert syncing.is_set()
        # while the disk syncs, other coroutines run to completion
        other = asyncio.ensure_future(asyncio.sleep(0.01, result="ran"))
        assert await asyncio.wait_for(other, WAIT_SECONDS) == "ran"
        later = [asyncio.ensure_future(journal.append(b"later %d" % i)) for i in range(10)]
        await asyncio.sleep(0.01)
        assert not first.done() and not any(f.done() for f in later)
        assert synced[0] == 0
    finally:
        release.set()
    assert await asyncio.wait_for(first, WAIT_SECONDS) == 1
    assert synced[0] >= 1
    # the appends made during the first flush went together into the next one
    assert await asyncio.wait_for(asyncio.gather(*later), WAIT_SECONDS) == list(range(2, 12))
    assert synced[0] == 2 and most_active[0] == 1
    await journal.close()
    assert [seq for seq, _ in read_all(reader)] == list(range(1, 12))


@pytest.mark.anyio
async def test_reopening_continues_the_numbering(tmp_path: Path, reader: JournalReader) -> None:
    journal = await open_journal(tmp_path / "j")
    for i in range(3):
        await journal.append(b"a%d" % i)
    await journal.close()
    journal = await open_journal(tmp_path / "j")
    assert journal.last_seq == 3
    assert await journal.append(b"b") == 4
    await journal.close()
    assert [seq for seq, _ in read_all(reader)] == [1, 2, 3, 4]
    assert segments(tmp_path / "j") == ["00000000000000000001.journal"]


def tear_half_a_frame(segment: Path) -> None:
    with segment.open("ab") as f:
        f.write(frame(4, b"never acknowledged")[:11])


def flip_a_byte_of_the_last_record(segment: Path) -> None:
    data = bytearray(segment.read_bytes())
    data[-2] ^= 0xFF
    segment.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", [tear_half_a_frame, flip_a_byte_of_the_last_record])
@pytest.mark.anyio
async def test_a_torn_or_corrupt_tail_is_cut_off_on_open(
    tmp_path: Path, reader: JournalReader, damage: Callable[[Path], None]
) -> None:
    directory = tmp_path / "j"
    journal = await open_journal(directory)
    for i in range(3):
        await journal.append(b"good %d" % i)
    await journal.close()
    segment = directory / "00000000000000000001.journal"
    damage(segment)
    valid = [(1, b"good 0"), (2, b"good 1"), (3, b"good 2")]
    if damage is flip_a_byte_of_the_last_record:
        valid = valid[:2]
    assert read_all(reader) == valid  # never the damaged record
    journal = await open_journal(directory)
    assert journal.last_seq == len(valid)
    assert segment.stat().st_size == sum(len(frame(s, p)) for s, p in valid)
    assert await journal.append(b"next") == len(valid) + 1
    await journal.close()
    assert read_all(reader, after=len(valid)) == [(len(valid) + 1, b"next")]
    assert fresh_read(directory) == [*valid, (len(valid) + 1, b"next")]


@pytest.mark.anyio
async def test_numbering_resumes_after_what_a_consumer_applied(tmp_path: Path) -> None:
    directory = tmp_path / "j"
    journal = await open_journal(directory)
    await journal.append(b"one")
    await journal.close()
    # The consumer applied up to 7 (records the journal lost, say): new seqs must come after.
    journal = Journal(directory)
    journal.open(after=7)
    assert journal.last_seq == 7
    assert await journal.append(b"eight") == 8
    await journal.close()
    assert segments(directory) == ["00000000000000000001.journal", "00000000000000000008.journal"]
    assert fresh_read(directory) == [(1, b"one"), (8, b"eight")]
    assert fresh_read(directory, after=1) == [(8, b"eight")]


@pytest.mark.anyio
async def test_segments_rotate_named_by_their_first_seq_and_read_as_one_log(
    tmp_path: Path, reader: JournalReader
) -> None:
    directory = tmp_path / "j"
    payload = b"x" * 100  # 116 bytes a frame: a segment is full after three
    journal = await open_journal(directory, segment_bytes=300)
    for _ in range(8):
        await journal.append(payload)
    await journal.close()
    assert segments(directory) == [
        "00000000000000000001.journal",
        "00000000000000000004.journal",
        "00000000000000000007.journal",
    ]
    assert [seq for seq, _ in read_all(reader)] == list(range(1, 9))
    # in batches, resuming where the previous call stopped, and from any seq afresh
    batches = [reader.read(0, 3, EVERYTHING)]
    while batch := reader.read(batches[-1][-1][0], 3, 250):  # 250 bytes: two payloads
        batches.append(batch)
    assert [[seq for seq, _ in b] for b in batches] == [[1, 2, 3], [4, 5], [6, 7], [8]]
    for after in range(9):
        assert [seq for seq, _ in fresh_read(directory, after)] == list(range(after + 1, 9))


@pytest.mark.anyio
async def test_release_deletes_only_applied_segments_and_never_the_newest(
    tmp_path: Path, reader: JournalReader
) -> None:
    directory = tmp_path / "j"
    journal = await open_journal(directory, segment_bytes=300)
    for i in range(8):
        await journal.append(b"%04d" % i * 25)  # 100 bytes, as above
    assert len(segments(directory)) == 3  # first seqs 1, 4, 7
    reader.release(5)  # 4..6 not all applied
    assert segments(directory)[0] == "00000000000000000004.journal"
    reader.release(6)
    assert segments(directory) == ["00000000000000000007.journal"]
    reader.release(1_000)  # everything applied: the newest stays for the writer
    assert segments(directory) == ["00000000000000000007.journal"]
    assert await journal.append(b"after release") == 9  # the writer does not mind
    await journal.close()
    assert read_all(reader, after=6) == [
        (7, b"0006" * 25),
        (8, b"0007" * 25),
        (9, b"after release"),
    ]
    journal = await open_journal(directory)
    assert journal.last_seq == 9
    await journal.close()


WRITER_SCRIPT = """
import asyncio, sys
from edge.store.journal import Journal

async def main():
    journal = Journal(sys.argv[1], segment_bytes=2000)
    journal.open()
    for i in range(int(sys.argv[2])):
        await journal.append(b"from another process %d" % i)
        await asyncio.sleep(0.001)
    await journal.close()

asyncio.run(main())
"""


def test_a_reader_follows_a_writer_in_another_process(
    tmp_path: Path, reader: JournalReader
) -> None:
    directory = tmp_path / "j"
    count = 200
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER_SCRIPT, str(directory), str(count)], cwd=REPO
    )
    got: list[tuple[int, bytes]] = []
    read_while_writing = 0
    deadline = time.monotonic() + WAIT_SECONDS * 2
    try:
        while time.monotonic() < deadline:
            running = writer.poll() is None
            batch = reader.read(got[-1][0] if got else 0, 7, EVERYTHING)
            if batch and running:
                read_while_writing += 1
            got += batch
            if not running and not batch:
                break
            time.sleep(0.001)
    finally:
        writer.kill()
        writer.wait()
    assert writer.returncode == 0
    assert got == [(i + 1, b"from another process %d" % i) for i in range(count)]
    assert read_while_writing > 1
    assert len(segments(directory)) > 1  # it rotated under the reader

    # A frame still being written is "not yet"; once whole, the next call returns it.
    newest = directory / segments(directory)[-1]
    whole = frame(count + 1, b"late")
    with newest.open("ab") as f:
        f.write(whole[:-2])
    assert read_all(reader, after=count) == []
    assert not reader.pending(count)
    with newest.open("ab") as f:
        f.write(whole[-2:])
    assert reader.pending(count)
    assert read_all(reader, after=count) == [(count + 1, b"late")]


def fail_midway_write(monkeypatch: pytest.MonkeyPatch) -> None:
    """The disk fills up halfway through the flush's write."""
    real = os.write

    def write(fd: int, data: Any) -> int:
        if len(data) > 8:
            return real(fd, data[: len(data) // 2])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(journal_module.os, "write", write)


def fail_fdatasync(monkeypatch: pytest.MonkeyPatch) -> None:
    def fdatasync(fd: int) -> None:
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(journal_module.os, "fdatasync", fdatasync)


@pytest.mark.parametrize("fail", [fail_midway_write, fail_fdatasync])
@pytest.mark.anyio
async def test_a_failed_flush_fails_its_appends_and_leaves_no_garbage(
    tmp_path: Path,
    reader: JournalReader,
    monkeypatch: pytest.MonkeyPatch,
    fail: Callable[[pytest.MonkeyPatch], None],
) -> None:
    directory = tmp_path / "j"
    journal = await open_journal(directory, sync_helper=False)
    assert await journal.append(b"kept") == 1
    with monkeypatch.context() as patch:
        fail(patch)
        results = await asyncio.gather(
            journal.append(b"secret-payload-1"),
            journal.append(b"secret-payload-2"),
            return_exceptions=True,
        )
    assert all(isinstance(r, StoreError) for r in results)
    for error in results:
        assert "secret" not in str(error)
        assert str(directory) in str(error)
    assert journal.last_seq == 1
    first = directory / "00000000000000000001.journal"
    assert first.stat().st_size == len(frame(1, b"kept"))  # the failed flush was cut off
    # The failed seqs are not given out again (a reader may have seen those bytes): the next
    # record starts a new segment.
    assert await journal.append(b"after the failure") == 4
    await journal.close()
    assert read_all(reader) == [(1, b"kept"), (4, b"after the failure")]
    assert segments(directory) == [first.name, "00000000000000000004.journal"]
    journal = await open_journal(directory)
    assert journal.last_seq == 4
    await journal.close()


@pytest.mark.anyio
async def test_a_cancelled_append_is_written_and_breaks_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, reader: JournalReader
) -> None:
    loop_errors: list[dict[str, Any]] = []
    asyncio.get_running_loop().set_exception_handler(lambda _, context: loop_errors.append(context))
    release = threading.Event()
    real = os.fdatasync

    def slow_fdatasync(fd: int) -> None:
        release.wait(WAIT_SECONDS)
        real(fd)

    monkeypatch.setattr(journal_module.os, "fdatasync", slow_fdatasync)
    journal = await open_journal(tmp_path / "j", sync_helper=False)
    appends = [asyncio.ensure_future(journal.append(b"r%d" % i)) for i in range(3)]
    await asyncio.sleep(0.01)
    appends[1].cancel()
    release.set()
    assert await asyncio.wait_for(appends[0], WAIT_SECONDS) == 1
    assert await asyncio.wait_for(appends[2], WAIT_SECONDS) == 3
    assert appends[1].cancelled()
    await journal.close()
    assert loop_errors == []
    assert [seq for seq, _ in read_all(reader)] == [1, 2, 3]


@pytest.mark.anyio
async def test_close_waits_for_accepted_appends_and_refuses_later_ones(
    tmp_path: Path, reader: JournalReader
) -> None:
    journal = await open_journal(tmp_path / "j")
    appends = [asyncio.ensure_future(journal.append(b"r%d" % i)) for i in range(5)]
    await asyncio.sleep(0)  # accepted, not yet flushed
    await journal.close()
    assert all(a.done() for a in appends)
    assert [a.result() for a in appends] == [1, 2, 3, 4, 5]
    with pytest.raises(StoreError, match="closed"):
        await journal.append(b"too late")
    assert len(read_all(reader)) == 5


@pytest.mark.anyio
async def test_a_record_over_the_limit_is_refused(tmp_path: Path) -> None:
    journal = await open_journal(tmp_path / "j", sync=False)
    with pytest.raises(ValueError, match="at most"):
        await journal.append(b"\0" * (MAX_RECORD_BYTES + 1))
    assert await journal.append(b"small") == 1
    await journal.close()


@pytest.mark.anyio
async def test_without_sync_fdatasync_is_never_called(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, reader: JournalReader
) -> None:
    syncs = count_calls(monkeypatch, "fdatasync")
    fsyncs = count_calls(monkeypatch, "fsync")
    journal = await open_journal(tmp_path / "j", sync=False, segment_bytes=100)
    await asyncio.gather(*(journal.append(b"%d" % i * 40) for i in range(10)))
    for i in range(5):
        await journal.append(b"more %d" % i * 20)
    await journal.close()
    assert syncs == [] and fsyncs == []
    assert len(read_all(reader)) == 15


@pytest.mark.anyio
async def test_a_second_writer_is_refused(tmp_path: Path) -> None:
    journal = await open_journal(tmp_path / "j")
    with pytest.raises(StoreError, match="another writer"):
        Journal(tmp_path / "j").open()
    await journal.close()
    journal = await open_journal(tmp_path / "j")  # the lock went with the first writer
    await journal.close()


@pytest.mark.anyio
async def test_pending_tells_whether_there_is_more_to_read(
    tmp_path: Path, reader: JournalReader
) -> None:
    directory = tmp_path / "j"
    assert not reader.pending(0)  # no journal yet
    journal = await open_journal(directory, segment_bytes=50)
    await journal.append(b"a" * 40)
    assert reader.pending(0)
    assert read_all(reader) == [(1, b"a" * 40)]
    assert not reader.pending(1)
    await journal.append(b"b" * 40)  # in a new segment
    assert reader.pending(1)
    assert reader.read(1, EVERYTHING, EVERYTHING) == [(2, b"b" * 40)]
    assert not reader.pending(2)
    await journal.close()


@pytest.mark.anyio
async def test_skipping_to_a_seq_does_not_read_the_skipped_payloads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory = tmp_path / "j"
    big = 1024 * 1024  # larger than a read chunk
    journal = await open_journal(directory, sync=False)
    for i in range(8):
        await journal.append(bytes([i]) * big)
    await journal.close()
    read_bytes = [0]
    real = os.pread

    def pread(fd: int, length: int, offset: int) -> bytes:
        data = real(fd, length, offset)
        read_bytes[0] += len(data)
        return data

    monkeypatch.setattr(journal_module.os, "pread", pread)
    records = fresh_read(directory, after=7)
    assert records == [(8, bytes([7]) * big)]
    assert read_bytes[0] < 1.5 * big  # not the 8 MiB the segment holds
