"""The debug view's feed: what each hit was, what every destination decided, what was sent.

Like server-side GTM's preview mode it records only while someone watches: the collector
and the dispatcher are told to report to the hub when the first viewer connects and to stop
when the last one leaves, so the collect path pays nothing otherwise. The last
``RING_SIZE`` entries are kept in memory for viewers who (re)connect.

Nothing personal is shown in clear. A hit carries hashes of the user fields (as the
platforms receive them), the page URL without its query values, and a masked IP. A request
is shown after ``PlatformRequest.redacted`` (every secret the edge holds), with credential
headers and query parameters blanked whatever their value, and with any raw user field or
IP of its events replaced: hashes pass, clear text does not.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from edge.schema import StoredEvent
from edge.settings import DestinationSettings
from edge.store import Decision
from tags import pii
from tags.base import PlatformRequest, PlatformResponse, Verdict

log = logging.getLogger("capi_edge.admin")

RING_SIZE = 200
QUEUE_SIZE = 1_000
ANSWER_PREVIEW_BYTES = 4_000
MIN_SCRUBBED_LENGTH = 4  # shorter raw values ("m", "us") would blank unrelated text
CREDENTIAL_HEADERS = frozenset(
    {"authorization", "access-token", "x-api-key", "cookie", "proxy-authorization"}
)
CREDENTIAL_PARAMS = frozenset({"access_token", "api_secret", "token", "key", "client_secret"})
CONSENT_PURPOSES = ("ad_storage", "ad_user_data", "ad_personalization", "analytics_storage")
REDACTED = "[redacted]"
PII = "[pii]"


def mask_ip(value: str | None) -> str | None:
    """203.0.113.9 -> 203.0.113.x ; 2001:db8:1:2::9 -> 2001:db8:1::x"""
    if not value:
        return None
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return "x"
    if address.version == 4:
        return ".".join(value.split(".")[:3]) + ".x"
    network = ipaddress.ip_network(f"{address}/48", strict=False)
    return f"{str(network.network_address).rstrip(':')}::x"


def safe_url(url: str | None) -> tuple[str | None, list[str]]:
    """The URL without query values (they can carry emails), and the query's names."""
    if not url:
        return None, []
    parts = urlsplit(url)
    names = [name for name, _ in parse_qsl(parts.query, keep_blank_values=True)]
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", "")), names


def raw_values(event: StoredEvent) -> dict[str, str]:
    """Clear-text personal values of an event -> what replaces them wherever they appear."""
    user = event.user
    found: dict[str, str] = {}
    for value in [
        *user.emails(),
        *user.phones(),
        user.first_name,
        user.last_name,
        user.city,
        user.zip,
        user.date_of_birth,
        user.external_id,
    ]:
        if value and len(value.strip()) >= MIN_SCRUBBED_LENGTH and not pii.is_hashed(value):
            found[value.strip()] = PII
            found[value.strip().lower()] = PII
    if event.client.ip:
        found[event.client.ip] = mask_ip(event.client.ip) or PII
    return found


def identity(event: StoredEvent, default_country: str | None) -> dict[str, Any]:
    """What identifies the visitor, as hashes (the way the platforms receive them)."""
    user = event.user
    out: dict[str, Any] = {}
    emails = [pii.hashed(pii.email(e)) for e in user.emails()]
    phones = [pii.hashed(pii.phone_digits(p, default_country)) for p in user.phones()]
    if any(emails):
        out["email (sha256)"] = [h for h in emails if h]
    if any(phones):
        out["phone (sha256)"] = [h for h in phones if h]
    if user.external_id:
        out["external_id (sha256)"] = pii.hashed(pii.external_id(user.external_id))
    named = [
        f for f in ("first_name", "last_name", "city", "zip", "date_of_birth") if getattr(user, f)
    ]
    if named:
        out["other user fields"] = named  # present, hashed by each tag as it needs
    if event.client.ip:
        out["ip"] = mask_ip(event.client.ip)
    if event.client.user_agent:
        out["user agent"] = event.client.user_agent[:160]
    if event.client.is_bot:
        out["bot"] = True
    ids = {k: v for k, v in _struct_items(event.ids) if v}
    if ids:
        out["ids"] = ids
    return out


def _struct_items(value: Any) -> list[tuple[str, Any]]:
    return [(name, getattr(value, name)) for name in value.__struct_fields__]


def hit_entry(
    event: StoredEvent,
    decisions: Sequence[Decision],
    new: bool,
    destinations: Mapping[str, DestinationSettings],
    default_country: str | None,
) -> dict[str, Any]:
    url, query_names = safe_url(event.page.url)
    out_decisions = []
    for decision in decisions:
        dest = destinations.get(decision.destination)
        entry: dict[str, Any] = {
            "destination": decision.destination,
            "title": dest.spec.title if dest else decision.destination,
            "status": decision.status,
            "reason": decision.reason,
        }
        if dest is not None:
            entry["platform_event"] = dest.destination.platform_event(dest.spec, event.event)
            test_code = dest.destination.options.get(
                "test_event_code"
            ) or dest.destination.options.get("test_id")
            if test_code:
                entry["test_code"] = test_code
        out_decisions.append(entry)
    data = event.data
    return {
        "type": "hit",
        "at": event.received_at,
        "event_id": event.event_id,
        "event": event.event,
        "source": event.source,
        "duplicate": not new,
        "page": url,
        "query_names": query_names,
        "value": data.value,
        "currency": data.currency,
        "order_id": data.order_id,
        "consent": {p: getattr(event.consent, p) or "not sent" for p in CONSENT_PURPOSES},
        "gpc": event.gpc,
        "pixels": list(event.pixels),
        "identity": identity(event, default_country),
        "decisions": out_decisions,
    }


def scrub(text: str, replacements: Mapping[str, str]) -> str:
    for raw in sorted(replacements, key=len, reverse=True):
        text = text.replace(json.dumps(raw)[1:-1], replacements[raw])
    return text


def request_view(
    request: PlatformRequest, secrets: Sequence[str], replacements: Mapping[str, str]
) -> dict[str, Any]:
    view = request.redacted(secrets)
    view["headers"] = {
        k: (REDACTED if k.lower() in CREDENTIAL_HEADERS else v) for k, v in view["headers"].items()
    }
    view["params"] = {
        k: (REDACTED if k.lower() in CREDENTIAL_PARAMS else v) for k, v in view["params"].items()
    }
    parts = urlsplit(view["url"])
    if parts.query:
        query = "&".join(
            f"{k}={REDACTED if k.lower() in CREDENTIAL_PARAMS else v}"
            for k, v in parse_qsl(parts.query, keep_blank_values=True)
        )
        view["url"] = urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))
    if view.get("form"):
        view["form"] = {
            k: (
                REDACTED
                if k.lower() in CREDENTIAL_PARAMS | {"refresh_token", "client_secret"}
                else v
            )
            for k, v in view["form"].items()
        }
    scrubbed: dict[str, Any] = json.loads(scrub(json.dumps(view), replacements))
    return scrubbed


def answer_view(
    answer: PlatformResponse | None, secrets: Sequence[str], replacements: Mapping[str, str]
) -> str | None:
    if answer is None:
        return None
    text = answer.body[:ANSWER_PREVIEW_BYTES].decode("utf-8", "replace")
    parsed = answer.json()
    if parsed is not None:
        text = json.dumps(parsed, indent=2, ensure_ascii=False)[:ANSWER_PREVIEW_BYTES]
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return scrub(text, replacements)


class DebugHub:
    """Fan-out of debug entries to the open debug views (server-sent events)."""

    def __init__(
        self,
        secrets: Callable[[], Sequence[str]],
        destinations: Callable[[], Mapping[str, DestinationSettings]],
        default_country: str | None = None,
        on_watch: Callable[[bool], None] | None = None,
    ) -> None:
        self.secrets = secrets
        self.destinations = destinations
        self.default_country = default_country
        self.on_watch = on_watch
        self.entries: deque[dict[str, Any]] = deque(maxlen=RING_SIZE)
        self.viewers: set[asyncio.Queue[dict[str, Any] | None]] = set()
        self.seq = 0
        # event_id -> clear values to scrub from requests carrying it (memory only, bounded)
        self._raw: dict[str, dict[str, str]] = {}

    # -- viewers ---------------------------------------------------------------------------

    def subscribe(self) -> asyncio.Queue[dict[str, Any] | None]:
        queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(QUEUE_SIZE)
        for entry in self.entries:
            queue.put_nowait(entry)
        self.viewers.add(queue)
        if len(self.viewers) == 1 and self.on_watch:
            self.on_watch(True)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[dict[str, Any] | None]) -> None:
        self.viewers.discard(queue)
        if not self.viewers and self.on_watch:
            self.on_watch(False)

    def close(self) -> None:
        """Tell every open stream to end (the server is stopping)."""
        for queue in list(self.viewers):
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(None)

    def publish(self, entry: dict[str, Any]) -> None:
        self.seq += 1
        entry["seq"] = self.seq
        self.entries.append(entry)
        for queue in list(self.viewers):
            try:
                queue.put_nowait(entry)
            except asyncio.QueueFull:  # a stalled viewer misses entries, nobody waits for it
                pass

    # -- sources ---------------------------------------------------------------------------

    def on_hits(
        self, items: Sequence[tuple[StoredEvent, Sequence[Decision]]], inserted: Sequence[bool]
    ) -> None:
        try:
            destinations = self.destinations()
            for (event, decisions), new in zip(items, inserted, strict=True):
                self._remember(event)
                self.publish(hit_entry(event, decisions, new, destinations, self.default_country))
        except Exception:  # the debug view must never fail a hit
            log.exception("debug view: could not record a hit")

    def on_attempt(
        self,
        destination: str,
        request: PlatformRequest,
        event_ids: Sequence[str],
        answer: PlatformResponse | None,
        verdict: Verdict,
        latency_ms: float,
        events: Mapping[str, StoredEvent],
    ) -> None:
        try:
            replacements: dict[str, str] = {}
            for event_id in event_ids:
                event = events.get(event_id)
                replacements.update(raw_values(event) if event else self._raw.get(event_id, {}))
            secrets = list(self.secrets())
            self.publish(
                {
                    "type": "attempt" if event_ids else "test",
                    "at": _now(),
                    "destination": destination,
                    "event_ids": list(event_ids),
                    "request": request_view(request, secrets, replacements),
                    "http_status": answer.status if answer is not None else None,
                    "verdict": verdict.kind.value,
                    "reason": verdict.reason,
                    "rejected": dict(verdict.rejected),
                    "latency_ms": latency_ms,
                    "answer": answer_view(answer, secrets, replacements),
                }
            )
        except Exception:
            log.exception("debug view: could not record a request to %s", destination)

    def _remember(self, event: StoredEvent) -> None:
        self._raw[event.event_id] = raw_values(event)
        while len(self._raw) > RING_SIZE * 5:
            self._raw.pop(next(iter(self._raw)))


def _now() -> float:
    import time

    return time.time()
