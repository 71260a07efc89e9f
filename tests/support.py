"""Shared test helpers: a TOML writer for configs and a programmable mock of the platforms."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx

from edge.schema import Client, StoredEvent, User
from edge.store import Decision

META_HOST = "meta.test"
TIKTOK_HOST = "tiktok.test"
API_KEY = "test-api-key-0123456789"
META_TOKEN = "meta-secret-token-XYZ"
TIKTOK_TOKEN = "tiktok-secret-token-XYZ"


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(type(value))


def to_toml(config: dict[str, Any]) -> str:
    """Write nested dicts as TOML tables (enough for our configs)."""
    lines: list[str] = []

    def table(prefix: str, body: dict[str, Any]) -> None:
        scalars = {k: v for k, v in body.items() if not isinstance(v, dict) or k == "events"}
        tables = {k: v for k, v in body.items() if isinstance(v, dict) and k != "events"}
        if prefix:
            lines.append(f"[{prefix}]")
        for key, value in scalars.items():
            lines.append(f"{key} = {toml_value(value)}")
        for key, value in tables.items():
            table(f"{prefix}.{key}" if prefix else key, value)

    table("", config)
    return "\n".join(lines) + "\n"


# What the flow tests send as a browser: Safari on macOS, and a banner's answers.
SAFARI_UA = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0) AppleWebKit/605.1.15 Version/17.0 Safari/605.1.15"
)
GRANTED = dict.fromkeys(
    ("ad_storage", "analytics_storage", "ad_user_data", "ad_personalization"), "granted"
)
DENIED = dict.fromkeys(GRANTED, "denied")


def sink_events(sinks: str, platform: str) -> list[dict[str, Any]]:
    """Every event a recording sink (``capi-edge sinks``) accepted for a platform that
    batches them in ``data`` (Meta, TikTok)."""
    entries = httpx.get(f"{sinks}/requests", params={"platform": platform}).json()
    return [
        event
        for entry in entries
        if entry["method"] == "POST" and entry["answered"] == 200
        for event in entry["json"]["data"]
    ]


def base_config(database: str, **overrides: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "site": {"domains": ["shop.example"], "default_country": "US"},
        # The suites build apps in-process by the hundred: group commit into the store, no
        # indexer process per app. The journal is tested on its own and through `serve`.
        "server": {"database": database, "ingest": "direct"},
        "api": {"keys": [API_KEY]},
        "consent": {"default": "denied"},
        "dispatch": {
            "linger_ms": 5,
            "retry_base_seconds": 0.05,
            "retry_max_seconds": 0.2,
            "poll_seconds": 0.05,
            "setup_recheck_seconds": 0.5,
        },
        "destinations": {
            "meta": {
                "pixel_id": "123456789012345",
                "access_token": META_TOKEN,
                "base_url": f"https://{META_HOST}",
            },
            "tiktok": {
                "pixel_id": "ABCDEFGHIJ0123456789",
                "access_token": TIKTOK_TOKEN,
                "base_url": f"https://{TIKTOK_HOST}",
            },
        },
    }
    for section, values in overrides.items():
        if isinstance(values, dict) and isinstance(config.get(section), dict):
            config[section] = {**config[section], **values}
        else:
            config[section] = values
    return config


Responder = Callable[[httpx.Request], httpx.Response]


def platform_success(request: httpx.Request) -> httpx.Response:
    body = json.loads(request.content) if request.content else {}
    if request.url.host == META_HOST:
        if request.method == "GET":
            return httpx.Response(200, json={"id": "123456789012345", "name": "pixel"})
        return httpx.Response(200, json={"events_received": len(body.get("data", []))})
    if request.url.host == TIKTOK_HOST:
        return httpx.Response(200, json={"code": 0, "message": "OK", "data": {}})
    return httpx.Response(200, json={})


class Platforms:
    """Every platform at once, as an httpx handler: records requests, answers as scripted."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests: list[tuple[float, httpx.Request]] = []
        self.scripts: dict[str, list[Responder]] = {}
        self.default: dict[str, Responder] = {}

    def handler(self, request: httpx.Request) -> httpx.Response:
        request.read()
        with self.lock:
            self.requests.append((time.monotonic(), request))
            script = self.scripts.get(request.url.host)
            responder = script.pop(0) if script else self.default.get(request.url.host)
        return (responder or platform_success)(request)

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handler)

    def script(self, host: str, *responders: Responder) -> None:
        with self.lock:
            self.scripts.setdefault(host, []).extend(responders)

    def sent_to(self, host: str) -> list[httpx.Request]:
        with self.lock:
            return [r for _, r in self.requests if r.url.host == host]

    def times(self, host: str) -> list[float]:
        with self.lock:
            return [t for t, r in self.requests if r.url.host == host]

    def events_to(self, host: str) -> list[dict[str, Any]]:
        """Every event in every request to host (Meta and TikTok both use a `data` list)."""
        events = []
        for request in self.sent_to(host):
            if request.method == "POST":
                events.extend(json.loads(request.content)["data"])
        return events


def respond(status: int, body: Any = None, headers: dict[str, str] | None = None) -> Responder:
    def responder(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, json=body if body is not None else {}, headers=headers)

    return responder


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0, interval: float = 0.02) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")


# One valid set of credentials per platform (formats as each tag validates them).
CREDENTIALS: dict[str, dict[str, str]] = {
    "meta": {"pixel_id": "123456789012345", "access_token": META_TOKEN},
    "tiktok": {"pixel_id": "ABCDEFGHIJ0123456789", "access_token": TIKTOK_TOKEN},
    "google_ads": {
        "customer_id": "123-456-7890",
        "conversion_action_id": "987654321",
        "client_id": "123456789012-abc123def456.apps.googleusercontent.com",
        "client_secret": "GOCSPX-google-client-secret",
        "refresh_token": "1//google-refresh-token-XYZ",
    },
    "ga4": {"measurement_id": "G-ABCDE12345", "api_secret": "ga4-api-secret-XYZ"},
    "pinterest": {"ad_account_id": "549755885175", "access_token": "pina_pinterest-token-XYZ"},
    "snapchat": {
        "pixel_id": "1ec32188-754e-4be2-8e55-c949a984a39f",
        "access_token": "snapchat-access-token-XYZ",
    },
    "linkedin": {"access_token": "linkedin-access-token-XYZ", "conversion_id": "104567"},
    "reddit": {"account_id": "a2_abc123", "access_token": "reddit-access-token-XYZ"},
    "criteo": {"partner_id": "12345"},
    "awin": {"advertiser_id": "1001", "api_token": "awin-api-token-0123456789"},
    "taboola": {"account_id": "1234567"},
    "outbrain": {"marketer_id": "00f4b02153ee75f3c9dc4fc128ab041962"},
}
# A malformed value per platform, for the field that must name itself in the error.
MALFORMED: dict[str, tuple[str, str]] = {
    "meta": ("pixel_id", "my-pixel"),
    "tiktok": ("pixel_id", "lowercase-pixel"),
    "google_ads": ("customer_id", "12-34"),
    "ga4": ("measurement_id", "UA-12345-1"),
    "pinterest": ("ad_account_id", "acct-1"),
    "snapchat": ("pixel_id", "not-a-uuid"),
    "linkedin": ("conversion_id", "rule-one"),
    "reddit": ("account_id", "reddit-account"),
    "criteo": ("partner_id", "partner-x"),
    "awin": ("advertiser_id", "awin-1"),
    "taboola": ("account_id", "taboola!"),
    "outbrain": ("marketer_id", "zz-not-hex"),
}


@contextlib.asynccontextmanager
async def opened_store(path: Path) -> AsyncIterator[Any]:
    """An open ``SQLiteStore`` on ``path``, closed on the way out whatever the test did."""
    from edge.store.sqlite import SQLiteStore

    store = SQLiteStore(path)
    await store.open()
    try:
        yield store
    finally:
        await store.close()


@contextlib.asynccontextmanager
async def journaled(path: Path) -> AsyncIterator[Any]:
    """An open ``JournaledStore`` whose indexer the test runs itself (``index``)."""
    from edge.store.journaled import JournaledStore

    store = JournaledStore(path, start_indexer=False)
    await store.open()
    try:
        yield store
    finally:
        await store.close()


def index(path: Path) -> int:
    """File everything the journal holds now, as the indexer process would; how many events."""
    from edge.indexer import Indexer

    indexer = Indexer(path)
    try:
        return indexer.drain()
    finally:
        indexer.close()


STORED_AT = 1_763_900_000.0
# A store test's routing: queued for Meta, skipped for TikTok.
QUEUED_FOR_META = [Decision("meta", "pending", "queued"), Decision("tiktok", "skipped", "gpc")]


def stored_event(event_id: str, t: float = STORED_AT, ip: str | None = None) -> StoredEvent:
    """A purchase as a store holds it, received at ``t``, with a full client IP if given."""
    return StoredEvent(
        event="purchase",
        event_id=event_id,
        time=int(t),
        received_at=t,
        user=User(email="a@b.co"),
        client=Client(ip=ip, ip_truncated="203.0.113.0" if ip else None),
    )
