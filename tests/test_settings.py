"""`capi-edge check`: a config is validated completely, each problem naming its key."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.cli import EXIT_CONFIG, main
from edge.errors import ConfigError
from edge.settings import parse

from .support import base_config, to_toml


def check(tmp_path: Path, config: dict, capsys) -> tuple[int, str]:  # noqa: ANN001
    path = tmp_path / "edge.toml"
    path.write_text(to_toml(config))
    code = main(["check", "--config", str(path)])
    out = capsys.readouterr()
    return code, out.out + out.err


def test_a_good_config_passes(tmp_path, capsys):
    code, output = check(tmp_path, base_config("edge.db"), capsys)
    assert code == 0
    assert "OK (2 destination(s): meta, tiktok)" in output


def test_unknown_keys_are_named(tmp_path, capsys):
    config = base_config("edge.db")
    config["destinations"]["meta"]["pixle_id"] = "1"
    code, output = check(tmp_path, config, capsys)
    assert code == EXIT_CONFIG
    assert "destinations.meta.pixle_id: unknown key" in output


def test_unknown_top_level_key_is_named(tmp_path, capsys):
    config = base_config("edge.db")
    config["sites"] = {"domains": ["x.example"]}
    code, output = check(tmp_path, config, capsys)
    assert code == EXIT_CONFIG and "sites" in output


def test_non_numeric_meta_pixel_id_is_refused(tmp_path, capsys):
    config = base_config("edge.db")
    config["destinations"]["meta"]["pixel_id"] = "my-pixel"
    code, output = check(tmp_path, config, capsys)
    assert code == EXIT_CONFIG
    assert "destinations.meta.pixel_id: is malformed" in output
    assert "my-pixel" not in output  # values are not echoed: they may be secrets


def test_missing_secret_in_the_environment_is_named(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("CAPI_TEST_META_TOKEN", raising=False)
    config = base_config("edge.db")
    config["destinations"]["meta"]["access_token"] = "env:CAPI_TEST_META_TOKEN"
    code, output = check(tmp_path, config, capsys)
    assert code == EXIT_CONFIG
    assert (
        "destinations.meta.access_token: environment variable CAPI_TEST_META_TOKEN is not set"
        in output
    )
    monkeypatch.setenv("CAPI_TEST_META_TOKEN", "EAAB-from-env-0123456789")
    assert check(tmp_path, config, capsys)[0] == 0


def test_secrets_from_env_and_file_are_resolved(tmp_path, monkeypatch):
    monkeypatch.setenv("CAPI_TEST_KEY", "k" * 20)
    (tmp_path / "token.txt").write_text("EAAB-from-file-0123456789\n")
    config = base_config("edge.db")
    config["api"]["keys"] = ["env:CAPI_TEST_KEY", "literal:env:not-a-reference"]
    config["destinations"]["meta"]["access_token"] = "file:token.txt"
    settings = parse(to_toml(config), base=tmp_path)
    assert settings.api_keys == {"k" * 20, "env:not-a-reference"}
    assert (
        settings.destinations["meta"].destination.credentials["access_token"]
        == "EAAB-from-file-0123456789"
    )
    assert "EAAB-from-file-0123456789" in settings.secrets()


def test_missing_credential_and_unknown_destination(tmp_path, capsys):
    config = base_config("edge.db")
    del config["destinations"]["tiktok"]["access_token"]
    config["destinations"]["myspace"] = {"token": "x"}
    code, output = check(tmp_path, config, capsys)
    assert code == EXIT_CONFIG
    assert "destinations.tiktok.access_token: missing" in output
    assert "destinations.myspace: unknown destination" in output


def test_every_problem_is_reported_at_once():
    config = base_config("edge.db")
    config["destinations"]["meta"]["pixel_id"] = "abc"
    config["destinations"]["tiktok"]["base_url"] = "ftp://x"
    config["site"]["domains"] = ["Shop.Example"]
    with pytest.raises(ConfigError) as err:
        parse(to_toml(config))
    message = str(err.value)
    assert "3 problem(s)" in message
    for path in ("destinations.meta.pixel_id", "destinations.tiktok.base_url", "site.domains[0]"):
        assert path in message


def test_event_map_overrides_and_disabling(tmp_path):
    config = base_config("edge.db")
    config["destinations"]["meta"]["events"] = {"purchase": "CompletePayment", "page_view": False}
    settings = parse(to_toml(config), base=tmp_path)
    meta = settings.destinations["meta"]
    assert meta.destination.platform_event(meta.spec, "purchase") == "CompletePayment"
    assert meta.destination.platform_event(meta.spec, "page_view") is None
