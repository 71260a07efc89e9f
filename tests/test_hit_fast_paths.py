"""The hit path's shortcuts answer exactly what the general code they stand in for answers."""

from __future__ import annotations

import base64
import hashlib
import hmac
import random
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import msgspec
import pytest
from itsdangerous import Signer

from edge import identity
from edge.errors import InvalidEvent
from edge.hits import HitRequest, HitResponse, HitRoutes, json_response
from edge.identity import BACKUP_COOKIE, Identifier
from edge.middleware import (
    CORS,
    BodyLimit,
    BodyLimitMiddleware,
    CORSMiddleware,
    RateLimiter,
    RateLimitMiddleware,
)
from edge.routing import route, skip_reason, targets
from edge.schema import (
    Client,
    Consent,
    EventIn,
    Ids,
    StoredEvent,
    decode_events,
    decode_events_generally,
    mint_event_id,
    split_data,
)

Message = dict[str, Any]
SECRET = b"0123456789abcdef0123456789abcdef"
DOMAINS = ("shop.example",)
NOW = 1_763_900_000.0


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


# -- HitRoutes with the limits: the middleware's answers, in one layer -------------------------


async def echo(request: HitRequest) -> HitResponse:
    body = await request.body()
    if body == b"invalid":
        raise InvalidEvent("$.event: is required", field="$.event")
    return json_response({"read": len(body)})


async def not_a_hit(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await HitResponse(404)(scope, receive, send)


def layered() -> Any:
    """The hit endpoint innermost, behind the three middleware (as app.py has it today)."""
    hits = HitRoutes(not_a_hit, endpoints={"/collect": echo})  # type: ignore[arg-type]
    limited = RateLimitMiddleware(hits, paths=("/collect",), rate=0.001, burst=6)
    return CORSMiddleware(BodyLimitMiddleware(limited, max_bytes=100), domains=DOMAINS)


def one_layer() -> Any:
    """The same limits applied by HitRoutes itself, placed outside the middleware."""
    limiter = RateLimiter(rate=0.001, burst=6)
    inner = RateLimitMiddleware(not_a_hit, paths=("/collect",), limiter=limiter)
    rest = CORSMiddleware(BodyLimitMiddleware(inner, max_bytes=100), domains=DOMAINS)
    return HitRoutes(
        rest,
        endpoints={"/collect": echo},  # type: ignore[dict-item]
        cors=CORS(DOMAINS),
        body_limit=BodyLimit(100),
        limiter=limiter,
    )


def request(
    *chunks: bytes,
    method: str = "POST",
    origin: bytes | None = b"https://www.shop.example",
    length: int | None = None,
    root_path: str = "",
    gone: bool = False,
    extra: list[tuple[bytes, bytes]] | None = None,
) -> tuple[dict[str, Any], list[Message]]:
    headers = [(b"host", b"t.shop.example")]
    if origin is not None:
        headers.append((b"origin", origin))
    if length is not None:
        headers.append((b"content-length", str(length).encode()))
    scope = {
        "type": "http",
        "method": method,
        "path": "/collect",
        "root_path": root_path,
        "headers": headers + (extra or []),
        "client": ("203.0.113.9", 5000),
    }
    incoming = [
        {"type": "http.request", "body": chunk, "more_body": i < len(chunks) - 1}
        for i, chunk in enumerate(chunks)
    ]
    if gone:  # the client leaves in the middle of its body
        incoming = incoming[:1] + [{"type": "http.disconnect"}]
        incoming[0]["more_body"] = True
    return scope, incoming + [{"type": "http.disconnect"}]


async def answer(app: Any, scope: dict[str, Any], incoming: list[Message]) -> list[Message]:
    sent: list[Message] = []
    messages = list(incoming)

    async def receive() -> Message:
        return messages.pop(0)

    async def send(message: Message) -> None:
        sent.append(message)

    await app(dict(scope), receive, send)
    return sent


REQUESTS: list[Callable[[], tuple[dict[str, Any], list[Message]]]] = [
    lambda: request(b'{"event": "x"}'),
    lambda: request(b'{"event": "x"}', origin=b"https://evil.example"),
    lambda: request(b'{"event": "x"}', origin=None),
    lambda: request(b"invalid"),
    lambda: request(b"x" * 101, length=101),  # declared too large
    lambda: request(b"x" * 60, b"x" * 60, length=10),  # a lying length, chunked
    lambda: request(b"x" * 60, b"x" * 30),
    lambda: request(b"xx", b"yy", gone=True),
    lambda: request(b"", method="OPTIONS", extra=[(b"access-control-request-method", b"POST")]),
    lambda: request(b"{}", root_path="/_e"),
    lambda: request(b"{}"),  # the bucket is dry by now: 429, with the CORS headers
    lambda: request(b"x" * 101, length=101),  # a body over the limit is refused before that
]


@pytest.mark.anyio
async def test_hit_routes_with_the_limits_answer_as_the_middleware_do() -> None:
    old, new = layered(), one_layer()
    statuses = []
    for make in REQUESTS:
        scope, incoming = make()
        sent = await answer(new, scope, incoming)
        assert sent == await answer(old, scope, incoming), scope
        statuses.append(sent[0]["status"] if sent else None)
    assert statuses == [200, 200, 200, 400, 413, 413, 200, None, 200, 404, 429, 413]


# -- the signed backup cookie: itsdangerous' bytes -------------------------------------------


def reference_dump(entries: dict[str, tuple[str, int]]) -> str:
    """The backup as the edge wrote it before: itsdangerous' Signer over base64url JSON."""
    key = hmac.new(SECRET, identity.BACKUP_SALT.encode(), hashlib.sha256).digest()
    signer = Signer(key, key_derivation="none", digest_method=hashlib.sha256)
    kept = sorted((name, value, created) for name, (value, created) in entries.items())
    while True:
        data = msgspec.json.encode({name: [v, created] for name, v, created in kept})
        value = signer.sign(base64.urlsafe_b64encode(data).rstrip(b"=")).decode()
        if len(value) <= identity.MAX_BACKUP_BYTES or not kept:
            return value
        kept.remove(max(kept, key=lambda e: len(e[1])))


@pytest.mark.parametrize(
    "entries",
    [
        {"_fbp": ("fb.1.1763900000000.1234567890", 1763900000)},
        {
            "_ttp": ("A" * 27, 1763900005),
            "_fbc": ("fb.1.1763900000123.IwAR_x", 1763900000),
            "_fbp": ("fb.1.1763900000000.1234567890", 1763900000),
        },
        {name: ("v" * 500, 1763900000 + i) for i, name in enumerate(identity.LIFETIMES)},
    ],
    ids=["one", "three", "over the size limit"],
)
def test_the_backup_is_signed_as_itsdangerous_signs_it(entries: dict[str, Any]) -> None:
    identifier = Identifier(DOMAINS, SECRET)
    value = identifier._dump(entries)
    assert value == reference_dump(entries)
    assert identifier.signer is not None and identifier.signer.validate(value)


def test_a_new_visitors_backup_reads_back() -> None:
    identifier = Identifier(DOMAINS, SECRET)
    first = identifier.identify(
        {}, "https://shop.example/?fbclid=IwAR_x", None, "t.shop.example", NOW, write_cookies=True
    )
    (backup,) = [c for c in first.cookies if c.name == BACKUP_COOKIE]
    restored = Identifier(DOMAINS, SECRET).backup({BACKUP_COOKIE: backup.value}, NOW)
    assert {name: value for name, (value, _) in restored.items()} == {
        "_fbc": first.ids.fbc,
        "_fbp": first.ids.fbp,
        "_ttp": first.ids.ttp,
    }


# -- landing URLs: what parse_qsl gives -------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://shop.example/p?fbclid=IwAR_x",
        "https://shop.example/p?a=1&fbclid=x&fbclid=y&&b=&c&gclid=G-1#frag?ttclid=no",
        "https://shop.example/p?gclid=G+1&msclkid=M%2D1&x=%zz",
        "https://shop.example/p?=v&fbclid==x&ttclid=a=b",
        "https://shop.example/p?fbc\tlid=x&utm_source=y",
        "https://[::1/?fbclid=x",
        "https://shop.example/p?",
    ],
)
def test_landing_url_queries_read_as_parse_qsl_reads_them(url: str) -> None:
    try:
        expected = dict(parse_qsl(urlsplit(url).query, keep_blank_values=False))
    except ValueError:
        expected = {}
    params, click_ids = identity._query(url)
    assert params == expected
    assert click_ids == {identity.PARAM_INDEX[k] for k in expected if k in identity.PARAM_INDEX}


def test_every_id_identify_finds_is_an_ids_field() -> None:
    named = {"fbclid", *(spec.field for spec in identity.CLICK_IDS)}
    named |= {id_field for id_field, _ in identity.BROWSER_COOKIES.values()}
    named |= {id_field for id_field, _ in identity.MINTED.values()}
    named |= {"ga_client_id", "ga_session_id"}
    assert named <= set(Ids.__struct_fields__)


# -- bodies: one event decoded straight into the structs ---------------------------------------


def outcome(decode: Callable[[bytes], list[EventIn]], body: bytes) -> Any:
    """The events as _prepare sees them (data split), or the error as the client sees it."""
    try:
        events = decode(body)
        single = len(events) == 1
        return [
            (
                msgspec.structs.asdict(event) | {"data": None},  # the fields, whatever the class
                split_data(event.data, "$" if single else f"$.events[{i}]"),
            )
            for i, event in enumerate(events)
        ]
    except InvalidEvent as err:
        return err.as_json()


@pytest.mark.parametrize(
    "body",
    [
        b'{"event": "add_to_cart", "data": {"value": 19.99, "currency": "EUR",'
        b' "contents": [{"id": "42", "quantity": 1}]}}',
        b'{"event": "x", "data": {"value": 3, "num_items": 2}}',
        b'{"event": "x", "data": {"value": 1, "value": 2}, "data": {"currency": "EUR"}}',
        b'{"event": "x", "data": {}}',
        b'{"event": "x", "data": null, "time": 1763900000}',
        b'{"event": "x", "data": {"value": 1, "colour": "blue"}}',
        b'{"event": "x", "data": {"currency": "EURO"}}',
        b'{"event": "x", "data": {"num_items": 2.5}}',
        b'{"event": "x", "data": 5}',
        b'{"event": 5}',
        b'{"event": "x", "time": 1e400}',
        b'{"event": "x", "events": []}',
        b'{"events": [{"event": "x", "data": {"value": 1}}, {"event": "y"}]}',
        b"[1]",
        b"{not json",
    ],
)
def test_bodies_decode_as_the_general_steps_decode_them(body: bytes) -> None:
    assert outcome(decode_events, body) == outcome(decode_events_generally, body)


# -- event ids, routing -----------------------------------------------------------------------


def test_minted_event_ids_are_the_uuid4_strings_of_the_same_bits() -> None:
    for seed in range(50):
        random.seed(seed)
        ours = mint_event_id()
        random.seed(seed)
        assert ours == str(uuid.UUID(int=random.getrandbits(128), version=4))


def test_route_gives_each_destination_its_skip_reason(make_settings: Any) -> None:
    settings = make_settings()
    destinations = list(settings.destinations.values())
    for consent, gpc, bot in [
        (Consent(ad_storage="granted", ad_user_data="granted"), False, False),
        (Consent(ad_storage="granted", ad_user_data="denied"), False, False),
        (Consent(), False, False),
        (Consent(ad_storage="granted", ad_user_data="granted"), True, False),
        (Consent(ad_storage="granted", ad_user_data="granted"), False, True),
    ]:
        event = StoredEvent(
            event="purchase",
            event_id="e-1",
            time=int(NOW),
            received_at=NOW,
            consent=consent,
            gpc=gpc,
            client=Client(ip="203.0.113.9", is_bot=bot),
        )
        for policy in ("denied", "granted", settings.consent):
            decisions = route(event, targets(destinations), policy)
            assert [
                (d.destination, d.reason if d.status == "skipped" else None) for d in decisions
            ] == [(dest.name, skip_reason(event, dest, policy)) for dest in destinations]
