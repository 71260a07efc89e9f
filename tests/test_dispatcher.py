"""The dispatcher's batching: a full batch is gathered in chunks and still leaves as one,
and building it does not hold up the event loop."""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from edge.dispatcher import CLAIM_CHUNK, DestinationWorker
from edge.oauth import TokenCache
from edge.schema import StoredEvent
from edge.settings import Settings
from edge.store import Decision
from edge.store.sqlite import SQLiteStore
from tags import TAGS
from tests.tags.events import purchase


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def event(i: int, t: float) -> StoredEvent:
    return StoredEvent(event="purchase", event_id=f"e{i:05}", time=int(t) - i, received_at=t)


def meta_worker(
    settings: Settings, store: SQLiteStore, client: httpx.AsyncClient, now: float
) -> DestinationWorker:
    """Meta's worker on a fixed clock."""
    return DestinationWorker(
        settings.destinations["meta"],
        TAGS["meta"],
        store,
        client,
        settings.dispatch,
        lambda: now,
        random.Random(0),
        TokenCache(lambda: now),
    )


@pytest.mark.anyio
async def test_a_batch_bigger_than_a_claim_chunk_is_gathered_whole(
    tmp_path: Path, make_settings
) -> None:
    settings: Settings = make_settings()
    limit = TAGS["meta"].SPEC.limits.max_batch_events
    assert limit > CLAIM_CHUNK * 2
    store = SQLiteStore(tmp_path / "s.db")
    await store.open()
    client = httpx.AsyncClient()
    try:
        now = 1_763_900_000.0
        count = CLAIM_CHUNK * 2 + 13
        await store.append(
            [(event(i, now), [Decision("meta", "pending", "queued")]) for i in range(count)]
        )
        worker = meta_worker(settings, store, client, now)
        batch = await worker._claim()
        # one batch, every due event, oldest event time first, as one claim would give it
        assert len(batch) == count
        assert [c.event.event_id for c in batch] == [f"e{i:05}" for i in reversed(range(count))]
        assert await worker._claim() == []  # all leased
    finally:
        await client.aclose()
        await store.close()


@pytest.mark.anyio
async def test_building_a_batch_leaves_the_event_loop_free(
    tmp_path: Path, make_settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Normalizing and hashing a full batch takes a while; hits are answered meanwhile."""
    meta_tag = TAGS["meta"]
    real = meta_tag.build

    def slow_build(*args: Any) -> Any:
        time.sleep(0.3)  # stands in for a thousand purchases' PII
        return real(*args)

    monkeypatch.setattr(meta_tag, "build", slow_build)
    settings: Settings = make_settings()
    now = 1_763_900_000.0
    store = SQLiteStore(tmp_path / "s.db")
    await store.open()
    answer = httpx.Response(200, json={"events_received": 1, "fbtrace_id": "trace"})
    client = httpx.AsyncClient(transport=httpx.MockTransport(lambda request: answer))
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    ticking = asyncio.ensure_future(ticker())
    try:
        full = msgspec.structs.replace(
            purchase(), event_id="e00001", time=int(now) - 1, received_at=now
        )
        await store.append([(full, [Decision("meta", "pending", "queued")])])
        worker = meta_worker(settings, store, client, now)
        await worker._drain()
        while worker.tasks:
            await asyncio.gather(*list(worker.tasks))
        (row,) = [r for r in await store.deliveries("e00001") if r.destination == "meta"]
        assert row.status == "sent", row.reason
        assert ticks >= 15  # the loop went on during the 0.3 s build (held up: once)
    finally:
        ticking.cancel()
        await client.aclose()
        await store.close()
