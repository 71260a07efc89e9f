"""Meta Conversions API (Graph API v25.0).

    POST {origin}/{api_version}/{pixel_id}/events      Authorization: Bearer <access token>
    {"data": [event, ...], "test_event_code": "TEST123"}

* **Auth**: the system-user access token from Events Manager, sent in the Authorization
  header (the Graph API accepts it there as well as in the query), so it never appears in a
  URL, a proxy's access log or our attempt records.
* **Limits**: 1,000 events per request; ``event_time`` at most 7 days old (one stale event
  fails the whole request, so the dispatcher never sends one). No CAPI-specific rate limit;
  calls count against Marketing API limits (codes 4, 17, 32, 613, 80003 when hit).
* **All or nothing**: one invalid event rejects the whole batch and the answer does not say
  which, so an invalid-parameter answer for several events is ``split`` (the dispatcher
  bisects until the bad event stands alone and is dead-lettered with Meta's reason).
* **Dedup**: ``event_name`` + ``event_id``, equal to the pixel's ``eventID``; 48 h window.
* **PII**: normalized per Meta's customer-information rules (``tags.pii``), SHA-256 hex.
  ``client_ip_address``, ``client_user_agent``, ``fbc`` and ``fbp`` are sent raw.
* **Website events** need ``client_user_agent``, ``event_source_url`` and ``action_source``;
  an event without a user agent (a backend that did not pass it) is refused here with that
  reason rather than sent to fail.
* **Limited Data Use**: under GPC the event is skipped unless ``gpc_mode = "ldu"``, which
  sends it with ``data_processing_options = ["LDU"]`` and lets Meta geolocate (0, 0).
* **Errors**: 5xx, ``is_transient`` and codes 1, 2, 341, 368 are retried; 190 (token), 10/200
  (permission) and 100/33 (no such pixel) pause the destination; other 100s are invalid data.
* **Test**: ``test_event_code`` routes events to Events Manager's Test events tab; such events
  are *not* dropped by Meta, so the connection test never posts an event: it reads the pixel.
"""

from __future__ import annotations

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

API_VERSION = "v25.0"
MAX_EVENTS = 1_000
FRESHNESS_SECONDS = 7 * DAY
ACTION_SOURCE = "website"
THROTTLE_CODES = frozenset({4, 17, 32, 613, 80003})
TRANSIENT_CODES = frozenset({1, 2, 341, 368, 5000, 21009})
SETUP_CODES = frozenset({10, 190, 200, 294, 2635})
MISSING_OBJECT_SUBCODE = 33  # the pixel does not exist or the token cannot see it
# Keys that can match a person on their own; IP and user agent count only together.
MATCH_KEYS = ("em", "ph", "external_id", "fbc", "fbp", "fn", "ln", "db", "zp")
LDU = {"data_processing_options": ["LDU"], "data_processing_options_country": 0}

SPEC = TagSpec(
    name="meta",
    title="Meta",
    api_version=API_VERSION,
    base_url="https://graph.facebook.com",
    docs_url="https://developers.facebook.com/docs/marketing-api/conversions-api",
    credentials=(
        Credential(
            "pixel_id",
            "Pixel (dataset) ID",
            "the numeric dataset ID, 10-20 digits (Events Manager → Data sources → your "
            "pixel → Settings)",
            pattern=r"\d{10,20}",
            example="123456789012345",
        ),
        Credential(
            "access_token",
            "Access token",
            "a Conversions API access token (Events Manager → your pixel → Settings → "
            "Generate access token), usually starting EAA",
            pattern=r"[A-Za-z0-9_\-.|]{20,512}",
            secret=True,
        ),
    ),
    options=(
        Option(
            "test_event_code",
            "the code from Events Manager → Test events, e.g. TEST12345",
            r"[A-Za-z0-9_]{3,64}",
        ),
        Option("api_version", "a Graph API version such as v25.0", r"v\d{1,3}\.\d"),
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
        "page_view": "PageView",
        "view_content": "ViewContent",
        "search": "Search",
        "add_to_cart": "AddToCart",
        "add_to_wishlist": "AddToWishlist",
        "initiate_checkout": "InitiateCheckout",
        "add_payment_info": "AddPaymentInfo",
        "purchase": "Purchase",
        "lead": "Lead",
        "complete_registration": "CompleteRegistration",
        "subscribe": "Subscribe",
        "start_trial": "StartTrial",
        "contact": "Contact",
    },
    custom_events=True,
    dedup_key="event_name + event_id (the pixel's eventID), 48 h",
    click_ids=("fbc", "fbp"),
    test_mode="test_event_code sends to Events Manager's Test events tab; the connection "
    "test reads the pixel (GET /{pixel_id}) and posts nothing",
)


def user_data(event: StoredEvent, default_country: str | None) -> dict[str, Any]:
    user, ids, client = event.user, event.ids, event.client
    country = pii.country(user.country) if user.country else None
    region = (country or client.country or default_country or "").upper() or None
    fields: dict[str, Any] = {
        "em": pii.hashed_list([pii.email(e) for e in user.emails()]),
        "ph": pii.hashed_list([pii.phone_digits(p, region) for p in user.phones()]),
        "fn": pii.hashed(pii.name(user.first_name)),
        "ln": pii.hashed(pii.name(user.last_name)),
        "db": pii.hashed(pii.date_of_birth(user.date_of_birth)),
        "ge": pii.hashed(pii.gender(user.gender)),
        "ct": pii.hashed(pii.city(user.city)),
        "st": pii.hashed(pii.state(user.state)),
        "zp": pii.hashed(pii.zip_code(user.zip, country)),
        "country": pii.hashed(country),
        "external_id": pii.hashed_list([pii.external_id(user.external_id)]),
        "client_ip_address": client.ip,
        "client_user_agent": client.user_agent,
        "fbc": ids.fbc,
        "fbp": ids.fbp,
    }
    return {k: v for k, v in fields.items() if v}


def custom_data(event: StoredEvent) -> dict[str, Any]:
    data = event.data
    contents = data.contents or []
    fields: dict[str, Any] = {
        **event.custom,  # custom properties first: the standard keys below win
        "value": data.value,
        "currency": data.currency.upper() if data.currency else None,
        "order_id": data.order_id,
        "content_ids": [c.id for c in contents if c.id] or None,
        "contents": [
            {
                k: v
                for k, v in (("id", c.id), ("quantity", c.quantity), ("item_price", c.price))
                if v is not None
            }
            for c in contents
            if c.id
        ]
        or None,
        "content_type": data.content_type or ("product" if contents else None),
        "content_name": data.content_name,
        "content_category": data.content_category,
        "num_items": data.num_items,
        "search_string": data.search,
        "status": data.status,
        "predicted_ltv": data.predicted_ltv,
    }
    return {k: v for k, v in fields.items() if v is not None}


def event_payload(event: StoredEvent, destination: Destination) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "event_name": destination.platform_event(SPEC, event.event),
        "event_time": event.time,
        "event_id": event.event_id,
        "action_source": ACTION_SOURCE,
        "event_source_url": event.page.url,
        "referrer_url": event.page.referrer,
        "user_data": user_data(event, destination.default_country),
        "custom_data": custom_data(event) or None,
    }
    if event.gpc and destination.options.get("gpc_mode") == "ldu":
        payload.update(LDU, data_processing_options_state=0)
    return {k: v for k, v in payload.items() if v is not None}


def problem(event: StoredEvent, payload: dict[str, Any]) -> str | None:
    """Why Meta would refuse this event whatever we do, or None."""
    if not event.client.user_agent:
        return "website events need the visitor's user agent (pass user_agent)"
    if not event.page.url:
        return "website events need the page URL (page.url)"
    user = payload["user_data"]
    if not any(key in user for key in MATCH_KEYS) and not (
        "client_ip_address" in user and "client_user_agent" in user
    ):
        return "no customer information to match on"
    return None


def build(events: Sequence[StoredEvent], destination: Destination) -> list[Built]:
    version = destination.options.get("api_version", API_VERSION)
    url = f"{destination.base_url}/{version}/{destination.credentials['pixel_id']}/events"
    headers = {"Authorization": f"Bearer {destination.credentials['access_token']}"}
    built = []
    for start in range(0, len(events), MAX_EVENTS):
        data, ids, rejected = [], [], {}
        for event in events[start : start + MAX_EVENTS]:
            payload = event_payload(event, destination)
            reason = problem(event, payload)
            if reason:
                rejected[event.event_id] = reason
                continue
            data.append(payload)
            ids.append(event.event_id)
        body: dict[str, Any] = {"data": data}
        if code := destination.options.get("test_event_code"):
            body["test_event_code"] = code
        request = PlatformRequest("POST", url, headers, body) if data else None
        built.append(Built(request, tuple(ids), rejected))
    return built


def _error(response: PlatformResponse) -> dict[str, Any] | None:
    body = response.json()
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        return body["error"]
    return None


def _describe(error: dict[str, Any]) -> str:
    code, subcode = error.get("code"), error.get("error_subcode")
    title = error.get("error_user_title") or error.get("message") or "error"
    label = f"code {code}" + (f"/{subcode}" if subcode else "")
    return f"meta {label}: {str(title)[:200]}"


def classify(response: PlatformResponse, event_ids: Sequence[str]) -> Verdict:
    error = _error(response)
    if error is None:
        generic = generic_http_verdict(response)
        if generic is not None:
            return generic
        if 200 <= response.status < 300:
            return Verdict(Kind.DELIVERED)
        # A non-JSON 4xx (a proxy's HTML page): not Meta's verdict on the events.
        return Verdict(Kind.RETRY, f"http {response.status} without a Graph API error")
    code, subcode = error.get("code"), error.get("error_subcode")
    reason = _describe(error)
    if code in THROTTLE_CODES or response.status == 429:
        return Verdict(Kind.THROTTLED, reason, retry_after_seconds(response.headers))
    if code in SETUP_CODES or (code == 100 and subcode == MISSING_OBJECT_SUBCODE):
        return Verdict(Kind.SETUP, reason)
    if error.get("is_transient") or code in TRANSIENT_CODES or response.status >= 500:
        return Verdict(Kind.RETRY, reason)
    if code == 100 or response.status == 400:
        # The whole batch was refused for (at least) one event, without saying which one.
        return Verdict(Kind.SPLIT if len(event_ids) > 1 else Kind.REJECTED, reason)
    return Verdict(Kind.RETRY, reason)


def probe(destination: Destination) -> PlatformRequest:
    """Read the pixel: proves the token sees it, records nothing."""
    version = destination.options.get("api_version", API_VERSION)
    return PlatformRequest(
        "GET",
        f"{destination.base_url}/{version}/{destination.credentials['pixel_id']}",
        {"Authorization": f"Bearer {destination.credentials['access_token']}"},
        params={"fields": "id,name"},
    )
