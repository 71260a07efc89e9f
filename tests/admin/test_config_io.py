"""Config as code from the dashboard: export the merged TOML (no secret in it), apply a
file (validated like `capi-edge check`), round trip, discard the dashboard's changes."""

from __future__ import annotations

import tomllib

from edge.admin.configio import dump_toml
from edge.settings import parse

from ..support import API_KEY, META_HOST, META_TOKEN, TIKTOK_TOKEN, to_toml
from .conftest import ADMIN_PASSWORD

META = {
    "pixel_id": "123456789012345",
    "access_token": META_TOKEN,
    "base_url": f"https://{META_HOST}",
}


def test_dump_toml_round_trips():
    config = {
        "site": {"domains": ["shop.example"], "default_country": "US"},
        "dispatch": {"linger_ms": 5, "retry_base_seconds": 0.5},
        "destinations": {
            "meta": {
                "pixel_id": "1",
                "events": {"lead": False, "x y": "Z"},
                "rules": {"events": ["purchase"], "min_value": 10.0},
                "enabled": True,
                "quote": 'a "b" \\ c\nd',
            }
        },
    }
    assert tomllib.loads(dump_toml(config)) == config


def test_export_has_no_secret_and_says_which_variables_to_set(dashboard, tmp_path, monkeypatch):
    assert dashboard.connect("meta", META)["ok"]
    dashboard.post("/admin/destinations/meta/settings", {"allow": ["purchase"], "min_value": "10"})
    answer = dashboard.get("/admin/config/export")
    assert answer.headers["content-disposition"] == 'attachment; filename="edge.toml"'
    text = answer.text
    for secret in (META_TOKEN, TIKTOK_TOKEN, API_KEY, ADMIN_PASSWORD):
        assert secret not in text
    exported = tomllib.loads(text)
    assert exported["destinations"]["meta"]["access_token"] == "env:CAPI_EDGE_META_ACCESS_TOKEN"
    assert exported["destinations"]["meta"]["rules"] == {"events": ["purchase"], "min_value": 10.0}
    assert exported["admin"]["password"] == "env:CAPI_EDGE_ADMIN_PASSWORD"
    for name in (
        "CAPI_EDGE_META_ACCESS_TOKEN",
        "CAPI_EDGE_TIKTOK_ACCESS_TOKEN",
        "CAPI_EDGE_API_KEY",
    ):
        assert f"#   {name}" in text
        assert name in dashboard.get("/admin/config").text
    # with those variables set, the file is a valid config with the same destinations
    monkeypatch.setenv("CAPI_EDGE_META_ACCESS_TOKEN", META_TOKEN)
    monkeypatch.setenv("CAPI_EDGE_TIKTOK_ACCESS_TOKEN", TIKTOK_TOKEN)
    monkeypatch.setenv("CAPI_EDGE_API_KEY", API_KEY)
    monkeypatch.setenv("CAPI_EDGE_ADMIN_PASSWORD", ADMIN_PASSWORD)
    settings = parse(text, base=tmp_path)
    assert set(settings.destinations) == {"meta", "tiktok"}
    assert settings.destinations["meta"].destination.credentials["access_token"] == META_TOKEN


def test_export_then_apply_round_trips_without_the_variables(dashboard):
    assert dashboard.connect("meta", META)["ok"]
    text = dashboard.get("/admin/config/export").text
    edited = text.replace('pixel_id = "123456789012345"', 'pixel_id = "555555555555555"')
    answer = dashboard.post("/admin/config/apply", {"config": edited})
    assert answer.status_code == 303, answer.text
    page = dashboard.get("/admin/config").text
    assert "Applied: 2 destination(s) running." in page
    assert "restart" not in page.split("Applied")[1].split("</div>")[0]
    meta = dashboard.admin.registry.active["meta"].destination
    assert meta.credentials == {"pixel_id": "555555555555555", "access_token": META_TOKEN}


def test_apply_validates_like_check_and_changes_nothing_when_wrong(dashboard, tmp_path):
    config = {
        "site": {"domains": ["shop.example"]},
        "server": {"database": str(tmp_path / "edge.db")},
        "destinations": {"meta": {"pixel_id": "my-pixel", "access_token": META_TOKEN}},
    }
    answer = dashboard.post("/admin/config/apply", {"config": to_toml(config)})
    assert answer.status_code == 422
    assert "destinations.meta.pixel_id: is malformed" in answer.text
    assert META_TOKEN not in answer.text
    assert set(dashboard.admin.registry.active) == {"tiktok"}
    bad = dashboard.post("/admin/config/apply", {"config": "[site"})
    assert bad.status_code == 422 and "not valid TOML" in bad.text


def test_apply_replaces_the_destinations_and_names_sections_needing_a_restart(dashboard, tmp_path):
    config = {
        "site": {"domains": ["other.example"]},
        "server": {"database": str(tmp_path / "edge.db")},
        "destinations": {"meta": META},
    }
    answer = dashboard.post("/admin/config/apply", {"config": to_toml(config)})
    assert answer.status_code == 303
    assert set(dashboard.admin.registry.active) == {"meta"}  # tiktok is gone: not in the file
    assert set(dashboard.admin.dispatcher.workers) == {"meta"}
    page = dashboard.get("/admin/config").text
    assert "take effect after a restart" in page and "site" in page
    assert dashboard.post("/admin/config/reset").status_code == 303
    assert set(dashboard.admin.registry.active) == {"tiktok"}
