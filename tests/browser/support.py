"""Real processes and a real browser for the browser and deployment suites.

Chromium is Debian's (``.ci/bootstrap --with-browser`` installs it); Playwright drives it
through ``executable_path``, so no browser is ever downloaded. Every server binds to
loopback, every wait is bounded, and every process started here is stopped here.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import sink_events

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("CAPI_EDGE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
FBEVENTS_URLS = "https://connect.facebook.net/**"
TIKTOK_URLS = "https://analytics.tiktok.com/**"
DEMO_API_KEY = "demo-api-key-0123456789"  # examples/demo.toml
START_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0
SETUP_HINT = "run `bash .ci/bootstrap --with-browser` (installs Debian's chromium and caddy)"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def require(program: str) -> str:
    path = program if os.path.isabs(program) else shutil.which(program)
    if not path or not os.access(path, os.X_OK):
        pytest.fail(f"{program} is not installed: {SETUP_HINT}", pytrace=False)
    return path


class Process:
    """A child process with its log; ``stop`` sends SIGTERM, then SIGKILL after a grace."""

    def __init__(
        self,
        args: list[str],
        log: Path,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.log = log
        with log.open("ab") as out:  # the child keeps its own copy of the descriptor
            self.proc = subprocess.Popen(  # noqa: S603 - our own programs
                args, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd or ROOT
            )

    def alive(self) -> bool:
        return self.proc.poll() is None

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=STOP_TIMEOUT)


def edge_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "edge", *args]


def wait_for(
    predicate: Callable[[], bool], timeout: float, what: str, process: Process | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and not process.alive():
            raise AssertionError(f"{what}: the process exited early:\n{process.output()[-3000:]}")
        if predicate():
            return
        time.sleep(0.05)
    tail = f":\n{process.output()[-3000:]}" if process else ""
    raise AssertionError(f"{what}: not within {timeout}s{tail}")


def answers(url: str, **client: Any) -> Callable[[], bool]:
    def check() -> bool:
        try:
            with httpx.Client(timeout=1.0, **client) as http:
                return http.get(url).status_code < 500
        except httpx.HTTPError:
            return False

    return check


class Demo:
    """``capi-edge demo`` (the README's run command) on a free loopback port."""

    def __init__(self, tmp: Path) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.sinks = f"{self.base}/_demo/sinks"
        args = edge_command("demo", "--port", str(self.port), "--data-dir", str(tmp / "demo"))
        self.process = Process(args, tmp / "demo.log")
        wait_for(answers(f"{self.base}/healthz"), START_TIMEOUT, "capi-edge demo", self.process)

    def received(self, platform: str) -> list[dict[str, Any]]:
        """Every event the platform's sink accepted (Meta and TikTok both batch in ``data``)."""
        return sink_events(self.sinks, platform)

    def batch_with(self, platform: str, event_id: str) -> dict[str, Any]:
        """The request body in which the platform's sink received ``event_id``."""
        entries = httpx.get(f"{self.sinks}/requests", params={"platform": platform}).json()
        for entry in entries:
            if entry["method"] == "POST" and any(
                e["event_id"] == event_id for e in entry["json"]["data"]
            ):
                return dict(entry["json"])
        raise AssertionError(f"{platform} never received {event_id}")

    def received_ids(self, platform: str) -> set[str]:
        return {event["event_id"] for event in self.received(platform)}

    def status(self, event_id: str) -> dict[str, Any]:
        answer = httpx.get(
            f"{self.base}/v1/events/{event_id}",
            headers={"authorization": f"Bearer {DEMO_API_KEY}"},
        )
        return dict(answer.json()) if answer.status_code == 200 else {}

    def stop(self) -> None:
        self.process.stop()


# Playwright's sync API keeps an asyncio loop running while it is started, which would break
# every later test that calls asyncio.run(): the fixtures using it are package-scoped, so it
# runs only while tests/browser or tests/deploy do.
class _Shared:
    playwright: Any = None
    users = 0


@contextlib.contextmanager
def playwright_started() -> Iterator[Any]:
    """One Playwright driver for the whole run, whichever suites ask for it."""
    from playwright.sync_api import sync_playwright

    if _Shared.users == 0:
        _Shared.playwright = sync_playwright().start()
    _Shared.users += 1
    try:
        yield _Shared.playwright
    finally:
        _Shared.users -= 1
        if _Shared.users == 0:
            _Shared.playwright.stop()
            _Shared.playwright = None


@contextlib.contextmanager
def chromium_launched(*extra_args: str) -> Iterator[Any]:
    """Debian's Chromium under Playwright (``executable_path``: nothing is downloaded)."""
    executable = require(CHROMIUM)
    with playwright_started() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable, args=[*CHROMIUM_ARGS, *extra_args]
        )
        try:
            yield browser
        finally:
            browser.close()


# Stand-ins for Meta's fbevents.js and TikTok's events.js (the browser has no internet):
# each takes over its base code's queue, as the real scripts do, and records what it got.
FAKE_FBEVENTS = """(function () {
  var fbq = window.fbq, queued = fbq.queue;
  window.metaGot = [];
  fbq.callMethod = function () { metaGot.push([].slice.call(arguments)); };
  fbq.queue = [];
  queued.forEach(function (args) { fbq.callMethod.apply(fbq, args); });
})();"""
FAKE_TIKTOK = """(function () {
  var ttq = window.ttq, queued = ttq.slice();
  window.tiktokGot = [];
  ttq.methods.forEach(function (name) {
    ttq[name] = function () { tiktokGot.push([name].concat([].slice.call(arguments))); };
  });
  queued.forEach(function (call) { ttq[call[0]].apply(ttq, call.slice(1)); });
})();"""
