"""``capi-edge``: serve, check a config, run the demo, or run the recording sinks."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from edge.errors import ConfigError

EXIT_CONFIG = 2
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
GIL_SWITCH_INTERVAL_SECONDS = 0.0005


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from edge.app import create_app
    from edge.dispatcher import STOP_GRACE_SECONDS
    from edge.settings import load

    settings = load(args.config)
    app = create_app(settings)
    # The store's writer thread and the event loop trade the GIL on every commit; CPython's
    # default 5 ms switch interval would let one wait on the other for that long.
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_SECONDS)
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        # Client IPs are personal data: no access log unless asked for.
        access_log=args.access_log,
        # We resolve X-Forwarded-For ourselves, against server.trusted_proxies only.
        proxy_headers=False,
        server_header=False,
        timeout_graceful_shutdown=int(STOP_GRACE_SECONDS) + 5,
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
