"""One schema in, twelve platforms out: a purchase reaches all twelve recording servers."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from starlette.testclient import TestClient

from edge.app import create_app
from edge.cli import EXIT_CONFIG, main
from edge.settings import parse
from tags import PLATFORMS

from .support import API_KEY, CREDENTIALS, MALFORMED, base_config, to_toml, wait_until
from .test_crash_recovery import free_port, spawn, wait_healthy

pytestmark = pytest.mark.slow
LANDING = (
    "https://shop.example/thanks?fbclid=IwAR2Xyz_AbC-9&ttclid=E.C.P.abc123XYZ"
    "&gclid=Cj0KCQ_gclid-1&epik=dj0yJnU9epik&ScCid=sc-click-1&li_fat_id=li-fat-1"
    "&rdt_cid=3829017438291743829&awc=1001_1763899000_0123456789abcdef0123456789abcdef"
    "&tblci=GiD-taboola-click_1&OutbrainClickId=00f1e2d3c4b5a6978877"
)
ORDER_ID = "A-1001"
EVENT_ID = "purchase-e2e-1"
COOKIES = {"_ga": "GA1.1.1234567890.1763800000", "_ga_ABCDE12345": "GS2.1.s1763899000$o3$g1"}


def dedup_key(platform: str, request: dict) -> str | None:
    """Where each platform carries the event's dedup key (event_id or order id)."""
    body = request["json"]
    query = request["query"]
    match platform:
        case "meta" | "tiktok" | "pinterest" | "snapchat":
            return body["data"][0]["event_id"]
        case "google_ads":
            return body["events"][0]["transactionId"]
        case "ga4":
            return body["events"][0]["params"]["transaction_id"]
        case "linkedin":
            return body["elements"][0]["eventId"]
        case "reddit":
            return body["data"]["events"][0]["metadata"]["conversion_id"]
        case "criteo":
            return body["events"][0]["deduplication_page_view_id"]
        case "awin":
            return body["orders"][0]["orderReference"]
        case "taboola":
            return query["orderid"]
        case "outbrain":
            return query["orderId"]
    return None


@pytest.fixture
def sinks(tmp_path: Path):
    port = free_port()
    proc = spawn("sinks", "--port", str(port), log=tmp_path / "sinks.log")
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(f"{base}/requests")
        yield base
    finally:
        proc.kill()
        proc.wait(timeout=10)


def test_one_purchase_reaches_all_twelve_with_its_dedup_key(tmp_path: Path, sinks: str):
    destinations = {
        name: {**CREDENTIALS[name], "base_url": f"{sinks}/{name}"} for name in PLATFORMS
    }
    destinations["google_ads"]["token_url"] = f"{sinks}/google_oauth/token"
    config = base_config(str(tmp_path / "edge.db"), destinations=destinations)
    settings = parse(to_toml(config), base=tmp_path)
    app = create_app(settings, rate_limit=False)
    granted = dict.fromkeys(
        ("ad_storage", "analytics_storage", "ad_user_data", "ad_personalization"), "granted"
    )
    with TestClient(app, base_url="https://t.shop.example") as client:
        client.cookies.update(COOKIES)
        answer = client.post(
            "/collect",
            content=json.dumps(
                {
                    "event": "purchase",
                    "event_id": EVENT_ID,
                    "page": {"url": LANDING, "referrer": "https://www.google.com/"},
                    "user": {"email": "jane.doe@example.com", "phone": "+1 650 555 1212"},
                    "data": {
                        "value": 49.9,
                        "currency": "USD",
                        "order_id": ORDER_ID,
                        "contents": [{"id": "SKU-1", "quantity": 1, "price": 49.9}],
                    },
                    "consent": granted,
                }
            ),
            headers={
                "content-type": "text/plain",
                "origin": "https://shop.example",
                "user-agent": "Mozilla/5.0 (Macintosh) Safari/605.1.15",
            },
        )
        assert answer.status_code == 200, answer.text

        def received() -> dict[str, list[dict]]:
            entries = httpx.get(f"{sinks}/requests").json()
            by_platform: dict[str, list[dict]] = {}
            for entry in entries:
                if entry["platform"] != "google_oauth":
                    by_platform.setdefault(entry["platform"], []).append(entry)
            return by_platform

        wait_until(lambda: set(received()) == set(PLATFORMS), timeout=15, interval=0.1)
        headers = {"authorization": f"Bearer {API_KEY}"}
        status = client.get(f"/v1/events/{EVENT_ID}", headers=headers).json()
        wait_until(
            lambda: (
                {
                    d["status"]
                    for d in client.get(f"/v1/events/{EVENT_ID}", headers=headers)
                    .json()["destinations"]
                    .values()
                }
                == {"sent"}
            ),
            timeout=15,
        )
    by_platform = received()
    for name in PLATFORMS:
        (request,) = by_platform[name]  # exactly one request per platform
        assert request["answered"] == 200
        key = dedup_key(name, {**request, "query": request["query"]})
        assert key in (EVENT_ID, ORDER_ID), f"{name} carried {key!r}"
    assert status["event_id"] == EVENT_ID
    # The OAuth exchange happened against the configured token_url, not Google's.
    oauth = [e for e in httpx.get(f"{sinks}/requests").json() if e["platform"] == "google_oauth"]
    assert len(oauth) == 1 and oauth[0]["path"] == "/token"
    # Click IDs went where each platform reads them.
    meta = by_platform["meta"][0]["json"]["data"][0]["user_data"]
    assert meta["fbc"].endswith(".IwAR2Xyz_AbC-9")
    assert by_platform["tiktok"][0]["json"]["data"][0]["user"]["ttclid"] == "E.C.P.abc123XYZ"
    assert by_platform["taboola"][0]["query"]["click-id"] == "GiD-taboola-click_1"
    assert by_platform["outbrain"][0]["query"]["ob_click_id"] == "00f1e2d3c4b5a6978877"


@pytest.mark.parametrize("name", PLATFORMS)
def test_check_rejects_a_malformed_credential_naming_the_field(name, tmp_path, capsys):
    field, bad = MALFORMED[name]
    destinations = {name: {**CREDENTIALS[name], field: bad}}
    path = tmp_path / "edge.toml"
    path.write_text(to_toml(base_config("edge.db", destinations=destinations)))
    assert main(["check", "--config", str(path)]) == EXIT_CONFIG
    output = capsys.readouterr().err
    assert f"destinations.{name}.{field}: is malformed" in output
    assert bad not in output


def test_connection_test_of_all_twelve_records_no_conversion(tmp_path: Path, sinks: str, capsys):
    destinations = {
        name: {**CREDENTIALS[name], "base_url": f"{sinks}/{name}"} for name in PLATFORMS
    }
    destinations["google_ads"]["token_url"] = f"{sinks}/google_oauth/token"
    path = tmp_path / "edge.toml"
    path.write_text(to_toml(base_config("edge.db", destinations=destinations)))
    assert main(["test", "--config", str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 12 and all(line.startswith("OK") for line in lines)

    httpx.post(f"{sinks}/_control/fail", json={"platform": "meta", "status": 401, "times": 1})
    assert main(["test", "--config", str(path), "meta"]) == 1
    (line,) = capsys.readouterr().out.splitlines()
    assert line.startswith("FAIL meta") and "401" in line
    assert CREDENTIALS["meta"]["access_token"] not in line
