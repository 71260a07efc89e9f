"""Pinterest Conversions API (API v5).

    POST {origin}/v5/ad_accounts/{ad_account_id}/events[?test=true]
    Authorization: Bearer <conversion access token>
    {"data": [event, ...]}

* **Auth**: the conversion access token generated in Ads Manager (or an OAuth token with
  ``ads:write``), in the Authorization header. Its user must own the ad account or hold the
  Admin, Analyst, Audience or Campaign role on it.
* **Limits**: 1-1,000 events per request; 5,000 calls per minute per ad account. Pinterest
  publishes no ``event_time`` window; chosen: 7 days, as Meta's, so a backlog after an outage
  still attributes and nothing stale is replayed into reporting.
* **Answers**: 200 with one ``events[i].status`` (``processed``/``failed`` + ``error_message``)
  per event, in request order: failed events are dead-lettered, the rest delivered. 422 "not
  all events processed": read the same per-event list when present, else split the batch.
  Errors are ``{code, message}``: 400 (code 4196, invalid request: split), 401 (code 2) and
  403 (code 29) pause the destination, 429 (code 8) throttles, 503 (code 4197) and 5xx retry.
* **Dedup**: ``event_id`` equal to the Pinterest tag's ``event_id``; purchases also carry
  ``custom_data.order_id``, which Pinterest uses when necessary. No window is published.
* **PII** (SHA-256 hex, arrays of strings): em lowercased; ph digits only with the country code
  (no ``+``); fn, ln, ct lowercase without spaces or punctuation; st two-letter code; ge
  ``f``/``m``/``n``; db ``YYYYMMDD``; country ISO-2 lowercase; external_id. zp: Pinterest says
  "only digits"; chosen: US codes as 5 digits, others as lowercase letters and digits, because
  stripping the letters from a UK or Canadian postcode would hash a different, wrong value.
  ``client_ip_address``, ``client_user_agent`` and ``click_id`` (the ``_epik`` cookie) are raw.
  Pinterest needs an email or the IP plus user agent: an event with neither is refused here.
* **Money**: ``value`` and ``item_price`` are strings Pinterest parses as doubles.
* **Events**: the v5 enum (add_to_cart, checkout, custom, lead, page_visit, search, signup,
  view_category, watch_video) plus names Pinterest's newer docs add; any other name, including a
  custom one, is sent as ``custom``. Chosen: add_to_wishlist, initiate_checkout,
  add_payment_info and contact map to ``custom`` until tested live (the spec enum lacks them).
* **Privacy**: ``opt_out`` mirrors a denied ``ad_personalization`` (Pinterest's meaning on
  apps: ads personalization refused). Under GPC the event is skipped unless ``gpc_mode =
  "ldu"``, which sends it with ``custom_data.opt_out_type = "LDP"`` (Limited Data Processing).
* **Test**: option ``test = "true"`` adds ``?test=true``: validated and answered, not recorded.
  The connection test posts one page_visit with ``?test=true``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
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
    retry_after_seconds,
)

API_VERSION = "v5"
MAX_EVENTS = 1_000
FRESHNESS_SECONDS = 7 * DAY
ACTION_SOURCE = "web"
CODE_THROTTLED = 8
LDP = "LDP"
# The v5 OpenAPI enum, plus names only Pinterest's newer event docs list.
EVENT_NAMES = frozenset(
    "add_to_cart checkout custom lead page_visit search signup view_category watch_video "
    "add_payment_info add_to_wishlist app_install app_open contact".split()
)
NON_BINARY = frozenset({"n", "nonbinary", "nb"})
NO_MATCH_KEY = "Pinterest needs an email, or the visitor's IP address and user agent"

SPEC = TagSpec(
    name="pinterest",
    title="Pinterest",
    api_version=API_VERSION,
    base_url="https://api.pinterest.com",
    docs_url="https://developers.pinterest.com/docs/api/v5/events-create",
    credentials=(
        Credential(
            "ad_account_id",
            "Ad account ID",
            "the numeric ad account ID, up to 18 digits (Ads Manager → the account menu, or "
            "the number in the ads.pinterest.com URL)",
            pattern=r"\d{1,18}",
            example="549755885175",
        ),
        Credential(
            "access_token",
            "Conversion access token",
            "the conversion access token (Ads Manager → Conversions → Conversion access token "
            "→ Generate new token), usually starting pina_",
            pattern=r"[A-Za-z0-9_\-.~+/=]{20,1024}",
            secret=True,
        ),
    ),
    options=(
        Option("test", '"true" to send with ?test=true (validated, never recorded)', "true|false"),
        Option(
            "partner_name", "the ss-<name> partner name Pinterest assigned you", r"ss-[a-z0-9_\-]+"
        ),
        Option("gpc_mode", '"skip" (default) or "ldu" (send with opt_out_type LDP)', "skip|ldu"),
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
        "page_view": "page_visit",
        "view_content": "page_visit",
        "search": "search",
        "add_to_cart": "add_to_cart",
        "add_to_wishlist": "custom",
        "initiate_checkout": "custom",
        "add_payment_info": "custom",
        "purchase": "checkout",
        "lead": "lead",
        "complete_registration": "signup",
        "subscribe": "custom",
        "start_trial": "custom",
        "contact": "custom",
    },
    custom_events=True,
    dedup_key="event_id (the Pinterest tag's event_id); purchases also send order_id",
    click_ids=("epik",),
    test_mode="option test adds ?test=true (validated, not recorded); the connection test "
    "posts one page_visit with ?test=true",
)


def _gender(value: str | None) -> str | None:
    """m or f from pii; Pinterest also takes n for non-binary."""
    if value and "".join(ch for ch in value.lower() if ch.isalpha()) in NON_BINARY:
        return "n"
    return pii.gender(value)


def user_data(event: StoredEvent, default_country: str | None) -> dict[str, Any]:
    user, client = event.user, event.client
    country = pii.country(user.country) if user.country else None
    region = (country or client.country or default_country or "").upper() or None
    fields: dict[str, Any] = {
        "em": pii.hashed_list([pii.email(e) for e in user.emails()]),
        "ph": pii.hashed_list([pii.phone_digits(p, region) for p in user.phones()]),
        "fn": pii.hashed_list([pii.name(user.first_name)]),
        "ln": pii.hashed_list([pii.name(user.last_name)]),
        "ge": pii.hashed_list([_gender(user.gender)]),
        "db": pii.hashed_list([pii.date_of_birth(user.date_of_birth)]),
        "ct": pii.hashed_list([pii.city(user.city)]),
        "st": pii.hashed_list([pii.state(user.state)]),
        "zp": pii.hashed_list([pii.zip_code(user.zip, country)]),
        "country": pii.hashed_list([country]),
        "external_id": pii.hashed_list([pii.external_id(user.external_id)]),
        "client_ip_address": client.ip,
        "client_user_agent": client.user_agent,
        "click_id": event.ids.epik,
    }
    return {k: v for k, v in fields.items() if v}


def _amount(value: float | None) -> str | None:
    """A decimal string without float noise: 59.8 -> "59.8", 20.0 -> "20"."""
    if value is None:
        return None
    return f"{value:.6f}".rstrip("0").rstrip(".")


def custom_data(event: StoredEvent, destination: Destination) -> dict[str, Any]:
    data = event.data
    contents = [
        {
            k: v
            for k, v in (
                ("id", c.id),
                ("item_price", _amount(c.price)),
                ("quantity", c.quantity),
                ("item_name", c.name),
                ("item_category", c.category),
                ("item_brand", c.brand),
            )
            if v is not None
        }
        for c in data.contents or []
    ]
    quantities = [c.quantity for c in data.contents or []]
    counted = sum(q for q in quantities if q) if quantities and None not in quantities else None
    gpc_ldp = event.gpc and destination.options.get("gpc_mode") == "ldu"
    fields: dict[str, Any] = {
        "currency": data.currency.upper() if data.currency else None,
        "value": _amount(data.value),
        "content_ids": [c.id for c in data.contents or [] if c.id] or None,
        "contents": contents or None,
        "num_items": data.num_items if data.num_items is not None else counted,
        "order_id": data.order_id or None,
        "search_string": data.search,
        "content_name": data.content_name,
        "content_category": data.content_category,
        "opt_out_type": LDP if gpc_ldp else None,
    }
    return {k: v for k, v in fields.items() if v is not None}


def event_name(event: StoredEvent, destination: Destination) -> str | None:
    name = destination.platform_event(SPEC, event.event)
    if name is None:
        return None
    return name if name in EVENT_NAMES else "custom"


def event_payload(event: StoredEvent, destination: Destination) -> dict[str, Any]:
    personalization = event.consent.ad_personalization
    payload: dict[str, Any] = {
        "event_name": event_name(event, destination),
        "action_source": ACTION_SOURCE,
        "event_time": event.time,
        "event_id": event.event_id,
        "event_source_url": event.page.url,
        "opt_out": personalization == "denied" if personalization else None,
        "partner_name": destination.options.get("partner_name"),
        "user_data": user_data(event, destination.default_country),
        "custom_data": custom_data(event, destination) or None,
    }
    return {k: v for k, v in payload.items() if v is not None}


def problem(payload: dict[str, Any]) -> str | None:
    """Why Pinterest would refuse this event whatever we do, or None."""
    if "event_name" not in payload:
        return "unmapped event"
    user = payload["user_data"]
    if not user.get("em") and not (user.get("client_ip_address") and user.get("client_user_agent")):
        return NO_MATCH_KEY
    return None


def _request(destination: Destination, body: Any, test: bool) -> PlatformRequest:
    creds = destination.credentials
    url = f"{destination.base_url}/{API_VERSION}/ad_accounts/{creds['ad_account_id']}/events"
    headers = {"Authorization": f"Bearer {creds['access_token']}"}
    return PlatformRequest("POST", url, headers, body, params={"test": "true"} if test else {})


def build(events: Sequence[StoredEvent], destination: Destination) -> list[Built]:
    test = destination.options.get("test") == "true"
    built = []
    for start in range(0, len(events), MAX_EVENTS):
        data, ids, rejected = [], [], {}
        for event in events[start : start + MAX_EVENTS]:
            payload = event_payload(event, destination)
            reason = problem(payload)
            if reason:
                rejected[event.event_id] = reason
                continue
            data.append(payload)
            ids.append(event.event_id)
        request = _request(destination, {"data": data}, test) if data else None
        built.append(Built(request, tuple(ids), rejected))
    return built


def _statuses(body: Any) -> list[Any] | None:
    """The per-event list of a 200 answer, or of a 422's details when it carries one."""
    for holder in (body, body.get("details") if isinstance(body, dict) else None):
        if isinstance(holder, dict) and isinstance(holder.get("events"), list):
            return list(holder["events"])
    return None


def _per_event(statuses: list[Any], event_ids: Sequence[str]) -> dict[str, str]:
    rejected = {}
    for event_id, status in zip(event_ids, statuses, strict=False):
        if isinstance(status, dict) and status.get("status") == "failed":
            rejected[event_id] = f"pinterest: {str(status.get('error_message') or 'failed')[:200]}"
    return rejected


def classify(response: PlatformResponse, event_ids: Sequence[str]) -> Verdict:
    body = response.json()
    status = response.status
    code = body.get("code") if isinstance(body, dict) else None
    message = str(body.get("message") or "")[:200] if isinstance(body, dict) else ""
    reason = f"pinterest http {status}" + (f" code {code}: {message}" if code is not None else "")
    if status == 429 or code == CODE_THROTTLED:
        return Verdict(Kind.THROTTLED, reason, retry_after_seconds(response.headers))
    if status in (401, 403):
        return Verdict(Kind.SETUP, reason)
    generic = generic_http_verdict(response)
    if generic is not None:
        return Verdict(generic.kind, reason, generic.retry_after)
    statuses = _statuses(body)
    if 200 <= status < 300:
        return Verdict(Kind.DELIVERED, rejected=_per_event(statuses or [], event_ids))
    if status == 422 and statuses is not None and len(statuses) == len(event_ids):
        return Verdict(Kind.DELIVERED, reason, rejected=_per_event(statuses, event_ids))
    if status == 404:
        return Verdict(Kind.SETUP, reason + " (is the ad account ID right?)")
    if status in (400, 422):
        return Verdict(Kind.SPLIT if len(event_ids) > 1 else Kind.REJECTED, reason)
    return Verdict(Kind.REJECTED, reason)


def probe(destination: Destination) -> PlatformRequest:
    """One page_visit with ?test=true: authenticated and validated, never recorded."""
    event = {
        "event_name": "page_visit",
        "action_source": ACTION_SOURCE,
        "event_time": int(time.time()),  # as TikTok's probe: a test happens now
        "event_id": "capi-edge-connection-test",
        "event_source_url": "https://capi-edge.invalid/connection-test",
        "user_data": {"client_ip_address": "192.0.2.1", "client_user_agent": "capi-edge test"},
    }
    return _request(destination, {"data": [event]}, test=True)


def probe_verdict(response: PlatformResponse) -> Verdict:
    """Any 2xx proves the token and account; a refused test event is only reported."""
    verdict = classify(response, ("probe",))
    if verdict.kind is Kind.DELIVERED and verdict.rejected:
        note = next(iter(verdict.rejected.values()))
        return Verdict(Kind.DELIVERED, f"credentials accepted; the test event was refused: {note}")
    return verdict
