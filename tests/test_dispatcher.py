"""The dispatcher's batching: a full batch is gathered in chunks and still leaves as one."""

from __future__ import annotations

import random
from pathlib import Path

import httpx
import pytest

from edge.dispatcher import CLAIM_CHUNK, DestinationWorker
from edge.oauth import TokenCache
from edge.schema import StoredEvent
from edge.settings import Settings
from edge.store import Decision
from edge.store.sqlite import SQLiteStore
from tags import TAGS


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def event(i: int, t: float) -> StoredEvent:
    return StoredEvent(event="purchase", event_id=f"e{i:05}", time=int(t) - i, received_at=t)


@pytest.mark.anyio
async def test_a_batch_bigger_than_a_claim_chunk_is_gathered_whole(
    tmp_path: Path, make_settings
) -> None:
    settings: Settings = make_settings()
    meta = settings.destinations["meta"]
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
        worker = DestinationWorker(
            meta,
            TAGS["meta"],
            store,
            client,
            settings.dispatch,
            lambda: now,
            random.Random(0),
            TokenCache(lambda: now),
        )
        batch = await worker._claim()
        # one batch, every due event, oldest event time first, as one claim would give it
        assert len(batch) == count
        assert [c.event.event_id for c in batch] == [f"e{i:05}" for i in reversed(range(count))]
        assert await worker._claim() == []  # all leased
    finally:
        await client.aclose()
        await store.close()
