"""Per-destination routing rules (config and dashboard) and event-name overrides."""

from __future__ import annotations

import pytest

from edge.errors import ConfigError
from edge.rules import Rules, parse_rules, rule_problem
from edge.schema import Data, StoredEvent
from edge.settings import parse

from ..support import API_KEY, base_config, to_toml, wait_until


def event(name: str, value: float | None = None) -> StoredEvent:
    return StoredEvent(event=name, event_id="e", time=1, received_at=1.0, data=Data(value=value))


def test_rules_filter_with_a_reason():
    rules = Rules(events=frozenset({"purchase"}), min_value=10)
    assert rule_problem(event("page_view"), rules) == "filtered by rule: page_view is not in events"
    assert rule_problem(event("purchase", 5), rules) == (
        "filtered by rule: value 5 is below min_value 10"
    )
    assert rule_problem(event("purchase", 10), rules) is None
    assert rule_problem(event("lead"), Rules(exclude_events=frozenset({"lead"}))) == (
        "filtered by rule: lead is in exclude_events"
    )
    assert rule_problem(event("page_view"), Rules(min_value=10)) is None  # no value: not filtered


def test_rule_problems_are_named(tmp_path):
    assert parse_rules({"events": "purchase"})[1] == [(".events", "must be a list of event names")]
    assert parse_rules({"min_value": -1})[1] == [(".min_value", "must be a number >= 0")]
    config = base_config(str(tmp_path / "e.db"))
    config["destinations"]["meta"]["rules"] = {"event": ["purchase"]}
    with pytest.raises(ConfigError, match=r"destinations.meta.rules.event: unknown rule"):
        parse(to_toml(config), base=tmp_path)


def test_purchases_only_to_meta(make_edge, platforms):
    config = base_config("x")["destinations"]
    config["meta"]["rules"] = {"events": ["purchase"], "min_value": 10}
    client = make_edge(destinations=config)
    headers = {"authorization": f"Bearer {API_KEY}"}
    consent = {"ad_storage": "granted", "ad_user_data": "granted"}
    for event_id, name, value in (
        ("pv", "page_view", None),
        ("cheap", "purchase", 5),
        ("big", "purchase", 50),
    ):
        body = {
            "event": name,
            "event_id": event_id,
            "consent": consent,
            "page": {"url": "https://shop.example/"},
            "user_agent": "Mozilla/5.0",
            "user": {"email": "jane@example.com"},
        }
        if value is not None:
            body["data"] = {"value": value, "currency": "EUR"}
        assert client.post("/v1/events", json=body, headers=headers).status_code == 200

    def meta(event_id: str) -> dict:
        return client.get(f"/v1/events/{event_id}", headers=headers).json()["destinations"]["meta"]

    assert meta("pv")["reason"] == "filtered by rule: page_view is not in events"
    assert meta("cheap")["reason"] == "filtered by rule: value 5 is below min_value 10"
    wait_until(lambda: meta("big")["status"] == "sent")
    tiktok = client.get("/v1/events/pv", headers=headers).json()["destinations"]["tiktok"]
    assert not tiktok["reason"].startswith("filtered by rule")  # TikTok has no rules


def test_the_dashboard_edits_rules_and_event_names(dashboard):
    page = dashboard.get("/admin/destinations/tiktok").text
    assert 'name="map.purchase"' in page
    answer = dashboard.post(
        "/admin/destinations/tiktok/settings",
        {
            "allow": ["purchase", "lead"],
            "min_value": "10",
            "map.purchase": "CompletePayment",
            "map.lead": "SubmitForm",
            "map.page_view": "",
        },
    )
    assert answer.status_code == 303, answer.text
    table = dashboard.admin.registry.raw("tiktok")
    assert table["rules"] == {"events": ["purchase", "lead"], "min_value": 10.0}
    assert table["events"]["lead"] == "SubmitForm"
    dest = dashboard.admin.registry.active["tiktok"]
    assert dest.rules.events == frozenset({"purchase", "lead"})
    assert dest.destination.event_map["lead"] == "SubmitForm"
    assert dashboard.admin.collector.destinations[0].rules.min_value == 10.0
    bad = dashboard.post(
        "/admin/destinations/tiktok/settings", {"allow": ["purchase"], "min_value": "ten"}
    )
    assert bad.status_code == 422 and "must be a number" in bad.text
