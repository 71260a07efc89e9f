"""The demo: the edge on the embedded store, a demo shop, and local sinks for the platforms.

Everything runs in one process on one port, so a newcomer sees the whole flow without any
credentials: the shop page (``/``) loads the drop-in script, the consent banner drives
Consent Mode, and ``/_demo/sinks`` shows exactly what each platform received.
"""

from __future__ import annotations

from pathlib import Path

from starlette.responses import FileResponse
from starlette.routing import Mount, Route

from edge.assets import example_file

DEMO_CONFIG = example_file("demo.toml")
STOREFRONT = example_file("storefront/index.html")
CONFIG_ORIGIN = "http://127.0.0.1:8000"  # the origin examples/demo.toml is written for


def demo_settings(host: str, port: int, data_dir: Path):  # noqa: ANN201 - Settings
    from edge.settings import parse

    text = DEMO_CONFIG.read_text().replace(CONFIG_ORIGIN, f"http://{host}:{port}")
    data_dir.mkdir(parents=True, exist_ok=True)
    return parse(text, source=str(DEMO_CONFIG), base=data_dir.resolve())


def demo_routes() -> list:  # noqa: ANN201
    from edge.sinks import create_sinks_app

    async def shop(request):  # noqa: ANN001, ANN202
        return FileResponse(STOREFRONT, headers={"cache-control": "no-store"})

    return [Route("/", shop), Mount("/_demo/sinks", app=create_sinks_app())]


def run_demo(host: str, port: int, data_dir: str) -> int:
    from edge.app import create_app
    from edge.cli import serve_app

    settings = demo_settings(host, port, Path(data_dir))
    app = create_app(settings, extra_routes=demo_routes())
    print(
        f"\n  capi-edge demo\n"
        f"  shop:                      http://{host}:{port}/\n"
        f"  what the platforms got:    http://{host}:{port}/_demo/sinks\n"
        f"  dashboard:                 http://{host}:{port}/admin/"
        "  (password: demo-admin-password)\n"
        f"  event status API:          curl -H 'Authorization: Bearer demo-api-key-0123456789'"
        f" http://{host}:{port}/v1/events/<event_id>\n",
        flush=True,
    )
    serve_app(app, host=host, port=port, log_level="warning", access_log=False)  # as `serve`
    return 0
