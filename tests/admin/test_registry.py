"""The destination registry: dashboard changes survive a restart, merge over the file,
and are applied to the running edge without one."""

from __future__ import annotations

from ..support import META_HOST, META_TOKEN, base_config

META = {
    "pixel_id": "123456789012345",
    "access_token": META_TOKEN,
    "base_url": f"https://{META_HOST}",
}
TIKTOK = base_config("x")["destinations"]["tiktok"]


def test_a_connected_destination_survives_a_restart(make_dashboard, admin_settings):
    board = make_dashboard(destinations={"tiktok": TIKTOK}).sign_in()
    assert board.connect("meta", META)["ok"]
    board.client.__exit__(None, None, None)
    again = make_dashboard(settings=admin_settings(destinations={"tiktok": TIKTOK}))
    registry = again.admin.registry
    assert set(registry.active) == {"meta", "tiktok"}
    assert registry.origin("meta") == "dashboard" and registry.origin("tiktok") == "file"
    assert set(again.admin.dispatcher.workers) == {"meta", "tiktok"}
    assert again.get("/healthz").json()["destinations"] == ["meta", "tiktok"]


def test_disconnecting_a_file_destination_is_remembered(make_dashboard, admin_settings):
    board = make_dashboard(destinations={"tiktok": TIKTOK}).sign_in()
    assert board.post("/admin/destinations/tiktok/disconnect").status_code == 303
    assert "tiktok" not in board.admin.dispatcher.workers
    assert board.admin.collector.destinations == []
    board.client.__exit__(None, None, None)
    again = make_dashboard(settings=admin_settings(destinations={"tiktok": TIKTOK})).sign_in()
    assert again.admin.registry.active == {}
    assert "+ CONNECT" in again.get("/admin/").text
    # discarding the dashboard's changes brings the file's destination back
    assert again.post("/admin/config/reset").status_code == 303
    assert set(again.admin.dispatcher.workers) == {"tiktok"}


def test_switching_off_keeps_the_credentials(dashboard):
    dashboard.post("/admin/destinations/tiktok/enabled", {"enabled": "false"})
    assert "tiktok" not in dashboard.admin.dispatcher.workers
    assert dashboard.get("/admin/api/status").json()["tiktok"]["pill"] == "OFF"
    dashboard.post("/admin/destinations/tiktok/enabled", {"enabled": "true"})
    assert "tiktok" in dashboard.admin.dispatcher.workers
    assert dashboard.get("/admin/api/status").json()["tiktok"]["pill"] == "IDLE"


def test_a_stored_table_that_no_longer_validates_shows_setup(
    make_dashboard, admin_settings, monkeypatch
):
    monkeypatch.setenv("META_TOKEN_FROM_ENV", META_TOKEN)
    board = make_dashboard(destinations={}).sign_in()
    assert board.connect("meta", {**META, "access_token": "env:META_TOKEN_FROM_ENV"})["ok"]
    board.client.__exit__(None, None, None)
    monkeypatch.delenv("META_TOKEN_FROM_ENV")
    again = make_dashboard(settings=admin_settings(destinations={})).sign_in()
    status = again.get("/admin/api/status").json()["meta"]
    assert status["pill"] == "SETUP"
    assert "META_TOKEN_FROM_ENV is not set" in status["detail"]
    assert "meta" not in again.admin.dispatcher.workers


def test_the_vault_key_is_a_private_file_next_to_the_store(dashboard, tmp_path):
    key = tmp_path / "vault.key"
    assert key.exists()
    assert key.stat().st_mode & 0o777 == 0o600
