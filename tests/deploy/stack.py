"""The repository's Caddyfile, run by Debian's caddy in front of a real edge, on loopback.

What runs, each as its own process:

    caddy   the repo's Caddyfile, with test globals (high ports, ``local_certs``, no admin,
            storage in a temp dir) and names moved from *.example to *.test
    edge    ``capi-edge serve`` with site.domains = ["shop.test", "other.test"]
    sinks   ``capi-edge sinks``: Meta's and TikTok's APIs, recording
    shop    ``python -m http.server`` serving the demo storefront as the shop's pages

Clients reach ``shop.test`` and ``t.shop.test`` at 127.0.0.1 (httpx through
``edge.doctor.ResolvingTransport``, Chromium through ``--host-resolver-rules``) and may
connect *from* 127.0.0.2, so that the address Caddy saw is not the proxy's own.
"""

from __future__ import annotations

import os
import re
import ssl
import sys
from pathlib import Path
from typing import Any

import httpx

from edge.doctor import ResolvingTransport
from tests.browser.support import (
    ROOT,
    START_TIMEOUT,
    Process,
    answers,
    edge_command,
    free_port,
    require,
    wait_for,
)
from tests.support import base_config, sink_events, to_toml

SITE_HOST, EDGE_HOST = "shop.test", "t.shop.test"
OTHER_EDGE_HOST = "edge.other.test"  # an edge on another registrable domain (wrong on purpose)
NO_GPC_HOST = "t2.shop.test"  # a proxy that drops Sec-GPC (wrong on purpose)
HOSTS = (SITE_HOST, EDGE_HOST, OTHER_EDGE_HOST, NO_GPC_HOST)
CLIENT_ADDRESS = "127.0.0.2"  # where test clients connect from
FAR_ADDRESS = "127.1.0.1"  # also Caddy's, but another /16 than 127.0.0.1
STOREFRONT = ROOT / "examples" / "storefront" / "index.html"
LOADER_TAG = '<script async src="/loader.js"></script>'

TEST_GLOBALS = """{{
	admin off
	http_port {http_port}
	https_port {https_port}
	default_bind 127.0.0.1 {far}
	local_certs
	skip_install_trust
	storage file_system {{
		root {storage}
	}}
}}
"""
# Deliberately broken neighbours, for the doctor to find.
TEST_EXTRA_SITES = """
{other} {{
	import capi_edge
}}

{no_gpc} {{
	reverse_proxy 127.0.0.1:{edge_port} {{
		header_up X-Forwarded-For {{remote_host}}
		header_up -Sec-GPC
	}}
}}
"""


def caddyfile_for_test(
    *, edge_port: int, shop_port: int, http_port: int, https_port: int, storage: Path
) -> str:
    """The repo's Caddyfile with its global options swapped for the test's, names moved."""
    text = (ROOT / "Caddyfile").read_text()
    globals_block = re.compile(r"^\{\n.*?^\}\n", re.M | re.S)
    assert len(globals_block.findall(text)) == 1, "the Caddyfile should have one global block"
    text = globals_block.sub(
        TEST_GLOBALS.format(
            http_port=http_port, https_port=https_port, far=FAR_ADDRESS, storage=storage
        ),
        text,
    )
    for old, new in (
        ("shop.example", SITE_HOST),  # t.shop.example becomes t.shop.test with it
        ("127.0.0.1:8000", f"127.0.0.1:{edge_port}"),
        ("127.0.0.1:3000", f"127.0.0.1:{shop_port}"),
    ):
        assert old in text, f"the Caddyfile no longer mentions {old}"
        text = text.replace(old, new)
    return text + TEST_EXTRA_SITES.format(
        other=OTHER_EDGE_HOST, no_gpc=NO_GPC_HOST, edge_port=edge_port
    )


def shop_pages(directory: Path, edge_base: str) -> None:
    """The storefront as the shop serves it, one page per way of loading the edge."""
    page = STOREFRONT.read_text()
    assert LOADER_TAG in page
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "index.html").write_text(
        page.replace(LOADER_TAG, f'<script async src="{edge_base}loader.js"></script>')
    )
    (directory / "same-origin").mkdir(exist_ok=True)
    (directory / "same-origin" / "index.html").write_text(
        page.replace(LOADER_TAG, '<script async src="/_e/loader.js"></script>')
    )
    (directory / "no-loader.html").write_text("<!doctype html><title>shop</title><p>Hello")
    (directory / "no-consent.html").write_text(
        f'<!doctype html><title>shop</title><script async src="{edge_base}loader.js"></script>'
    )


class Stack:
    def __init__(self, tmp: Path) -> None:
        caddy = require("caddy")
        self.tmp = tmp
        self.processes: list[Process] = []
        sinks_port, edge_port, shop_port = free_port(), free_port(), free_port()
        self.http_port, self.https_port = free_port(), free_port()
        self.sinks = f"http://127.0.0.1:{sinks_port}"
        self.edge_direct = f"http://127.0.0.1:{edge_port}"
        self.site = f"https://{SITE_HOST}:{self.https_port}/"
        self.edge = f"https://{EDGE_HOST}:{self.https_port}/"
        self.same_origin_edge = f"https://{SITE_HOST}:{self.https_port}/_e/"
        self.storage = tmp / "caddy-storage"
        self.ca_file = self.storage / "pki" / "authorities" / "local" / "root.crt"
        try:
            self._start(caddy, sinks_port, edge_port, shop_port)
        except BaseException:
            self.stop()
            raise

    def _start(self, caddy: str, sinks_port: int, edge_port: int, shop_port: int) -> None:
        self.spawn(edge_command("sinks", "--port", str(sinks_port)), "sinks")
        config = base_config(str(self.tmp / "edge.db"))
        config["site"]["domains"] = [SITE_HOST, "other.test"]
        config["dispatch"]["linger_ms"] = 20
        for platform in ("meta", "tiktok"):
            config["destinations"][platform]["base_url"] = f"{self.sinks}/{platform}"
        (self.tmp / "edge.toml").write_text(to_toml(config))
        edge_args = ("serve", "--config", str(self.tmp / "edge.toml"), "--port", str(edge_port))
        edge = self.spawn(edge_command(*edge_args), "edge")

        shop_pages(self.tmp / "shop", self.edge)
        shop = self.spawn(
            [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(shop_port)],
            "shop",
            cwd=self.tmp / "shop",
        )

        caddyfile = self.tmp / "Caddyfile"
        caddyfile.write_text(
            caddyfile_for_test(
                edge_port=edge_port,
                shop_port=shop_port,
                http_port=self.http_port,
                https_port=self.https_port,
                storage=self.storage,
            )
        )
        home = self.tmp / "caddy-home"
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(home),
            "XDG_DATA_HOME": str(home / "data"),
            "XDG_CONFIG_HOME": str(home / "config"),
        }
        self.caddy = self.spawn(
            [caddy, "run", "--config", str(caddyfile), "--adapter", "caddyfile"], "caddy", env=env
        )
        wait_for(answers(f"{self.sinks}/requests"), START_TIMEOUT, "capi-edge sinks")
        wait_for(answers(f"{self.edge_direct}/healthz"), START_TIMEOUT, "capi-edge serve", edge)
        wait_for(answers(f"http://127.0.0.1:{shop_port}/"), START_TIMEOUT, "the shop", shop)
        wait_for(self.ca_file.exists, START_TIMEOUT, "caddy's local CA", self.caddy)
        wait_for(self._caddy_serves, START_TIMEOUT, "caddy serving HTTPS", self.caddy)

    def spawn(
        self, args: list[str], name: str, env: dict[str, str] | None = None, cwd: Path | None = None
    ) -> Process:
        process = Process(args, self.tmp / f"{name}.log", env=env, cwd=cwd)
        self.processes.append(process)
        return process

    def _caddy_serves(self) -> bool:
        try:
            with self.client(local_address=None) as http:
                return http.get(f"{self.edge}healthz").status_code == 200
        except httpx.HTTPError:
            return False

    def tls(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_file))

    def client(self, local_address: str | None = CLIENT_ADDRESS, **options: Any) -> httpx.Client:
        """An HTTPS client that reaches the test hosts at 127.0.0.1 and trusts Caddy's CA."""
        transport_options: dict[str, Any] = {"verify": self.tls()}
        if local_address:
            transport_options["local_address"] = local_address
        return httpx.Client(
            transport=ResolvingTransport(dict.fromkeys(HOSTS, "127.0.0.1"), **transport_options),
            timeout=10.0,
            **options,
        )

    def received(self, platform: str) -> list[dict[str, Any]]:
        return sink_events(self.sinks, platform)

    def logs(self) -> str:
        return "\n".join(f"--- {p.log.name}\n{p.output()[-2000:]}" for p in self.processes)

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()
