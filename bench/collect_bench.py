"""Collect benchmark: the edge's /collect (durable write included) vs a bare Starlette endpoint.

Three servers run side by side on this machine, each a single process served as
``capi-edge serve`` serves the edge (``edge.cli.serve_app``: uvicorn with uvloop and
httptools, no access log, no proxy headers), and are driven by the same load generator
over loopback:

* ``bare``: a plain Starlette app whose one POST route reads the body and returns JSON,
  on uvicorn's stock httptools protocol (the edge runs its subclass, ``edge.protocol``,
  which writes a hit's answer at once; a plain Starlette app gains nothing from it).
* ``edge``: the edge with Meta and TikTok configured and consent granted (every hit is
  routed and queued for both), ``durability = "full"`` (fsync on every group commit), the
  rate limiter running (with a ceiling the one load-generating address cannot reach), and
  the dispatcher not started. This is the collect path alone and the headline ratio.
* ``edge+dispatch``: the same, with the dispatcher draining the outbox to local recording
  sinks (a fourth process) while the load runs: the realistic figure.

The load generator keeps ``--concurrency`` keep-alive HTTP/1.1 connections busy (each sends
its next request as soon as the answer arrives), every request a distinct event_id so the
edge stores every one. Rounds are interleaved (bare, edge, edge+dispatch, bare, ...) to
share out background noise; the dispatching edge's backlog is drained before the next
measurement starts. Prints the median of each figure and of the per-round ratios.

    .venv/bin/python bench/collect_bench.py [--rounds 5] [--requests 10000] [--concurrency 32]

Targets loopback only; bounded in count and time; stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support import API_KEY, base_config, to_toml  # noqa: E402

HOST = "127.0.0.1"
MAX_SECONDS_PER_RUN = 120
MAX_DRAIN_SECONDS = 120
START_TIMEOUT_SECONDS = 20
SERVERS = ("bare", "edge", "edge+dispatch")
BODY = json.dumps(
    {
        "event": "add_to_cart",
        "page": {"url": "https://shop.example/p/42?fbclid=IwAR_bench", "title": "Product 42"},
        "data": {"value": 19.99, "currency": "EUR", "contents": [{"id": "42", "quantity": 1}]},
        "consent": {"ad_storage": "granted", "ad_user_data": "granted"},
    }
).encode()
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# -- the servers -------------------------------------------------------------------------


def bare_app() -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def collect(request: Request) -> JSONResponse:
        await request.body()
        return JSONResponse({"event_ids": ["bare"]})

    return Starlette(routes=[Route("/collect", collect, methods=["POST"])])


def edge_config(database: Path, sink: int | None) -> dict[str, Any]:
    config = base_config(str(database))
    for name in ("meta", "tiktok"):
        base = f"http://{HOST}:{sink}/{name}" if sink else f"http://{HOST}:9/{name}"
        config["destinations"][name]["base_url"] = base
    config["dispatch"] = {}  # the production defaults (linger 250 ms, poll 1 s)
    config["server"]["durability"] = "full"
    del config["server"]["ingest"]  # the default, as `capi-edge serve` runs: the journal
    # One load generator is one client address: lift its ceiling (the limiter still runs).
    config["server"]["rate_limit_per_second"] = 1e9
    config["server"]["rate_limit_burst"] = 1e9
    return config


def serve(kind: str, config: str, port: int) -> None:
    """Run one benchmark server in this process (the parent starts each as a subprocess)."""
    from edge.cli import serve_app

    if kind == "bare":
        serve_app(
            bare_app(),
            host=HOST,
            port=port,
            log_level="warning",
            access_log=False,
            http="httptools",
        )
        return
    from edge.app import create_app
    from edge.settings import load

    app = create_app(load(config), dispatch=kind == "edge+dispatch")
    serve_app(app, host=HOST, port=port, log_level="warning", access_log=False)


# -- the load generator ------------------------------------------------------------------


def request_bytes(port: int, event_id: str) -> bytes:
    body = BODY.replace(
        b'"event": "add_to_cart"', f'"event": "add_to_cart", "event_id": "{event_id}"'.encode()
    )
    head = (
        f"POST /collect HTTP/1.1\r\nHost: t.shop.example:{port}\r\n"
        "Origin: https://shop.example\r\nContent-Type: text/plain;charset=UTF-8\r\n"
        "User-Agent: Mozilla/5.0 (bench)\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


@dataclass
class Load:
    port: int
    requests: list[bytes]  # built before the clock starts: the client does little while timed
    done: asyncio.Future[None]
    issued: int = 0
    latencies: list[float] = field(default_factory=list)
    errors: list[int] = field(default_factory=list)
    elapsed: float = 0.0


class Connection(asyncio.Protocol):
    """One keep-alive connection that sends its next request when the answer is complete."""

    def __init__(self, load: Load) -> None:
        self.load = load
        self.buffer = b""
        self.started = 0.0
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass

    def send_next(self) -> None:
        load = self.load
        if load.issued >= len(load.requests):
            return
        request = load.requests[load.issued]
        load.issued += 1
        self.started = time.perf_counter()
        assert self.transport is not None
        self.transport.write(request)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = self.buffer[: end + 2].lower()  # each header line ends in CRLF
        at = head.find(b"\r\ncontent-length:")
        length = int(head[at + 17 : head.find(b"\r\n", at + 17)]) if at >= 0 else 0
        if len(self.buffer) < end + 4 + length:
            return
        load = self.load
        load.latencies.append(time.perf_counter() - self.started)
        status = int(self.buffer[9:12])
        if status != 200:
            load.errors.append(status)
        self.buffer = self.buffer[end + 4 + length :]
        if len(load.latencies) == len(load.requests) and not load.done.done():
            load.done.set_result(None)
        self.send_next()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.load.done.done():
            self.load.done.set_exception(ConnectionError("the server closed a connection"))


async def drive(port: int, requests: list[bytes], concurrency: int) -> Load:
    """Send ``requests``, ``concurrency`` at a time."""
    loop = asyncio.get_running_loop()
    load = Load(port, requests, loop.create_future())
    connections = []
    for _ in range(concurrency):
        _, protocol = await loop.create_connection(lambda: Connection(load), HOST, port)
        connections.append(protocol)
    started = time.perf_counter()
    for connection in connections:
        connection.send_next()
    try:
        await asyncio.wait_for(load.done, MAX_SECONDS_PER_RUN)
    finally:
        load.elapsed = time.perf_counter() - started
        for connection in connections:
            if connection.transport is not None:
                connection.transport.close()
    return load


# -- orchestration -----------------------------------------------------------------------


@dataclass
class Server:
    name: str
    port: int
    proc: subprocess.Popen[bytes]

    def cpu_seconds(self) -> tuple[float, float]:
        """CPU so far of the server process and of its children (the edge's indexer)."""
        own = children = 0
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:  # a process that ended meanwhile
                continue
            ticks = int(fields[11]) + int(fields[12])
            if stat.parent.name == str(self.proc.pid):
                own += ticks
            elif fields[1] == str(self.proc.pid):
                children += ticks
        return own / CLOCK_TICKS, children / CLOCK_TICKS


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def start(name: str, args: list[str], port: int, cwd: Path) -> Server:
    proc = subprocess.Popen(
        [sys.executable, *args], cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        try:
            socket.create_connection((HOST, port), timeout=0.2).close()
            return Server(name, port, proc)
        except OSError:
            if proc.poll() is not None:
                break
            time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"{name} on port {port} did not start")


def stop(server: Server) -> None:
    server.proc.send_signal(signal.SIGTERM)
    try:
        server.proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.proc.kill()
        server.proc.wait()


def delivered(port: int, event_id: str) -> bool:
    request = urllib.request.Request(  # noqa: S310 - loopback only
        f"http://{HOST}:{port}/v1/events/{event_id}",
        headers={"Authorization": f"Bearer {API_KEY}"},
    )
    with urllib.request.urlopen(request, timeout=15) as answer:  # noqa: S310
        destinations = json.load(answer)["destinations"]
    return all(d["status"] == "sent" for d in destinations.values())


def wait_drained(server: Server, event_id: str) -> float:
    """Seconds until the last event of the round was delivered everywhere."""
    started = time.monotonic()
    while not delivered(server.port, event_id):
        if time.monotonic() - started > MAX_DRAIN_SECONDS:
            raise SystemExit("the dispatcher did not drain its backlog in time")
        time.sleep(0.05)
    return time.monotonic() - started


def run(coroutine: Any) -> Any:
    """The client runs on uvloop too: the cheaper the client, the more the servers show."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)
    return uvloop.run(coroutine)


def wait_indexed(server: Server, event_id: str) -> float:
    """Seconds until the store holds the last event of the round.

    ``/v1/events/{id}`` answers once the indexer has filed every hit acknowledged before the
    question (503 if that takes over ten seconds: ask again).
    """
    started = time.monotonic()
    while True:
        try:
            delivered(server.port, event_id)
            return time.monotonic() - started
        except urllib.error.HTTPError as err:
            if err.code != 503 or time.monotonic() - started > MAX_DRAIN_SECONDS:
                raise SystemExit(f"{server.name} did not store its hits: {err}") from None


def measure(server: Server, requests: int, concurrency: int) -> dict[str, float]:
    # A distinct event_id per request so the edge stores every one (no dedup shortcut),
    # random like the UUIDs the loader mints (sequential ids would flatter SQLite's indexes).
    event_ids = [str(uuid.uuid4()) for _ in range(requests)]
    batch = [request_bytes(server.port, event_id) for event_id in event_ids]
    cpu, client_cpu = server.cpu_seconds(), time.process_time()
    load = run(drive(server.port, batch, concurrency))
    elapsed = load.elapsed
    client = (time.process_time() - client_cpu) / elapsed
    # Hits are acknowledged once journaled: the round ends when the store holds them all
    # (and, dispatching, when the platforms have them), and the CPU counted includes that.
    behind = wait_indexed(server, event_ids[-1]) if server.name != "bare" else 0.0
    drained = wait_drained(server, event_ids[-1]) if server.name == "edge+dispatch" else 0.0
    own, children = server.cpu_seconds()
    return {
        "rps": requests / elapsed,
        "p50_ms": statistics.median(load.latencies) * 1000,
        "p99_ms": sorted(load.latencies)[int(requests * 0.99) - 1] * 1000,
        "errors": float(len(load.errors)),
        "server_cpu_us": (own + children - sum(cpu)) / requests * 1e6,
        "indexer_cpu_us": (children - cpu[1]) / requests * 1e6,
        "client_cpu": client,
        "indexed_s": behind,
        "drain_s": drained,
    }


def median(rows: list[dict[str, float]], key: str) -> float:
    return statistics.median(r[key] for r in rows)


def report(args: argparse.Namespace, results: dict[str, list[dict[str, float]]]) -> None:
    import starlette
    import uvicorn

    print(
        f"{args.rounds} rounds x {args.requests} requests per server, concurrency"
        f" {args.concurrency}, {os.cpu_count()} cores, Python {platform.python_version()},"
        f" uvicorn {uvicorn.__version__}, starlette {starlette.__version__}"
    )
    print("medians:")
    for name in SERVERS:
        rows = results[name]
        line = (
            f"  {name:>13}: {median(rows, 'rps'):7.0f} req/s  p50 {median(rows, 'p50_ms'):6.2f} ms"
            f"  p99 {median(rows, 'p99_ms'):6.2f} ms  server CPU"
            f" {median(rows, 'server_cpu_us'):4.0f} µs/req"
            f" (indexer {median(rows, 'indexer_cpu_us'):3.0f})"
            f"  non-200: {int(sum(r['errors'] for r in rows))}"
        )
        if name != "bare":
            line += f"  stored {median(rows, 'indexed_s'):.2f} s after the load"
        if name == "edge+dispatch":
            line += f", delivered {median(rows, 'drain_s'):.2f} s after"
        print(line)
    for name in SERVERS[1:]:
        ratios = [e["rps"] / b["rps"] for e, b in zip(results[name], results["bare"], strict=True)]
        each = " ".join(f"{r:.2f}" for r in ratios)
        target = "  (target >= 0.5)" if name == "edge" else ""
        print(f"ratio {name}/bare: {statistics.median(ratios):.2f}{target}   rounds: {each}")
    busiest = max(r["client_cpu"] for rows in results.values() for r in rows)
    print(f"load generator CPU: up to {busiest:.0%} of one core")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--warmup", type=int, default=2_000)
    parser.add_argument("--serve", choices=SERVERS, help=argparse.SUPPRESS)
    parser.add_argument("--config", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.config, args.port)
        return

    env_path = os.environ.get("PYTHONPATH", "")
    os.environ["PYTHONPATH"] = f"{ROOT}:{env_path}" if env_path else str(ROOT)
    me = str(Path(__file__).resolve())
    results: dict[str, list[dict[str, float]]] = {name: [] for name in SERVERS}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        sink_port = free_port()
        servers: list[Server] = []
        try:
            servers.append(
                start("sinks", ["-m", "edge", "sinks", "--port", str(sink_port)], sink_port, work)
            )
            for name in SERVERS:
                config = work / f"{name}.toml"
                config.write_text(to_toml(edge_config(work / f"{name}.db", sink_port)))
                port = free_port()
                args_ = [me, "--serve", name, "--config", str(config), "--port", str(port)]
                servers.append(start(name, args_, port, work))
            measured = servers[1:]
            for server in measured:  # warm up: imports, caches, the database file
                measure(server, args.warmup, args.concurrency)
            for _ in range(args.rounds):
                for server in measured:
                    results[server.name].append(measure(server, args.requests, args.concurrency))
        finally:
            for server in reversed(servers):
                stop(server)
    report(args, results)


if __name__ == "__main__":
    main()
