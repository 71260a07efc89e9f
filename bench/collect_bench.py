"""Collect benchmark: the edge's /collect (durable write included) vs a bare Starlette endpoint.

Both servers run in the same run, on the same machine, as single uvicorn processes with the
same settings, driven by the same load generator: a minimal keep-alive HTTP/1.1 client on
asyncio streams (cheap enough that the servers, not the client, are what is measured).
The edge runs with Meta and TikTok configured against a local sink, consent granted, so
its dispatcher drains the outbox while the load runs, and with synchronous=FULL (fsync on
every group commit). Prints requests/s, latency percentiles and the ratio edge / bare.

    .venv/bin/python bench/collect_bench.py [--requests 4000] [--concurrency 32]

Targets loopback only; bounded in count and time; stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support import base_config, to_toml  # noqa: E402

HOST = "127.0.0.1"
MAX_SECONDS_PER_RUN = 120
BARE_APP = """
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

async def collect(request: Request) -> JSONResponse:
    await request.body()
    return JSONResponse({"event_ids": ["bare"]})

app = Starlette(routes=[Route("/collect", collect, methods=["POST"])])
"""
BODY = json.dumps(
    {
        "event": "add_to_cart",
        "page": {"url": "https://shop.example/p/42?fbclid=IwAR_bench", "title": "Product 42"},
        "data": {"value": 19.99, "currency": "EUR", "contents": [{"id": "42", "quantity": 1}]},
        "consent": {"ad_storage": "granted", "ad_user_data": "granted"},
    }
).encode()


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def request_bytes(port: int, n: int) -> bytes:
    # A distinct event_id per request so the edge stores every one (no dedup shortcut).
    body = BODY.replace(
        b'"event": "add_to_cart"', f'"event": "add_to_cart", "event_id": "b-{n}"'.encode()
    )
    head = (
        f"POST /collect HTTP/1.1\r\nHost: t.shop.example:{port}\r\n"
        "Origin: https://shop.example\r\nContent-Type: text/plain;charset=UTF-8\r\n"
        "User-Agent: Mozilla/5.0 (bench)\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def worker(
    port: int, jobs: asyncio.Queue[int], latencies: list[float], errors: list[int]
) -> None:
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        while True:
            try:
                n = jobs.get_nowait()
            except asyncio.QueueEmpty:
                return
            started = time.perf_counter()
            writer.write(request_bytes(port, n))
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - started)
            if status != 200:
                errors.append(status)
    finally:
        writer.close()


async def load(port: int, requests: int, concurrency: int, offset: int) -> dict[str, float]:
    jobs: asyncio.Queue[int] = asyncio.Queue()
    for n in range(requests):
        jobs.put_nowait(offset + n)
    latencies: list[float] = []
    errors: list[int] = []
    started = time.perf_counter()
    await asyncio.wait_for(
        asyncio.gather(*(worker(port, jobs, latencies, errors) for _ in range(concurrency))),
        MAX_SECONDS_PER_RUN,
    )
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "rps": len(latencies) / elapsed,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1000,
        "errors": float(len(errors)),
    }


def start(args: list[str], port: int, cwd: Path) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(args, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # noqa: S603
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection((HOST, port), timeout=0.2).close()
            return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"server on port {port} did not start")


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--warmup", type=int, default=300)
    args = parser.parse_args()
    python = sys.executable
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "bare_app.py").write_text(BARE_APP)
        sink_port, bare_port, edge_port = free_port(), free_port(), free_port()
        config = base_config(str(work / "edge.db"))
        config["destinations"]["meta"]["base_url"] = f"http://{HOST}:{sink_port}/meta"
        config["destinations"]["tiktok"]["base_url"] = f"http://{HOST}:{sink_port}/tiktok"
        config["dispatch"] = {"linger_ms": 250}
        # One load generator is one client address: lift its limit (the limiter still runs).
        config["server"]["rate_limit_per_second"] = 1e9
        config["server"]["rate_limit_burst"] = 1e9
        (work / "edge.toml").write_text(to_toml(config))
        env_path = os.environ.get("PYTHONPATH", "")
        os.environ["PYTHONPATH"] = f"{ROOT}:{env_path}" if env_path else str(ROOT)

        sinks = start([python, "-m", "edge", "sinks", "--port", str(sink_port)], sink_port, work)
        results = {}
        try:
            uvicorn_common = ["--log-level", "warning", "--no-access-log", "--host", HOST]
            bare = start(
                [
                    python,
                    "-m",
                    "uvicorn",
                    "bare_app:app",
                    "--port",
                    str(bare_port),
                    *uvicorn_common,
                ],
                bare_port,
                work,
            )
            try:
                asyncio.run(load(bare_port, args.warmup, args.concurrency, 0))
                results["bare"] = asyncio.run(
                    load(bare_port, args.requests, args.concurrency, 10**6)
                )
            finally:
                stop(bare)
            edge = start(
                [
                    python,
                    "-m",
                    "edge",
                    "serve",
                    "--config",
                    str(work / "edge.toml"),
                    "--port",
                    str(edge_port),
                    "--log-level",
                    "warning",
                ],
                edge_port,
                work,
            )
            try:
                asyncio.run(load(edge_port, args.warmup, args.concurrency, 0))
                results["edge"] = asyncio.run(
                    load(edge_port, args.requests, args.concurrency, 10**6)
                )
            finally:
                stop(edge)
        finally:
            stop(sinks)

    print(
        f"requests per server: {args.requests}, concurrency: {args.concurrency},"
        f" cores: {os.cpu_count()}"
    )
    for name, r in results.items():
        print(
            f"{name:>5}: {r['rps']:8.0f} req/s   p50 {r['p50_ms']:6.2f} ms   "
            f"p99 {r['p99_ms']:6.2f} ms   non-200: {int(r['errors'])}"
        )
    ratio = results["edge"]["rps"] / results["bare"]["rps"]
    print(f"ratio edge/bare: {ratio:.2f} (target >= 0.5)")


if __name__ == "__main__":
    main()
