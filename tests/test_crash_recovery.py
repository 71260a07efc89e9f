"""A real edge process killed with SIGKILL after acknowledging events delivers them all later."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .support import base_config, sink_events, to_toml, wait_until

pytestmark = pytest.mark.slow
EVENTS = 25


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def spawn(*args: str, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", "edge", *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: the edge and its indexer
        )


def children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # it ended meanwhile
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def command_line(pid: int) -> bytes:
    return Path(f"/proc/{pid}/cmdline").read_bytes()


def wait_healthy(url: str) -> None:
    def up() -> bool:
        try:
            return httpx.get(url, timeout=0.5).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(up, timeout=20, interval=0.1)


@pytest.fixture
def sinks(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    proc = spawn("sinks", "--port", str(port), log=tmp_path / "sinks.log")
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(f"{base}/requests")
        yield base
    finally:
        proc.kill()
        proc.wait(timeout=10)


def delivered_ids(sinks: str, platform: str) -> set[str]:
    return {event["event_id"] for event in sink_events(sinks, platform)}


@pytest.mark.parametrize("ingest", ["journal", "direct"])
def test_sigkill_after_acknowledging_loses_nothing(tmp_path: Path, sinks: str, ingest: str) -> None:
    """With the journal, SIGKILL takes the indexer process down with the edge."""
    config = base_config(str(tmp_path / "edge.db"), consent={"default": "granted"})
    config["server"]["ingest"] = ingest
    config["destinations"]["meta"]["base_url"] = f"{sinks}/meta"
    config["destinations"]["tiktok"]["base_url"] = f"{sinks}/tiktok"
    config_path = tmp_path / "edge.toml"
    config_path.write_text(to_toml(config))
    for platform in ("meta", "tiktok"):  # both platforms down: nothing can be delivered yet
        httpx.post(
            f"{sinks}/_control/fail", json={"platform": platform, "status": 503, "times": 10**6}
        )

    port = free_port()
    edge_url = f"http://127.0.0.1:{port}"
    args = ("serve", "--config", str(config_path), "--port", str(port))
    edge = spawn(*args, log=tmp_path / "edge.log")
    try:
        wait_healthy(f"{edge_url}/healthz")
        if ingest == "journal":  # hold the indexer: every hit stays in the journal only
            # (its other child is the journal's sync helper)
            (indexer,) = [pid for pid in children(edge.pid) if b"indexer" in command_line(pid)]
            os.kill(indexer, signal.SIGSTOP)
        ids = [f"crash-{i}" for i in range(EVENTS)]
        for event_id in ids:
            answer = httpx.post(
                f"{edge_url}/collect",
                content=json.dumps(
                    {
                        "event": "purchase",
                        "event_id": event_id,
                        "page": {"url": "https://shop.example/thanks"},
                        "user": {"email": "crash@example.com"},
                        "data": {"value": 10, "currency": "USD"},
                    }
                ),
                headers={"content-type": "text/plain", "user-agent": "Mozilla/5.0 test"},
            )
            assert answer.status_code == 200 and answer.json() == {"event_ids": [event_id]}
        os.killpg(edge.pid, signal.SIGKILL)  # the whole group: the edge and its indexer
        assert edge.wait(timeout=10) == -signal.SIGKILL
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(edge.pid, signal.SIGKILL)
    assert delivered_ids(sinks, "meta") == set() == delivered_ids(sinks, "tiktok")

    httpx.post(f"{sinks}/_control/reset")  # the platforms recover
    edge = spawn(*args, log=tmp_path / "edge.log")
    try:
        wait_healthy(f"{edge_url}/healthz")
        wait_until(
            lambda: delivered_ids(sinks, "meta") == set(ids) == delivered_ids(sinks, "tiktok"),
            timeout=30,
            interval=0.2,
        )
    finally:
        edge.send_signal(signal.SIGTERM)  # and a clean stop on SIGTERM
        # uvicorn finishes its shutdown, then re-raises the signal as its exit status
        assert edge.wait(timeout=20) in (0, -signal.SIGTERM)
    assert "Application shutdown complete" in (tmp_path / "edge.log").read_text()
