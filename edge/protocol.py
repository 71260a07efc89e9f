"""The HTTP protocol ``capi-edge serve`` runs: uvicorn's, plus whole answers in one write.

A hit's answer is small and complete when it is sent: status, a dozen headers, a short
JSON body. Through ASGI's two messages, uvicorn writes it to the socket twice (head, then
body) and checks every header on the way, in Python, although the edge built each from
values it had already checked. ``WHOLE_RESPONSE`` is an ASGI extension for such answers:
one message with the status, the head rendered as header lines, and the body; the server
adds its own headers (``date``), ``content-length`` and, when the connection is closing,
``connection: close``, and writes everything with one system call. The bytes on the wire
are the ones the two standard messages produce (``tests/test_protocol.py`` compares them).

The server advertises the extension in ``scope["extensions"]``; an app that finds it
there may send the message instead of ``http.response.start`` and ``http.response.body``.
Only the outermost app may rely on it (``edge.hits.HitRoutes``): middleware that wraps
``send`` would not recognise the message. Every other message goes to uvicorn unchanged,
and with an access log on the extension is not offered, so uvicorn logs every answer.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

from uvicorn.protocols.http.httptools_impl import (
    STATUS_LINE,
    HttpToolsProtocol,
    RequestResponseCycle,
)

WHOLE_RESPONSE = "capi-edge.http.response.whole"
CRLF = b"\r\n"


def has_body(status: int) -> bool:
    """Whether an answer with this status carries a body, and so a ``content-length``."""
    return status >= 200 and status not in (204, 304)


def check_head(head: bytes) -> None:
    """Refuse a head that could end the answer's headers early or smuggle a line in.

    A head is a run of non-empty lines, each ending in CRLF, with no CR or LF elsewhere.
    The values were checked where they were built; this makes a bug there an error here
    rather than a split response.
    """
    lines = head.count(CRLF)
    if (
        head.count(b"\n") != lines
        or head.count(b"\r") != lines
        or (head and not head.endswith(CRLF))
        or head.startswith(CRLF)
        or b"\r\n\r\n" in head
    ):
        raise RuntimeError("Invalid HTTP head in a whole response.")


class WholeResponseCycle(RequestResponseCycle):
    """uvicorn's request-response cycle, which also takes ``WHOLE_RESPONSE`` messages.

    Not a new object: ``EdgeHttpProtocol`` gives each cycle uvicorn creates this class (it
    adds methods only), so uvicorn's own request handling stays as it is.
    """

    def send(self, message: Any) -> Awaitable[None]:  # type: ignore[override]
        # A plain function returning the awaitable: the standard messages pay one call.
        if message["type"] == WHOLE_RESPONSE:
            return self.send_whole(message)
        return RequestResponseCycle.send(self, message)

    async def send_whole(self, message: Any) -> None:
        if self.flow.write_paused and not self.disconnected:
            await self.flow.drain()
        if self.disconnected:
            return
        if self.response_started:
            raise RuntimeError(
                f"Unexpected ASGI message '{WHOLE_RESPONSE}' after the response began."
            )
        status: int = message["status"]
        head: bytes = message.get("head", b"")
        body: bytes = message.get("body", b"")
        if status not in STATUS_LINE:
            raise RuntimeError(f"Invalid HTTP status {status!r} in a whole response.")
        check_head(head)
        if not has_body(status) and body:
            raise RuntimeError(f"A {status} answer has no body.")
        self.response_started = True
        self.waiting_for_100_continue = False

        content = [STATUS_LINE[status], default_head(self.default_headers)]
        if has_body(status):
            content.append(b"content-length: %d\r\n" % len(body))
        content.append(head)
        if not self.keep_alive:
            content.append(b"connection: close\r\n")
        content.append(CRLF)
        if self.scope["method"] != "HEAD":
            content.append(body)
        self.transport.write(b"".join(content))

        self.response_complete = True
        self.message_event.set()
        if not self.keep_alive:
            self.transport.close()
        self.on_response()


_rendered: tuple[list[tuple[bytes, bytes]], bytes] = ([], b"")


def default_head(headers: list[tuple[bytes, bytes]]) -> bytes:
    """The server's own header lines (``date``, ``--header``), rendered once per list.

    uvicorn replaces the list when the date changes, once a second; the last one rendered
    is kept alive here, so its identity cannot be taken by another list.
    """
    global _rendered
    if _rendered[0] is not headers:
        lines = b"".join(b"%s: %s\r\n" % (name.lower(), value) for name, value in headers)
        _rendered = (headers, lines)
    return _rendered[1]


class EdgeHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, offering ``WHOLE_RESPONSE`` to the app."""

    def on_headers_complete(self) -> None:
        previous = self.cycle
        super().on_headers_complete()
        cycle = self.cycle
        if cycle is previous or cycle is None:  # an upgrade: not an HTTP request/response
            return
        cycle.__class__ = WholeResponseCycle
        if not self.access_log:
            extensions = self.scope.get("extensions")
            if extensions is None:
                self.scope["extensions"] = {WHOLE_RESPONSE: {}}
            else:  # a later uvicorn may offer its own
                extensions[WHOLE_RESPONSE] = {}
