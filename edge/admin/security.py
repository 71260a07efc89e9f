"""The dashboard's guard: sessions, sign-in, CSRF and cross-site refusal, as ASGI middleware.

* **Session**: a cookie signed with itsdangerous (``__Host-`` prefixed: ``Secure``,
  ``Path=/``, no ``Domain``; ``HttpOnly``; ``SameSite=Strict``) holding a session id, a CSRF
  token and whether the holder signed in. It carries no secret. A tampered or expired cookie
  counts as no session. Signing out revokes the session id in this process.
* **Cross-site requests** are refused before any handler runs: a request whose ``Origin``
  is not the dashboard's own host, or that the browser marks ``Sec-Fetch-Site: cross-site``
  or ``same-site`` (a shop page on the parent domain is same-site!) unless it is a plain
  top-level navigation (a link to the dashboard). This also denies other origins reading
  pages through CORS, which the edge's collect CORS would otherwise allow for the site's
  domains.
* **CSRF**: every POST must carry the session's token (form field ``csrf_token`` or header
  ``X-CSRF-Token``), compared in constant time: a double submit bound to the signed cookie.
* **Sign-in** attempts are limited per client address (``SIGN_IN_ATTEMPTS`` a minute).
"""

from __future__ import annotations

import hmac
import json
import secrets
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from edge.middleware import replay_body

COOKIE_NAME = "__Host-capi-edge-admin"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = b"x-csrf-token"
SIGN_IN_ATTEMPTS = 5
SIGN_IN_WINDOW_SECONDS = 60.0
MAX_TRACKED_ADDRESSES = 10_000
MAX_REVOKED = 10_000
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
PUBLIC_PREFIXES = ("/login", "/static/")
SECURITY_HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        b"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; "
        b"object-src 'none'",
    ),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
]
NO_STORE = (b"cache-control", b"no-store")


class Sessions:
    """Sign and read the session cookie."""

    def __init__(self, secret: bytes, max_age: float) -> None:
        self.serializer = URLSafeTimedSerializer(secret, salt="capi-edge admin session")
        self.max_age = max_age
        self.revoked: OrderedDict[str, None] = OrderedDict()

    def new(self, *, auth: bool = False) -> dict[str, Any]:
        session: dict[str, Any] = {
            "sid": secrets.token_urlsafe(18),
            "csrf": secrets.token_urlsafe(24),
        }
        if auth:
            session["auth"] = time.time()
        return session

    def load(self, cookie: str | None) -> dict[str, Any] | None:
        if not cookie:
            return None
        try:
            data = self.serializer.loads(cookie, max_age=self.max_age)
        except BadSignature:  # tampered, or expired (SignatureExpired is a BadSignature)
            return None
        if not isinstance(data, dict) or not isinstance(data.get("sid"), str):
            return None
        if data["sid"] in self.revoked:
            return None
        auth = data.get("auth")
        if auth is not None and (
            not isinstance(auth, int | float) or time.time() - auth > self.max_age
        ):
            data.pop("auth", None)  # signed in too long ago: sign in again
        return data

    def dump(self, session: dict[str, Any]) -> str:
        return str(self.serializer.dumps(session))

    def cookie(self, session: dict[str, Any]) -> bytes:
        return (
            f"{COOKIE_NAME}={self.dump(session)}; Path=/; Max-Age={int(self.max_age)}; "
            "Secure; HttpOnly; SameSite=Strict"
        ).encode()

    def revoke(self, sid: str) -> None:
        self.revoked[sid] = None
        while len(self.revoked) > MAX_REVOKED:
            self.revoked.popitem(last=False)


def is_signed_in(session: dict[str, Any] | None) -> bool:
    return bool(session and session.get("auth"))


class SignInLimiter:
    """At most ``attempts`` sign-ins per address per ``window`` seconds (sliding)."""

    def __init__(
        self,
        attempts: int = SIGN_IN_ATTEMPTS,
        window: float = SIGN_IN_WINDOW_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.attempts = attempts
        self.window = window
        self.clock = clock
        self.seen: OrderedDict[str, deque[float]] = OrderedDict()

    def retry_after(self, address: str) -> float:
        """0 when a sign-in attempt from ``address`` may go now (and counts it), else seconds."""
        now = self.clock()
        stamps = self.seen.pop(address, deque())
        while stamps and now - stamps[0] >= self.window:
            stamps.popleft()
        self.seen[address] = stamps
        if len(self.seen) > MAX_TRACKED_ADDRESSES:
            self.seen.popitem(last=False)
        if len(stamps) >= self.attempts:
            return max(1.0, self.window - (now - stamps[0]))
        stamps.append(now)
        return 0.0


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


def cross_site_problem(scope: Scope) -> str | None:
    """Why this request must be refused as cross-site, or None."""
    method = scope["method"]
    host = (_header(scope, b"host") or "").lower()
    origin = _header(scope, b"origin")
    if origin is not None:
        if origin == "null" or urlsplit(origin).netloc.lower() != host:
            return "cross-origin request refused"
    site = _header(scope, b"sec-fetch-site")
    if site in ("cross-site", "same-site"):
        navigation = _header(scope, b"sec-fetch-mode") == "navigate"
        if method not in SAFE_METHODS or not navigation:
            return "cross-site request refused"
    return None


class AdminGuard:
    """Session, cross-site refusal, CSRF and sign-in requirement for the mounted dashboard."""

    def __init__(self, app: ASGIApp, *, sessions: Sessions, max_body: int = 256 * 1024) -> None:
        self.app = app
        self.sessions = sessions
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        root = scope.get("root_path", "")
        path = scope["path"][len(root) :] if scope["path"].startswith(root) else scope["path"]
        problem = cross_site_problem(scope)
        if problem:
            await _plain(send, 403, problem)
            return
        cookies = _cookies(_header(scope, b"cookie"))
        session = self.sessions.load(cookies.get(COOKIE_NAME))
        issued = session is None
        if session is None:
            session = self.sessions.new()
        before = json.dumps(session, sort_keys=True)

        if scope["method"] not in SAFE_METHODS:
            body = await _read_body(receive, self.max_body)
            if body is None:
                await _plain(send, 413, "request body too large")
                return
            if issued or not _csrf_ok(scope, body, session["csrf"]):
                await _plain(send, 403, "CSRF token missing or wrong: reload the page and retry")
                return
            receive = replay_body(body, receive)

        if not path.startswith(PUBLIC_PREFIXES) and not is_signed_in(session):
            wants_page = scope["method"] in ("GET", "HEAD") and not path.startswith(
                ("/api/", "/debug/stream")
            )
            if wants_page:
                target = quote(root + path, safe="/")
                await _redirect(send, f"{root}/login?next={target}", self.sessions, session)
            else:
                await _plain(send, 401, "sign in first", json_body=True)
            return

        scope.setdefault("state", {})["admin_session"] = session

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += SECURITY_HEADERS
                if not any(k == b"cache-control" for k, _ in headers):
                    headers.append(NO_STORE)
                current = scope["state"].get("admin_session")
                if current is not None and (
                    issued or json.dumps(current, sort_keys=True) != before
                ):
                    headers.append((b"set-cookie", self.sessions.cookie(current)))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _cookies(header: str | None) -> dict[str, str]:
    found: dict[str, str] = {}
    for part in (header or "").split(";"):
        name, _, value = part.strip().partition("=")
        if name and name not in found:  # the first wins, as browsers send the most specific first
            found[name] = value
    return found


def _csrf_ok(scope: Scope, body: bytes, expected: str) -> bool:
    token = _header(scope, CSRF_HEADER.lower())
    if token is None:
        content_type = (_header(scope, b"content-type") or "").split(";")[0].strip().lower()
        if content_type == "application/x-www-form-urlencoded":
            values = parse_qs(body.decode("latin-1"), keep_blank_values=True).get(CSRF_FIELD)
            token = values[0] if values else None
    if not token:
        return False
    return hmac.compare_digest(token.encode(), expected.encode())


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks)
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _plain(send: Send, status: int, message: str, *, json_body: bool = False) -> None:
    if json_body:
        body = json.dumps({"error": message}).encode()
        kind = b"application/json"
    else:
        body = message.encode()
        kind = b"text/plain; charset=utf-8"
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", kind),
                (b"content-length", str(len(body)).encode()),
                NO_STORE,
                *SECURITY_HEADERS,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _redirect(send: Send, location: str, sessions: Sessions, session: dict[str, Any]) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 303,
            "headers": [
                (b"location", location.encode()),
                (b"content-length", b"0"),
                (b"set-cookie", sessions.cookie(session)),
                NO_STORE,
                *SECURITY_HEADERS,
            ],
        }
    )
    await send({"type": "http.response.body", "body": b""})
