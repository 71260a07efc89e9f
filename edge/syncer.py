"""The journal's sync helper: a process that only calls ``fdatasync`` for the journal.

The journal (``edge.store.journal``) writes its records on the event loop and leaves the wait
for the disk to this process, so the loop never hands the GIL to a flush thread and back on
every hit. It lives outside ``edge.store`` so that it starts on the standard library alone.

The protocol, over one ``SOCK_SEQPACKET`` socket whose descriptor is the last argument:

* ``N`` with two descriptors attached (the journal's directory and a new segment): fsync the
  directory, so the segment's name survives a power loss, then fdatasync the segment. From
  then on ``S`` means this segment.
* ``S``: fdatasync the current segment.

Every request gets one status byte back, in order: 0 when the sync succeeded, else the errno.
Requests that are already waiting share one ``fdatasync`` (it covers every byte written before
it was called). The helper exits when the journal closes its end, and ignores SIGINT and
SIGTERM: a Ctrl-C in a terminal reaches the whole process group, and the journal still has
flushes to finish while the server stops.
"""

from __future__ import annotations

import array
import errno
import os
import signal
import socket
import sys

NEW_SEGMENT = b"N"
SYNC = b"S"
OK = 0
MAX_REQUEST_BYTES = 16
MAX_FDS = 2
MAX_BATCH = 1024  # requests answered together at most (the journal keeps few in flight)


def sync_status(fd: int | None, directory_fd: int | None = None) -> int:
    """0 once ``fd``'s data is on disk (after the directory's entries), else the errno."""
    try:
        if fd is None:
            return errno.EBADF
        if directory_fd is not None:
            os.fsync(directory_fd)
        os.fdatasync(fd)
    except OSError as err:
        return err.errno or errno.EIO
    return OK


def receive_request(channel: socket.socket, flags: int) -> tuple[bytes, list[int]]:
    """One request and the descriptors it carries (``socket.recv_fds`` ignores its flags
    before Python 3.12)."""
    fds = array.array("i")
    space = socket.CMSG_SPACE(MAX_FDS * fds.itemsize)
    message, ancillary, _, _ = channel.recvmsg(MAX_REQUEST_BYTES, space, flags)
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(data[: len(data) - len(data) % fds.itemsize])
    return message, list(fds)


class HeldSegment:
    """The segment a syncer keeps a descriptor of its own for: the helper's, and the thread's
    that the journal falls back to."""

    def __init__(self) -> None:
        self.fd: int | None = None

    def adopt(self, directory: int, segment: int) -> int:
        """Hold ``segment`` from now on (the one held before is closed) and sync it after
        ``directory``; both descriptors are the holder's to close."""
        self.close()
        self.fd = segment
        try:
            return sync_status(segment, directory)
        finally:
            os.close(directory)

    def sync(self) -> int:
        return sync_status(self.fd)

    def close(self) -> None:
        if self.fd is not None:
            fd, self.fd = self.fd, None
            os.close(fd)


class Helper:
    def __init__(self, channel: socket.socket) -> None:
        self.channel = channel
        self.segment = HeldSegment()

    def serve(self) -> None:
        while True:
            requests = self.receive()
            if not requests:
                return  # the journal closed its end
            self.channel.sendall(self.answer(requests))

    def receive(self) -> list[tuple[bytes, list[int]]]:
        """Block for one request, then take every request already waiting."""
        requests: list[tuple[bytes, list[int]]] = []
        flags = 0
        while len(requests) < MAX_BATCH:
            try:
                message, fds = receive_request(self.channel, flags)
            except BlockingIOError:
                break
            if not message:
                break
            requests.append((message, fds))
            flags = socket.MSG_DONTWAIT
        return requests

    def answer(self, requests: list[tuple[bytes, list[int]]]) -> bytes:
        statuses = bytearray()
        waiting = 0  # S requests for the held segment, answered by one sync
        for message, fds in requests:
            if message == SYNC:
                waiting += 1
                continue
            statuses += self.sync_waiting(waiting)
            waiting = 0
            if message == NEW_SEGMENT and len(fds) == MAX_FDS:
                statuses.append(self.segment.adopt(*fds))
            else:
                for fd in fds:
                    os.close(fd)
                statuses.append(errno.EPROTO)
        statuses += self.sync_waiting(waiting)
        return bytes(statuses)

    def sync_waiting(self, waiting: int) -> bytes:
        """One status for each of ``waiting`` requests, all from one sync (none for none)."""
        return bytes([self.segment.sync()]) * waiting if waiting else b""


def main(argv: list[str] | None = None) -> int:
    args = sys.argv if argv is None else argv
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    channel = socket.socket(fileno=int(args[-1]))
    try:
        Helper(channel).serve()
    except (BrokenPipeError, ConnectionResetError):
        pass  # the journal is gone; it falls back to syncing on its own
    return 0


if __name__ == "__main__":
    sys.exit(main())
