"""In-process cost of one hit: the ASGI app called directly, no sockets, no HTTP parsing.

A profiling aid next to ``collect_bench.py``: it drives the edge's ASGI app (and a bare
Starlette endpoint) with the same request the socket benchmark sends, ``--concurrency``
requests in flight, and prints microseconds per request. ``--profile`` adds a cProfile
of the edge run. The store is a real SQLite file with synchronous=FULL; destinations are
configured (consent granted, so every event is queued for Meta and TikTok) and the
dispatcher is not started, so this is the collect path alone. ``--stub-store`` answers
appends at once without writing anything: what is left is the edge's own work per hit.

    .venv/bin/python bench/collect_inprocess.py [--requests 20000] [--stub-store] [--profile]

Wall time per request includes waiting for fsync; the loop thread's CPU time does not.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.collect_bench import BODY, bare_app, edge_config  # noqa: E402
from edge.app import create_app  # noqa: E402
from edge.settings import parse  # noqa: E402
from tests.support import to_toml  # noqa: E402

App = Callable[[dict[str, Any], Any, Any], Awaitable[None]]


def scope_for(body: bytes) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/collect",
        "raw_path": b"/collect",
        "root_path": "",
        "query_string": b"",
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 50000),
        "headers": [
            (b"host", b"t.shop.example:8000"),
            (b"origin", b"https://shop.example"),
            (b"content-type", b"text/plain;charset=UTF-8"),
            (b"user-agent", b"Mozilla/5.0 (bench)"),
            (b"content-length", str(len(body)).encode()),
        ],
        "state": {},
    }


async def one(app: App, statuses: list[int]) -> None:
    body = BODY.replace(
        b'"event": "add_to_cart"', f'"event": "add_to_cart", "event_id": "{uuid.uuid4()}"'.encode()
    )
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    await app(scope_for(body), receive, send)


async def drive(app: App, requests: int, concurrency: int) -> tuple[float, float]:
    """Wall time and the loop thread's CPU time per request, in microseconds."""
    statuses: list[int] = []
    queue = iter(range(requests))

    async def worker() -> None:
        for _ in queue:
            await one(app, statuses)

    started, cpu = time.perf_counter(), time.thread_time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed, cpu = time.perf_counter() - started, time.thread_time() - cpu
    bad = [s for s in statuses if s != 200]
    if bad:
        raise SystemExit(f"non-200 answers: {sorted(set(bad))}")
    return elapsed / requests * 1e6, cpu / requests * 1e6


async def run(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        settings = parse(to_toml(edge_config(Path(tmp) / "edge.db", sink=None)), base=Path(tmp))
        edge = create_app(settings, dispatch=False)
        if args.stub_store:

            async def append(items: list[Any]) -> list[bool]:
                return [True] * len(items)

            edge.state.store.append = append
        bare = bare_app()
        async with edge.router.lifespan_context(edge):
            for app in (bare, edge):
                await drive(app, 500, args.concurrency)  # warm caches and the file
            results: dict[str, list[tuple[float, float]]] = {"bare": [], "edge": []}
            for _ in range(args.rounds):
                for name, app in (("bare", bare), ("edge", edge)):
                    results[name].append(await drive(app, args.requests, args.concurrency))
            for name, rows in results.items():
                wall = statistics.median(row[0] for row in rows)
                cpu = statistics.median(row[1] for row in rows)
                print(f"{name}: {wall:7.1f} µs/request, loop thread CPU {cpu:7.1f} µs/request")
            if args.profile:
                profiler = cProfile.Profile()
                profiler.enable()
                await drive(edge, args.requests, args.concurrency)
                profiler.disable()
                stats = pstats.Stats(profiler).sort_stats(args.sort)
                stats.print_stats(args.top)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--stub-store", action="store_true", help="appends write nothing")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--sort", default="tottime")
    parser.add_argument("--top", type=int, default=40)
    args = parser.parse_args()
    try:
        import uvloop
    except ImportError:
        asyncio.run(run(args))
    else:
        uvloop.run(run(args))


if __name__ == "__main__":
    main()
