"""``capi-edge serve`` and ``capi-edge indexer`` tune the garbage collector before they work,
and ``serve`` runs the edge's own HTTP protocol."""

from __future__ import annotations

import gc

import pytest

from edge import cli, indexer
from edge.protocol import EdgeHttpProtocol

from .support import base_config, to_toml


@pytest.fixture
def gc_state():
    """Put the collector back as it was: the rest of the suite runs in this process."""
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


def _state() -> tuple[int, int]:
    return gc.get_threshold()[0], gc.get_freeze_count()


def test_serve_freezes_the_built_app_and_collects_less_often(tmp_path, monkeypatch, gc_state):
    config = tmp_path / "edge.toml"
    config.write_text(to_toml(base_config(str(tmp_path / "edge.db"))))
    seen = {}

    def run(app, **options):
        seen["state"] = _state()
        seen["app"] = app
        seen["options"] = options

    monkeypatch.setattr("uvicorn.run", run)
    assert gc.get_freeze_count() == 0
    assert cli.main(["serve", "--config", str(config), "--port", "8123"]) == 0

    young, frozen = seen["state"]
    assert young == cli.GC_YOUNG_THRESHOLD > 700
    assert frozen > 1000  # the app and everything it imported, never scanned again
    assert seen["app"] is not None
    assert seen["options"]["port"] == 8123
    assert seen["options"]["proxy_headers"] is False
    assert seen["options"]["http"] is EdgeHttpProtocol  # whole answers in one write


def test_indexer_command_tunes_the_collector_too(tmp_path, monkeypatch, gc_state):
    seen = {}

    def run_indexer(database, **options):
        seen["state"] = _state()
        seen["database"] = database
        return 0

    monkeypatch.setattr(indexer, "run_indexer", run_indexer)
    database = str(tmp_path / "edge.db")
    assert cli.main(["indexer", "--database", database]) == 0
    assert seen["database"] == database
    young, frozen = seen["state"]
    assert young == cli.GC_YOUNG_THRESHOLD
    assert frozen > 0
