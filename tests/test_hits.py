"""The hit endpoints' lean HTTP path answers exactly as Starlette's would."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from starlette.responses import JSONResponse

from edge.errors import InvalidEvent, StoreError
from edge.hits import (
    INTERNAL_ERROR,
    NO_STORE,
    STORE_UNAVAILABLE,
    HitHeaders,
    HitRequest,
    HitResponse,
    HitRoutes,
    error_response,
    json_response,
)
from edge.middleware import CORS

Message = dict[str, Any]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def scope(method: str = "POST", path: str = "/collect", **extra: Any) -> dict[str, Any]:
    return {
        "type": "http",
        "method": method,
        "path": path,
        "root_path": "",
        "headers": [
            (b"host", b"t.shop.example"),
            (b"cookie", b"_fbp=fb.1.1.2; a=1"),
            (b"x-forwarded-for", b"203.0.113.9"),
            (b"cookie", b"b=2"),
            (b"x-forwarded-for", b"198.51.100.1"),
        ],
        "client": ("127.0.0.1", 5000),
        **extra,
    }


async def run(app: Any, scope: dict[str, Any], *bodies: bytes) -> list[Message]:
    incoming = [
        {"type": "http.request", "body": body, "more_body": i < len(bodies) - 1}
        for i, body in enumerate(bodies)
    ] + [{"type": "http.disconnect"}]
    sent: list[Message] = []

    async def receive() -> Message:
        return incoming.pop(0)

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


def test_headers_read_like_starlettes() -> None:
    headers = HitHeaders(scope()["headers"])
    assert headers.get("x-forwarded-for") == "203.0.113.9"  # the first one wins
    assert headers.get("origin") is None and headers.get("origin", "") == ""
    assert headers.getlist("cookie") == ["_fbp=fb.1.1.2; a=1", "b=2"]


@pytest.mark.anyio
async def test_a_request_reads_cookies_client_and_a_chunked_body() -> None:
    request = HitRequest(scope(), None)  # type: ignore[arg-type]
    assert request.cookies == {"_fbp": "fb.1.1.2", "a": "1", "b": "2"}
    assert request.client is not None and request.client.host == "127.0.0.1"

    seen: list[bytes] = []

    async def endpoint(request: HitRequest) -> HitResponse:
        seen.append(await request.body())
        seen.append(await request.body())  # read once, kept
        return json_response({"ok": True})

    sent = await run(HitRoutes(None, endpoints={"/collect": endpoint}), scope(), b"ab", b"c")  # type: ignore[arg-type]
    assert seen == [b"abc", b"abc"]
    assert sent[0]["status"] == 200


@pytest.mark.anyio
async def test_only_posts_to_the_hit_paths_take_the_short_way() -> None:
    passed: list[tuple[str, str]] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        passed.append((scope["method"], scope["path"]))
        await HitResponse(405)(scope, receive, send)

    async def endpoint(request: HitRequest) -> HitResponse:
        return HitResponse(204)

    routes = HitRoutes(app, endpoints={"/collect": endpoint})
    assert (await run(routes, scope()))[0]["status"] == 204
    await run(routes, scope(method="GET"))
    await run(routes, scope(path="/collect/"))
    await run(routes, scope(path="/_e/collect", root_path="/_e"))
    await run(routes, {"type": "lifespan"} | {"method": "", "path": ""})
    assert passed == [("GET", "/collect"), ("POST", "/collect/"), ("POST", "/_e/collect"), ("", "")]


@pytest.mark.anyio
async def test_errors_answer_as_the_apps_exception_handlers_do() -> None:
    async def invalid(request: HitRequest) -> HitResponse:
        raise InvalidEvent("$.event: is required", field="$.event")

    async def unavailable(request: HitRequest) -> HitResponse:
        raise StoreError("disk full")

    async def gone(request: HitRequest) -> HitResponse:
        await request.body()
        raise AssertionError("unreachable: the client went away before the body")

    routes = HitRoutes(None, endpoints={"/a": invalid, "/b": unavailable, "/c": gone})  # type: ignore[arg-type]
    start, body = await run(routes, scope(path="/a"), b"")
    assert start["status"] == 400
    assert json.loads(body["body"]) == {
        "error": "invalid_event",
        "message": "$.event: is required",
        "field": "$.event",
    }
    start, body = await run(routes, scope(path="/b"), b"")
    assert start["status"] == 503 and (b"retry-after", b"5") in start["headers"]
    assert json.loads(body["body"])["error"] == "unavailable"
    assert await run(routes, scope(path="/c")) == []  # nobody left to answer


@pytest.mark.anyio
async def test_an_unexpected_error_is_logged_and_answered_500_in_json(caplog) -> None:
    async def broken(request: HitRequest) -> HitResponse:
        raise RuntimeError("a bug")

    cors = CORS(("shop.example",))
    routes = HitRoutes(None, endpoints={"/collect": broken}, cors=cors)  # type: ignore[arg-type]
    request = scope()
    request["headers"] = [*request["headers"], (b"origin", b"https://shop.example")]
    with caplog.at_level(logging.ERROR, logger="capi_edge"):
        start, body = await run(routes, request, b"{}")
    assert start["status"] == 500
    assert json.loads(body["body"])["error"] == "internal"
    assert (b"access-control-allow-origin", b"https://shop.example") in start["headers"]
    assert body["body"] == INTERNAL_ERROR.body
    [record] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert "POST /collect" in record.getMessage()
    assert record.exc_info is not None and isinstance(record.exc_info[1], RuntimeError)


@pytest.mark.parametrize(
    "content",
    [
        {"event_ids": ["0f8fad5b-d9cb-469f-a165-70867728950e", "order-1001"]},
        InvalidEvent("$.events[1].data.currency: Expected `str` matching regex").as_json(),
        {"error": "x", "message": 'naïve "quoted" \\ slash / tab\t newline\n ☃'},
    ],
)
@pytest.mark.anyio
async def test_json_responses_are_byte_for_byte_starlettes(content: dict[str, Any]) -> None:
    ours = json_response(content, 201, [NO_STORE])
    theirs = JSONResponse(content, 201, headers={"cache-control": "no-store"})
    [our_start, our_body] = await run(ours, scope())
    [their_start, their_body] = await run(theirs, scope())
    assert our_body["body"] == their_body["body"] == ours.body
    assert our_start["status"] == their_start["status"] == 201
    assert sorted(our_start["headers"]) == sorted(their_start["headers"])
    assert (b"content-length", str(len(ours.body)).encode()) in our_start["headers"]


@pytest.mark.anyio
async def test_the_store_error_answer_matches_the_old_handler() -> None:
    theirs = JSONResponse(
        {"error": "unavailable", "message": "the event store is unavailable; nothing was stored"},
        status_code=503,
        headers={"retry-after": "5"},
    )
    [our_start, our_body] = await run(STORE_UNAVAILABLE, scope())
    [their_start, their_body] = await run(theirs, scope())
    assert our_body["body"] == their_body["body"]
    assert sorted(our_start["headers"]) == sorted(their_start["headers"])
    error = InvalidEvent("$: body is not valid JSON", field="$")
    assert error_response(error).body == JSONResponse(error.as_json(), 400).body
