"""The hit endpoints: browsers post to ``/collect``, backends to ``/v1/events``.

The path of a hit: parse and validate into the canonical event, identify the browser
(click IDs, first-party cookies), enrich (client IP, user agent, bot flag), take the consent
snapshot, route per destination, append durably, and only then answer with the event_ids
and the Set-Cookie headers. No platform is called on this path.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import logging
from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from edge.consent import REASON_WITHDRAWN, may_write_ad_cookies, refuses_ad_cookies, with_tcf
from edge.enrich import client_ip, is_bot, truncate_ip
from edge.errors import InvalidEvent, NotFound, OriginNotAllowed, Unauthorized, UnsupportedMedia
from edge.geo import open_geo
from edge.hits import NO_STORE, HitRequest, HitResponse, json_response, set_cookies
from edge.identity import Identifier, SetCookie, VisitorKeys, identify, merge
from edge.middleware import origin_allowed
from edge.routing import api_status, route, targets, withdrawn
from edge.schema import (
    Client,
    Consent,
    EventIn,
    Page,
    Source,
    StoredEvent,
    User,
    check_time,
    decode_events,
    mint_event_id,
    split_event_data,
)
from edge.settings import DestinationSettings, Settings, secret_key
from edge.store import Decision, Store

ACCEPTED_MEDIA_TYPES = ("application/json", "text/plain", "")
SERVER_ONLY_FIELDS = ("ids", "ip", "user_agent")
HEADER_CACHE_SIZE = 64  # the Host and Content-Type values an edge sees: a handful each
HitObserver = Callable[[Sequence[tuple[StoredEvent, Sequence[Decision]]], Sequence[bool]], None]
log = logging.getLogger("capi_edge.collect")


class Visitor(msgspec.Struct, frozen=True):
    """What the request itself says about the browser behind a hit."""

    cookies: Mapping[str, str]
    host: str
    ip: str | None
    user_agent: str | None
    gpc: bool


@lru_cache(maxsize=HEADER_CACHE_SIZE)
def request_host(header: str) -> str:
    """The Host header without its port (``[v6]:port`` included), lowercased."""
    host = header.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else ""
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def media_type(request: Request | HitRequest) -> str:
    return _media_type(request.headers.get("content-type", ""))


@lru_cache(maxsize=HEADER_CACHE_SIZE)
def _media_type(header: str) -> str:
    return header.split(";", 1)[0].strip().lower()


class Collector:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        notify: Callable[[Sequence[str]], None],
        clock: Callable[[], float],
    ) -> None:
        self.settings = settings
        self.store = store
        self.notify = notify
        self.clock = clock
        self.destinations = list(settings.destinations.values())
        self.targets = targets(self.destinations)
        self.identifier = Identifier(settings.domains, secret_key(settings))
        self.geo = open_geo(settings.geoip_database)
        # The dashboard's debug view: told of every batch stored (events, decisions, new?).
        self.observe: HitObserver | None = None

    def set_destinations(self, destinations: Sequence[DestinationSettings]) -> None:
        """Route new hits to these destinations (the dashboard connects them at run time)."""
        self.destinations = list(destinations)
        self.targets = targets(self.destinations)

    # -- endpoints ---------------------------------------------------------------------

    # The hit endpoints take Starlette's Request or the leaner HitRequest (edge.hits) and
    # answer with a HitResponse, a plain ASGI response either way.

    async def collect(self, request: Request | HitRequest) -> HitResponse:
        events, visitor = await self._browser_hit(request)
        stored, cookies, visitors = self._prepare(events, "browser", visitor)
        event_ids = await self._append(stored, visitors)
        return json_response(
            {"event_ids": event_ids},
            headers=[*set_cookies(cookies), NO_STORE],
        )

    async def consent_update(self, request: Request | HitRequest) -> HitResponse:
        """The banner's answer, without an event: cookies now, withdrawal now, nothing stored.

        A visitor who lands with a click ID, grants consent and leaves would otherwise never
        have the click ID kept; one who refuses would keep queued deliveries until a later
        hit. The loader posts the same body as a hit (its event name is ignored).
        """
        events, visitor = await self._browser_hit(request)
        stored, cookies, visitors = self._prepare(events[:1], "browser", visitor)
        items = [(e, route(e, self.targets, self.settings.consent)) for e in stored]
        now = self.clock()
        for keys, refused in _withdrawals(items, visitors).items():
            await self.store.cancel_pending(keys, sorted(refused), REASON_WITHDRAWN, now)
        return HitResponse(204, headers=[NO_STORE, *set_cookies(cookies)])

    async def _browser_hit(self, request: Request | HitRequest) -> tuple[list[EventIn], Visitor]:
        """Origin check, body, and what the request itself says about the browser."""
        origin = request.headers.get("origin")
        if origin and not origin_allowed(origin, self.settings.domains):
            raise OriginNotAllowed("this origin is not listed in site.domains")
        events = await self._read(request)
        for i, event in enumerate(events):
            for name in SERVER_ONLY_FIELDS:
                if getattr(event, name) is not None:
                    path = f"$.events[{i}].{name}" if len(events) > 1 else f"$.{name}"
                    raise InvalidEvent(
                        f"{path}: only accepted on /v1/events with an API key", field=path
                    )
        peer = request.scope.get("client")  # what request.client holds, as (host, port)
        visitor = Visitor(
            cookies=request.cookies,
            host=request_host(request.headers.get("host", "")),
            ip=client_ip(
                peer[0] if peer else None,
                request.headers.get("x-forwarded-for"),
                self.settings.trusted_proxies,
            ),
            user_agent=request.headers.get("user-agent"),
            gpc=request.headers.get("sec-gpc") == "1",
        )
        return events, visitor

    async def server_events(self, request: Request | HitRequest) -> HitResponse:
        self.authorize(request)
        events = await self._read(request)
        stored, _, visitors = self._prepare(events, "server", None)
        event_ids = await self._append(stored, visitors)
        return json_response({"event_ids": event_ids})

    async def event_status(self, request: Request) -> Response:
        self.authorize(request)
        event_id = request.path_params["event_id"]
        rows = await self.store.deliveries(event_id)
        if not rows and await self.store.get_event(event_id) is None:
            raise NotFound("no event with this event_id is stored")
        return JSONResponse(
            {
                "event_id": event_id,
                "destinations": {
                    row.destination: {
                        "status": api_status(row.status),
                        "reason": row.reason,
                        "attempts": row.attempts,
                        "updated_at": row.updated_at,
                    }
                    for row in rows
                },
            }
        )

    # -- steps -------------------------------------------------------------------------

    def authorize(self, request: Request | HitRequest) -> None:
        header = request.headers.get("authorization") or ""
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise Unauthorized("send Authorization: Bearer <api key>")
        token_bytes = token.strip().encode()
        # compare against every key without stopping early: no timing hint which key matched
        matched = False
        for key in self.settings.api_keys:
            matched |= hmac.compare_digest(token_bytes, key.encode())
        if not matched:
            raise Unauthorized("the API key is not valid")

    async def _read(self, request: Request | HitRequest) -> list[EventIn]:
        if media_type(request) not in ACCEPTED_MEDIA_TYPES:
            raise UnsupportedMedia("send JSON as application/json or text/plain")
        body = await request.body()
        return decode_events(body)

    def _prepare(
        self, events: Sequence[EventIn], source: Source, visitor: Visitor | None
    ) -> tuple[list[StoredEvent], list[SetCookie], list[VisitorKeys]]:
        now = self.clock()
        single = len(events) == 1
        cookies: dict[str, str] = dict(visitor.cookies) if visitor else {}
        written: dict[str, SetCookie] = {}
        stored = []
        visitors: list[VisitorKeys] = []  # per event: the IDs a withdrawal is matched on
        for i, event in enumerate(events):
            path = "$" if single else f"$.events[{i}]"
            data, custom = split_event_data(event, path)
            page = event.page or Page()
            consent = with_tcf(event.consent or Consent(), event.tcf)
            if visitor is not None:
                gpc = bool(event.gpc) or visitor.gpc
                ip, user_agent = visitor.ip, visitor.user_agent
            else:
                gpc = bool(event.gpc)
                ip, user_agent = _checked_ip(event.ip, path), event.user_agent
            country, region = self.geo.locate(ip) if self.geo is not None else (None, None)
            if visitor is not None:
                may_write = self.settings.cookies_enabled and may_write_ad_cookies(
                    consent, gpc, self.settings.consent.region(country, region)
                )
                identity = self.identifier.identify(
                    cookies,
                    page.url,
                    page.referrer,
                    visitor.host,
                    now,
                    write_cookies=may_write,
                    ip=ip,
                    user_agent=user_agent,
                    forget=refuses_ad_cookies(consent, gpc),
                )
                for cookie in identity.cookies:
                    written[cookie.name] = cookie
                    cookies[cookie.name] = cookie.value
                ids = identity.ids
                visitors.append(identity.find_visitors)
            else:
                ids = merge(
                    event.ids,
                    identify(
                        {},
                        page.url,
                        page.referrer,
                        "",
                        now,
                        allowed_domains=self.settings.domains,
                        write_cookies=False,
                    ).ids,
                )
                visitors.append(_given(tuple(v for v in (ids.fbp, ids.ttp, ids.ga_client_id) if v)))
            stored.append(
                StoredEvent(
                    event=event.event,
                    event_id=event.event_id or mint_event_id(),
                    time=check_time(event.time, now, path),
                    received_at=now,
                    source=source,
                    page=page,
                    user=event.user or User(),
                    data=data,
                    custom=custom,
                    consent=consent,
                    gpc=gpc,
                    tcf=event.tcf,
                    ids=ids,
                    client=Client(
                        ip=ip,
                        ip_truncated=truncate_ip(ip),
                        user_agent=user_agent,
                        is_bot=is_bot(user_agent) if user_agent else False,
                        country=country,
                        region=region,
                    ),
                    pixels=list(event.pixels or []),
                )
            )
        return stored, list(written.values()), visitors

    async def _append(
        self, events: list[StoredEvent], visitors: Sequence[VisitorKeys] = ()
    ) -> list[str]:
        items: list[tuple[StoredEvent, list[Decision]]] = [
            (event, route(event, self.targets, self.settings.consent)) for event in events
        ]
        withdrawals = _withdrawals(items, visitors)
        if withdrawals:
            inserted = await self._append_withdrawing(items, withdrawals)
        else:
            inserted = await self.store.append(items)
        if self.observe is not None:
            self.observe(items, inserted)
        wake = {
            d.destination
            for (_, decisions), new in zip(items, inserted, strict=True)
            if new
            for d in decisions
            if d.status == "pending"
        }
        if wake:
            self.notify(sorted(wake))
        return [event.event_id for event in events]

    async def _append_withdrawing(
        self,
        items: list[tuple[StoredEvent, list[Decision]]],
        withdrawals: dict[tuple[str, ...], set[str]],
    ) -> list[bool]:
        """Append, and cancel what the visitor still has queued for the refused destinations.

        Submitted together, so both share the group commit (no extra fsync). A failed
        cancellation does not fail the hit: the event itself is stored and acknowledged.
        """
        now = self.clock()
        cancels = [
            self.store.cancel_pending(keys, sorted(dests), REASON_WITHDRAWN, now)
            for keys, dests in withdrawals.items()
        ]
        results: list[Any] = await asyncio.gather(
            *cancels, self.store.append(items), return_exceptions=True
        )
        *cancelled, inserted = results
        if isinstance(inserted, BaseException):
            raise inserted
        for result in cancelled:
            if isinstance(result, BaseException):
                log.error("consent withdrawal not applied: %s", result)
        return inserted  # type: ignore[no-any-return]


def _withdrawals(
    items: Sequence[tuple[StoredEvent, Sequence[Decision]]], visitors: Sequence[VisitorKeys]
) -> dict[tuple[str, ...], set[str]]:
    """Visitor IDs -> destinations they now refuse (only when the visitor is known)."""
    found: dict[tuple[str, ...], set[str]] = {}
    for (_, decisions), find_keys in zip(items, visitors, strict=False):
        refused = withdrawn(decisions)
        if refused:
            keys = find_keys()  # worked out only now: most hits withdraw nothing
            if keys:
                found.setdefault(keys, set()).update(refused)
    return found


def _given(keys: tuple[str, ...]) -> VisitorKeys:
    return lambda: keys


def _checked_ip(value: str | None, path: str) -> str | None:
    if value is None:
        return None
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise InvalidEvent(
            f"{path}.ip: is not an IPv4 or IPv6 address", field=f"{path}.ip"
        ) from None
