"""The edge's HTTP protocol: whole answers in one write, the same bytes as uvicorn's two.

Each exchange runs uvicorn's own protocol object, stock or the edge's subclass, over a
transport that records every write, so "one system call" is counted, not inferred.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from edge.app import create_app
from edge.errors import InvalidEvent
from edge.hits import (
    NO_STORE,
    STORE_UNAVAILABLE,
    HitRequest,
    HitResponse,
    HitRoutes,
    error_response,
    json_response,
)
from edge.middleware import CORS
from edge.protocol import WHOLE_RESPONSE, EdgeHttpProtocol, check_head, has_body

from .edgeapp import settings_for

DATE = (b"date", b"Tue, 24 Nov 2026 10:00:00 GMT")
STATUS_DATE = b"date: Tue, 24 Nov 2026 10:00:00 GMT\r\n"
COOKIES = [
    (
        b"set-cookie",
        b"_fbc=fb.1.1763978400000.IwAR_x; Domain=shop.example; Path=/; Max-Age=7776000; Secure",
    ),
    (b"set-cookie", b'_edge_id="a b"; Path=/; HttpOnly'),
]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def uvicorn_errors():
    """What uvicorn logs as errors (its logger may not reach pytest's), with tracebacks."""
    seen: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(logging.Formatter().format(record))

    logger, handler = logging.getLogger("uvicorn.error"), Keep(logging.ERROR)
    logger.addHandler(handler)
    yield seen
    logger.removeHandler(handler)


class RecordingTransport:
    """What uvicorn's protocol needs of a socket, keeping each write apart."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False
        self.closed_by_server = False  # before the exchange ended

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        info = {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 50_000)}
        return info.get(name, default)

    def write(self, data: bytes) -> None:
        assert not self.closed, "written after close"
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def exchange(
    protocol_class: type[HttpToolsProtocol], app: Any, raw: bytes, *, access_log: bool = False
) -> RecordingTransport:
    config = uvicorn.Config(  # log_config=None: the suite's logging stays as it is
        app, http=protocol_class, proxy_headers=False, server_header=False, log_config=None
    )
    config.load()
    state = ServerState()
    state.default_headers = [DATE]
    protocol = protocol_class(config, state, {}, _loop=asyncio.get_running_loop())
    protocol.access_log = access_log  # uvicorn asks its logger; pytest's handlers would answer
    transport = RecordingTransport()
    protocol.connection_made(transport)  # type: ignore[arg-type]
    protocol.data_received(raw)
    while state.tasks:
        await asyncio.gather(*state.tasks)
    transport.closed_by_server = transport.closed
    protocol.connection_lost(None)  # the client leaves: keep-alive timers are cancelled
    return transport


def post(
    body: bytes = b'{"event": "purchase"}', *, headers: bytes = b"", version: bytes = b"1.1"
) -> bytes:
    return (
        b"POST /collect HTTP/" + version + b"\r\nHost: t.shop.example\r\n"
        b"Origin: https://shop.example\r\n"
        + headers
        + b"Content-Length: %d\r\n\r\n" % len(body)
        + body
    )


def hits_answering(response: HitResponse) -> HitRoutes:
    async def endpoint(request: HitRequest) -> HitResponse:
        await request.body()
        return response

    async def elsewhere(scope: Any, receive: Any, send: Any) -> None:
        await HitResponse(404)(scope, receive, send)

    return HitRoutes(elsewhere, endpoints={"/collect": endpoint}, cors=CORS(("shop.example",)))


ANSWERS = {
    "collect": json_response({"event_ids": [str(uuid.uuid4())]}, headers=[*COOKIES, NO_STORE]),
    "consent": HitResponse(204, headers=[NO_STORE, *COOKIES]),
    "store unavailable": STORE_UNAVAILABLE,
    "invalid": error_response(InvalidEvent("$.event: is required", field="$.event")),
}
REQUESTS = {
    "keep-alive": post(),
    "no origin": post().replace(b"Origin: https://shop.example\r\n", b""),
    "connection close": post(headers=b"Connection: close\r\n"),
    "HTTP/1.0": post(version=b"1.0"),
    "two pipelined": post() + post(b'{"event": "lead"}'),
}


@pytest.mark.anyio
@pytest.mark.parametrize("request_name", REQUESTS)
@pytest.mark.parametrize("answer_name", ANSWERS)
async def test_a_whole_answer_is_one_write_of_the_bytes_uvicorn_writes_in_two(
    answer_name: str, request_name: str
) -> None:
    app, raw = hits_answering(ANSWERS[answer_name]), REQUESTS[request_name]
    stock = await exchange(HttpToolsProtocol, app, raw)
    ours = await exchange(EdgeHttpProtocol, app, raw)
    answers = raw.count(b"POST ")
    assert len(stock.writes) == 2 * answers
    assert len(ours.writes) == answers
    assert b"".join(ours.writes) == b"".join(stock.writes)
    closing = request_name in ("connection close", "HTTP/1.0")
    assert ours.closed_by_server == stock.closed_by_server == closing
    if answer_name == "collect":
        assert ours.writes[0].startswith(b"HTTP/1.1 200 OK\r\n" + STATUS_DATE)
        assert ours.writes[0].count(b"\r\nset-cookie: ") == 2


@pytest.mark.anyio
async def test_the_edge_answers_a_hit_in_one_write(tmp_path: Path) -> None:
    """The whole app as `capi-edge serve` builds it: its hit layer is the server's own."""
    app = create_app(settings_for(tmp_path), rate_limit=False, dispatch=False)
    hit = {
        "event": "purchase",
        "page": {"url": "https://shop.example/?fbclid=IwAR_one_write"},
        "consent": {"ad_storage": "granted", "ad_user_data": "granted"},
    }
    async with app.router.lifespan_context(app):
        transport = await exchange(EdgeHttpProtocol, app, post(json.dumps(hit).encode()))
    [answer] = transport.writes
    head, body = answer.split(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n" + STATUS_DATE)
    assert b"\r\nset-cookie: _fbc=fb.1." in head and b".IwAR_one_write; " in head
    assert b"\r\naccess-control-allow-origin: https://shop.example\r\n" in head
    assert b"\r\ncontent-length: %d\r\n" % len(body) in head
    assert len(json.loads(body)["event_ids"]) == 1


@pytest.mark.anyio
async def test_the_store_error_and_cors_headers_come_through_whole() -> None:
    [answer] = (await exchange(EdgeHttpProtocol, hits_answering(STORE_UNAVAILABLE), post())).writes
    head, body = answer.split(b"\r\n\r\n")
    assert head.split(b"\r\n")[0] == b"HTTP/1.1 503 Service Unavailable"
    assert b"\r\nretry-after: 5\r\naccess-control-allow-origin: https://shop.example\r\n" in head
    assert b"\r\ncontent-length: %d\r\n" % len(body) in head
    assert body == STORE_UNAVAILABLE.body


@pytest.mark.anyio
async def test_a_header_value_with_a_line_break_is_refused_not_sent(uvicorn_errors) -> None:
    smuggler = HitResponse(200, b"{}", [(b"x-note", b"a\r\nx-injected: 1")])
    # uvicorn finds it while writing the head, and can only drop the connection
    stock = await exchange(HttpToolsProtocol, hits_answering(smuggler), post())
    assert stock.writes == [] and stock.closed_by_server
    assert "Invalid HTTP header value" in uvicorn_errors.pop()
    # the edge finds it before anything is written, so uvicorn answers 500
    ours = b"".join((await exchange(EdgeHttpProtocol, hits_answering(smuggler), post())).writes)
    assert ours.startswith(b"HTTP/1.1 500 Internal Server Error\r\n")
    assert b"x-injected" not in ours
    assert "Invalid HTTP header value" in uvicorn_errors.pop()


@pytest.mark.anyio
async def test_with_an_access_log_the_answer_goes_the_standard_way() -> None:
    seen: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope.get("extensions"))
        await hits_answering(json_response({"ok": True}))(scope, receive, send)

    logged = await exchange(EdgeHttpProtocol, app, post(), access_log=True)
    plain = await exchange(EdgeHttpProtocol, app, post())
    assert seen[0] is None
    assert list(seen[1]) == [WHOLE_RESPONSE] and callable(seen[1][WHOLE_RESPONSE]["send"])
    assert len(logged.writes) == 2 and len(plain.writes) == 1
    assert b"".join(logged.writes) == plain.writes[0]


@dataclass
class Whole:
    """An answer for the server's whole-response sender."""

    status: int = 200
    head: bytes = b"x-a: 1\r\n"
    body: bytes = b"ok"


def sending(*answers: Whole | dict[str, Any]) -> Any:
    """An app that sends these, each a whole answer or a standard ASGI message."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        for answer in answers:
            if isinstance(answer, Whole):
                send_whole = scope["extensions"][WHOLE_RESPONSE]["send"]
                await send_whole(answer.status, answer.head, answer.body)
            else:
                await send(answer)

    return app


@pytest.mark.anyio
async def test_a_head_request_gets_the_length_but_not_the_body() -> None:
    raw = b"HEAD /x HTTP/1.1\r\nHost: a\r\n\r\n"
    [answer] = (await exchange(EdgeHttpProtocol, sending(Whole(body=b"hello")), raw)).writes
    assert answer == b"HTTP/1.1 200 OK\r\n" + STATUS_DATE + b"content-length: 5\r\nx-a: 1\r\n\r\n"


@pytest.mark.anyio
@pytest.mark.parametrize(
    "message, error",
    [
        (Whole(head=b"x-a: 1\nx-b: 2\r\n"), "Invalid HTTP head"),
        (Whole(head=b"x-a: 1\r\n\r\nx-b: 2\r\n"), "Invalid HTTP head"),
        (Whole(head=b"x-a: 1"), "Invalid HTTP head"),
        (Whole(status=204, body=b"x"), "has no body"),
        (Whole(status=99), "needs a final status"),
        (Whole(status=101), "needs a final status"),
    ],
)
async def test_a_malformed_whole_answer_is_a_500_not_a_broken_response(
    message: Whole, error: str, uvicorn_errors
) -> None:
    transport = await exchange(EdgeHttpProtocol, sending(message), post())
    answer = b"".join(transport.writes)  # uvicorn's own 500, head and body
    assert answer.startswith(b"HTTP/1.1 500 Internal Server Error\r\n")
    assert error in uvicorn_errors[0]


@pytest.mark.anyio
async def test_nothing_may_follow_a_whole_answer(uvicorn_errors) -> None:
    app = sending(Whole(), {"type": "http.response.body", "body": b"more"})
    transport = await exchange(EdgeHttpProtocol, app, post())
    head = b"HTTP/1.1 200 OK\r\n" + STATUS_DATE + b"content-length: 2\r\nx-a: 1\r\n\r\n"
    assert transport.writes == [head + b"ok"]
    assert transport.closed_by_server  # uvicorn drops a connection whose app misbehaved mid-answer
    assert "Unexpected ASGI message 'http.response.body' sent, after" in uvicorn_errors[0]


@pytest.mark.anyio
async def test_a_whole_answer_after_the_start_is_refused(uvicorn_errors) -> None:
    start = {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]}
    transport = await exchange(EdgeHttpProtocol, sending(start, Whole()), post())
    assert b"x-a" not in b"".join(transport.writes)
    assert "A whole response after the response began" in uvicorn_errors[0]


@pytest.mark.anyio
async def test_a_second_whole_answer_is_refused(uvicorn_errors) -> None:
    transport = await exchange(EdgeHttpProtocol, sending(Whole(), Whole(body=b"no")), post())
    assert len(transport.writes) == 1 and transport.writes[0].endswith(b"\r\n\r\nok")
    assert "A whole response after the response began" in uvicorn_errors[0]


@pytest.mark.anyio
async def test_a_request_leaves_nothing_for_the_garbage_collector() -> None:
    """The offer refers to its cycle weakly: every request is freed as soon as it is over."""
    cycles = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        cycles.append(scope["extensions"][WHOLE_RESPONSE]["send"].args[0])  # weakref.ref
        await sending(Whole())(scope, receive, send)

    gc.disable()
    try:
        transport = await exchange(EdgeHttpProtocol, app, post() + post())
        assert len(transport.writes) == 2
        assert [cycle() for cycle in cycles] == [None, None]
    finally:
        gc.enable()


def test_check_head_takes_header_lines_only() -> None:
    check_head(b"")
    check_head(b"a: 1\r\nb: 2\r\n")
    for bad in (b"a: 1\r", b"\r\n", b"a: 1\rb: 2\r\n", b"a: 1\r\n\r\n", b"a: 1\r\r\n\n"):
        with pytest.raises(RuntimeError):
            check_head(bad)


def test_which_statuses_carry_a_body() -> None:
    assert [s for s in (100, 101, 200, 201, 204, 301, 304, 400, 503) if has_body(s)] == [
        200,
        201,
        301,
        400,
        503,
    ]
