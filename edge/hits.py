"""The hit endpoints' HTTP plumbing, without Starlette's Request and Response objects.

``/collect``, ``/consent`` and ``/v1/events`` are the requests an edge serves by the
thousand; everything else is rare. For their POSTs, ``HitRoutes`` (the innermost
middleware) goes straight to the endpoint, past Starlette's exception middleware and
router; ``HitRequest`` reads the few headers a hit needs from the ASGI scope, and
``HitResponse`` writes the answer from ready-made header bytes. The endpoints are the same
functions the router calls (they accept either request type and answer with a
``HitResponse``, which is a plain ASGI response), so every other case, ``GET /collect``
answered 405 or a request under a root path, still goes through Starlette unchanged, and
both ways answer errors alike (``error_response``, ``STORE_UNAVAILABLE``).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import msgspec
from starlette.datastructures import Address
from starlette.requests import ClientDisconnect, cookie_parser
from starlette.types import ASGIApp, Receive, Scope, Send

from edge.errors import RequestError, StoreError

log = logging.getLogger("capi_edge")

Header = tuple[bytes, bytes]
JSON_TYPE: Header = (b"content-type", b"application/json")
NO_STORE: Header = (b"cache-control", b"no-store")

_encode = msgspec.json.encode  # the same bytes as Starlette's JSONResponse for our payloads


class HitHeaders(dict[str, str]):
    """Request headers by lowercase name, the first of a repeated one winning (as Starlette).

    A plain dict, so ``get`` costs a C call: names must be asked for in lowercase, as the
    ASGI scope carries them.
    """

    def __init__(self, raw: Sequence[Header]) -> None:
        super().__init__(
            (key.decode("latin-1"), value.decode("latin-1")) for key, value in reversed(raw)
        )
        self._raw = raw

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
    """A complete answer as a plain ASGI app: status, body, and its headers as bytes."""

    __slots__ = ("status_code", "body", "raw_headers")

    def __init__(self, status_code: int, body: bytes = b"", headers: Sequence[Header] = ()):
        self.status_code = status_code
        self.body = body
        self.raw_headers = list(headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # a copy: middleware may add to the list, and some answers are shared constants
        headers = list(self.raw_headers)
        await send({"type": "http.response.start", "status": self.status_code, "headers": headers})
        await send({"type": "http.response.body", "body": self.body})


def json_response(
    content: Any, status_code: int = 200, headers: Sequence[Header] = ()
) -> HitResponse:
    """What Starlette's ``JSONResponse(content, status_code)`` answers, then ``headers``."""
    body = _encode(content)
    return HitResponse(
        status_code, body, [(b"content-length", str(len(body)).encode()), JSON_TYPE, *headers]
    )


def error_response(error: RequestError) -> HitResponse:
    return json_response(error.as_json(), error.status_code)


STORE_UNAVAILABLE = json_response(
    {"error": "unavailable", "message": "the event store is unavailable; nothing was stored"},
    503,
    [(b"retry-after", b"5")],
)

Endpoint = Callable[[HitRequest], Awaitable[HitResponse]]


class HitRoutes:
    """Serve POSTs to the hit paths straight from ``endpoints``; pass the rest to ``app``."""

    def __init__(self, app: ASGIApp, *, endpoints: Mapping[str, Endpoint]) -> None:
        self.app = app
        self.endpoints = dict(endpoints)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        endpoint = None
        if scope["type"] == "http" and scope["method"] == "POST" and not scope.get("root_path"):
            endpoint = self.endpoints.get(scope["path"])
        if endpoint is None:
            await self.app(scope, receive, send)
            return
        try:
            response = await endpoint(HitRequest(scope, receive))
        except RequestError as error:
            response = error_response(error)
        except StoreError as error:
            log.error("store unavailable: %s", error)
            response = STORE_UNAVAILABLE
        except ClientDisconnect:  # nobody left to answer
            return
        await response(scope, receive, send)


def set_cookies(headers: Sequence[str]) -> list[Header]:
    return [(b"set-cookie", header.encode("latin-1")) for header in headers]


__all__ = [
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
