"""TikTok Events API 2.0 (open_api v1.3).

    POST {origin}/open_api/v1.3/event/track/           Access-Token: <access token>
    {"event_source": "web", "event_source_id": <pixel code>, "test_event_code": ...,
     "data": [event, ...]}

* **Limits**: 1,000 events per request. TikTok does not publish an ``event_time`` window;
  chosen: 7 days, the same as Meta, so a backlog after an outage still attributes and nothing
  very old is replayed into reporting.
* **Answers**: HTTP 200 even for logical errors; the verdict is the body's ``code``:
  0 OK, 20001 partial success (accepted), 40100 too many requests (throttled), 40001 no
  permission and 40104/40105 invalid token (setup), 40002 invalid parameter (the batch is
  refused without naming the event: split), anything else retried.
* **Dedup**: ``event`` + ``event_id`` equal to the pixel's ``event_id``; 48 h window.
* **PII**: email trimmed and lowercased; phone in E.164 *with* ``+`` (TikTok's customer-file
  spec and Segment's partner integration agree; Meta's rule drops the ``+``); external_id,
  first and last name, zip code hashed; city, state and country plain (lowercase letters and
  digits). ``ip``, ``user_agent``, ``ttclid`` and ``ttp`` (the ``_ttp`` cookie) are raw.
* **Events**: standard names only (custom events are reporting-only at TikTok and would not
  optimize); ``page_view`` has no standard Events API name and is not sent.
* **Test**: ``test_event_code`` routes events to the pixel's Test events tab. TikTok offers
  no read-only ping, so the connection test posts one ``ViewContent`` carrying a test code
  (the configured one, else ``CONNECTION_TEST_CODE``), which lands only in that tab.
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

API_VERSION = "v1.3"
TRACK_PATH = f"/open_api/{API_VERSION}/event/track/"
MAX_EVENTS = 1_000
FRESHNESS_SECONDS = 7 * DAY
EVENT_SOURCE = "web"
CONNECTION_TEST_CODE = "CAPIEDGETEST"
CODE_OK, CODE_PARTIAL = 0, 20001
CODE_THROTTLED = 40100
CODE_INVALID = 40002
SETUP_CODES = frozenset({40001, 40104, 40105, 40106})

SPEC = TagSpec(
    name="tiktok",
    title="TikTok",
    api_version=API_VERSION,
    base_url="https://business-api.tiktok.com",
    docs_url="https://business-api.tiktok.com/portal/docs?id=1771100865818625",
    credentials=(
        Credential(
            "pixel_id",
            "Pixel code",
            "the 20-character pixel code, uppercase letters and digits (Events Manager → "
            "your pixel → Settings)",
            pattern=r"[A-Z0-9]{20}",
            example="C0ABCDEFGHIJKLMNOPQR",
        ),
        Credential(
            "access_token",
            "Access token",
            "an Events API access token (Events Manager → your pixel → Settings → Generate "
            "Access Token)",
            pattern=r"[A-Za-z0-9_\-]{16,256}",
            secret=True,
        ),
    ),
    options=(
        Option(
            "test_event_code",
            "the code from Events Manager → Test events, e.g. TEST12345",
            r"[A-Za-z0-9_]{3,64}",
        ),
        Option("gpc_mode", '"skip" (default) or "ldu" (send with limited_data_use)', "skip|ldu"),
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
    custom_events=False,
    dedup_key="event + event_id (the pixel's event_id), 48 h",
    click_ids=("ttclid", "ttp"),
    test_mode="test_event_code sends to the pixel's Test events tab; the connection test "
    "posts one ViewContent with a test code",
)


def _plain(value: str | None) -> str | None:
    """City, state and country go unhashed, as lowercase letters and digits."""
    if not value:
        return None
    return "".join(ch for ch in value.lower() if ch.isalnum()) or None


def user(event: StoredEvent, default_country: str | None) -> dict[str, Any]:
    person, ids, client = event.user, event.ids, event.client
    country = pii.country(person.country) if person.country else None
    region = (country or client.country or default_country or "").upper() or None
    fields: dict[str, Any] = {
        "email": pii.hashed_list([pii.email(e) for e in person.emails()]),
        "phone": pii.hashed_list([pii.phone_e164(p, region) for p in person.phones()]),
        "external_id": pii.hashed_list([pii.external_id(person.external_id)]),
        "first_name": pii.hashed(pii.name(person.first_name)),
        "last_name": pii.hashed(pii.name(person.last_name)),
        "zip_code": pii.hashed(pii.zip_code(person.zip, country)),
        "city": _plain(person.city),
        "state": pii.state(person.state) if person.state else None,
        "country": country,
        "ttclid": ids.ttclid,
        "ttp": ids.ttp,
        "ip": client.ip,
        "user_agent": client.user_agent,
    }
    return {k: v for k, v in fields.items() if v}


def properties(event: StoredEvent) -> dict[str, Any]:
    data = event.data
    contents = [
        {
            k: v
            for k, v in (
                ("content_id", c.id),
                ("content_type", "product"),
                ("content_name", c.name),
                ("content_category", c.category),
                ("price", c.price),
                ("quantity", c.quantity),
                ("brand", c.brand),
            )
            if v is not None
        }
        for c in data.contents or []
    ]
    fields: dict[str, Any] = {
        "contents": contents or None,
        "content_type": "product" if contents else None,
        "currency": data.currency.upper() if data.currency else None,
        "value": data.value,
        "order_id": data.order_id,
        "query": data.search,
        "num_items": data.num_items,
        "predicted_ltv": data.predicted_ltv,
    }
    return {k: v for k, v in fields.items() if v is not None}


def event_payload(event: StoredEvent, destination: Destination) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "event": destination.platform_event(SPEC, event.event),
        "event_time": event.time,
        "event_id": event.event_id,
        "user": user(event, destination.default_country),
        "page": {k: v for k, v in (("url", event.page.url), ("referrer", event.page.referrer)) if v}
        or None,
        "properties": properties(event) or None,
    }
    if event.gpc and destination.options.get("gpc_mode") == "ldu":
        payload["limited_data_use"] = True
    return {k: v for k, v in payload.items() if v is not None}


def _envelope(destination: Destination, data: list[dict[str, Any]], test_code: str | None) -> Any:
    body: dict[str, Any] = {
        "event_source": EVENT_SOURCE,
        "event_source_id": destination.credentials["pixel_id"],
        "data": data,
    }
    if test_code:
        body["test_event_code"] = test_code
    return body


def _request(destination: Destination, body: Any) -> PlatformRequest:
    return PlatformRequest(
        "POST",
        destination.base_url + TRACK_PATH,
        {"Access-Token": destination.credentials["access_token"]},
        body,
    )


def build(events: Sequence[StoredEvent], destination: Destination) -> list[Built]:
    test_code = destination.options.get("test_event_code")
    built = []
    for start in range(0, len(events), MAX_EVENTS):
        chunk = events[start : start + MAX_EVENTS]
        data = [event_payload(e, destination) for e in chunk]
        body = _envelope(destination, data, test_code)
        built.append(Built(_request(destination, body), tuple(e.event_id for e in chunk)))
    return built


def classify(response: PlatformResponse, event_ids: Sequence[str]) -> Verdict:
    body = response.json()
    code = body.get("code") if isinstance(body, dict) else None
    if not isinstance(code, int):
        generic = generic_http_verdict(response)
        if generic is not None:
            return generic
        return Verdict(Kind.RETRY, f"http {response.status} without a TikTok answer code")
    reason = f"tiktok code {code}: {str(body.get('message', ''))[:200]}"
    if code in (CODE_OK, CODE_PARTIAL):
        return Verdict(Kind.DELIVERED, "" if code == CODE_OK else reason)
    if code == CODE_THROTTLED or response.status == 429:
        return Verdict(Kind.THROTTLED, reason, retry_after_seconds(response.headers))
    if code in SETUP_CODES or response.status in (401, 403):
        return Verdict(Kind.SETUP, reason)
    if code == CODE_INVALID:
        return Verdict(Kind.SPLIT if len(event_ids) > 1 else Kind.REJECTED, reason)
    return Verdict(Kind.RETRY, reason)


def probe(destination: Destination) -> PlatformRequest:
    """One ViewContent with a test code: it lands only in the Test events tab."""
    test_code = destination.options.get("test_event_code") or CONNECTION_TEST_CODE
    event = {
        "event": "ViewContent",
        "event_id": "capi-edge-connection-test",
        "event_time": int(time.time()),  # the one place a tag reads the clock: a test now
        "page": {"url": "https://capi-edge.invalid/connection-test"},
        "user": {"ip": "127.0.0.1", "user_agent": "capi-edge connection test"},
    }
    return _request(destination, _envelope(destination, [event], test_code))
