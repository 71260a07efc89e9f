"""`capi-edge check` on LinkedIn's credentials: a static access_token, or client_id,
client_secret and refresh_token together; a partial set names each missing key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from edge.cli import EXIT_CONFIG, main
from edge.settings import parse
from tags import linkedin

from .support import base_config, to_toml

STATIC = "AQV-static-member-token-0123456789"
REFRESH = {
    "client_id": "86abcdef0g1h2i",
    "client_secret": "WPL_AP1.clientSECRET0123.abcd==",
    "refresh_token": "AQW-programmatic-refresh-token-0123456789",
}
KEY = "destinations.linkedin"
Capture = pytest.CaptureFixture[str]


def config(**credentials: str) -> dict[str, Any]:
    table = {"conversion_id": "104567", **credentials}
    return base_config("edge.db", destinations={"linkedin": table})


def check(tmp_path: Path, capsys: Capture, **credentials: str) -> tuple[int, str]:
    path = tmp_path / "edge.toml"
    path.write_text(to_toml(config(**credentials)))
    code = main(["check", "--config", str(path)])
    out = capsys.readouterr()
    return code, out.out + out.err


@pytest.mark.parametrize(
    "credentials",
    [{"access_token": STATIC}, REFRESH, {**REFRESH, "access_token": STATIC}],
    ids=["static", "refresh", "both"],
)
def test_either_set_passes(tmp_path: Path, capsys: Capture, credentials: dict[str, str]) -> None:
    code, output = check(tmp_path, capsys, **credentials)
    assert code == 0, output
    assert "linkedin" in output


def test_neither_names_access_token_and_the_alternative(tmp_path: Path, capsys: Capture) -> None:
    code, output = check(tmp_path, capsys)
    assert code == EXIT_CONFIG
    assert f"{KEY}.access_token: missing; " in output
    assert "or set client_id, client_secret and refresh_token instead" in output
    assert "1 problem(s)" in output


@pytest.mark.parametrize(
    ("given", "missing"),
    [
        (["client_id"], ["client_secret", "refresh_token"]),
        (["client_id", "client_secret"], ["refresh_token"]),
        (["refresh_token"], ["client_id", "client_secret"]),
    ],
)
def test_a_partial_refresh_set_names_each_missing_key(
    tmp_path: Path, capsys: Capture, given: list[str], missing: list[str]
) -> None:
    code, output = check(tmp_path, capsys, **{k: REFRESH[k] for k in given})
    assert code == EXIT_CONFIG
    assert f"{len(missing)} problem(s)" in output
    for key in missing:
        assert f"{KEY}.{key}: missing; " in output
    assert "client_id, client_secret and refresh_token go together" in output
    assert "or set access_token instead" in output
    assert f"{KEY}.access_token" not in output  # the set being written is the one named
    for secret in (REFRESH["client_secret"], REFRESH["refresh_token"]):
        assert secret not in output


def test_a_malformed_key_is_named_once_not_also_as_missing(tmp_path: Path, capsys: Capture) -> None:
    code, output = check(tmp_path, capsys, **{**REFRESH, "client_secret": "has spaces in it"})
    assert code == EXIT_CONFIG
    assert f"{KEY}.client_secret: is malformed" in output and "1 problem(s)" in output
    assert "has spaces in it" not in output


def test_an_unset_environment_variable_is_named_once(
    tmp_path: Path, capsys: Capture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CAPI_TEST_LI_REFRESH", raising=False)
    code, output = check(
        tmp_path, capsys, **{**REFRESH, "refresh_token": "env:CAPI_TEST_LI_REFRESH"}
    )
    assert code == EXIT_CONFIG
    assert f"{KEY}.refresh_token: environment variable CAPI_TEST_LI_REFRESH is not set" in output
    assert "1 problem(s)" in output


def test_parsed_settings_refresh_only_with_the_full_set(tmp_path: Path) -> None:
    both = parse(to_toml(config(**REFRESH, access_token=STATIC)), base=tmp_path)
    destination = both.destinations["linkedin"].destination
    assert linkedin.refreshes(destination) and linkedin.token_request(destination) is not None
    assert REFRESH["refresh_token"] in both.secrets() and REFRESH["client_secret"] in both.secrets()
    static = parse(to_toml(config(access_token=STATIC)), base=tmp_path)
    assert linkedin.token_request(static.destinations["linkedin"].destination) is None
