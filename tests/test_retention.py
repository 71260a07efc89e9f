"""Retention: old events leave the store once nothing is pending for them; pending ones stay."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from edge.app import create_app
from edge.errors import ConfigError, StoreError
from edge.retention import DAY_SECONDS, Retention
from edge.settings import DEFAULT_RETENTION_DAYS, parse
from edge.store import Attempt, Decision, Purged, Settlement
from edge.store import sqlite as sqlite_store

from .support import (
    API_KEY,
    QUEUED_FOR_META,
    base_config,
    index,
    journaled,
    opened_store,
    stored_event,
    to_toml,
    wait_until,
)

NOW = 1_800_000_000.0
OLD = NOW - 40 * DAY_SECONDS
YOUNG = NOW - DAY_SECONDS
CUTOFF = NOW - 30 * DAY_SECONDS
QUEUED = QUEUED_FOR_META
SKIPPED = [Decision("meta", "skipped", "consent"), Decision("tiktok", "skipped", "consent")]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


event = stored_event


def attempt(at: float) -> Attempt:
    return Attempt("meta", at, 1, 200, "sent", "", 12.0)


@pytest.mark.anyio
async def test_a_pass_deletes_old_settled_events_and_keeps_what_is_pending(
    tmp_path: Path,
) -> None:
    async with opened_store(tmp_path / "s.db") as store:
        await store.append(
            [
                (event("old-sent", OLD), QUEUED),
                (event("old-dead", OLD + 1), QUEUED),
                (event("old-skipped", OLD + 2), SKIPPED),
                (event("old-pending", OLD + 3), QUEUED),
                (event("young-sent", YOUNG), QUEUED),
                (event("young-skipped", YOUNG + 1), SKIPPED),
            ]
        )
        await store.settle(
            "meta",
            [
                Settlement("old-sent", "sent", "", 1),
                Settlement("old-dead", "dead", "rejected: bad", 1),
                Settlement("old-pending", "pending", "retry: http 500", 1, next_at=NOW),
                Settlement("young-sent", "sent", "", 1),
            ],
        )
        for at in (OLD, OLD + 5, YOUNG):
            await store.record_attempt(attempt(at))

        assert await store.purge(CUTOFF) == Purged(events=3, deliveries=6, attempts=2)

        for gone in ("old-sent", "old-dead", "old-skipped"):
            assert await store.get_event(gone) is None
            assert await store.deliveries(gone) == []
        for kept in ("old-pending", "young-sent", "young-skipped"):
            assert await store.get_event(kept) is not None
        assert [r.status for r in await store.deliveries("old-pending")] == ["pending", "skipped"]
        assert [a.at for a in await store.attempts("meta")] == [YOUNG]
        assert await store.counts() == {
            "meta": {"pending": 1, "sent": 1, "skipped": 1},
            "tiktok": {"skipped": 3},
        }

        # Settled at last, the old event goes on the next pass; then there is nothing left.
        await store.settle("meta", [Settlement("old-pending", "sent", "", 2)])
        assert await store.purge(CUTOFF) == Purged(events=1, deliveries=2, attempts=0)
        assert await store.get_event("old-pending") is None
        assert await store.purge(CUTOFF) == Purged()


@pytest.mark.anyio
async def test_a_pass_goes_through_every_chunk_up_to_the_first_young_event(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_store, "PURGE_CHUNK", 2)
    async with opened_store(tmp_path / "s.db") as store:
        old = [(event(f"old-{i}", OLD + i), SKIPPED if i % 3 else QUEUED) for i in range(7)]
        await store.append([*old, (event("young", YOUNG), SKIPPED)])
        for i in range(5):
            await store.record_attempt(attempt(OLD + i))
        await store.record_attempt(attempt(YOUNG))

        # old-0, old-3 and old-6 are pending: kept; the four others span three chunks
        assert await store.purge(CUTOFF) == Purged(events=4, deliveries=8, attempts=5)
        assert [e for e in ("old-0", "old-3", "old-6", "young") if await store.get_event(e)] == [
            "old-0",
            "old-3",
            "old-6",
            "young",
        ]
        assert [a.at for a in await store.attempts("meta")] == [YOUNG]


@pytest.mark.anyio
async def test_a_dead_letter_replayed_from_the_dashboard_is_kept(tmp_path: Path) -> None:
    """Dead letters stay replayable for the window; once replayed, the event is pending."""
    async with opened_store(tmp_path / "s.db") as store:
        await store.append([(event("replayed", OLD), QUEUED), (event("dead", OLD + 1), QUEUED)])
        await store.settle(
            "meta",
            [
                Settlement("replayed", "dead", "rejected", 1),
                Settlement("dead", "dead", "rejected", 1),
            ],
        )
        assert await store.requeue("meta", ["replayed"], NOW) == 1
        assert await store.purge(CUTOFF) == Purged(events=1, deliveries=2, attempts=0)
        assert await store.get_event("replayed") is not None
        assert await store.get_event("dead") is None


@pytest.mark.anyio
async def test_a_journaled_store_purges_what_its_indexer_filed(tmp_path: Path) -> None:
    database = tmp_path / "s.db"
    async with journaled(database) as store:
        await store.append([(event("old", OLD), SKIPPED), (event("young", YOUNG), SKIPPED)])
        assert index(database) == 2
        assert await store.purge(CUTOFF) == Purged(events=1, deliveries=2, attempts=0)
        assert await store.get_event("old") is None
        assert await store.get_event("young") is not None


class RecordingStore:
    def __init__(self, failures: int = 0) -> None:
        self.calls: list[float] = []
        self.failures = failures

    async def purge(self, before: float) -> Purged:
        self.calls.append(before)
        if len(self.calls) <= self.failures:
            raise StoreError("database is locked")
        return Purged(events=2, deliveries=4, attempts=1)


@pytest.mark.anyio
async def test_a_pass_deletes_what_is_older_than_the_window(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = RecordingStore()
    retention = Retention(store, 7, clock=lambda: NOW)  # type: ignore[arg-type]
    with caplog.at_level(logging.INFO, logger="capi_edge.retention"):
        assert await retention.run_once() == Purged(2, 4, 1)
    assert store.calls == [NOW - 7 * DAY_SECONDS]
    assert "deleted 2 events (4 deliveries) and 1 attempts older than 7 days" in caplog.text


@pytest.mark.anyio
async def test_passes_repeat_and_a_failed_one_does_not_stop_them(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = RecordingStore(failures=1)
    retention = Retention(store, 30, first_delay=0, interval=0.01)  # type: ignore[arg-type]
    with caplog.at_level(logging.ERROR, logger="capi_edge.retention"):
        retention.start()
        for _ in range(200):
            if len(store.calls) >= 3:
                break
            await asyncio.sleep(0.01)
        await retention.stop()
    assert len(store.calls) >= 3
    assert "retention pass failed (database is locked)" in caplog.text
    calls = len(store.calls)
    await asyncio.sleep(0.05)
    assert len(store.calls) == calls  # stopped


def test_a_window_of_zero_days_is_refused() -> None:
    with pytest.raises(ValueError, match="more than 0 days"):
        Retention(RecordingStore(), 0)  # type: ignore[arg-type]


def test_the_edge_runs_retention_on_its_store(tmp_path: Path) -> None:
    clock = [NOW]
    settings = parse(
        to_toml(base_config(str(tmp_path / "edge.db"), server={"retention_days": 7})),
        base=tmp_path,
    )
    app = create_app(settings, clock=lambda: clock[0], dispatch=False)
    retention = app.state.retention
    assert isinstance(retention, Retention) and retention.days == 7
    retention.first_delay, retention.interval = 0.0, 0.02
    auth = {"Authorization": f"Bearer {API_KEY}"}
    with TestClient(app, base_url="https://t.shop.example") as client:
        stored = client.post(
            "/v1/events", json={"event": "purchase", "event_id": "e-1"}, headers=auth
        )
        assert stored.status_code == 200
        assert client.get("/v1/events/e-1", headers=auth).status_code == 200
        clock[0] = NOW + 8 * DAY_SECONDS  # consent denied by default: nothing is pending
        wait_until(lambda: client.get("/v1/events/e-1", headers=auth).status_code == 404)


def test_settings_take_a_retention_window_or_zero(tmp_path: Path) -> None:
    def settings(**server: object):  # type: ignore[no-untyped-def]
        return parse(to_toml(base_config(str(tmp_path / "e.db"), server=server)), base=tmp_path)

    assert settings().retention_days == DEFAULT_RETENTION_DAYS == 30
    assert settings(retention_days=0).retention_days == 0
    assert settings(retention_days=90).retention_days == 90
    for too_short in (3, -1):
        with pytest.raises(ConfigError, match=r"server\.retention_days: must be 0 .* at least 7"):
            settings(retention_days=too_short)


def test_an_edge_with_retention_off_runs_none(tmp_path: Path) -> None:
    settings = parse(
        to_toml(base_config(str(tmp_path / "edge.db"), server={"retention_days": 0})),
        base=tmp_path,
    )
    assert create_app(settings, dispatch=False).state.retention is None
