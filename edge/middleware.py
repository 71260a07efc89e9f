"""Cross-cutting limits as plain ASGI middleware.

Each limit is a small policy object (``BodyLimit``, ``CORS``, ``RateLimiter``) that its
middleware applies. ``edge.hits.HitRoutes`` applies the same objects to the hit endpoints'
POSTs in one layer, so the requests an edge serves by the thousand do not pass through
three more layers of wrapped ``send`` and ``receive``.
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from collections.abc import Sequence
from functools import lru_cache
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from edge.enrich import Network, client_ip
from edge.errors import BodyTooLarge, RateLimited, RequestError

DEFAULT_MAX_BODY_BYTES = 64 * 1024
DEFAULT_RATE_PER_SECOND = 20.0  # per client address; a storefront sends a few hits a page
DEFAULT_RATE_BURST = 60.0
MAX_TRACKED_CLIENTS = 100_000  # bounds the limiter's memory under a flood of addresses


Header = tuple[bytes, bytes]


async def send_error(send: Send, error: RequestError, headers: Sequence[Header] = ()) -> None:
    body = json.dumps(error.as_json()).encode()
    await send(
        {
            "type": "http.response.start",
            "status": error.status_code,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


# The policies are objects of their own: the middleware below applies each to every request
# it concerns, and ``edge.hits.HitRoutes`` applies all of them to a hit in one layer.


class BodyLimit:
    """Refuse bodies over ``max_bytes`` with 413, counted as they arrive.

    A declared Content-Length over the limit is refused before reading. Otherwise the body
    is read chunk by chunk and refused as soon as it passes the limit (a lying or absent
    length, chunked encoding), so memory never holds more than the limit.
    """

    def __init__(self, max_bytes: int = DEFAULT_MAX_BODY_BYTES) -> None:
        self.max_bytes = max_bytes
        self.error = BodyTooLarge(f"request body is larger than {max_bytes} bytes")

    async def read(
        self, scope: Scope, receive: Receive, send: Send, headers: Sequence[Header] = ()
    ) -> bytes | None:
        """The whole body, or None once the 413 is sent (with ``headers``) or the client
        has gone (nothing to answer)."""
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0
                if declared > self.max_bytes:
                    await send_error(send, self.error, headers)
                    return None
        chunks: list[bytes] = []
        received = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return None
            chunk = message.get("body", b"")
            received += len(chunk)
            if received > self.max_bytes:
                await send_error(send, self.error, headers)
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)


class BodyLimitMiddleware:
    """``BodyLimit`` for every request that may have a body; the app then receives the body
    it would have read. Hit bodies are small and read whole anyway."""

    def __init__(self, app: ASGIApp, max_bytes: int = DEFAULT_MAX_BODY_BYTES) -> None:
        self.app = app
        self.limit = BodyLimit(max_bytes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        body = await self.limit.read(scope, receive, send)
        if body is None:
            return
        await self.app(scope, replay_body(body, receive), send)


def replay_body(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands the app a body read already, then goes on with ``receive``
    (after the body, the app waits for the disconnect as usual)."""
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


ORIGIN_CACHE_SIZE = 256  # a site's hits come from a handful of origins


@lru_cache(maxsize=ORIGIN_CACHE_SIZE)
def origin_allowed(origin: str, domains: Sequence[str]) -> bool:
    """Whether an Origin's host is one of the site's domains or under one."""
    host = (urlsplit(origin).hostname or "").lower()
    return any(host == d or host.endswith("." + d) for d in domains)


class CORS:
    """CORS for the site's own domains only, with credentials (the hit carries cookies).

    Origins outside ``domains`` get no CORS headers at all, so the browser refuses to
    expose anything to them. The headers are built once per origin, not per response.
    """

    def __init__(self, domains: Sequence[str], max_age: int = 86_400) -> None:
        self.domains = tuple(domains)
        self.preflight_headers = [
            (b"access-control-allow-methods", b"POST, OPTIONS"),
            (b"access-control-allow-headers", b"content-type, authorization"),
            (b"access-control-allow-credentials", b"true"),
            (b"access-control-max-age", str(max_age).encode()),
            (b"vary", b"Origin"),
            (b"content-length", b"0"),
        ]
        self.headers = lru_cache(maxsize=ORIGIN_CACHE_SIZE)(self._headers)

    def allowed(self, origin: bytes) -> bool:
        try:
            text = origin.decode("ascii")
        except UnicodeDecodeError:
            return False
        return text.startswith(("http://", "https://")) and origin_allowed(text, self.domains)

    def _headers(self, origin: bytes | None) -> tuple[Header, ...]:
        """What an answer to a request from ``origin`` adds to its headers."""
        if origin is None or not self.allowed(origin):
            return ()
        return (
            (b"access-control-allow-origin", origin),
            (b"access-control-allow-credentials", b"true"),
            (b"vary", b"Origin"),
        )


class CORSMiddleware:
    """``CORS`` for every response; a preflight (a backend-style JSON post from the
    browser) is answered here. Hits are ``text/plain`` POSTs that need none.

    Starlette's own CORSMiddleware would do, but it rebuilds its headers on every response.
    """

    def __init__(self, app: ASGIApp, *, domains: Sequence[str], max_age: int = 86_400) -> None:
        self.app = app
        self.cors = CORS(domains, max_age)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        origin = next((v for k, v in scope["headers"] if k == b"origin"), None)
        allow = self.cors.headers(origin)
        if not allow:
            await self.app(scope, receive, send)
            return
        is_preflight = scope["method"] == "OPTIONS" and any(
            k == b"access-control-request-method" for k, _ in scope["headers"]
        )
        if is_preflight:
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [allow[0], *self.cors.preflight_headers],
                }
            )
            await send({"type": "http.response.body", "body": b""})
            return

        async def with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *allow]
            await send(message)

        await self.app(scope, receive, with_cors)


class RateLimiter:
    """A token bucket per client address; 429 when it runs dry."""

    def __init__(
        self,
        *,
        trusted: Sequence[Network] = (),
        rate: float = DEFAULT_RATE_PER_SECOND,
        burst: float = DEFAULT_RATE_BURST,
    ) -> None:
        self.trusted = tuple(trusted)
        self.rate = rate
        self.burst = burst
        self.buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self.error = RateLimited("too many hits from this address; slow down")

    def allow(self, key: str, now: float) -> bool:
        tokens, stamp = self.buckets.pop(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - stamp) * self.rate)
        allowed = tokens >= 1.0
        self.buckets[key] = (tokens - 1.0 if allowed else tokens, now)
        if len(self.buckets) > MAX_TRACKED_CLIENTS:
            self.buckets.popitem(last=False)
        return allowed

    def admits(self, scope: Scope, forwarded: bytes | None) -> bool:
        """Take a token for the client of this request (``forwarded``: X-Forwarded-For)."""
        client = scope.get("client")
        key = (
            client_ip(
                client[0] if client else None,
                forwarded.decode("latin-1") if forwarded else None,
                self.trusted,
            )
            or "unknown"
        )
        return self.allow(key, time.monotonic())

    async def refuse(self, send: Send, headers: Sequence[Header] = ()) -> None:
        await send_error(send, self.error, [(b"retry-after", b"1"), *headers])


class RateLimitMiddleware:
    """``RateLimiter`` for POSTs to ``paths`` (the hit endpoints)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        paths: tuple[str, ...],
        trusted: Sequence[Network] = (),
        rate: float = DEFAULT_RATE_PER_SECOND,
        burst: float = DEFAULT_RATE_BURST,
        limiter: RateLimiter | None = None,
    ) -> None:
        self.app = app
        self.paths = paths
        # ``limiter``: one shared with edge.hits.HitRoutes, so a client has one bucket
        self.limiter = limiter or RateLimiter(trusted=trusted, rate=rate, burst=burst)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] != "POST"
            or not scope["path"].endswith(self.paths)
        ):
            await self.app(scope, receive, send)
            return
        forwarded = next((v for k, v in scope["headers"] if k == b"x-forwarded-for"), None)
        if not self.limiter.admits(scope, forwarded):
            await self.limiter.refuse(send)
            return
        await self.app(scope, receive, send)
