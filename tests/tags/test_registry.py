"""Every registered tag is complete: validation, limits, event map, probe, goldens, docs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tags import PLATFORMS, TAGS
from tags.base import Limits, PlatformRequest

from ..support import CREDENTIALS, MALFORMED
from .events import GOLDEN, destination

ROOT = Path(__file__).resolve().parents[2]
DESTINATIONS_DOC = ROOT / "docs" / "destinations.md"


def test_the_registry_lists_exactly_the_twelve_platforms():
    assert set(TAGS) == set(PLATFORMS)
    assert len(TAGS) == 12


@pytest.mark.parametrize("name", PLATFORMS)
def test_tag_is_complete(name):
    tag = TAGS[name]
    spec = tag.SPEC
    assert spec.name == name
    assert spec.base_url.startswith("https://")
    assert spec.docs_url.startswith("https://")
    assert spec.api_version and spec.dedup_key and spec.test_mode
    # credential validation: every credential refuses garbage, and the good set passes
    assert spec.credentials
    for credential in spec.credentials:
        assert credential.hint
        assert credential.problem("") is not None
        assert credential.problem("bad value with spaces \n") is not None
    for credential in spec.credentials:
        if credential.name in CREDENTIALS[name]:
            assert credential.problem(CREDENTIALS[name][credential.name]) is None
    field, bad = MALFORMED[name]
    (checked,) = [c for c in spec.credentials if c.name == field]
    assert checked.problem(bad) is not None
    # limits and event map
    assert isinstance(spec.limits, Limits)
    assert spec.limits.max_batch_events >= 1 and spec.limits.freshness_seconds >= 3600
    assert spec.event_map and "purchase" in spec.event_map
    # a test-connection request
    request = tag.probe(destination(spec, CREDENTIALS[name]))
    assert isinstance(request, PlatformRequest)
    assert request.url.startswith(spec.base_url) or name == "google_ads"


@pytest.mark.parametrize("name", PLATFORMS)
def test_tag_has_golden_tests_and_recorded_answers(name):
    assert (ROOT / "tests" / "tags" / f"test_{name}.py").exists()
    assert list(GOLDEN.glob(f"{name}_*.json")), f"no golden requests for {name}"
    fixtures = ROOT / "tests" / "tags" / "fixtures" / name
    assert fixtures.is_dir() and any(fixtures.iterdir()), f"no recorded answers for {name}"


@pytest.mark.parametrize("name", PLATFORMS)
def test_tag_has_a_row_in_the_destinations_doc(name):
    rows = [line for line in DESTINATIONS_DOC.read_text().splitlines() if line.startswith("| ")]
    assert any(re.match(rf"\| `?{name}`? \|", row) for row in rows), f"{name} not documented"
