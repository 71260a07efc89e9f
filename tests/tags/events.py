"""Canonical events every tag's golden tests start from, and the golden-file harness.

A golden test feeds a canonical ``StoredEvent`` through a tag's pure ``build`` and compares
the exact HTTP request (method, URL, query, headers, body) with a file in
``tests/tags/golden/``. Regenerate after a deliberate change with
``CAPI_EDGE_UPDATE_GOLDEN=1 bash .ci/test tests/tags`` and review the diff like code.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import MappingProxyType
from typing import Any

import msgspec

from edge.schema import Client, Consent, Content, Data, Ids, Page, StoredEvent, User
from tags.base import Destination, PlatformRequest, TagSpec

GOLDEN = Path(__file__).parent / "golden"
FIXTURES = Path(__file__).parent / "fixtures"
EVENT_TIME = 1_763_900_000  # 2025-11-23T12:13:20Z
RECEIVED_AT = EVENT_TIME + 0.25
UA = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.0 Safari/605.1.15"
)
GRANTED = Consent(
    ad_storage="granted",
    analytics_storage="granted",
    ad_user_data="granted",
    ad_personalization="granted",
)
# One of every click ID and browser ID, in the shapes the edge stores them.
ALL_IDS = Ids(
    fbc="fb.1.1763899000000.IwAR2Xyz_AbC-9",
    fbp="fb.1.1763800000000.1234567890",
    fbclid="IwAR2Xyz_AbC-9",
    ttp="2F7h37YkS1j57AYSKTI7IHhJPYH",
    ttclid="E.C.P.abc123XYZ",
    gclid="Cj0KCQiA-gclid_123",
    ga_client_id="1234567890.1763800000",
    ga_session_id="1763899000",
    epik="dj0yJnU9epik-value",
    sccid="sc-click-0f3b2a",
    scid="b2f0c6c8-5a2e-4c1e-9a7d-3f2b1e0d9c8a",
    li_fat_id="li-fat-3f2b1e0d",
    rdt_cid="3829017438291743829",
    rdt_uuid="1763800000000.b2f0c6c8-5a2e-4c1e-9a7d-3f2b1e0d9c8a",
    awc="12345_1763899000_0123456789abcdef0123456789abcdef",
    tblci="GiD-taboola-click-id_1234567890",
    ob_click_id="00f1e2d3c4b5a6978877665544332211",
    msclkid="c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f6",
)


def purchase(**changes: Any) -> StoredEvent:
    """A website purchase with every field filled, consent granted, every click ID."""
    event = StoredEvent(
        event="purchase",
        event_id="evt-0001",
        time=EVENT_TIME,
        received_at=RECEIVED_AT,
        source="browser",
        page=Page(
            url="https://shop.example/checkout/thanks?order=1001",
            referrer="https://shop.example/cart",
            title="Thank you",
        ),
        user=User(
            email="  Jane.Doe@Example.COM ",
            phone="(650) 555-1212",
            first_name="Jane",
            last_name="Doe-Smith",
            city="Menlo Park",
            state="California",
            zip="94025-1234",
            country="United States",
            date_of_birth="1990-04-01",
            gender="Female",
            external_id="Cust-42",
        ),
        data=Data(
            value=59.8,
            currency="USD",
            order_id="1001",
            contents=[
                Content(id="SKU-1", quantity=2, price=19.9, name="Mug", category="Kitchen"),
                Content(id="SKU-2", quantity=1, price=20.0, name="Tea", category="Food"),
            ],
            num_items=3,
        ),
        custom={"coupon": "SPRING"},
        consent=GRANTED,
        ids=ALL_IDS,
        client=Client(ip="203.0.113.9", user_agent=UA, country="US", region="CA"),
        pixels=["meta", "tiktok"],
    )
    return msgspec.structs.replace(event, **changes) if changes else event


def page_view(**changes: Any) -> StoredEvent:
    """A bare page view: no user data, no commerce data, only browser identifiers."""
    event = purchase(
        event="page_view",
        event_id="evt-0002",
        page=Page(url="https://shop.example/p/mug", referrer="https://www.google.com/"),
        user=User(),
        data=Data(),
        custom={},
    )
    return msgspec.structs.replace(event, **changes) if changes else event


def destination(
    spec: TagSpec,
    credentials: dict[str, str],
    *,
    options: dict[str, str] | None = None,
    events: dict[str, str] | None = None,
    base_url: str | None = None,
    bearer: str | None = None,
    default_country: str | None = "US",
) -> Destination:
    """A configured destination the way edge.settings builds one."""
    event_map = dict(spec.event_map)
    event_map.update(events or {})
    return Destination(
        name=spec.name,
        credentials=MappingProxyType(credentials),
        base_url=(base_url or spec.base_url).rstrip("/"),
        event_map=MappingProxyType(event_map),
        options=MappingProxyType(options or {}),
        default_country=default_country,
        bearer=bearer,
    )


def request_as_dict(request: PlatformRequest) -> dict[str, Any]:
    """The exact request, in a stable JSON-friendly shape (the body as parsed JSON or form)."""
    body: Any = None
    if request.form is not None:
        body = {"form": dict(request.form)}
    elif request.json is not None:
        body = {"json": request.json}
    return {
        "method": request.method,
        "url": request.url,
        "params": dict(request.params),
        "headers": dict(request.headers),
        **(body or {}),
    }


def assert_golden(name: str, request: PlatformRequest) -> None:
    """Compare a built request with ``golden/<name>.json`` (written when regenerating)."""
    path = GOLDEN / f"{name}.json"
    actual = request_as_dict(request)
    # A round trip through JSON, so tuples and lists compare the way the file stores them.
    actual = json.loads(json.dumps(actual))
    if os.environ.get("CAPI_EDGE_UPDATE_GOLDEN") == "1" or not path.exists():
        if os.environ.get("CI") and not path.exists():
            raise AssertionError(f"golden file {path} is missing; generate and commit it")
        path.write_text(json.dumps(actual, indent=2, ensure_ascii=False, sort_keys=True) + "\n")
    expected = json.loads(path.read_text())
    assert actual == expected, f"request differs from {path.name}"


def fixture(platform: str, name: str) -> bytes:
    """A recorded platform answer body from ``fixtures/<platform>/<name>``."""
    return (FIXTURES / platform / name).read_bytes()
