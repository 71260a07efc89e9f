"""The Caddyfile, for real: Debian's caddy with ``tls internal`` in front of a real edge.

Both deployment modes of the Caddyfile are exercised: the first-party subdomain
(``t.shop.test``) and the same-origin path (``shop.test/_e/*``).
"""

from __future__ import annotations

import json
import re
import subprocess
import time
import uuid
from typing import Any

import httpx
import pytest

from tests.browser.support import ROOT, require

from .stack import CLIENT_ADDRESS, SITE_HOST, Stack

pytestmark = [pytest.mark.slow, pytest.mark.caddy]

UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0"
GRANTED = {
    "ad_storage": "granted",
    "ad_user_data": "granted",
    "analytics_storage": "granted",
    "ad_personalization": "granted",
}
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


def purchase(event_id: str, page: str) -> bytes:
    return json.dumps(
        {
            "event": "purchase",
            "event_id": event_id,
            "page": {"url": page},
            "user": {"email": "jane.doe@example.com"},
            "data": {"value": 24.9, "currency": "USD"},
            "consent": GRANTED,
        }
    ).encode()


def post_hit(
    stack: Stack, edge: str, body: bytes, headers: dict[str, str] | None = None
) -> httpx.Response:
    with stack.client() as http:
        return http.post(
            f"{edge}collect",
            content=body,
            headers={
                "content-type": "text/plain",
                "origin": stack.site.rstrip("/"),
                "user-agent": UA,
                **(headers or {}),
            },
        )


def meta_event(stack: Stack, event_id: str, timeout: float = 10.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for event in stack.received("meta"):
            if event["event_id"] == event_id:
                return event
        time.sleep(0.05)
    raise AssertionError(f"{event_id} never reached the Meta sink\n{stack.logs()}")


def set_cookies(response: httpx.Response) -> dict[str, str]:
    return {h.split("=", 1)[0]: h for h in response.headers.get_list("set-cookie")}


def test_the_repository_caddyfile_is_valid_as_shipped(tmp_path: Any) -> None:
    caddy = require("caddy")
    env = {"HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    result = subprocess.run(  # noqa: S603
        [caddy, "adapt", "--config", str(ROOT / "Caddyfile"), "--adapter", "caddyfile",
         "--validate"],
        capture_output=True, text=True, env=env, timeout=30, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    fmt = subprocess.run(  # noqa: S603
        [caddy, "fmt", str(ROOT / "Caddyfile")],
        capture_output=True, text=True, env=env, timeout=30, check=False,
    )  # fmt: skip
    assert fmt.stdout == (ROOT / "Caddyfile").read_text(), "run `caddy fmt --overwrite Caddyfile`"


@pytest.mark.parametrize("mode", ["subdomain", "same-origin"])
def test_the_edge_uses_the_client_address_caddy_saw(stack: Stack, mode: str) -> None:
    edge = stack.edge if mode == "subdomain" else stack.same_origin_edge
    event_id = f"ip-{mode}-{uuid.uuid4()}"
    answer = post_hit(stack, edge, purchase(event_id, stack.site))
    assert answer.status_code == 200, answer.text
    # the client connected from 127.0.0.2; Caddy itself talks to the edge from 127.0.0.1
    assert meta_event(stack, event_id)["user_data"]["client_ip_address"] == CLIENT_ADDRESS


def test_a_client_sent_forwarded_for_is_not_trusted(stack: Stack) -> None:
    event_id = f"spoof-{uuid.uuid4()}"
    answer = post_hit(
        stack,
        stack.edge,
        purchase(event_id, stack.site),
        {"x-forwarded-for": "203.0.113.7", "forwarded": "for=203.0.113.7"},
    )
    assert answer.status_code == 200
    assert meta_event(stack, event_id)["user_data"]["client_ip_address"] == CLIENT_ADDRESS

    # and straight to the edge, past Caddy: the peer is not a trusted proxy, so no header counts
    direct_id = f"direct-{uuid.uuid4()}"
    transport = httpx.HTTPTransport(local_address=CLIENT_ADDRESS)
    with httpx.Client(transport=transport) as http:
        http.post(
            f"{stack.edge_direct}/collect",
            content=purchase(direct_id, stack.site),
            headers={"content-type": "text/plain", "user-agent": UA, "x-forwarded-for": "1.2.3.4"},
        )
    assert meta_event(stack, direct_id)["user_data"]["client_ip_address"] == CLIENT_ADDRESS


@pytest.mark.parametrize("mode", ["subdomain", "same-origin"])
def test_the_loader_arrives_compressed_long_cached_and_with_security_headers(
    stack: Stack, mode: str
) -> None:
    edge = stack.edge if mode == "subdomain" else stack.same_origin_edge
    with stack.client() as http:
        gz = http.get(f"{edge}loader.js", headers={"accept-encoding": "gzip"})
        assert gz.status_code == 200 and b"capi-edge loader" in gz.content
        assert gz.headers["content-encoding"] == "gzip"
        assert gz.num_bytes_downloaded <= 3072 < len(gz.content)
        assert "javascript" in gz.headers["content-type"]
        assert re.search(r"max-age=86400\b", gz.headers["cache-control"])
        etag = gz.headers["etag"]

        versioned = http.get(f"{edge}loader.js", params={"v": etag.strip('"')})
        assert versioned.headers["cache-control"] == "public, max-age=31536000, immutable"
        again = http.get(f"{edge}loader.js", headers={"if-none-match": etag})
        assert again.status_code == 304

        # a client that only takes zstd gets Caddy's compression instead of the edge's gzip
        with http.stream("GET", f"{edge}loader.js", headers={"accept-encoding": "zstd"}) as zs:
            assert zs.headers["content-encoding"] == "zstd"
            assert next(zs.iter_raw()).startswith(ZSTD_MAGIC)

        for response in (gz, http.post(f"{edge}collect", content=b"{")):
            assert response.headers["strict-transport-security"] == "max-age=31536000"
            assert response.headers["x-content-type-options"] == "nosniff"
            assert response.headers["referrer-policy"] == "strict-origin-when-cross-origin"
            assert "server" not in response.headers


@pytest.mark.parametrize("mode", ["subdomain", "same-origin"])
def test_bodies_over_64_kib_are_refused_by_caddy(stack: Stack, mode: str) -> None:
    edge = stack.edge if mode == "subdomain" else stack.same_origin_edge
    body = b"x" * (64 * 1024 + 1)
    with stack.client() as http:
        declared = http.post(f"{edge}collect", content=body)
        assert declared.status_code == 413
        assert declared.text == "request body is larger than 65536 bytes"  # Caddy's answer
        streamed = http.post(f"{edge}collect", content=iter([body[:40_000], body[40_000:]]))
        assert streamed.status_code == 413
        at_limit = http.post(f"{edge}collect", content=b" " * (64 * 1024))
        assert at_limit.status_code == 400  # passed through: the edge names what is wrong


@pytest.mark.parametrize("mode", ["subdomain", "same-origin"])
def test_cookies_carry_the_shops_registrable_domain(stack: Stack, mode: str) -> None:
    edge = stack.edge if mode == "subdomain" else stack.same_origin_edge
    page = f"{stack.site}?fbclid=IwAR-caddy-{mode}&gclid=Cj0-caddy"
    answer = post_hit(stack, edge, purchase(f"cookie-{mode}-{uuid.uuid4()}", page))
    cookies = set_cookies(answer)
    platform_cookies = {"_fbc", "_fbp", "_ttp", "_gcl_aw"}
    assert platform_cookies <= set(cookies)
    for name, header in cookies.items():
        assert f"; Domain={SITE_HOST};" in header, header
        assert "; Secure" in header and "; SameSite=Lax" in header
        # the platforms' own browser tags read theirs; anything else stays out of scripts
        assert ("HttpOnly" in header) is (name not in platform_cookies), header
    assert cookies["_fbc"].startswith("_fbc=fb.1.")  # subdomainIndex 1: Domain=shop.test
    assert f".IwAR-caddy-{mode};" in cookies["_fbc"]


def test_the_same_origin_mode_serves_the_shop_and_the_edge_on_one_host(stack: Stack) -> None:
    with stack.client() as http:
        shop = http.get(f"{stack.site}same-origin/")
        assert shop.status_code == 200
        assert '<script async src="/_e/loader.js"></script>' in shop.text
        assert "strict-transport-security" not in shop.headers  # the shop's own answers
        assert http.get(f"{stack.same_origin_edge}loader.js").status_code == 200
        health = http.get(f"{stack.same_origin_edge}healthz").json()
        assert health["ok"] is True
        assert http.get(f"{stack.site}healthz").status_code == 404  # only /_e/* is the edge


@pytest.mark.browser
def test_a_real_browser_through_caddy_in_both_modes(
    stack: Stack, chromium_for_test_hosts: Any
) -> None:
    modes = (("sub", "", stack.edge), ("same", "same-origin/", stack.same_origin_edge))
    for mode, path, loader in modes:
        context = chromium_for_test_hosts.new_context(ignore_https_errors=True)
        try:
            page = context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))  # noqa: B023
            with page.expect_request(f"{loader}collect"):
                page.goto(f"{stack.site}{path}?fbclid=IwAR-browser-{mode}")
            page.click("#accept")
            with page.expect_request(f"{loader}collect") as hit:
                page.click("#buy")
            event_id = json.loads(hit.value.post_data or "{}")["event_id"]
            page.wait_for_function(
                "document.cookie.includes('_fbc=') && document.cookie.includes('_fbp=')"
            )
            cookies = {c["name"]: c for c in context.cookies()}
            for name in ("_fbc", "_fbp", "_ttp"):
                assert cookies[name]["domain"] == f".{SITE_HOST}", (path, cookies[name])
                assert cookies[name]["secure"] and cookies[name]["sameSite"] == "Lax"
            pixels = page.evaluate("pixelCalls")
            ids = {c["args"][-1].get("eventID") or c["args"][-1].get("event_id") for c in pixels}
            assert event_id in ids
            assert meta_event(stack, event_id)["user_data"]["fbc"].endswith(f"IwAR-browser-{mode}")
            assert errors == []
        finally:
            context.close()
