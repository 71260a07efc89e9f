"""Where the journal waits for the disk: the sync helper process, its protocol, and the
fallback to a thread when the helper cannot start or dies; every acknowledged record synced."""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edge import syncer
from edge.errors import StoreError
from edge.store import journal as journal_module
from edge.store.journal import Journal
from edge.store.journal_reader import JournalReader
from edge.store.segments import HEADER_SIZE

REPO = Path(__file__).resolve().parent.parent
EVERYTHING = 1_000_000
WAIT_SECONDS = 5.0  # a bound for anything that should take milliseconds

# A sync helper whose fdatasync the test steers through files: it waits while ``gate`` is
# missing, and fails with EIO once ``fail`` exists. Otherwise it is ``edge.syncer`` itself.
STEERED_HELPER = """
import errno, os, sys, time
from edge import syncer
gate, fail = sys.argv[1], sys.argv[2]
real = os.fdatasync
def fdatasync(fd):
    while not os.path.exists(gate):
        time.sleep(0.002)
    if os.path.exists(fail):
        raise OSError(errno.EIO, os.strerror(errno.EIO))
    real(fd)
os.fdatasync = fdatasync
sys.exit(syncer.main())
"""


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Steering:
    def __init__(self, directory: Path) -> None:
        self.gate = directory / "gate"
        self.fail = directory / "fail"
        self.gate.touch()

    def hold(self) -> None:
        self.gate.unlink()

    def release(self) -> None:
        self.gate.touch()

    def fail_syncs(self) -> None:
        self.fail.touch()


@pytest.fixture
def steering(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Steering:
    steer = Steering(tmp_path)
    command = [sys.executable, "-c", STEERED_HELPER, str(steer.gate), str(steer.fail)]
    monkeypatch.setattr(journal_module, "SYNC_HELPER_COMMAND", command)
    return steer


@pytest.fixture
def reader(tmp_path: Path) -> Iterator[JournalReader]:
    reader = JournalReader(tmp_path / "j")
    yield reader
    reader.close()


def read_all(reader: JournalReader) -> list[tuple[int, bytes]]:
    return reader.read(0, EVERYTHING, EVERYTHING)


def open_journal(directory: Path, **options: Any) -> Journal:
    journal = Journal(directory, **options)
    journal.open()
    return journal


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is not alive: it waits only to be reaped
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().rsplit(")", 1)[1].split()[0] != "Z"


async def until(condition: Any) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.005)


# -- the helper process --------------------------------------------------------------------


@pytest.mark.anyio
async def test_by_default_a_helper_process_syncs_and_exits_when_the_journal_closes(
    tmp_path: Path, reader: JournalReader
) -> None:
    journal = open_journal(tmp_path / "j")
    pid = journal.helper_pid
    assert pid is not None and pid != os.getpid() and alive(pid)
    seqs = await asyncio.gather(*(journal.append(b"hit %d" % i) for i in range(20)))
    assert seqs == list(range(1, 21))
    assert await journal.append(b"one more") == 21
    await journal.close()
    assert journal.helper_pid is None
    assert not alive(pid)
    assert [seq for seq, _ in read_all(reader)] == list(range(1, 22))


@pytest.mark.anyio
async def test_without_sync_there_is_no_helper(tmp_path: Path) -> None:
    journal = open_journal(tmp_path / "j", sync=False)
    assert journal.helper_pid is None
    assert await journal.append(b"r") == 1
    await journal.close()


@pytest.mark.anyio
async def test_an_append_waits_for_the_helpers_sync_while_the_loop_runs(
    tmp_path: Path, steering: Steering, reader: JournalReader
) -> None:
    journal = open_journal(tmp_path / "j")
    try:
        assert await journal.append(b"first") == 1
        steering.hold()
        held = asyncio.ensure_future(journal.append(b"held"))
        assert await asyncio.wait_for(asyncio.sleep(0.05, result="ran"), WAIT_SECONDS) == "ran"
        later = [asyncio.ensure_future(journal.append(b"later %d" % i)) for i in range(5)]
        await asyncio.sleep(0.05)
        # written (a reader sees the bytes) but not acknowledged before the sync
        assert not held.done() and not any(f.done() for f in later)
        assert [seq for seq, _ in read_all(reader)] == [1, 2]
    finally:
        steering.release()
    assert await asyncio.wait_for(held, WAIT_SECONDS) == 2
    assert await asyncio.wait_for(asyncio.gather(*later), WAIT_SECONDS) == [3, 4, 5, 6, 7]
    await journal.close()


@pytest.mark.anyio
async def test_a_sync_the_helper_fails_fails_its_appends_and_cuts_them_off(
    tmp_path: Path, steering: Steering, reader: JournalReader
) -> None:
    directory = tmp_path / "j"
    journal = open_journal(directory)
    assert await journal.append(b"kept") == 1
    steering.fail_syncs()
    results = await asyncio.gather(
        journal.append(b"secret-payload-1"),
        journal.append(b"secret-payload-2"),
        return_exceptions=True,
    )
    assert all(isinstance(r, StoreError) for r in results), results
    for error in results:
        assert "secret" not in str(error)
        assert "Input/output error" in str(error) and str(directory) in str(error)
    assert journal.last_seq == 1
    first = directory / "00000000000000000001.journal"
    assert first.stat().st_size == HEADER_SIZE + len(b"kept")
    steering.fail.unlink()
    assert await journal.append(b"after the failure") == 4  # a new segment, seqs not reused
    await journal.close()
    assert read_all(reader) == [(1, b"kept"), (4, b"after the failure")]


@pytest.mark.anyio
async def test_a_helper_that_dies_mid_sync_is_replaced_by_a_thread_without_losing_a_record(
    tmp_path: Path, steering: Steering, reader: JournalReader, caplog: pytest.LogCaptureFixture
) -> None:
    journal = open_journal(tmp_path / "j")
    assert await journal.append(b"before") == 1
    pid = journal.helper_pid
    assert pid is not None
    steering.hold()
    waiting = [asyncio.ensure_future(journal.append(b"waiting %d" % i)) for i in range(3)]
    await asyncio.sleep(0.05)
    assert not any(w.done() for w in waiting)
    with caplog.at_level(logging.WARNING, logger="capi_edge.store"):
        os.kill(pid, signal.SIGKILL)
        # each acknowledged once, with its own seq, once a thread has synced them
        assert await asyncio.wait_for(asyncio.gather(*waiting), WAIT_SECONDS) == [2, 3, 4]
    assert journal.helper_pid is None
    assert any("syncing on a thread" in r.getMessage() for r in caplog.records)
    assert await journal.append(b"after") == 5
    await journal.close()
    assert [seq for seq, _ in read_all(reader)] == [1, 2, 3, 4, 5]


@pytest.mark.anyio
async def test_a_helper_that_cannot_start_leaves_the_syncing_to_a_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(journal_module, "SYNC_HELPER_COMMAND", [str(tmp_path / "missing")])
    with caplog.at_level(logging.WARNING, logger="capi_edge.store"):
        journal = open_journal(tmp_path / "j")
    assert journal.helper_pid is None
    assert any("cannot start" in r.getMessage() for r in caplog.records)
    assert await journal.append(b"r") == 1
    await journal.close()


@pytest.mark.anyio
async def test_a_helper_that_exits_at_once_leaves_the_syncing_to_a_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, reader: JournalReader
) -> None:
    # e.g. a broken installation where ``edge.syncer`` cannot be imported
    monkeypatch.setattr(journal_module, "SYNC_HELPER_COMMAND", [sys.executable, "-c", "pass"])
    journal = open_journal(tmp_path / "j")
    assert await asyncio.wait_for(journal.append(b"r"), WAIT_SECONDS) == 1
    assert journal.helper_pid is None
    await journal.close()
    assert read_all(reader) == [(1, b"r")]


@pytest.mark.anyio
async def test_the_helper_ignores_a_terminals_interrupt(tmp_path: Path) -> None:
    # Ctrl-C reaches the whole process group; the server still has flushes to finish.
    journal = open_journal(tmp_path / "j")
    pid = journal.helper_pid
    assert pid is not None
    await journal.append(b"r")  # once it answers, its signal handlers are set
    os.kill(pid, signal.SIGINT)
    os.kill(pid, signal.SIGTERM)
    await asyncio.sleep(0.05)
    assert alive(pid) and journal.helper_pid == pid
    assert await journal.append(b"r") == 2
    await journal.close()


# -- the protocol ---------------------------------------------------------------------------


def test_the_protocol_answers_in_order_and_shares_one_sync_among_waiting_requests(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    real_fdatasync, real_fsync = os.fdatasync, os.fsync
    monkeypatch.setattr(os, "fdatasync", lambda fd: (calls.append("fdatasync"), real_fdatasync(fd)))
    monkeypatch.setattr(os, "fsync", lambda fd: (calls.append("fsync"), real_fsync(fd)))
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    segment = os.open(tmp_path / "segment", os.O_WRONLY | os.O_CREAT)
    directory = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        socket.send_fds(ours, [syncer.NEW_SEGMENT], [directory, segment])
        for _ in range(3):
            ours.send(syncer.SYNC)
        ours.send(b"?")  # not a request: answered as such, after the syncs before it
        ours.send(syncer.SYNC)
        helper = threading.Thread(target=syncer.Helper(theirs).serve)
        helper.start()
        statuses = b""
        ours.settimeout(WAIT_SECONDS)
        while len(statuses) < 6:
            statuses += ours.recv(64)
        assert list(statuses) == [0, 0, 0, 0, errno.EPROTO, 0]
        # the directory, the new segment, then one sync for the three waiting behind it
        assert calls[:3] == ["fsync", "fdatasync", "fdatasync"]
        assert len(calls) == 4
        ours.close()  # the helper's cue to stop
        helper.join(WAIT_SECONDS)
        assert not helper.is_alive()
    finally:
        os.close(segment)
        os.close(directory)
        theirs.close()


def test_a_sync_status_is_the_errno_of_a_failure(tmp_path: Path) -> None:
    assert syncer.sync_status(None) == errno.EBADF
    fd = os.open(tmp_path / "f", os.O_WRONLY | os.O_CREAT)
    assert syncer.sync_status(fd) == syncer.OK
    os.close(fd)
    assert syncer.sync_status(fd) == errno.EBADF


# -- every acknowledged record synced, with several flushes in flight -------------------------


class SyncLog:
    """Every fdatasync made in this process: the file and the length it covered."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, fail_at: int | None = None) -> None:
        self.synced: list[tuple[int, int]] = []
        self.lock = threading.Lock()
        self.fail_at = fail_at
        self.proceed = threading.Event()
        self.proceed.set()
        real = os.fdatasync

        def fdatasync(fd: int) -> None:
            time.sleep(0.002)  # a disk: long enough for flushes to queue up behind
            self.proceed.wait(WAIT_SECONDS)
            status = os.fstat(fd)
            with self.lock:
                if self.fail_at is not None and len(self.synced) == self.fail_at:
                    self.synced.append((status.st_ino, -1))
                    raise OSError(errno.EIO, os.strerror(errno.EIO))
                real(fd)
                self.synced.append((status.st_ino, status.st_size))

        monkeypatch.setattr(journal_module.os, "fdatasync", fdatasync)

    def covered(self, inode: int, end: int, calls: int) -> bool:
        with self.lock:
            return any(i == inode and size >= end for i, size in self.synced[:calls])


def frame_ends(directory: Path) -> dict[int, tuple[int, int]]:
    """seq -> (inode of its segment, the offset where its frame ends)."""
    ends: dict[int, tuple[int, int]] = {}
    for path in sorted(directory.glob("*.journal")):
        data, offset = path.read_bytes(), 0
        while offset + HEADER_SIZE <= len(data):
            length = int.from_bytes(data[offset : offset + 4], "little")
            seq = int.from_bytes(data[offset + 8 : offset + 16], "little")
            offset += HEADER_SIZE + length
            ends[seq] = (path.stat().st_ino, offset)
    return ends


@pytest.mark.parametrize("in_flight", [1, 3])
@pytest.mark.anyio
async def test_every_record_is_synced_in_its_own_segment_before_it_is_acknowledged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, reader: JournalReader, in_flight: int
) -> None:
    monkeypatch.setattr(journal_module, "MAX_SYNCS_IN_FLIGHT", in_flight)
    log = SyncLog(monkeypatch)
    directory = tmp_path / "j"
    journal = open_journal(directory, sync_helper=False, segment_bytes=600)
    acknowledged: list[tuple[int, int]] = []  # (seq, syncs made by then)

    async def append(i: int) -> None:
        await asyncio.sleep(0.001 * (i % 25))  # many flushes, some queued behind others
        seq = await journal.append(b"record %03d" % i)
        acknowledged.append((seq, len(log.synced)))

    await asyncio.gather(*(append(i) for i in range(120)))
    await journal.close()
    ends = frame_ends(directory)
    assert len(list(directory.glob("*.journal"))) > 3  # it rotated, with flushes in flight
    assert sorted(seq for seq, _ in acknowledged) == list(range(1, 121))
    for seq, calls in acknowledged:
        inode, end = ends[seq]
        assert log.covered(inode, end, calls), f"record {seq} acknowledged before its sync"
    assert [seq for seq, _ in read_all(reader)] == list(range(1, 121))


@pytest.mark.anyio
async def test_a_failed_sync_fails_every_flush_written_after_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, reader: JournalReader
) -> None:
    monkeypatch.setattr(journal_module, "MAX_SYNCS_IN_FLIGHT", 3)
    log = SyncLog(monkeypatch, fail_at=1)
    directory = tmp_path / "j"
    journal = open_journal(directory, sync_helper=False)
    assert await journal.append(b"kept") == 1
    segment = directory / "00000000000000000001.journal"
    kept_size = segment.stat().st_size
    log.proceed.clear()  # the next sync (the one that fails) waits for the test
    behind = []
    for i in range(3):  # three flushes, each written in a loop turn of its own
        behind.append(asyncio.ensure_future(journal.append(b"behind %d" % i)))
        written = kept_size + (i + 1) * (HEADER_SIZE + len(b"behind 0"))
        await until(lambda written=written: segment.stat().st_size == written)
    log.proceed.set()
    results = await asyncio.gather(*behind, return_exceptions=True)
    assert all(isinstance(r, StoreError) for r in results), results
    # none of their bytes stay: a later sync succeeding proves nothing about them
    assert segment.stat().st_size == kept_size
    assert await journal.append(b"after") == 5  # seqs 2-4 are not given out again
    await journal.close()
    assert read_all(reader) == [(1, b"kept"), (5, b"after")]


WRITER_SCRIPT = """
import asyncio, sys, time
from edge.store.journal import Journal

async def main():
    journal = Journal(sys.argv[1])
    journal.open()
    await journal.append(b"r")
    print(journal.helper_pid, flush=True)
    time.sleep(60)

asyncio.run(main())
"""


def test_the_helper_goes_when_its_writer_is_killed(tmp_path: Path) -> None:
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER_SCRIPT, str(tmp_path / "j")],
        stdout=subprocess.PIPE,
        cwd=REPO,
    )
    try:
        assert writer.stdout is not None
        helper = int(writer.stdout.readline())
        assert alive(helper)
        writer.kill()  # SIGKILL: no cleanup runs; the helper sees its socket's end
        writer.wait(WAIT_SECONDS)
        deadline = time.monotonic() + WAIT_SECONDS
        while alive(helper) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not alive(helper)
    finally:
        writer.kill()
        writer.wait()
        if writer.stdout is not None:
            writer.stdout.close()
