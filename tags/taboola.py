"""Taboola S2S conversions (the Realize postback URL).

    GET {origin}/actions-handler/log/3/s2s-action?click-id=<tblci>&name=<event name>
        &revenue=59.8&currency=USD&orderid=1001&quantity=3

* **Auth**: none; the click ID ties the conversion to the account. The postback carries no
  account ID, so ``account_id`` is optional: it names the account (and is what the bulk
  endpoint below would need).
* **One request per event**: the postback takes one conversion. Taboola's bulk endpoint
  (``POST /{account_id}/log/3/bulk-s2s-action``, up to 1,000 actions) exists, but Taboola
  skips validation there, so a wrong field would be lost silently, and its field table was
  only partly readable. Chosen: the validated postback.
* **Names**: ``name`` is the Event Name defined in Realize (not the conversion's display
  name), case-sensitive. Defaults follow the Taboola pixel's standard names
  (``purchase`` -> ``make_purchase``, ``initiate_checkout`` -> ``start_checkout``, others the
  same word); other neutral names pass through unchanged as advertiser-defined events.
* **Click ID**: the ``click-id`` parameter, spelled exactly so, from ``tblci`` (a
  case-sensitive string of 66+ characters); an event without one is skipped ("no click id").
* **Dedup**: only within one click; S2S wins over the pixel for the same event; ``orderid``
  (order ID, else event_id) feeds Taboola's heuristics within a method.
* **Values**: ``revenue`` as a plain decimal, ``currency`` upper-case (the account default
  when absent), ``quantity`` the number of items.
* **Time**: the postback carries no timestamp: Taboola counts the receive time. Chosen
  freshness: 7 days, so a backlog after an outage is still sent but reports stay close.
* **Answers**: 204 on success (any 2xx counts); 400 when ``click-id`` is missing or not
  parsable or ``name`` is missing (permanent); 404 means a wrong base_url (setup); 429 and
  5xx retry. The body is empty or a pixel.
* **Test**: Taboola has no test mode and no credentials. The connection test sends a
  postback *without* a click ID: nothing can be recorded, and Taboola's documented answer is
  400 ("click-id missing"), which proves the endpoint is reachable and validating.
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

POSTBACK_PATH = "/actions-handler/log/3/s2s-action"
EVENTS_PER_REQUEST = 1
FRESHNESS_SECONDS = 7 * DAY
PROBE_EVENT = "capi_edge_connection_test"


SPEC = TagSpec(
    name="taboola",
    title="Taboola",
    api_version="actions-handler log/3",
    base_url="https://trc.taboola.com",
    docs_url="https://developers.taboola.com/pixel/docs/the-postback-url",
    credentials=(
        Credential(
            "account_id",
            "Account ID",
            "your numeric Taboola advertiser account ID, e.g. 1234567 (Realize / Taboola Ads "
            "→ account menu, also in the pixel snippet's tfa.js URL)",
            pattern=r"[0-9]{1,15}",
            required=False,
            example="1234567",
        ),
    ),
    limits=Limits(EVENTS_PER_REQUEST, None, FRESHNESS_SECONDS, max_in_flight=8),
    consent=frozenset({"ad_storage", "ad_user_data"}),
    tcf_vendor_id=42,  # IAB TCF: the Global Vendor List ID
    tcf_purposes=frozenset({1, 7}),
    event_map={
        "page_view": "page_view",
        "view_content": "view_content",
        "search": "search",
        "add_to_cart": "add_to_cart",
        "add_to_wishlist": "add_to_wishlist",
        "initiate_checkout": "start_checkout",
        "add_payment_info": "add_payment_info",
        "purchase": "make_purchase",
        "lead": "lead",
        "complete_registration": "complete_registration",
        "subscribe": "subscribe",
        "start_trial": "start_trial",
        "contact": "contact",
    },
    custom_events=True,
    dedup_key="orderid = order_id (event_id when absent), within one click ID",
    click_ids=("tblci",),
    test_mode="none exists: the connection test sends a postback without a click ID, which "
    "cannot be recorded; Taboola answers 400 (click-id missing), proving the endpoint is up",
)


def skip_reason(event: StoredEvent, destination: Destination) -> str | None:
    return None if event.ids.tblci else NO_CLICK_ID


def params(event: StoredEvent, name: str) -> dict[str, str]:
    data = event.data
    query = {"click-id": event.ids.tblci or "", "name": name}
    if data.value is not None:
        query["revenue"] = number(data.value)
        if data.currency:
            query["currency"] = data.currency.upper()
    query["orderid"] = data.order_id or event.event_id
    quantity = data.num_items
    if quantity is None and data.contents:
        quantity = sum(c.quantity or 1 for c in data.contents)
    if quantity:
        query["quantity"] = str(quantity)
    return query


def build(events: Sequence[StoredEvent], destination: Destination) -> list[Built]:
    return build_postbacks(events, destination, SPEC, POSTBACK_PATH, lambda e: e.ids.tblci, params)


def classify(response: PlatformResponse, event_ids: Sequence[str]) -> Verdict:
    if verdict := generic_http_verdict(response):
        return verdict
    status = response.status
    if 200 <= status < 300:
        return Verdict(Kind.DELIVERED)
    if status == 404:
        return Verdict(Kind.SETUP, "taboola http 404: no postback endpoint at this base_url")
    if status == 400:
        return Verdict(
            Kind.REJECTED,
            "taboola http 400: postback refused (click-id missing or not parsable, or name "
            "missing)",
        )
    return Verdict(Kind.REJECTED, f"taboola http {status}: postback refused")


def probe(destination: Destination) -> PlatformRequest:
    """A postback without a click ID: Taboola cannot attribute it, so nothing is recorded."""
    return PlatformRequest(
        "GET", destination.base_url + POSTBACK_PATH, params={"name": PROBE_EVENT}
    )


def probe_verdict(response: PlatformResponse) -> Verdict:
    """400 is the documented answer to a postback without a click ID: the endpoint is up."""
    if response.status == 400:
        return Verdict(Kind.DELIVERED, "reachable: Taboola validated the test postback")
    if 200 <= response.status < 300:
        return Verdict(Kind.DELIVERED, "reachable")
    return classify(response, ())
