"""The README's config example is a real config: every key in it is one the edge accepts."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.errors import ConfigError
from edge.settings import parse

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_config() -> str:
    text = README.read_text()
    return text.split("### Config (`edge.toml`)", 1)[1].split("```toml", 1)[1].split("```", 1)[0]


def test_readme_config_example_is_valid_but_for_the_machines_geo_database(tmp_path, monkeypatch):
    for name, value in {
        "META_ACCESS_TOKEN": "EAAB0123456789012345678",
        "TIKTOK_ACCESS_TOKEN": "tiktok0123456789012345",
        "CAPI_EDGE_API_KEY": "0123456789abcdef0123",
        "CAPI_EDGE_SECRET_KEY": "0123456789abcdef0123456789abcdef",
        "CAPI_EDGE_ADMIN_PASSWORD": "admin-password-123",
    }.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as err:
        parse(readme_config(), base=tmp_path)
    # the only problem: this machine has no MaxMind database where the example points
    assert "1 problem(s)" in str(err.value) and "geo.database" in str(err.value)
    without_geo = readme_config().replace('[geo]\ndatabase = "/var/lib/GeoIP/', '[geo]\n# "')
    settings = parse(without_geo, base=tmp_path)
    assert set(settings.destinations) == {"meta", "tiktok"}
