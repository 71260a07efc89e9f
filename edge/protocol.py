"""The HTTP protocol ``capi-edge serve`` runs: uvicorn's, plus whole answers in one write.

A hit's answer is small and complete when it is sent: status, a dozen headers, a short
JSON body. Through ASGI's two messages, uvicorn writes it to the socket twice (head, then
body) and checks every header on the way, in Python, although the edge built each from
values it had already checked. ``WHOLE_RESPONSE`` is an ASGI extension for such answers:
the app hands over the status, the head rendered as header lines, and the body; the
server adds its own headers (``date``), ``content-length`` and, when the connection is
closing, ``connection: close``, and writes everything with one system call. The bytes on
the wire are the ones the two standard messages produce (``tests/test_protocol.py``
compares them).

The server offers it in ``scope["extensions"][WHOLE_RESPONSE]["send"]``: an awaitable
``send(status, head, body)`` that stands for both standard messages. It goes to the server
directly, so only the outermost app may use it (``edge.hits.HitRoutes``): middleware that
wraps ``send`` would not see the answer. With an access log on it is not offered, so
uvicorn logs every answer. Every other request and message is uvicorn's, unchanged: the
cycle stays uvicorn's own object (giving it a subclass after the fact cost a plain
Starlette endpoint 5-8 % of its speed, as CPython's attribute caches stop matching).
"""

from __future__ import annotations

from functools import partial
from weakref import ReferenceType, ref

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


async def send_whole(
    cycle_ref: ReferenceType[RequestResponseCycle], status: int, head: bytes, body: bytes
) -> None:
    """Write a whole answer for the cycle, as uvicorn writes its two messages, in one go."""
    cycle = cycle_ref()
    if cycle is None:  # the request is over and forgotten: nobody to answer
        return
    if cycle.flow.write_paused and not cycle.disconnected:
        await cycle.flow.drain()
    if cycle.disconnected:
        return
    if cycle.response_started:
        raise RuntimeError("A whole response after the response began.")
    if not 200 <= status <= 599:  # an informational answer is never the whole of one
        raise RuntimeError(f"A whole response needs a final status (200-599), not {status!r}.")
    check_head(head)
    with_body = has_body(status)
    if body and not with_body:
        raise RuntimeError(f"A {status} answer has no body.")
    cycle.response_started = True
    cycle.waiting_for_100_continue = False

    content = [STATUS_LINE[status], default_head(cycle.default_headers)]
    if with_body:
        content.append(b"content-length: %d\r\n" % len(body))
    content.append(head)
    if not cycle.keep_alive:
        content.append(b"connection: close\r\n")
    content.append(CRLF)
    if cycle.scope["method"] != "HEAD":
        content.append(body)
    cycle.transport.write(b"".join(content))

    cycle.response_complete = True
    cycle.message_event.set()
    if not cycle.keep_alive:
        cycle.transport.close()
    cycle.on_response()


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
        if cycle is previous or cycle is None or self.access_log:  # no new request, or logged
            return
        # A weak reference: the cycle holds the scope, which holds this; a strong one
        # would make every request a reference cycle, left for the garbage collector.
        offer = {"send": partial(send_whole, ref(cycle))}
        extensions = self.scope.get("extensions")
        if extensions is None:
            self.scope["extensions"] = {WHOLE_RESPONSE: offer}
        else:  # a later uvicorn may offer its own
            extensions[WHOLE_RESPONSE] = offer
