"""``capi-edge``: serve, check a config, run the demo, or run the recording sinks."""

from __future__ import annotations

import argparse
import gc
import logging
import sys
from collections.abc import Sequence
from typing import Any

from edge.errors import ConfigError

EXIT_CONFIG = 2
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
# Container allocations between young-generation collections (CPython's default: 700).
# A hit allocates a few hundred; at the default, the older generations are collected so
# often that rescanning what a loaded app keeps alive cost about a tenth of a hit's CPU.
GC_YOUNG_THRESHOLD = 20_000


def serve_app(
    app: Any, *, host: str, port: int, log_level: str, access_log: bool, http: Any = None
) -> None:
    """Run an ASGI app as ``serve`` does (the benchmark serves its bare baseline with this too).

    uvicorn's ``auto`` picks uvloop; the HTTP protocol is uvicorn's httptools one with
    whole answers in one write (``edge.protocol``), unless ``http`` names another (the
    benchmark's baseline runs the stock one). Both are in ``uvicorn[standard]``.
    """
    import uvicorn

    from edge.dispatcher import STOP_GRACE_SECONDS
    from edge.protocol import EdgeHttpProtocol

    tune_gc()
    uvicorn.run(
        app,
        host=host,
        port=port,
        http=EdgeHttpProtocol if http is None else http,
        log_level=log_level,
        # Client IPs are personal data: no access log unless asked for.
        access_log=access_log,
        # We resolve X-Forwarded-For ourselves, against server.trusted_proxies only.
        proxy_headers=False,
        server_header=False,
        timeout_graceful_shutdown=int(STOP_GRACE_SECONDS) + 5,
    )


def tune_gc() -> None:
    """Collect less often, and never rescan what exists once the app is built.

    Everything alive now (modules, settings, tag tables, the user-agent parser's patterns)
    lives as long as the process: ``gc.freeze`` moves it out of the collector's sight, so
    full collections only walk what requests left behind. Reference counting still frees
    almost everything at once; the collector is only for cycles, and those wait a little
    longer.
    """
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, old)


def _serve(args: argparse.Namespace) -> int:
    from edge.app import create_app
    from edge.settings import load

    settings = load(args.config)
    serve_app(
        create_app(settings),
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        access_log=args.access_log,
    )
    return 0


def _check(args: argparse.Namespace) -> int:
    from edge.settings import load

    settings = load(args.config)
    names = ", ".join(sorted(settings.destinations)) or "none"
    print(f"{args.config}: OK ({len(settings.destinations)} destination(s): {names})")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from edge.demo import run_demo

    return run_demo(host=args.host, port=args.port, data_dir=args.data_dir)


def _test_connection(args: argparse.Namespace) -> int:
    """Run each destination's safe probe: proves credentials without recording a conversion."""
    import asyncio

    from edge.dispatcher import Dispatcher
    from edge.settings import load

    settings = load(args.config)
    names = args.destination or sorted(settings.destinations)
    unknown = [n for n in names if n not in settings.destinations]
    if unknown:
        print(f"capi-edge: not configured: {', '.join(unknown)}", file=sys.stderr)
        return EXIT_CONFIG

    async def run() -> int:
        dispatcher = Dispatcher(None, settings.destinations, settings.dispatch)  # type: ignore[arg-type]
        failed = 0
        try:
            for name in names:
                result = await dispatcher.test_connection(name)
                mark = "OK  " if result.ok else "FAIL"
                status = result.http_status if result.http_status is not None else "-"
                print(
                    f"{mark} {name:<11} http {status}  {result.latency_ms:7.1f} ms  {result.reason}"
                )
                failed += not result.ok
        finally:
            await dispatcher.client.aclose()
        return 1 if failed else 0

    return asyncio.run(run())


def _sinks(args: argparse.Namespace) -> int:
    import uvicorn

    from edge.sinks import create_sinks_app

    uvicorn.run(create_sinks_app(), host=args.host, port=args.port, log_level="warning")
    return 0


def _indexer(args: argparse.Namespace) -> int:
    from edge.indexer import run_indexer

    tune_gc()  # a batch allocates thousands of objects: the same reasoning as serve
    return run_indexer(args.database, durability=args.durability, supervised=args.supervised)


def _doctor(args: argparse.Namespace) -> int:
    from edge.doctor import command

    return command(args)


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="capi-edge", description=__doc__)
    commands = root.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the edge")
    serve.add_argument("--config", required=True, help="path to the TOML config")
    serve.add_argument("--host", default=DEFAULT_HOST)
    serve.add_argument("--port", type=int, default=DEFAULT_PORT)
    serve.add_argument("--log-level", default="info")
    serve.add_argument("--access-log", action="store_true", help="log every request (with IPs)")
    serve.set_defaults(run=_serve)

    check = commands.add_parser("check", help="validate a config and exit")
    check.add_argument("--config", required=True)
    check.set_defaults(run=_check)

    demo = commands.add_parser("demo", help="run the edge with a demo shop and local sinks")
    demo.add_argument("--host", default=DEFAULT_HOST)
    demo.add_argument("--port", type=int, default=DEFAULT_PORT)
    demo.add_argument("--data-dir", default=".demo", help="where the demo keeps its store")
    demo.set_defaults(run=_demo)

    test = commands.add_parser(
        "test", help="test each destination's credentials with its safe probe (no conversion)"
    )
    test.add_argument("--config", required=True)
    test.add_argument("destination", nargs="*", help="only these destinations")
    test.set_defaults(run=_test_connection)

    sinks = commands.add_parser("sinks", help="run local recording servers for the platforms")
    sinks.add_argument("--host", default=DEFAULT_HOST)
    sinks.add_argument("--port", type=int, default=9100)
    sinks.set_defaults(run=_sinks)

    indexer = commands.add_parser(
        "indexer", help="file the hits journal into the store (serve starts it itself)"
    )
    indexer.add_argument("--database", required=True, help="the store's SQLite file")
    indexer.add_argument("--durability", choices=("full", "normal"), default="full")
    indexer.add_argument(
        "--supervised", action="store_true", help="stop when stdin closes (how serve runs it)"
    )
    indexer.set_defaults(run=_indexer)

    doctor = commands.add_parser(
        "doctor", help="check a live deployment: loader, TLS, cookies, address range, consent"
    )
    doctor.add_argument("--site", required=True, help="a page of the shop: https://shop.example")
    doctor.add_argument(
        "--edge",
        help="the edge's base URL: https://t.shop.example or https://shop.example/_e "
        "(default: taken from the loader tag on the site's page)",
    )
    doctor.add_argument(
        "--resolve",
        action="append",
        default=[],
        metavar="HOST:ADDRESS",
        help="connect to ADDRESS for HOST, e.g. before DNS points there (repeatable)",
    )
    doctor.add_argument("--ca-file", help="also trust this CA certificate (an internal CA)")
    doctor.add_argument(
        "--api-key", help="read the doctor's hit back from /v1/events (default: $CAPI_EDGE_API_KEY)"
    )
    doctor.add_argument("--timeout", type=float, default=10.0, help="seconds per request")
    doctor.set_defaults(run=_doctor)

    from edge.admin.cli import add_commands  # admin hash-password, vault rotate / new-key

    add_commands(commands)
    return root


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per platform call is noise
    try:
        return int(args.run(args))
    except ConfigError as err:
        print(f"capi-edge: {err}", file=sys.stderr)
        return EXIT_CONFIG


if __name__ == "__main__":
    sys.exit(main())
