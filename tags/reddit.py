"""Reddit Conversions API v3 (v2.0 is legacy; Reddit says not to send an event to both).

    POST {origin}/api/v3/pixels/{account_id}/conversion_events
    Authorization: Bearer <conversion access token>
    {"data": {"test_id": ..., "events": [event, ...]}}

* **Auth**: a Conversion Access Token (Events Manager → Conversions API; it does not expire),
  as a Bearer header. Reddit rate-limits default user agents; the dispatcher sends its own.
* **Limits**: 1,000 events per request (more is a plain "Bad Request"), 1,000 requests/s,
  10,000 events/s; ``event_at`` (epoch **milliseconds**) at most 7 days old.
* **Dedup**: ``metadata.conversion_id`` = our ``event_id``, the value the pixel gets as
  ``conversionId``; only between events of the same type (and custom name) from the same
  action source, sent within 2 days. Chosen: sent unhashed, the way the pixel sends it
  (Reddit accepts either form).
* **PII** (Reddit accepts plain or SHA-256; hashed here, as Reddit recommends): email
  trimmed, lowercased, dots removed from the local part and everything from ``+`` dropped,
  for every domain (Reddit's rule, not Gmail's); phone in E.164 *with* ``+``; external_id
  and ip_address hashed (as Reddit's own Segment integration does). ``user_agent``,
  ``click_id`` (``rdt_cid``) and ``uuid`` (the ``_rdt_uuid`` cookie) are never hashed.
  Chosen: ``uuid`` keeps its ``<ms>.`` prefix, exactly as Reddit's example sends it (Stape
  and Cloudflare strip it; Reddit's documentation is the better witness).
* **Events**: ``PAGE_VISIT``, ``VIEW_CONTENT``, ``SEARCH``, ``ADD_TO_CART``,
  ``ADD_TO_WISHLIST``, ``PURCHASE``, ``LEAD``, ``SIGN_UP``; any other mapped name is sent as
  ``CUSTOM`` with that ``custom_event_name`` (≤ 64 chars, case-sensitive), and unmapped
  neutral names go as custom events under their own name. ``value``/``currency`` go only
  with the types Reddit keeps them for, ``item_count`` likewise (Reddit drops the rest).
* **Limited Data Use**: under GPC the event is skipped unless ``gpc_mode = "ldu"``, which
  sends ``user.data_processing_options = {"modes": ["LDU"], "country", "region"}`` with the
  visitor's geo when known.
* **Answers**: 200 ``{"data": {"message": "Successfully processed N conversion events."}}``.
  400 "There were N invalid conversion events. None were processed." with
  ``invalid_events`` (each echoing its event): one event is rejected, a batch is split
  (the valid events were *not* processed). 401/403 pause the destination, 429 throttles,
  5xx is retried.
* **Test**: ``test_id`` (copied from Events Manager → Event Testing) routes events there;
  Event Testing shows single-event requests only. Reddit offers no read call for a
  conversion token, so the connection test posts one ``PAGE_VISIT`` under the configured
  ``test_id``, or without one an empty event list (authenticated, nothing recorded).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

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

API_VERSION = "v3"
MAX_EVENTS = 1_000
FRESHNESS_SECONDS = 7 * DAY
ACTION_SOURCE = "WEBSITE"
CUSTOM = "CUSTOM"
MAX_CUSTOM_NAME = 64
MAX_REASON = 200
STANDARD_TYPES = frozenset(
    {
        "PAGE_VISIT",
        "VIEW_CONTENT",
        "SEARCH",
        "ADD_TO_CART",
        "ADD_TO_WISHLIST",
        "PURCHASE",
        "LEAD",
        "SIGN_UP",
    }
)
# Which metadata Reddit keeps per type (business.reddithelp "about event metadata").
VALUE_TYPES = frozenset({"PURCHASE", "ADD_TO_CART", "ADD_TO_WISHLIST", "LEAD", "SIGN_UP", CUSTOM})
ITEM_COUNT_TYPES = frozenset({"PURCHASE", "ADD_TO_CART", "ADD_TO_WISHLIST", CUSTOM})

SPEC = TagSpec(
    name="reddit",
    title="Reddit",
    api_version=API_VERSION,
    base_url="https://ads-api.reddit.com",
    docs_url="https://ads-api.reddit.com/docs/v3/",
    credentials=(
        Credential(
            "account_id",
            "Pixel ID",
            "the pixel ID, which is the ad account ID: a2_ or t2_ then letters and digits, "
            "e.g. a2_abc123 (Ads Manager → Events Manager → your pixel)",
            pattern=r"(?:a2|t2)_[A-Za-z0-9]{1,32}",
            example="a2_abc123",
        ),
        Credential(
            "access_token",
            "Conversion access token",
            "a Conversion Access Token (Ads Manager → Events Manager → Conversions API → "
            "Generate access token)",
            pattern=r"[\x21-\x7e]{20,4096}",
            secret=True,
        ),
    ),
    options=(
        Option(
            "test_id",
            "the test ID from Events Manager → Event Testing (remove it for production)",
            r"[A-Za-z0-9_\-.]{1,128}",
        ),
        Option("gpc_mode", '"skip" (default) or "ldu" (send with Limited Data Use)', "skip|ldu"),
    ),
    limits=Limits(
        max_batch_events=MAX_EVENTS,
        max_batch_bytes=None,
        freshness_seconds=FRESHNESS_SECONDS,
        max_in_flight=4,
        timeout_seconds=10.0,
    ),
    consent=frozenset({"ad_storage", "ad_user_data"}),
    tcf_purposes=frozenset({1, 7}),  # IAB TCF: not a GVL vendor; purposes only
    event_map={
        "page_view": "PAGE_VISIT",
        "view_content": "VIEW_CONTENT",
        "search": "SEARCH",
        "add_to_cart": "ADD_TO_CART",
        "add_to_wishlist": "ADD_TO_WISHLIST",
        "purchase": "PURCHASE",
        "lead": "LEAD",
        "complete_registration": "SIGN_UP",
        "contact": "LEAD",
        # No standard type: custom events named as Reddit's pixel names them.
        "initiate_checkout": "InitiateCheckout",
        "add_payment_info": "AddPaymentInfo",
        "subscribe": "Subscribe",
        "start_trial": "StartTrial",
    },
    custom_events=True,
    dedup_key="metadata.conversion_id = event_id (the pixel's conversionId), same type, 2 days",
    click_ids=("rdt_cid", "rdt_uuid"),
    test_mode="test_id routes events to Events Manager → Event Testing; the connection test "
    "posts one PAGE_VISIT under that test_id, or an empty event list",
)


def email(value: str | None) -> str | None:
    """Reddit's canonical address: ``Al.ice+Apple@Example.Com`` → ``alice@example.com``."""
    normalized = pii.email(value)
    if not normalized or pii.is_hashed(normalized):
        return normalized
    local, _, domain = normalized.partition("@")
    local = local.split("+", 1)[0].replace(".", "")
    return f"{local}@{domain}" if local else None


def event_type(name: str) -> dict[str, str]:
    if name in STANDARD_TYPES:
        return {"tracking_type": name}
    return {"tracking_type": CUSTOM, "custom_event_name": name[:MAX_CUSTOM_NAME]}


def _ldu(event: StoredEvent) -> dict[str, Any]:
    country = (event.client.country or "").upper() or None
    region = event.client.region
    if region and country and "-" not in region:
        region = f"{country}-{region.upper()}"
    fields = {"modes": ["LDU"], "country": country, "region": region if country else None}
    return {k: v for k, v in fields.items() if v}


def user(event: StoredEvent, destination: Destination) -> dict[str, Any]:
    person, client = event.user, event.client
    country = pii.country(person.country) if person.country else None
    region = (country or client.country or destination.default_country or "").upper() or None
    emails = [e for e in (email(v) for v in person.emails()) if e]
    phones = [p for p in (pii.phone_e164(v, region) for v in person.phones()) if p]
    fields: dict[str, Any] = {
        "email": pii.hashed(emails[0]) if emails else None,
        "phone_number": pii.hashed(phones[0]) if phones else None,
        "external_id": pii.hashed(pii.external_id(person.external_id)),
        "ip_address": pii.hashed(client.ip.strip()) if client.ip else None,
        "user_agent": client.user_agent,
        "uuid": event.ids.rdt_uuid,
    }
    if event.gpc and destination.options.get("gpc_mode") == "ldu":
        fields["data_processing_options"] = _ldu(event)
    return {k: v for k, v in fields.items() if v}


def metadata(event: StoredEvent, tracking_type: str) -> dict[str, Any]:
    data = event.data
    contents = [c for c in data.contents or [] if c.id]
    quantities = [c.quantity for c in data.contents or [] if c.quantity is not None]
    with_value = tracking_type in VALUE_TYPES
    fields: dict[str, Any] = {
        "conversion_id": event.event_id,
        "currency": data.currency.upper() if data.currency and with_value else None,
        "value": data.value if with_value else None,
        "item_count": (data.num_items if data.num_items is not None else sum(quantities) or None)
        if tracking_type in ITEM_COUNT_TYPES
        else None,
        "products": [
            {
                k: v
                for k, v in (
                    ("id", c.id),
                    ("name", c.name),
                    ("category", c.category),
                    ("quantity", c.quantity),
                    ("item_price", c.price),
                )
                if v is not None
            }
            for c in contents
        ]
        or None,
    }
    return {k: v for k, v in fields.items() if v is not None}


def event_payload(event: StoredEvent, destination: Destination, name: str) -> dict[str, Any]:
    kind = event_type(name)
    payload: dict[str, Any] = {
        "event_at": event.time * 1000,
        "action_source": ACTION_SOURCE,
        "type": kind,
        "event_source_url": event.page.url,
        "click_id": event.ids.rdt_cid,
        "user": user(event, destination) or None,
        "metadata": metadata(event, kind["tracking_type"]),
    }
    return {k: v for k, v in payload.items() if v is not None}


def _request(destination: Destination, events: list[dict[str, Any]]) -> PlatformRequest:
    data: dict[str, Any] = {"events": events}
    if test_id := destination.options.get("test_id"):
        data = {"test_id": test_id, **data}
    return PlatformRequest(
        "POST",
        f"{destination.base_url}/api/{API_VERSION}/pixels/"
        f"{destination.credentials['account_id']}/conversion_events",
        {"Authorization": f"Bearer {destination.credentials['access_token']}"},
        {"data": data},
    )


def build(events: Sequence[StoredEvent], destination: Destination) -> list[Built]:
    built = []
    for start in range(0, len(events), MAX_EVENTS):
        payloads, ids, rejected = [], [], {}
        for event in events[start : start + MAX_EVENTS]:
            name = destination.platform_event(SPEC, event.event)
            if name is None:
                rejected[event.event_id] = f"unmapped event: {event.event}"
                continue
            payloads.append(event_payload(event, destination, name))
            ids.append(event.event_id)
        request = _request(destination, payloads) if payloads else None
        built.append(Built(request, tuple(ids), rejected))
    return built


def _message(response: PlatformResponse, body: Any) -> str:
    """Reddit's words, whichever of its four answer shapes carried them."""
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            return f"{error.get('reason', '')}: {error.get('explanation', '')}".strip(": ")
        data = body.get("data")
        if isinstance(data, dict) and data.get("message"):
            return str(data["message"])
        if body.get("message"):
            return str(body["message"])
    return " ".join(response.body.decode("utf-8", "replace").split())[:80]


def _invalid_events(body: Any) -> list[dict[str, Any]]:
    if not isinstance(body, dict):
        return []
    found = body.get("invalid_events")
    if found is None and isinstance(body.get("data"), dict):
        found = body["data"].get("invalid_events")
    return [e for e in found if isinstance(e, dict)] if isinstance(found, list) else []


def _rejected(invalid: list[dict[str, Any]], event_ids: Sequence[str]) -> dict[str, str]:
    """Invalid events named by the conversion_id they echo back (plain or hashed)."""
    ours = {key: event_id for event_id in event_ids for key in (event_id, pii.sha256(event_id))}
    rejected = {}
    for entry in invalid:
        echoed = entry.get("event") if isinstance(entry.get("event"), dict) else {}
        meta = echoed.get("metadata") or echoed.get("event_metadata") or {}
        event_id = ours.get(str(meta.get("conversion_id"))) if isinstance(meta, Mapping) else None
        if event_id:
            rejected[event_id] = f"reddit: {str(entry.get('error_message', ''))[:MAX_REASON]}"
    return rejected


def classify(response: PlatformResponse, event_ids: Sequence[str]) -> Verdict:
    body = response.json()
    reason = f"reddit http {response.status}: {_message(response, body)}"[:MAX_REASON]
    generic = generic_http_verdict(response)
    if generic is not None:
        return Verdict(generic.kind, reason, generic.retry_after)
    if 200 <= response.status < 300:
        return Verdict(Kind.DELIVERED)
    if response.status in (400, 422):
        invalid = _invalid_events(body)
        if len(event_ids) <= 1:
            detail = invalid[0].get("error_message") if invalid else None
            return Verdict(Kind.REJECTED, f"{reason}; {detail}"[:MAX_REASON] if detail else reason)
        rejected = _rejected(invalid, event_ids)
        if set(rejected) == set(event_ids):
            return Verdict(Kind.REJECTED, reason, rejected=rejected)
        return Verdict(Kind.SPLIT, reason, rejected=rejected)
    if response.status == 404:
        return Verdict(Kind.SETUP, f"{reason} (check account_id)")
    if response.status == 413:
        return Verdict(Kind.SPLIT, reason)
    return Verdict(Kind.RETRY, reason)


def probe(destination: Destination) -> PlatformRequest:
    """A test event under the configured test_id, else an empty event list."""
    if not destination.options.get("test_id"):
        return _request(destination, [])
    event = {
        "event_at": int(time.time() * 1000),  # a test happens now: the clock, once
        "action_source": ACTION_SOURCE,
        "type": {"tracking_type": "PAGE_VISIT"},
        "event_source_url": "https://capi-edge.invalid/connection-test",
        "user": {"user_agent": "capi-edge connection test"},
        "metadata": {"conversion_id": "capi-edge-connection-test"},
    }
    return _request(destination, [event])


def probe_verdict(response: PlatformResponse) -> Verdict:
    """Auth and pixel permission come before payload checks: a 400 means they passed."""
    if response.status in (400, 422):
        body = response.json()
        return Verdict(
            Kind.DELIVERED,
            f"credentials accepted; Reddit refused the test payload: {_message(response, body)}"[
                :MAX_REASON
            ],
        )
    return classify(response, ())
