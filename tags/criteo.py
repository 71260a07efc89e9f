"""Criteo server-to-server website events (OneTag S2S, ``version=s2s_v0``).

    POST {origin}/m/event?version=s2s_v0                (no auth header: no secret exists)
    {"version": ..., "account": <partner id>, "site_type": "d", "id": {identity},
     "ip": ..., "useragent": ..., "full_url": ..., "events": [{"event": "trackTransaction",
     "timestamp": "<ISO-8601>", "id": <order id>, "item": [...]}]}

* **Auth**: none on the wire beyond the IDs in the payload: ``account`` is the partner ID,
  ``id.mapping_key`` the caller ID Criteo issues. The OAuth flow on api.criteo.com belongs
  to the Marketing Solutions APIs, not to site events.
* **Shape**: the identity block sits above ``events``, so one request carries one visitor:
  each stored event is one request. A ``page_view`` on the home page (path ``/``) carries
  ``viewHome`` and ``viewPage``, as Criteo's partners do.
* **Identity**: ``id.mapped_user_id`` is the GUM ID from Criteo's ``crto_mapped_user_id``
  cookie; ``id.email`` holds three hashes of the trimmed, lowercased address: ``md5``,
  ``sha256`` and ``sha256_md5`` (SHA-256 of the lowercase MD5 hex), because Criteo asks for a
  legacy form alongside SHA-256 while it moves its graph to SHA-256. An already SHA-256 value
  only fills ``sha256``; an MD5 value fills ``md5`` and ``sha256_md5``. IP, user agent and URLs
  are raw. When the ``crto_is_user_optout`` cookie says ``true``, the email, caller and GUM
  IDs, visitor ID and IP are left out, as Criteo's own tag does.
* **Dedup**: ``deduplication_page_view_id`` = event_id on every event (a retry repeats it);
  ``id`` = order ID on ``trackTransaction``. Criteo publishes no window.
* **Limits**: none published; Criteo asks for real-time or near-real-time sending. Chosen:
  a 24 h freshness window for that reason.
* **Answers**: no error body is documented. 2xx delivered; a 3xx is a regional redirect the
  dispatcher does not follow (setup: point ``base_url`` at the new host); other 4xx are
  permanent; 429, 5xx and timeouts retry.
* **Test**: Criteo has no test mode. The connection test posts the identity block with an
  empty ``events`` list: nothing is recorded, and a 2xx proves only that the endpoint takes
  the payload (there is no secret to check).

Choices where the sources are unsure: the legacy S2S endpoint rather than the server-GTM one
(which needs an applicationId from a Criteo contact); ``retailer_visitor_id`` is the SHA-256
of the normalized external_id (stable and opaque: Criteo wants customer IDs hashed, never
plain); ``viewList`` carries the search text as ``keywords``, the OneTag parameter;
``site_type`` follows the user agent (``m`` mobile, ``t`` tablet, else ``d``) unless set.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import user_agents

from edge.schema import StoredEvent

from . import pii
from .base import (
    DAY,
    Built,
    Credential,
    Destination,
    Kind,
    Limits,
    Option,
    PlatformRequest,
    PlatformResponse,
    TagSpec,
    Verdict,
    generic_http_verdict,
)

EVENT_PATH = "/m/event"
EVENT_QUERY = {"version": "s2s_v0"}
INTEGRATION_VERSION = "capi_edge_criteo_1"
EVENTS_PER_REQUEST = 1  # one visitor's identity block per request
FRESHNESS_SECONDS = DAY
GUM_ID_FIELD = "crto_mapped_user_id"  # Ids field filled from the crto_mapped_user_id cookie
OPTOUT_FIELD = "crto_is_user_optout"  # Ids field filled from the crto_is_user_optout cookie
MD5_HEX = re.compile(r"^[0-9a-fA-F]{32}$")
HOME = "viewHome"
DIGITS = r"[0-9]{1,12}"

SPEC = TagSpec(
    name="criteo",
    title="Criteo",
    api_version="s2s_v0",
    base_url="https://widget.criteo.com",
    docs_url="https://guides.criteotilt.com/onetag/s2s/",
    credentials=(
        Credential(
            "partner_id",
            "Partner ID",
            "the numeric Criteo partner (account) ID, e.g. 12345, shown in the Criteo "
            "Management Center and in the OneTag's setAccount call",
            pattern=DIGITS,
            example="12345",
        ),
    ),
    limits=Limits(EVENTS_PER_REQUEST, None, FRESHNESS_SECONDS, max_in_flight=8),
    consent=frozenset({"ad_storage", "ad_user_data"}),
    tcf_vendor_id=91,  # IAB TCF: the Global Vendor List ID
    tcf_purposes=frozenset({1, 7}),
    event_map={
        "page_view": "viewPage",
        "view_content": "viewItem",
        "search": "viewList",
        "add_to_cart": "addToCart",
        "view_cart": "viewBasket",
        "initiate_checkout": "beginCheckout",
        "add_payment_info": "addPaymentInfo",
        "purchase": "trackTransaction",
        "login": "login",
    },
    custom_events=False,
    dedup_key="deduplication_page_view_id = event_id on every event; trackTransaction id = "
    "order_id (event_id when absent)",
    click_ids=(GUM_ID_FIELD, OPTOUT_FIELD),
    test_mode="none exists: the probe posts the partner's identity block with an empty "
    "events list, which records nothing; a 2xx proves the endpoint accepts the payload, not "
    "that the partner ID is right (Criteo has no secret to check)",
    options=(
        Option("caller_id", "the numeric caller ID Criteo issues for S2S (id.mapping_key)", DIGITS),
        Option("site_type", "d, m or t; default: from the user agent", r"[dmt]"),
        Option("country", "the site's ISO-2 country for multi-country partners", r"[A-Za-z]{2}"),
        Option("language", "the site's 2-letter language code", r"[A-Za-z]{2}"),
    ),
)


def _iso(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _email_hashes(raw: str) -> dict[str, str] | None:
    value = raw.strip().lower()
    if MD5_HEX.match(value):
        return {"md5": value, "sha256_md5": pii.sha256(value)}
    normalized = pii.email(value)
    if normalized is None:
        return None
    if pii.is_hashed(normalized):
        return {"sha256": normalized}
    md5 = hashlib.md5(normalized.encode("utf-8"), usedforsecurity=False).hexdigest()
    return {"md5": md5, "sha256": pii.sha256(normalized), "sha256_md5": pii.sha256(md5)}


def _site_type(event: StoredEvent, destination: Destination) -> str:
    if configured := destination.options.get("site_type"):
        return configured
    if not event.client.user_agent:
        return "d"
    agent = user_agents.parse(event.client.user_agent)
    return "t" if agent.is_tablet else "m" if agent.is_mobile else "d"


def _opted_out(event: StoredEvent) -> bool:
    return str(getattr(event.ids, OPTOUT_FIELD, None) or "").lower() in ("true", "1")


def _identity(event: StoredEvent, destination: Destination) -> dict[str, Any]:
    """The ``id`` block; empty when the visitor opted out of Criteo (as Criteo's tag does)."""
    block: dict[str, Any] = {}
    if _opted_out(event):
        return block
    if caller := destination.options.get("caller_id"):
        block["mapping_key"] = caller
    if gum := getattr(event.ids, GUM_ID_FIELD, None):
        block["mapped_user_id"] = gum
    for raw in event.user.emails():
        if hashes := _email_hashes(raw):
            block["email"] = hashes
            break
    return block


def _items(event: StoredEvent) -> list[dict[str, Any]]:
    items = []
    for content in event.data.contents or ():
        if not content.id:
            continue
        item: dict[str, Any] = {"id": content.id}
        if content.price is not None:
            item["price"] = content.price
        if content.quantity is not None:
            item["quantity"] = content.quantity
        items.append(item)
    return items


def _events(event: StoredEvent, name: str) -> list[dict[str, Any]]:
    entry: dict[str, Any] = {"event": name, "timestamp": _iso(event.time)}
    if name == "trackTransaction":
        entry["id"] = event.data.order_id or event.event_id
    if items := _items(event):
        entry["item"] = items
    if name == "viewList" and event.data.search:
        entry["keywords"] = event.data.search
    entry["deduplication_page_view_id"] = event.event_id
    entries = [entry]
    if name == "viewPage" and urlsplit(event.page.url or "").path in ("", "/"):
        home = {"event": HOME, "timestamp": entry["timestamp"]}
        entries.insert(0, home | {"deduplication_page_view_id": event.event_id})
    return entries


def _envelope(event: StoredEvent | None, destination: Destination) -> dict[str, Any]:
    """The top-level fields: account, site and, for an event, the visitor's identity."""
    body: dict[str, Any] = {
        "version": INTEGRATION_VERSION,
        "account": destination.credentials["partner_id"],
    }
    for key in ("country", "language"):
        if value := destination.options.get(key):
            body[key] = value.upper() if key == "country" else value.lower()
    if event is None:
        body["site_type"] = destination.options.get("site_type", "d")
        if caller := destination.options.get("caller_id"):
            body["id"] = {"mapping_key": caller}
        return body
    body["site_type"] = _site_type(event, destination)
    body["id"] = _identity(event, destination)
    if not _opted_out(event):
        if event.user.external_id and (visitor := pii.external_id(event.user.external_id)):
            body["retailer_visitor_id"] = pii.hashed(visitor)
        if event.client.ip:
            body["ip"] = event.client.ip
    if event.client.user_agent:
        body["useragent"] = event.client.user_agent
    if event.page.url:
        body["full_url"] = event.page.url
    if event.page.referrer:
        body["previous_url"] = event.page.referrer
    return body


def _request(body: dict[str, Any], destination: Destination) -> PlatformRequest:
    return PlatformRequest(
        "POST", destination.base_url + EVENT_PATH, json=body, params=dict(EVENT_QUERY)
    )


def build(events: Sequence[StoredEvent], destination: Destination) -> list[Built]:
    built = []
    for event in events:
        name = destination.platform_event(SPEC, event.event)
        if name is None:
            reason = f"event {event.event} is not mapped to a Criteo event"
            built.append(Built(None, (), {event.event_id: reason}))
            continue
        body = _envelope(event, destination) | {"events": _events(event, name)}
        built.append(Built(_request(body, destination), (event.event_id,)))
    return built


def classify(response: PlatformResponse, event_ids: Sequence[str]) -> Verdict:
    if verdict := generic_http_verdict(response):
        return verdict
    status = response.status
    if 200 <= status < 300:
        return Verdict(Kind.DELIVERED)
    if 300 <= status < 400:
        location = next((v for k, v in response.headers.items() if k.lower() == "location"), "")
        where = urlsplit(location).netloc or "another host"
        return Verdict(
            Kind.SETUP, f"http {status}: Criteo redirects to {where}; use it as base_url"
        )
    if status == 404:
        return Verdict(Kind.SETUP, "http 404: no Criteo event endpoint at this base_url")
    return Verdict(Kind.REJECTED, f"http {status}: Criteo refused the event{_detail(response)}")


def _detail(response: PlatformResponse) -> str:
    """Criteo documents no error body; quote a short message when one is there."""
    body = response.json()
    if isinstance(body, dict):
        for key in ("message", "error", "errors"):
            if isinstance(body.get(key), str):
                return f": {body[key][:200]}"
    return ""


def probe(destination: Destination) -> PlatformRequest:
    return _request(_envelope(None, destination) | {"events": []}, destination)
