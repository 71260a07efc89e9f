"""Snapchat Conversions API v3 (web events).

    POST {origin}/v3/{pixel_id}/events?access_token=<token>
    {"data": [event, ...]}

* **Auth**: the long-lived Conversions API token (Business Details → Conversions API
  Tokens). Snap's own v3 OpenAPI (Business SDK) and docs define it only as the
  ``access_token`` query parameter, so it goes in the query: the one tag where a secret is
  in a URL, because Snap offers nothing else (an Authorization header is reported to work by
  third parties only). The dispatcher's redaction covers it like any other secret.
* **Limits**: 2,000 events per request; ``event_time`` (unix seconds) at most 37 days old
  (Snap's Introduction page; Snap asks for events within the hour for optimization).
* **Dedup**: ``event_id`` equal to the pixel's ``client_dedup_id`` (48 h per Stape's notes on
  Snap's table; for PURCHASE Snap may also pair it with the pixel's ``transaction_id``).
* **PII**: ``em``/``ph`` lists, other keys single strings (Snap takes "string or list of
  strings"), SHA-256 hex. Phone is digits with the country code and no ``+`` (Snap's
  example ``+44 844 412 4653`` → ``448444124653``, Meta's rule). ``client_ip_address``,
  ``client_user_agent``, ``sc_click_id`` (``ScCid``) and ``sc_cookie1`` (``_scid``) are raw.
* **Matching**: Snap needs ``em``, ``ph``, or IP address plus user agent, and
  ``event_source_url`` for web events; an event without them is refused here with that
  reason.
* **Events**: Snap accepts its enum only (``PURCHASE``, ``PAGE_VIEW``, … ``CUSTOM_EVENT_1..5``),
  so other names are not sent; map them with ``events = {x = "CUSTOM_EVENT_3"}``. There is
  no lead event: chosen ``lead`` → ``SIGN_UP`` (as Stape), ``contact`` → ``CUSTOM_EVENT_1``.
* **Limited Data Use**: under GPC the event is skipped unless ``gpc_mode = "ldu"``, which
  sends ``data_processing_options = ["LMU"]``. Chosen: the token ``LMU`` from Snap's
  Parameters page (the SDK example writes ``LDU``) as a real JSON array, the type in Snap's
  OpenAPI (the docs' sample writes the string ``"['LMU']"``).
* **Answers**: ``{"status": "VALID"|"INVALID", "reason", "event": <index>, "errors":
  {"codes", "error_msgs"}}``. 429 throttled, 5xx retried, 401/403 pause the destination;
  400 ``INVALID`` for several events is ``split`` (Snap names at most one bad event and
  does not say whether the others were kept; a resend is harmless, Snap dedups on event_id).
* **Test**: ``validate_only = "true"`` sends every batch to ``/events/validate``, which
  checks the payload and answers per event without recording a conversion (chosen over
  ``test_event_code``, whose place in the body the sources disagree on). The connection
  test reads ``GET /v3/{pixel_id}/events/validate/stats`` from Snap's v3 OpenAPI: it proves
  token and pixel, needs no event and records nothing.
"""

from __future__ import annotations

import json
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
MAX_EVENTS = 2_000
FRESHNESS_SECONDS = 37 * DAY
ACTION_SOURCE = "WEB"
LIMITED_DATA_USE = ("LMU",)
INVALID = "INVALID"
MAX_REASON = 200
UUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"

SPEC = TagSpec(
    name="snapchat",
    title="Snapchat",
    api_version=API_VERSION,
    base_url="https://tr.snapchat.com",
    docs_url="https://developers.snap.com/api/marketing-api/Conversions-API/UsingTheAPI",
    credentials=(
        Credential(
            "pixel_id",
            "Pixel ID",
            "the Snap Pixel ID, a UUID such as 1ec32188-754e-4be2-8e55-c949a984a39f (Ads "
            "Manager → Events Manager → your pixel)",
            pattern=UUID,
            example="1ec32188-754e-4be2-8e55-c949a984a39f",
        ),
        Credential(
            "access_token",
            "Conversions API token",
            "a long-lived Conversions API token (Ads Manager → Business Details → "
            "Conversions API Tokens; Organization Admins only)",
            pattern=r"[A-Za-z0-9_\-.~+/=]{20,4096}",
            secret=True,
        ),
    ),
    options=(
        Option(
            "validate_only",
            '"true" sends every batch to /events/validate (checked, never recorded)',
            "true|false",
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
        "page_view": "PAGE_VIEW",
        "view_content": "VIEW_CONTENT",
        "search": "SEARCH",
        "add_to_cart": "ADD_CART",
        "add_to_wishlist": "ADD_TO_WISHLIST",
        "initiate_checkout": "START_CHECKOUT",
        "add_payment_info": "ADD_BILLING",
        "purchase": "PURCHASE",
        "lead": "SIGN_UP",
        "complete_registration": "SIGN_UP",
        "subscribe": "SUBSCRIBE",
        "start_trial": "START_TRIAL",
        "contact": "CUSTOM_EVENT_1",
    },
    custom_events=False,
    dedup_key="event_id (the pixel's client_dedup_id), 48 h",
    click_ids=("sccid", "scid"),
    test_mode='validate_only = "true" posts to /events/validate (validated, never recorded); '
    "the connection test reads GET /v3/{pixel_id}/events/validate/stats",
)


def _text(value: float | int) -> str:
    """A number as Snap's string fields want it: ``19.9`` → ``"19.9"``, ``2`` → ``"2"``."""
    return format(value, ".6f").rstrip("0").rstrip(".") if isinstance(value, float) else str(value)


def user_data(event: StoredEvent, default_country: str | None) -> dict[str, Any]:
    user, ids, client = event.user, event.ids, event.client
    country = pii.country(user.country) if user.country else None
    region = (country or client.country or default_country or "").upper() or None
    fields: dict[str, Any] = {
        "em": pii.hashed_list([pii.email(e) for e in user.emails()]),
        "ph": pii.hashed_list([pii.phone_digits(p, region) for p in user.phones()]),
        "fn": pii.hashed(pii.name(user.first_name)),
        "ln": pii.hashed(pii.name(user.last_name)),
        "ge": pii.hashed(pii.gender(user.gender)),
        "db": pii.hashed(pii.date_of_birth(user.date_of_birth)),
        "ct": pii.hashed(pii.city(user.city)),
        "st": pii.hashed(pii.state(user.state)),
        "zp": pii.hashed(pii.zip_code(user.zip, country)),
        "country": pii.hashed(country),
        "external_id": pii.hashed(pii.external_id(user.external_id)),
        "client_ip_address": client.ip,
        "client_user_agent": client.user_agent,
        "sc_click_id": ids.sccid,
        "sc_cookie1": ids.scid,
    }
    return {k: v for k, v in fields.items() if v}


def _custom_fields(custom: Mapping[str, Any]) -> dict[str, str] | None:
    """Other data keys as Snap's string map; nested values have no place there."""
    fields = {
        k: v if isinstance(v, str) else json.dumps(v)
        for k, v in custom.items()
        if isinstance(v, str | int | float | bool)
    }
    return fields or None


def custom_data(event: StoredEvent) -> dict[str, Any]:
    data = event.data
    contents = [c for c in data.contents or [] if c.id]
    fields: dict[str, Any] = {
        "currency": data.currency.upper() if data.currency else None,
        "value": data.value,
        "order_id": data.order_id,
        "content_ids": [c.id for c in contents] or None,
        "contents": [
            {
                k: v
                for k, v in (
                    ("id", c.id),
                    ("quantity", None if c.quantity is None else _text(c.quantity)),
                    ("item_price", None if c.price is None else _text(c.price)),
                )
                if v is not None
            }
            for c in contents
        ]
        or None,
        "content_type": data.content_type,
        "content_category": data.content_category,
        "num_items": data.num_items,
        "search_string": data.search,
        "status": data.status,
        "custom_fields": _custom_fields(event.custom),
    }
    return {k: v for k, v in fields.items() if v is not None}


def event_payload(event: StoredEvent, destination: Destination, name: str) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "event_name": name,
        "event_time": event.time,
        "event_id": event.event_id,
        "action_source": ACTION_SOURCE,
        "event_source_url": event.page.url,
        "user_data": user_data(event, destination.default_country),
        "custom_data": custom_data(event) or None,
    }
    if event.gpc and destination.options.get("gpc_mode") == "ldu":
        payload["data_processing_options"] = list(LIMITED_DATA_USE)
    return {k: v for k, v in payload.items() if v is not None}


def problem(event: StoredEvent, payload: dict[str, Any]) -> str | None:
    """Why Snap would refuse this event whatever we do, or None."""
    if not event.page.url:
        return "web events need the page URL (page.url)"
    user = payload["user_data"]
    if not (user.get("em") or user.get("ph") or (event.client.ip and event.client.user_agent)):
        return "no email, phone, or IP address + user agent to match on"
    return None


def _url(destination: Destination, suffix: str = "") -> str:
    return f"{destination.base_url}/{API_VERSION}/{destination.credentials['pixel_id']}{suffix}"


def _auth(destination: Destination) -> dict[str, str]:
    return {"access_token": destination.credentials["access_token"]}


def build(events: Sequence[StoredEvent], destination: Destination) -> list[Built]:
    validate = destination.options.get("validate_only") == "true"
    url = _url(destination, "/events/validate" if validate else "/events")
    built = []
    for start in range(0, len(events), MAX_EVENTS):
        data, ids, rejected = [], [], {}
        for event in events[start : start + MAX_EVENTS]:
            name = destination.platform_event(SPEC, event.event)
            if name is None:
                rejected[event.event_id] = f"unmapped event: {event.event}"
                continue
            payload = event_payload(event, destination, name)
            if reason := problem(event, payload):
                rejected[event.event_id] = reason
                continue
            data.append(payload)
            ids.append(event.event_id)
        request = (
            PlatformRequest("POST", url, json={"data": data}, params=_auth(destination))
            if data
            else None
        )
        built.append(Built(request, tuple(ids), rejected))
    return built


def _describe(entry: Mapping[str, Any]) -> str:
    """``snap INVALID [codes]: messages`` from an answer or one validate log entry."""
    errors = entry.get("errors") if isinstance(entry.get("errors"), dict) else {}
    codes = [str(c) for c in errors.get("codes") or []]
    messages = [str(m) for m in errors.get("error_msgs") or []] or [str(entry.get("reason", ""))]
    label = f"snap {entry.get('status') or 'error'}" + (f" [{', '.join(codes)}]" if codes else "")
    return f"{label}: {'; '.join(m for m in messages if m)}"[:MAX_REASON]


def _index(value: object, event_ids: Sequence[str]) -> str | None:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(event_ids):
        return event_ids[value]
    return None


def classify(response: PlatformResponse, event_ids: Sequence[str]) -> Verdict:
    body = response.json()
    body = body if isinstance(body, dict) else {}
    generic = generic_http_verdict(response)
    if generic is not None:
        detail = f": {_describe(body)}" if body else ""
        return Verdict(generic.kind, generic.reason + detail, generic.retry_after)
    logs = body.get("event_logs")
    if isinstance(logs, list):  # /events/validate: a verdict per event, nothing recorded
        rejected = {}
        for entry in logs:
            event_id = _index(entry.get("event"), event_ids) if isinstance(entry, dict) else None
            if event_id and str(entry.get("status", "")).upper() == INVALID:
                rejected[event_id] = _describe(entry)
        return Verdict(Kind.DELIVERED, rejected=rejected)
    if 200 <= response.status < 300 and body.get("status") != INVALID:
        return Verdict(Kind.DELIVERED)
    reason = _describe(body) if body else f"snap http {response.status}"
    if response.status in (400, 422) or body.get("status") == INVALID:
        if len(event_ids) == 1:
            return Verdict(Kind.REJECTED, reason)
        bad = _index(body.get("event"), event_ids)
        return Verdict(Kind.SPLIT, reason, rejected={bad: reason} if bad else {})
    if response.status == 404:
        return Verdict(Kind.SETUP, f"no such pixel endpoint ({reason})")
    if response.status == 413:
        return Verdict(Kind.SPLIT, f"request too large ({reason})")
    return Verdict(Kind.RETRY, reason)


def probe(destination: Destination) -> PlatformRequest:
    """Read the pixel's test-event stats: proves token and pixel, records nothing."""
    return PlatformRequest(
        "GET", _url(destination, "/events/validate/stats"), params=_auth(destination)
    )


def probe_verdict(response: PlatformResponse) -> Verdict:
    body = response.json()
    body = body if isinstance(body, dict) else {}
    if 200 <= response.status < 300:
        if body.get("status") == "FAILURE":
            return Verdict(Kind.SETUP, f"snap FAILURE: {str(body.get('reason', ''))[:MAX_REASON]}")
        return Verdict(Kind.DELIVERED)
    if response.status in (400, 404):
        detail = _describe(body) if body else f"snap http {response.status}"
        return Verdict(
            Kind.SETUP,
            f"pixel not found or not owned by the token's organization ({detail})",
        )
    return classify(response, ())
