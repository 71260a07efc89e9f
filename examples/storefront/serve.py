"""The demo storefront next to an edge running *your* config: pixel + server dedup, for real.

    .venv/bin/python examples/storefront/serve.py --config edge.toml

then open http://127.0.0.1:8000/?meta_pixel=<dataset id>&tiktok_pixel=<pixel code> (or the
address Meta's Test events tool opens). The page loads Meta's and TikTok's real pixels,
the consent banner grants them, and every event goes out twice with one event_id: from the
pixels, and from this edge to the Conversions API and Events API with the ``test_event_code``
your edge.toml sets. See "Verifying pixel + server deduplication" in the README.

The edge here keeps its events in a throwaway database, so it never competes with the edge
that serves your shop, and it accepts hits from the address it listens on.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
from collections.abc import Sequence
from pathlib import Path

STOREFRONT = Path(__file__).resolve().parent / "index.html"


def main(argv: Sequence[str] | None = None) -> int:
    import uvicorn
    from starlette.requests import Request
    from starlette.responses import FileResponse, Response
    from starlette.routing import Route

    from edge.app import create_app
    from edge.settings import load

    cli = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    cli.add_argument("--config", required=True, help="your edge.toml (with test_event_code)")
    cli.add_argument("--host", default="127.0.0.1")
    cli.add_argument("--port", type=int, default=8000)
    args = cli.parse_args(argv)

    async def shop(request: Request) -> Response:
        return FileResponse(STOREFRONT, headers={"cache-control": "no-store"})

    settings = load(args.config)
    with tempfile.TemporaryDirectory(prefix="capi-edge-dedup-") as scratch:
        settings = dataclasses.replace(
            settings,
            database=Path(scratch) / "dedup-test.db",
            domains=(*settings.domains, args.host),
        )
        app = create_app(settings, extra_routes=[Route("/", shop)])
        codes = {
            name: dest.destination.options.get("test_event_code")
            for name, dest in settings.destinations.items()
            if name in ("meta", "tiktok")
        }
        print(
            f"\n  storefront with your edge:  http://{args.host}:{args.port}/"
            "?meta_pixel=<dataset id>&tiktok_pixel=<pixel code>\n"
            f"  test event codes:           {codes or 'none: set test_event_code first'}\n",
            flush=True,
        )
        uvicorn.run(app, host=args.host, port=args.port, log_level="warning", proxy_headers=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
