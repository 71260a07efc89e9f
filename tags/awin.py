"""Awin Conversion API (the authenticated server-to-server order API).

    POST {origin}/s2s/advertiser/{advertiser_id}/orders     x-api-key: <API token>
    {"orders": [{"orderReference": "1001", "amount": 59.8, "currency": "USD",
                 "channel": "aw", "awc": "<click checksum(s)>", "isTest": false,
                 "commissionGroups": [{"code": "DEFAULT", "amount": 59.8}], ...}]}

* **Auth**: the user's Awin API token (ui.awin.com/awin-api) in the ``x-api-key`` header;
  the rest of Awin's API takes the same token as ``Authorization: Bearer``.
* **Orders only**: Awin knows sales and leads. ``purchase`` is a sale (amount = the event's
  value, which Awin wants as the subtotal after discounts, before tax and shipping); ``lead``
  is a lead (amount = number of leads, 1). Other events are not sent; map
  ``complete_registration`` & co. to ``lead`` in config only when the programme pays for leads.
* **Click ID**: ``awc`` from the landing URL, comma-joined when several; an event without
  one is skipped ("no click id"). The order always says ``channel = "aw"``: the edge keeps no
  last-click source, and Awin asks for ``aw`` when source information is missing.
* **Dedup**: ``orderReference`` (order ID, else event_id; Awin keeps 50 characters, so we cut
  there ourselves). Awin dedups tracking methods per order reference.
* **Limits**: 1,000 orders per request; the Awin API allows 20 calls per minute per user, so
  requests go one at a time and a 429 without Retry-After waits a minute. Awin only weighs an
  S2S call against its client-side tag if it comes within 3 minutes; later orders still
  count. Chosen freshness: 30 days, a common programme cookie period.
* **Answers**: the success body and per-order results (sent to the optional webhook) are not
  documented; errors observed on api.awin.com carry ``{"error", "description"}``. 2xx
  delivered; 401/403 setup; 404 setup (unknown advertiser); 400/422 refuse the whole batch
  without naming the order (split); 409 is a duplicate order reference (already recorded);
  429 and 5xx retry.
* **Test**: ``isTest: true`` orders are ignored by Awin. The connection test posts one such
  order (voucher-attributed, no click), so it proves the token, the advertiser ID and the
  payload together and records no sale. Option ``test_orders = "true"`` marks every order.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from edge.schema import StoredEvent

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

MAX_ORDERS = 1_000
MAX_ORDER_REFERENCE = 50
FRESHNESS_SECONDS = 30 * DAY
RATE_WINDOW_SECONDS = 60.0  # 20 calls per minute per user
CHANNEL = "aw"
DEFAULT_COMMISSION_GROUP = "DEFAULT"
SALE, LEAD = "sale", "lead"
PROBE_REFERENCE = "capi-edge-connection-test"
PROBE_VOUCHER = "CAPI-EDGE-TEST"
BASKET_FIELDS = ("id", "name", "price", "quantity")
TRUE = "true|false"
GROUP = r"[A-Za-z0-9_\-]{1,64}"

SPEC = TagSpec(
    name="awin",
    title="Awin",
    api_version="s2s orders (unversioned)",
    base_url="https://api.awin.com",
    docs_url="https://help.awin.com/apidocs/conversion-api",
    credentials=(
        Credential(
            "advertiser_id",
            "Advertiser ID",
            "the numeric Awin advertiser (programme) ID, e.g. 1001, shown next to the "
            "account name in the Awin UI and in the MasterTag URL dwin1.com/<id>.js",
            pattern=r"[0-9]{1,10}",
            example="1001",
        ),
        Credential(
            "api_token",
            "API token",
            "your Awin API token (user menu → API credentials, ui.awin.com/awin-api), a "
            "UUID-like string such as 1a2b3c4d-5e6f-7a8b-9c0d-1e2f3a4b5c6d",
            pattern=r"[A-Za-z0-9\-]{16,128}",
            secret=True,
        ),
    ),
    options=(
        Option("commission_group", "commission group code for sales (default DEFAULT)", GROUP),
        Option("lead_commission_group", "commission group code for leads (DEFAULT)", GROUP),
        Option("default_currency", "ISO 4217 code for events without one", r"[A-Za-z]{3}"),
        Option("test_orders", '"true" marks every order isTest (Awin ignores it)', TRUE),
        Option("send_transaction_time", '"true" sends transactionTime (Awin enables it)', TRUE),
        Option("webhook_url", "an https URL Awin posts per-order results to", r"https://\S+"),
    ),
    limits=Limits(MAX_ORDERS, None, FRESHNESS_SECONDS, max_in_flight=1, timeout_seconds=15.0),
    consent=frozenset({"ad_storage", "ad_user_data"}),
    tcf_vendor_id=907,  # IAB TCF: the Global Vendor List ID
    tcf_purposes=frozenset({1, 7}),
    event_map={"purchase": SALE, "lead": LEAD},
    custom_events=False,
    dedup_key="orderReference = order_id (event_id when absent), cut to 50 characters",
    click_ids=("awc",),
    test_mode="orders marked isTest are ignored by Awin: the connection test posts one "
    "isTest order (voucher-attributed, no click) and records no sale",
)


def skip_reason(event: StoredEvent, destination: Destination) -> str | None:
    return None if event.ids.awc else "no click id"


def _amount(event: StoredEvent) -> float | None:
    if event.data.value is not None:
        return event.data.value
    lines = [(c.price, c.quantity or 1) for c in event.data.contents or () if c.price is not None]
    return round(sum(price * qty for price, qty in lines), 2) if lines else None


def _basket(event: StoredEvent, group: str) -> list[dict[str, Any]] | None:
    """Product-level tracking; left out unless every line has id, name, price, quantity."""
    basket = []
    for content in event.data.contents or ():
        line: dict[str, Any] = {
            "id": content.id,
            "name": content.name,
            "price": content.price,
            "quantity": content.quantity,
        }
        if any(line[key] is None for key in BASKET_FIELDS):
            return None
        line["sku"] = content.id
        if content.category:
            line["category"] = content.category
        line["commissionGroupCode"] = group
        basket.append(line)
    return basket or None


def order(event: StoredEvent, destination: Destination) -> dict[str, Any] | str:
    """The Awin order for one event, or why it cannot be one."""
    kind = destination.platform_event(SPEC, event.event)
    options = destination.options
    if kind not in (SALE, LEAD):
        return f"Awin only records sales and leads, not {kind!r}"
    if not event.ids.awc:
        return "no click id"
    currency = event.data.currency or options.get("default_currency")
    if not currency:
        return "no currency (set default_currency for events without one)"
    if kind == SALE:
        amount = _amount(event)
        if amount is None:
            return "a sale needs a value or priced contents"
        group = options.get("commission_group", DEFAULT_COMMISSION_GROUP)
    else:
        amount, group = 1.0, options.get("lead_commission_group", DEFAULT_COMMISSION_GROUP)
    body: dict[str, Any] = {
        "orderReference": (event.data.order_id or event.event_id)[:MAX_ORDER_REFERENCE],
        "amount": amount,
        "currency": currency.upper(),
        "channel": CHANNEL,
        "commissionGroups": [{"code": group, "amount": amount}],
        "awc": event.ids.awc,
        "isTest": options.get("test_orders") == "true",
    }
    coupon = event.custom.get("coupon")
    if isinstance(coupon, str) and coupon:
        body["voucher"] = coupon
    if options.get("send_transaction_time") == "true":
        body["transactionTime"] = event.time
    if kind == SALE and (basket := _basket(event, group)):
        body["basket"] = basket
    return body


def _request(destination: Destination, orders: list[dict[str, Any]]) -> PlatformRequest:
    advertiser = destination.credentials["advertiser_id"]
    body: dict[str, Any] = {"orders": orders}
    if webhook := destination.options.get("webhook_url"):
        body["webhook"] = {"url": webhook}
    return PlatformRequest(
        "POST",
        f"{destination.base_url}/s2s/advertiser/{advertiser}/orders",
        {"x-api-key": destination.credentials["api_token"]},
        body,
    )


def build(events: Sequence[StoredEvent], destination: Destination) -> list[Built]:
    built = []
    for start in range(0, len(events), MAX_ORDERS):
        orders, ids, rejected = [], [], {}
        for event in events[start : start + MAX_ORDERS]:
            result = order(event, destination)
            if isinstance(result, str):
                rejected[event.event_id] = result
                continue
            orders.append(result)
            ids.append(event.event_id)
        request = _request(destination, orders) if orders else None
        built.append(Built(request, tuple(ids), rejected))
    return built


def _describe(response: PlatformResponse) -> str:
    body = response.json()
    reason = f"awin http {response.status}"
    if isinstance(body, dict):
        error, description = body.get("error"), body.get("description") or body.get("message")
        if error:
            reason += f" {str(error)[:60]}"
        if description:
            reason += f": {str(description)[:200]}"
    return reason


def classify(response: PlatformResponse, event_ids: Sequence[str]) -> Verdict:
    if verdict := generic_http_verdict(response):
        reason = _describe(response)
        if verdict.kind is Kind.THROTTLED:
            return Verdict(Kind.THROTTLED, reason, verdict.retry_after or RATE_WINDOW_SECONDS)
        if verdict.kind is Kind.SETUP:
            reason += " (check api_token and its access to the advertiser)"
        return Verdict(verdict.kind, reason, verdict.retry_after)
    status = response.status
    if 200 <= status < 300:
        return Verdict(Kind.DELIVERED)
    reason = _describe(response)
    if status == 404:
        return Verdict(Kind.SETUP, f"{reason} (check advertiser_id)")
    if status == 409:
        if len(event_ids) > 1:
            return Verdict(Kind.SPLIT, reason)
        return Verdict(Kind.DELIVERED, f"{reason} (order reference already recorded)")
    if status in (400, 422) and len(event_ids) > 1:
        return Verdict(Kind.SPLIT, reason)
    return Verdict(Kind.REJECTED, reason)


def probe(destination: Destination) -> PlatformRequest:
    """One isTest order: Awin ignores test orders, so no sale is recorded."""
    test_order = {
        "orderReference": PROBE_REFERENCE,
        "amount": 0.0,
        "currency": destination.options.get("default_currency", "EUR").upper(),
        "channel": CHANNEL,
        "commissionGroups": [{"code": DEFAULT_COMMISSION_GROUP, "amount": 0.0}],
        "voucher": PROBE_VOUCHER,
        "isTest": True,
    }
    return _request(destination, [test_order])
