"""Google Analytics 4 Measurement Protocol (web streams).

    POST {origin}/mp/collect?measurement_id=G-XXXXXXXXXX&api_secret=<secret>
    {"client_id", "user_id", "consent", "user_data", "ip_override", "user_agent",
     "events": [{"name", "timestamp_micros", "params": {...}}, ...]}

* **Auth**: the API secret goes in the query string: GA4 accepts it nowhere else (no header,
  no body field). Attempt records redact it. EU collection: ``base_url =
  "https://region1.google-analytics.com"``.
* **Limits**: 25 events and 130 kB per request; event names 1-40 ``[A-Za-z0-9_]`` starting
  with a letter, not reserved; 25 params per event, values cut to 100 characters (page_location
  1000, page_referrer 420, page_title 300); events older than 72 h (GA clamps them) never sent.
* **One visitor per request**: client_id, user_id, consent, user_data, IP and user agent are
  request-level, so a batch is grouped by them, one request (of up to 25 events) per group.
* **client_id** from ``_ga`` (``ids.ga_client_id``), ``session_id`` from ``_ga_<id>``. Chosen:
  no client_id, no send ("no ga client_id"), since an invented id counts a new user with no
  source; ``client_id_fallback = "derive"`` sends it with a stable pseudo id hashed from the
  external_id (else the event_id), for backends posting orders without the cookie.
* **user_id**: chosen: SHA-256 of the normalized external_id, so no raw customer identifier
  leaves the edge; ``user_id = "raw"`` sends it as given, to match the site's gtag user_id.
* **Consent**: needs ``analytics_storage`` (GA4 has no field for it). ``ad_user_data`` and
  ``ad_personalization`` are copied as GRANTED/DENIED. ``user_data`` (SHA-256 email without
  Gmail dots, E.164 phone and names; city, region, postal code, country plain) only when
  ad_user_data is explicitly granted; with a user_id when there is one (Google's page once
  required it, now recommends it).
* **GPC**: ``honours_gpc = False``: GA4 is measurement, not a sale. Under GPC both ad purposes
  go DENIED and user_data is withheld, so nothing feeds advertising.
* **Params**: session_id, engagement_time_msec 1 (so events show in Realtime), page_*,
  currency, value, transaction_id, search_term, items; the site's own data keys (coupon, …)
  pass as params while there is room, never a value that is an email address.
* **Dedup**: none by event id (send only what gtag does not); purchases deduplicate on
  ``transaction_id`` = the order id, never sent empty.
* **Answers**: 2xx even for malformed data; 5xx/429 retried; other 4xx mean the HTTP request
  itself is wrong: permanent (a 400/413 batch is split, 404 is a base_url problem).
* **Test**: the connection test posts to the validation server ``/debug/mp/collect``, which
  records nothing; a validation message is a setup problem. It checks neither measurement_id
  nor api_secret: confirm in Realtime (``debug_mode = "true"`` feeds DebugView).
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Sequence
from typing import Any

from edge.schema import StoredEvent

from . import pii
from .base import (
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

COLLECT_PATH = "/mp/collect"
DEBUG_PATH = "/debug/mp/collect"
MAX_EVENTS = 25
MAX_BYTES = 130_000
FRESHNESS_SECONDS = 72 * 3600
MAX_PARAMS = 25
MAX_VALUE_CHARS = 100
PAGE_PARAM_CHARS = {"page_location": 1000, "page_referrer": 420, "page_title": 300}
MAX_USER_ID_CHARS = 256
MAX_EMAILS = MAX_PHONES = 3
ENGAGEMENT_TIME_MSEC = 1  # positive, so events show in Realtime; adds no real engagement
EVENT_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,39}")
PARAM_NAME = re.compile(r"(?!(?:firebase_|ga_|google_))[A-Za-z][A-Za-z0-9_]{0,39}")
RESERVED_EVENTS = frozenset(
    "ad_activeview ad_click ad_exposure ad_impression ad_query ad_reward adunit_exposure "
    "app_clear_data app_exception app_install app_remove app_store_refund app_update "
    "app_upgrade error firebase_campaign first_open first_visit in_app_purchase os_update "
    "screen_view session_start user_engagement".split()
)
RESERVED_PREFIXES = ("dynamic_link_", "firebase_", "notification_", "ga_", "google_")
GA_COOKIE = re.compile(r"GA\d\.\d+\.(\d+\.\d+)")
ITEM_FIELDS = (
    ("item_id", "id"),
    ("item_name", "name"),
    ("item_brand", "brand"),
    ("item_category", "category"),
    ("price", "price"),
    ("quantity", "quantity"),
)
PROBE_CLIENT_ID = "1000000000.1000000000"
NO_CLIENT_ID = "no ga client_id (_ga cookie)"

SPEC = TagSpec(
    name="ga4",
    title="Google Analytics 4",
    api_version="Measurement Protocol (unversioned)",
    base_url="https://www.google-analytics.com",
    docs_url="https://developers.google.com/analytics/devguides/collection/protocol/ga4",
    credentials=(
        Credential(
            "measurement_id",
            "Measurement ID",
            "G- followed by 4-12 uppercase letters or digits (Admin → Data streams → your "
            "web stream → Measurement ID; not the numeric stream ID)",
            pattern=r"G-[A-Z0-9]{4,12}",
            example="G-ABCDE12345",
        ),
        Credential(
            "api_secret",
            "Measurement Protocol API secret",
            "the secret value, letters, digits, - and _ (Admin → Data streams → your web "
            "stream → Measurement Protocol API secrets → Create)",
            pattern=r"[A-Za-z0-9_\-]{8,128}",
            secret=True,
        ),
    ),
    options=(
        Option("debug_mode", '"true" to show every event in GA DebugView', "true|false"),
        Option("user_id", '"hashed" (default) or "raw" (as the site gtag sets it)', "hashed|raw"),
        Option(
            "client_id_fallback",
            '"skip" (default) or "derive" (a stable pseudo client_id when _ga is missing)',
            "skip|derive",
        ),
    ),
    limits=Limits(
        max_batch_events=MAX_EVENTS,
        max_batch_bytes=MAX_BYTES,
        freshness_seconds=FRESHNESS_SECONDS,
        max_in_flight=4,
        timeout_seconds=10.0,
    ),
    consent=frozenset({"analytics_storage"}),
    event_map={
        "page_view": "page_view",
        "view_content": "view_item",
        "search": "search",
        "add_to_cart": "add_to_cart",
        "add_to_wishlist": "add_to_wishlist",
        "initiate_checkout": "begin_checkout",
        "add_payment_info": "add_payment_info",
        "purchase": "purchase",
        "lead": "generate_lead",
        "complete_registration": "sign_up",
        "subscribe": "subscribe",
        "start_trial": "start_trial",
        "contact": "contact",
    },
    custom_events=True,
    dedup_key="none by event id; purchases deduplicate on transaction_id (the order id)",
    click_ids=("ga_client_id", "ga_session_id"),
    test_mode="the connection test posts one event to the validation server "
    "(/debug/mp/collect, never recorded); option debug_mode flags events for DebugView",
    honours_gpc=False,
)


def _query(destination: Destination) -> dict[str, str]:
    creds = destination.credentials
    return {"measurement_id": creds["measurement_id"], "api_secret": creds["api_secret"]}


def client_id(event: StoredEvent, destination: Destination) -> str | None:
    raw = event.ids.ga_client_id
    if raw:
        cookie = GA_COOKIE.fullmatch(raw)  # a backend may pass the whole _ga value
        return cookie.group(1) if cookie else raw
    if destination.options.get("client_id_fallback") != "derive":
        return None
    seed = pii.external_id(event.user.external_id) or event.event_id
    digest = hashlib.sha256(f"capi-edge:{seed}".encode()).hexdigest()
    return f"{int(digest[:8], 16)}.{int(digest[8:16], 16)}"


def skip_reason(event: StoredEvent, destination: Destination) -> str | None:
    return None if client_id(event, destination) else NO_CLIENT_ID


def name_problem(name: str) -> str | None:
    if not EVENT_NAME.fullmatch(name):
        return f"GA4 event names are 1-40 letters, digits or _, starting with a letter: {name}"
    if name in RESERVED_EVENTS or name.startswith(RESERVED_PREFIXES):
        return f"GA4 reserves the event name {name}"
    return None


def _plain(value: str | None) -> str | None:
    """Google's rule for names, city and region: no digits or symbols, lowercase, trimmed."""
    if not value:
        return None
    text = unicodedata.normalize("NFC", value).lower()
    kept = "".join(ch for ch in text if unicodedata.category(ch).startswith("L") or ch.isspace())
    return " ".join(kept.split()) or None


def _postal(value: str | None) -> str | None:
    """Google's rule for postal codes: without ``.`` and ``~``, trimmed (never hashed)."""
    return re.sub(r"[.~]", "", value).strip().lower() or None if value else None


def _email(value: str) -> str | None:
    address = pii.email(value)
    if address and not pii.is_hashed(address):
        local, _, domain = address.partition("@")
        if domain in ("gmail.com", "googlemail.com"):
            address = f"{local.replace('.', '')}@{domain}"
    return address


def user_data(event: StoredEvent, default_country: str | None) -> dict[str, Any] | None:
    user = event.user
    country = pii.country(user.country) if user.country else None
    region = (country or event.client.country or default_country or "").upper() or None
    emails = [pii.hashed(_email(e)) for e in user.emails()]
    phones = [pii.hashed(pii.phone_e164(p, region)) for p in user.phones()]
    address = {
        "sha256_first_name": pii.hashed(_plain(user.first_name)),
        "sha256_last_name": pii.hashed(_plain(user.last_name)),
        "city": _plain(user.city),
        "region": _plain(user.state),
        "postal_code": _postal(user.zip),
        "country": country.upper() if country else None,
    }
    fields: dict[str, Any] = {
        "sha256_email_address": list(dict.fromkeys(e for e in emails if e))[:MAX_EMAILS],
        "sha256_phone_number": list(dict.fromkeys(p for p in phones if p))[:MAX_PHONES],
        "address": [{k: v for k, v in address.items() if v}] if any(address.values()) else None,
    }
    return {k: v for k, v in fields.items() if v} or None


def _user_id(event: StoredEvent, destination: Destination) -> str | None:
    raw = (event.user.external_id or "").strip()
    if destination.options.get("user_id") == "raw":
        return raw[:MAX_USER_ID_CHARS] or None
    return pii.hashed(pii.external_id(raw))


def _consent(event: StoredEvent) -> dict[str, str] | None:
    states = {p: getattr(event.consent, p) for p in ("ad_user_data", "ad_personalization")}
    if event.gpc:  # an opt-out of sale/sharing: nothing may feed advertising
        states = dict.fromkeys(states, "denied")
    return {p: s.upper() for p, s in states.items() if s} or None


def envelope(event: StoredEvent, destination: Destination, cid: str) -> dict[str, Any]:
    """The request-level fields: events share one request only when these are equal."""
    granted = event.consent.ad_user_data == "granted" and not event.gpc
    fields: dict[str, Any] = {
        "client_id": cid,
        "user_id": _user_id(event, destination),
        "consent": _consent(event),
        "user_data": user_data(event, destination.default_country) if granted else None,
        "ip_override": event.client.ip,
        "user_agent": event.client.user_agent,
    }
    return {k: v for k, v in fields.items() if v is not None}


def _cut(value: Any, limit: int = MAX_VALUE_CHARS) -> Any:
    return value[:limit] if isinstance(value, str) else value


def params(event: StoredEvent, destination: Destination) -> dict[str, Any]:
    data, page = event.data, event.page
    items = [
        {key: _cut(getattr(c, attr)) for key, attr in ITEM_FIELDS if getattr(c, attr) is not None}
        for c in data.contents or []
        if c.id or c.name
    ]
    fields: dict[str, Any] = {
        "session_id": event.ids.ga_session_id,
        "engagement_time_msec": ENGAGEMENT_TIME_MSEC,
        "page_location": _cut(page.url, PAGE_PARAM_CHARS["page_location"]),
        "page_referrer": _cut(page.referrer, PAGE_PARAM_CHARS["page_referrer"]),
        "page_title": _cut(page.title, PAGE_PARAM_CHARS["page_title"]),
        "currency": data.currency.upper() if data.currency else None,
        "value": data.value,
        "transaction_id": _cut(data.order_id) or None,
        "search_term": _cut(data.search),
        "items": items or None,
        "debug_mode": True if destination.options.get("debug_mode") == "true" else None,
    }
    fields = {k: v for k, v in fields.items() if v is not None}
    # Site-specific params (coupon, …) while room lasts; never an email address: Google's
    # terms forbid PII in Analytics.
    for key, value in event.custom.items():
        scalar = isinstance(value, int | float) and not isinstance(value, bool)
        scalar |= isinstance(value, str) and not pii.EMAIL.match(value.strip())
        if scalar and key not in fields and PARAM_NAME.fullmatch(key) and len(fields) < MAX_PARAMS:
            fields[key] = _cut(value)
    return fields


def _size(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())


def build(events: Sequence[StoredEvent], destination: Destination) -> list[Built]:
    url, query = destination.base_url + COLLECT_PATH, _query(destination)
    groups: dict[str, tuple[dict[str, Any], list[tuple[str, dict[str, Any]]]]] = {}
    rejected: dict[str, str] = {}
    for event in events:
        name = destination.platform_event(SPEC, event.event)
        cid = client_id(event, destination)
        reason = name_problem(name) if name else f"unmapped event: {event.event}"
        if reason or not name or not cid:
            rejected[event.event_id] = reason or NO_CLIENT_ID
            continue
        top = envelope(event, destination, cid)
        entry = {
            "name": name,
            "timestamp_micros": event.time * 1_000_000,
            "params": params(event, destination),
        }
        key = json.dumps(top, sort_keys=True)
        groups.setdefault(key, (top, []))[1].append((event.event_id, entry))
    chunks: list[tuple[dict[str, Any], list[dict[str, Any]], list[str]]] = []
    for top, entries in groups.values():
        base = _size({**top, "events": []})
        chunk: tuple[dict[str, Any], list[dict[str, Any]], list[str]] = (top, [], [])
        size = base
        for event_id, entry in entries:
            entry_size = _size(entry)
            if base + entry_size > MAX_BYTES:
                rejected[event_id] = f"event is larger than GA4's {MAX_BYTES // 1000} kB limit"
                continue
            if chunk[1] and (len(chunk[1]) == MAX_EVENTS or size + 1 + entry_size > MAX_BYTES):
                chunks.append(chunk)
                chunk, size = (top, [], []), base
            size += entry_size + (1 if chunk[1] else 0)
            chunk[1].append(entry)
            chunk[2].append(event_id)
        if chunk[1]:
            chunks.append(chunk)
    built = [
        Built(PlatformRequest("POST", url, json={**top, "events": batch}, params=query), tuple(ids))
        for top, batch, ids in chunks
    ]
    if rejected:
        built.append(Built(None, (), rejected))
    return built


def _validation(response: PlatformResponse) -> str | None:
    body = response.json()
    messages = body.get("validationMessages") if isinstance(body, dict) else None
    if not messages or not isinstance(messages, list):
        return None
    first = messages[0] if isinstance(messages[0], dict) else {}
    code, path = first.get("validationCode", "?"), first.get("fieldPath", "")
    text = str(first.get("description", ""))[:200]
    more = f" (+{len(messages) - 1} more)" if len(messages) > 1 else ""
    return f"ga4 {code} at {path or 'request'}: {text}{more}"


def classify(response: PlatformResponse, event_ids: Sequence[str]) -> Verdict:
    generic = generic_http_verdict(response)
    if generic is not None:
        return generic
    status, several = response.status, len(event_ids) > 1
    if 200 <= status < 300:
        problem = _validation(response)  # only the validation server answers with these
        if problem:
            return Verdict(Kind.SPLIT if several else Kind.REJECTED, problem)
        return Verdict(Kind.DELIVERED)
    if status == 404:
        return Verdict(Kind.SETUP, "ga4 http 404: no Measurement Protocol endpoint at base_url")
    reason = f"ga4 http {status}: the request was refused (Google: fix it, do not resend)"
    if status in (400, 413):
        return Verdict(Kind.SPLIT if several else Kind.REJECTED, reason)
    return Verdict(Kind.REJECTED, reason)


def probe(destination: Destination) -> PlatformRequest:
    """One custom event to the validation server: checked for structure, never recorded."""
    body = {
        "client_id": PROBE_CLIENT_ID,
        "events": [{"name": "capi_edge_connection_test", "params": {"engagement_time_msec": 1}}],
    }
    url = destination.base_url + DEBUG_PATH
    return PlatformRequest("POST", url, json=body, params=_query(destination))


def probe_verdict(response: PlatformResponse) -> Verdict:
    """A validation message means our configuration builds requests GA4 refuses: setup."""
    verdict = classify(response, ())
    if verdict.kind is not Kind.DELIVERED:
        kind = Kind.SETUP if 200 <= response.status < 300 else verdict.kind
        return Verdict(kind, verdict.reason, verdict.retry_after)
    return Verdict(
        Kind.DELIVERED,
        "request valid; GA4 does not check the measurement_id or api_secret here: "
        "confirm events in Realtime",
    )
