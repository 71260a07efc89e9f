"""Outbrain S2S conversions (the unified pixel endpoint, called from the server).

    GET {origin}/unifiedPixel?ob_click_id=<click id>&name=<conversion name>&orderId=1001
        &orderValue=59.8&currency=USD

* **Auth**: none, no version and no batching: one request per event. The click ID ties the
  conversion to the marketer. The postback carries no account ID, so ``marketer_id`` is
  optional: it names the account whose conversions ``name`` refers to.
* **Names**: ``name`` must equal an Event-Based Conversion created in Outbrain (Conversions →
  Add Conversion → Event-Based), case-sensitive, sent as written (spaces included). Defaults:
  Purchase, Lead, Add to cart, Checkout, Registration, Search; other events are not sent
  unless mapped in config, because Outbrain silently ignores unknown names.
* **Click ID**: ``ob_click_id`` from the ``OutbrainClickId`` landing parameter (the
  ``{{ob_click_id}}`` macro) or the legacy ``dicbo``; an event without one is skipped
  ("no click id").
* **Dedup**: ``orderId`` (order ID, else event_id); Outbrain's window is not published.
* **Values**: ``orderValue`` as a plain decimal, ``currency`` upper-case.
* **Time**: none on the wire (Outbrain counts the receive time). Chosen freshness: 7 days,
  as for Taboola: a backlog after an outage still goes out, reports stay close to the truth.
* **Answers**: treat 2xx as success (the body is empty or a pixel); 404 means a wrong
  base_url (setup); other 4xx permanent; 429 and 5xx retry. Only the Japanese help page and
  third-party code document this endpoint; the extra parameters Outbrain's own pixel adds
  (``obtpVersion``, ``bust``, ``dl``) are not needed server-side and are not sent.
* **Test**: Outbrain has no test mode for conversions. The connection test calls the
  endpoint with no click ID and no name: nothing can be recorded, and any 2xx or 400 proves
  only that the endpoint is reachable (there are no credentials to check).
"""

from __future__ import annotations

from collections.abc import Sequence

from edge.schema import StoredEvent

from .base import (
    DAY,
    Built,
    Credential,
    Destination,
    Kind,
    Limits,
    PlatformRequest,
    PlatformResponse,
    TagSpec,
    Verdict,
    generic_http_verdict,
)
from .postback import NO_CLICK_ID, build_postbacks, number

PIXEL_PATH = "/unifiedPixel"
EVENTS_PER_REQUEST = 1
FRESHNESS_SECONDS = 7 * DAY


SPEC = TagSpec(
    name="outbrain",
    title="Outbrain",
    api_version="unifiedPixel (unversioned)",
    base_url="https://tr.outbrain.com",
    docs_url="https://www.outbrain.com/help/jp/advertisers/jp_server2server-integrations/",
    credentials=(
        Credential(
            "marketer_id",
            "Marketer ID",
            "your Outbrain marketer ID, a hex string like 00f4b02153ee75f3c9dc4fc128ab041962 "
            "(Outbrain Ads → Conversions → Outbrain Pixel: the ID in obApi('init', ...))",
            pattern=r"[0-9a-fA-F]{16,64}",
            required=False,
            example="00f4b02153ee75f3c9dc4fc128ab041962",
        ),
    ),
    limits=Limits(EVENTS_PER_REQUEST, None, FRESHNESS_SECONDS, max_in_flight=8),
    consent=frozenset({"ad_storage", "ad_user_data"}),
    tcf_vendor_id=164,  # IAB TCF: the Global Vendor List ID
    tcf_purposes=frozenset({1, 7}),
    event_map={
        "purchase": "Purchase",
        "lead": "Lead",
        "add_to_cart": "Add to cart",
        "initiate_checkout": "Checkout",
        "complete_registration": "Registration",
        "search": "Search",
    },
    custom_events=False,
    dedup_key="orderId = order_id (event_id when absent)",
    click_ids=("ob_click_id",),
    test_mode="none exists: the connection test calls the endpoint without a click ID or "
    "name, which cannot be recorded; a 2xx or 400 proves only that it is reachable",
)


def skip_reason(event: StoredEvent, destination: Destination) -> str | None:
    return None if event.ids.ob_click_id else NO_CLICK_ID


def params(event: StoredEvent, name: str) -> dict[str, str]:
    data = event.data
    query = {
        "ob_click_id": event.ids.ob_click_id or "",
        "name": name,
        "orderId": data.order_id or event.event_id,
    }
    if data.value is not None:
        query["orderValue"] = number(data.value)
        if data.currency:
            query["currency"] = data.currency.upper()
    return query


def build(events: Sequence[StoredEvent], destination: Destination) -> list[Built]:
    return build_postbacks(
        events, destination, SPEC, PIXEL_PATH, lambda e: e.ids.ob_click_id, params
    )


def classify(response: PlatformResponse, event_ids: Sequence[str]) -> Verdict:
    if verdict := generic_http_verdict(response):
        return verdict
    status = response.status
    if 200 <= status < 300:
        return Verdict(Kind.DELIVERED)
    if status == 404:
        return Verdict(Kind.SETUP, "outbrain http 404: no unifiedPixel endpoint at this base_url")
    return Verdict(Kind.REJECTED, f"outbrain http {status}: conversion refused")


def probe(destination: Destination) -> PlatformRequest:
    """The endpoint with no click ID and no name: nothing can be recorded."""
    return PlatformRequest("GET", destination.base_url + PIXEL_PATH)


def probe_verdict(response: PlatformResponse) -> Verdict:
    if response.status == 400 or 200 <= response.status < 300:
        return Verdict(Kind.DELIVERED, f"reachable (http {response.status})")
    return classify(response, ())
