"""The collect path's HTTP contract: limits, validation errors, CORS, media types, the loader."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from edge.app import create_app
from edge.errors import StoreError
from edge.middleware import DEFAULT_MAX_BODY_BYTES, BodyLimitMiddleware, RateLimitMiddleware
from edge.store.sqlite import SQLiteStore

EVENT = {"event": "add_to_cart", "data": {"value": 3, "currency": "USD"}}


def test_accepts_json_text_plain_and_no_content_type(make_edge):
    client = make_edge()
    for content_type in ("application/json", "text/plain;charset=UTF-8", None):
        headers = {"content-type": content_type} if content_type else {}
        answer = client.post("/collect", content=json.dumps(EVENT), headers=headers)
        assert answer.status_code == 200, answer.text
        assert len(answer.json()["event_ids"]) == 1


def test_other_media_types_are_refused(make_edge):
    answer = make_edge().post(
        "/collect", content="a=b", headers={"content-type": "application/x-www-form-urlencoded"}
    )
    assert answer.status_code == 415


def test_batch_of_events_returns_ids_in_order(make_edge):
    body = {"events": [dict(EVENT, event_id="a"), dict(EVENT), dict(EVENT, event_id="c")]}
    ids = make_edge().post("/collect", json=body).json()["event_ids"]
    assert ids[0] == "a" and ids[2] == "c" and len(ids[1]) == 36


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"event": "purchase", "data": {"value": "lots"}}, "$.data.value"),
        ({"event": "purchase", "user": {"email": 5}}, "$.user.email"),
        ({"event": "purchase", "consent": {"ad_storage": "yes"}}, "$.consent.ad_storage"),
        ({"event": "purchase", "page": {"url": "x" * 3000}}, "$.page.url"),
        ({"events": [EVENT, {"event": "bad name!"}]}, "$.events[1].event"),
        (
            {"events": [EVENT, {"event": "x", "data": {"currency": "EURO"}}]},
            "$.events[1].data.currency",
        ),
        ({"event": "purchase", "event_id": "has space"}, "$.event_id"),
        ({"event": "purchase", "unknown": 1}, "$.unknown"),
        ({"event": "purchase", "time": 1_700_000_000_000}, "$.time"),
        ({"data": {}}, "$.event"),
        ({"events": [EVENT, {"event": "x", "user": {"emali": "a"}}]}, "$.events[1].user.emali"),
        ({"events": []}, "$.events"),
    ],
)
def test_validation_errors_name_the_field(make_edge, body, field):
    answer = make_edge().post("/collect", json=body)
    assert answer.status_code == 400
    payload = answer.json()
    assert payload["error"] == "invalid_event"
    assert payload["field"] == field
    assert payload["message"].startswith(field)


def test_validation_errors_never_echo_values(make_edge):
    answer = make_edge().post("/collect", json={"event": "x", "user": {"email": ["a" * 300]}})
    assert answer.status_code == 400
    assert "aaaa" not in answer.text


def test_invalid_json_is_a_400(make_edge):
    answer = make_edge().post(
        "/collect", content=b"{not json", headers={"content-type": "text/plain"}
    )
    assert answer.status_code == 400 and answer.json()["field"] == "$"


def test_body_over_64_kib_is_413(make_edge):
    big = {"event": "x", "data": {"blob": "a" * (DEFAULT_MAX_BODY_BYTES + 10)}}
    assert make_edge().post("/collect", json=big).status_code == 413


def _echo_app(max_bytes: int) -> TestClient:
    async def echo(request: Request) -> JSONResponse:
        return JSONResponse({"read": len(await request.body())})

    app = BodyLimitMiddleware(Starlette(routes=[Route("/", echo, methods=["POST"])]), max_bytes)
    return TestClient(app)


def test_body_limit_holds_for_a_chunked_body_without_length():
    def chunks():  # noqa: ANN202
        for _ in range(10):
            yield b"x" * 100

    client = _echo_app(max_bytes=500)
    assert client.post("/", content=chunks()).status_code == 413
    assert client.post("/", content=b"x" * 400).json() == {"read": 400}


@pytest.mark.anyio
async def test_body_limit_holds_when_content_length_lies():
    sent = []

    async def app(scope, receive, send):  # noqa: ANN001, ANN202
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})

    chunks = [{"type": "http.request", "body": b"x" * 300, "more_body": True}] * 3
    chunks.append({"type": "http.request", "body": b"", "more_body": False})

    async def receive():  # noqa: ANN202
        return chunks.pop(0)

    async def send(message):  # noqa: ANN001, ANN202
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/", "headers": [(b"content-length", b"10")]}
    await BodyLimitMiddleware(app, max_bytes=500)(scope, receive, send)
    assert sent[0]["status"] == 413


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def test_cors_allows_site_domains_with_credentials(make_edge):
    client = make_edge()
    answer = client.post("/collect", json=EVENT, headers={"origin": "https://www.shop.example"})
    assert answer.status_code == 200
    assert answer.headers["access-control-allow-origin"] == "https://www.shop.example"
    assert answer.headers["access-control-allow-credentials"] == "true"
    preflight = client.options(
        "/collect",
        headers={
            "origin": "https://shop.example",
            "access-control-request-method": "POST",
            "access-control-request-headers": "content-type",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "https://shop.example"


def test_foreign_origins_are_refused(make_edge, platforms):
    client = make_edge()
    for origin in (
        "https://evil.example",
        "https://shop.example.evil.example",
        "https://notshop.example",
    ):
        answer = client.post("/collect", json=EVENT, headers={"origin": origin})
        assert answer.status_code == 403, origin
        assert "access-control-allow-origin" not in answer.headers


def test_rate_limit_answers_429_per_client():
    async def ok(request: Request) -> JSONResponse:
        return JSONResponse({})

    app = RateLimitMiddleware(
        Starlette(routes=[Route("/collect", ok, methods=["POST"])]),
        paths=("/collect",),
        rate=1,
        burst=3,
    )
    client = TestClient(app)
    codes = [client.post("/collect").status_code for _ in range(5)]
    assert codes[:3] == [200, 200, 200] and codes[-1] == 429


def test_loader_is_served_compressed_with_etag_and_caching(make_edge):
    client = make_edge()
    answer = client.get("/loader.js", headers={"accept-encoding": "gzip"})
    assert answer.status_code == 200
    assert answer.headers["content-encoding"] == "gzip"
    assert answer.headers["content-type"].startswith("application/javascript")
    assert "max-age=86400" in answer.headers["cache-control"]
    etag = answer.headers["etag"]
    again = client.get("/loader.js", headers={"if-none-match": etag})
    assert again.status_code == 304
    versioned = client.get(f"/loader.js?v={etag.strip(chr(34))}")
    assert "immutable" in versioned.headers["cache-control"]
    raw = client.get("/loader.js", headers={"accept-encoding": "identity"})
    assert "content-encoding" not in raw.headers
    assert answer.content == raw.content  # httpx decoded the gzip body
    assert b"sendBeacon" in raw.content


def _failing_store(path: Path) -> SQLiteStore:
    class Failing(SQLiteStore):
        async def append(self, items):  # noqa: ANN001, ANN202
            raise StoreError("disk full")

    return Failing(path)


@pytest.mark.parametrize("root_path", ["", "/_e"])  # the lean path, and Starlette's routing
def test_hits_answer_alike_either_way(make_settings, platforms, tmp_path, root_path):
    settings = make_settings()
    app = create_app(settings, transport=platforms.transport(), rate_limit=False)
    with TestClient(app, base_url="https://t.shop.example", root_path=root_path) as client:
        origin = {"origin": "https://shop.example"}
        granted = {"ad_storage": "granted", "ad_user_data": "granted"}
        hit = client.post(
            "/collect",
            json=EVENT | {"page": {"url": "https://shop.example/?fbclid=x1"}, "consent": granted},
            headers=origin,
        )
        assert hit.status_code == 200
        assert hit.headers["content-type"] == "application/json"
        assert hit.headers["cache-control"] == "no-store"
        assert hit.headers["access-control-allow-origin"] == "https://shop.example"
        assert int(hit.headers["content-length"]) == len(hit.content)
        assert {c.split("=", 1)[0] for c in hit.headers.get_list("set-cookie")} >= {"_fbc", "_fbp"}
        bad = client.post("/collect", content=b"{", headers=origin)
        assert bad.status_code == 400 and bad.json()["field"] == "$"
        assert client.post("/v1/events", json=EVENT).status_code == 401
        assert client.get("/collect").status_code == 405
    store = _failing_store(tmp_path / "failing.db")
    app = create_app(settings, store=store, transport=platforms.transport(), rate_limit=False)
    with TestClient(app, root_path=root_path) as client:
        down = client.post("/collect", json=EVENT)
        assert down.status_code == 503 and down.headers["retry-after"] == "5"
        assert down.json()["error"] == "unavailable"
