"""The hit endpoints' HTTP plumbing, without Starlette's Request and Response objects.

``/collect``, ``/consent`` and ``/v1/events`` are the requests an edge serves by the
thousand; everything else is rare. For their POSTs, ``HitRoutes`` goes straight to the
endpoint, past Starlette's exception middleware and router, applying the cross-cutting
limits itself when given them (edge.middleware's policy objects, so it can sit outside
that middleware); ``HitRequest`` reads the few headers a hit needs from the ASGI scope, and
``HitResponse`` writes the answer from ready-made header bytes. The endpoints are the same
functions the router calls (they accept either request type and answer with a
``HitResponse``, which is a plain ASGI response), so every other case, ``GET /collect``
answered 405 or a request under a root path, still goes through Starlette unchanged, and
both ways answer errors alike (``error_response``, ``STORE_UNAVAILABLE``).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol

import msgspec
from starlette.datastructures import Address
from starlette.requests import ClientDisconnect, cookie_parser
from starlette.types import ASGIApp, Receive, Scope, Send

from edge.errors import RequestError, StoreError
from edge.middleware import CORS, BodyLimit, RateLimiter
from edge.protocol import WHOLE_RESPONSE, has_body

log = logging.getLogger("capi_edge")

Header = tuple[bytes, bytes]
WholeSend = Callable[[int, bytes, bytes], Awaitable[None]]  # status, head lines, body
JSON_TYPE: Header = (b"content-type", b"application/json")
NO_STORE: Header = (b"cache-control", b"no-store")

_encode = msgspec.json.encode  # the same bytes as Starlette's JSONResponse for our payloads


class HitHeaders:
    """Request headers by lowercase name, the first of a repeated one winning (as Starlette).

    Decoded when asked for: a hit reads a few of the dozen or more a browser sends. Names
    must be asked for in lowercase, as the ASGI scope carries them.
    """

    __slots__ = ("_raw", "_first")

    def __init__(self, raw: Sequence[Header]) -> None:
        self._raw = raw
        self._first = dict(reversed(raw))  # reversed: the first of a repeated name wins

    def get(self, name: str, default: str | None = None) -> str | None:
        value = self._first.get(name.encode("latin-1"))
        return value.decode("latin-1") if value is not None else default

    def get_raw(self, name: bytes) -> bytes | None:
        return self._first.get(name)

    def getlist(self, name: str) -> list[str]:
        key = name.lower().encode("latin-1")
        return [value.decode("latin-1") for k, value in self._raw if k == key]


class HitRequest:
    """The part of Starlette's ``Request`` the hit endpoints use, straight from the scope."""

    __slots__ = ("scope", "_receive", "headers", "_cookies", "_body")

    def __init__(self, scope: Scope, receive: Receive) -> None:
        self.scope = scope
        self._receive = receive
        self.headers = HitHeaders(scope["headers"])
        self._cookies: dict[str, str] | None = None
        self._body: bytes | None = None

    @property
    def cookies(self) -> dict[str, str]:
        if self._cookies is None:
            self._cookies = {}
            if self.headers.get_raw(b"cookie") is not None:  # a first hit has none
                for header in self.headers.getlist("cookie"):
                    self._cookies.update(cookie_parser(header))
        return self._cookies

    @property
    def client(self) -> Address | None:
        peer = self.scope.get("client")
        return Address(*peer) if peer is not None else None

    async def body(self) -> bytes:
        if self._body is None:
            chunks = []
            while True:
                message = await self._receive()
                if message["type"] != "http.request":
                    raise ClientDisconnect()
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    break
            self._body = b"".join(chunks)
        return self._body


class HitResponse:
    """A complete answer as a plain ASGI app: status, body, and its headers as bytes.

    Header names are lowercase, as uvicorn sends them. ``content-length`` is not among
    ``raw_headers``: it is sent first, from the body, for every status that has one
    (``edge.protocol.has_body``).
    """

    __slots__ = ("status_code", "body", "raw_headers")

    def __init__(self, status_code: int, body: bytes = b"", headers: Sequence[Header] = ()):
        self.status_code = status_code
        self.body = body
        self.raw_headers = list(headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Standard messages even where the server offers whole answers: middleware between
        # the server and here (CORS) wraps send and must see them.
        await self.send(send)

    async def send(
        self, send: Send, extra: Sequence[Header] = (), whole: WholeSend | None = None
    ) -> None:
        """Send the answer, with ``extra`` headers after its own (CORS).

        ``whole``: the server's ``edge.protocol.WHOLE_RESPONSE`` sender, which writes the
        answer at once; only the server's own app may be given it (edge.protocol).
        """
        if whole is not None:
            headers = [*self.raw_headers, *extra]
            head = b"".join([header_line(name, value) for name, value in headers])
            await whole(self.status_code, head, self.body)
            return
        # a new list: middleware may add to it, and some answers are shared constants
        headers = [*self.raw_headers, *extra]
        if has_body(self.status_code):
            headers.insert(0, (b"content-length", str(len(self.body)).encode()))
        await send({"type": "http.response.start", "status": self.status_code, "headers": headers})
        await send({"type": "http.response.body", "body": self.body})


def header_line(name: bytes, value: bytes) -> bytes:
    """``name: value`` and its CRLF, for a whole answer's head; a value holding a line
    break would add a header of its own, and is refused as uvicorn refuses it."""
    if b"\n" in value or b"\r" in value:
        raise RuntimeError("Invalid HTTP header value.")
    return name + b": " + value + b"\r\n"


def json_response(
    content: Any, status_code: int = 200, headers: Sequence[Header] = ()
) -> HitResponse:
    """What Starlette's ``JSONResponse(content, status_code)`` answers, then ``headers``."""
    return HitResponse(status_code, _encode(content), [JSON_TYPE, *headers])


def error_response(error: RequestError) -> HitResponse:
    return json_response(error.as_json(), error.status_code)


STORE_UNAVAILABLE = json_response(
    {"error": "unavailable", "message": "the event store is unavailable; nothing was stored"},
    503,
    [(b"retry-after", b"5")],
)

# A bug, not the client's fault and not the store's: the traceback goes to the log, the
# client gets JSON (with CORS, so the loader can read it) rather than a bare 500.
INTERNAL_ERROR = json_response(
    {"error": "internal", "message": "the edge failed on this request; its log says why"},
    500,
)

Endpoint = Callable[[HitRequest], Awaitable[HitResponse]]


class HitRoutes:
    """Serve POSTs to the hit paths straight from ``endpoints``; pass the rest to ``app``.

    Given the limits (``cors``, ``body_limit``, ``limiter``: edge.middleware's policies) it
    applies them to those POSTs itself, in the order and with the answers of the middleware
    that apply them to everything else (CORS, body limit, rate limit), and reads the body
    for the endpoint on the way. So it belongs outside that middleware: a hit then passes
    through one layer instead of four. Without them it trusts the middleware around it.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        endpoints: Mapping[str, Endpoint],
        cors: CORS | None = None,
        body_limit: BodyLimit | None = None,
        limiter: RateLimiter | None = None,
    ) -> None:
        self.app = app
        self.endpoints = dict(endpoints)
        self.cors = cors
        self.body_limit = body_limit
        self.limiter = limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        endpoint = None
        if scope["type"] == "http" and scope["method"] == "POST" and not scope.get("root_path"):
            endpoint = self.endpoints.get(scope["path"])
        if endpoint is None:
            await self.app(scope, receive, send)
            return
        request = HitRequest(scope, receive)
        # This layer is the server's own app (EdgeApp puts it outside everything), so it
        # may answer through the server's one-write sender where that is offered.
        extensions = scope.get("extensions")
        offer = extensions.get(WHOLE_RESPONSE) if extensions is not None else None
        whole: WholeSend | None = offer["send"] if offer is not None else None
        extra = self.cors.headers(request.headers.get_raw(b"origin")) if self.cors else ()
        if self.body_limit is not None:
            body = await self.body_limit.read(scope, receive, send, extra)
            if body is None:  # answered 413, or nobody left to answer
                return
            request._body = body  # what request.body() answers
        if self.limiter is not None and not self.limiter.admits(
            scope, request.headers.get_raw(b"x-forwarded-for")
        ):
            await self.limiter.refuse(send, extra)
            return
        try:
            response = await endpoint(request)
        except RequestError as error:
            response = error_response(error)
        except StoreError as error:
            log.error("store unavailable: %s", error)
            response = STORE_UNAVAILABLE
        except ClientDisconnect:  # nobody left to answer
            return
        except Exception:
            log.exception("unexpected error on POST %s", scope["path"])
            response = INTERNAL_ERROR
        await response.send(send, extra, whole)


class Cookie(Protocol):
    """A cookie to set (``edge.identity.SetCookie``): its ``Set-Cookie`` header value."""

    def header(self) -> str: ...


def set_cookies(cookies: Iterable[Cookie]) -> list[Header]:
    return [(b"set-cookie", cookie.header().encode("latin-1")) for cookie in cookies]


__all__ = [
    "INTERNAL_ERROR",
    "NO_STORE",
    "STORE_UNAVAILABLE",
    "HitHeaders",
    "HitRequest",
    "HitResponse",
    "HitRoutes",
    "error_response",
    "json_response",
    "set_cookies",
]
