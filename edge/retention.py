"""Retention: the store keeps what it still needs, for ``[server] retention_days``.

An event body holds the visitor's raw PII (the tags hash it on the way out, not before), so
it should not outlive its use. Once an event is older than the window and none of its
deliveries is pending, it is deleted, with its deliveries. Attempts older than the window
go too. An event still pending is kept, however old, until it is sent, dead-lettered or
cancelled. Dead letters stay replayable from the dashboard for the whole window.

A pass runs a minute after start, then hourly, in small jobs (``edge.store.sqlite``), so hits
and the dispatcher's commits go on between them. SQLite reuses the pages freed, so the
database file stops growing once the window is full; it does not shrink.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from edge.errors import StoreError
from edge.store import Purged, Store

log = logging.getLogger("capi_edge.retention")

DAY_SECONDS = 86_400.0
FIRST_PASS_DELAY_SECONDS = 60.0  # after start: not in the way of a restart's backlog
PASS_INTERVAL_SECONDS = 3_600.0


class Retention:
    def __init__(
        self,
        store: Store,
        days: float,
        *,
        clock: Callable[[], float] = time.time,
        first_delay: float = FIRST_PASS_DELAY_SECONDS,
        interval: float = PASS_INTERVAL_SECONDS,
    ) -> None:
        if days <= 0:
            raise ValueError("retention needs a window of more than 0 days")
        self.store = store
        self.days = days
        self.clock = clock
        self.first_delay = first_delay
        self.interval = interval
        self._task: asyncio.Task[None] | None = None

    async def run_once(self) -> Purged:
        """Delete what the window no longer keeps; what was deleted."""
        before = self.clock() - self.days * DAY_SECONDS
        purged = await self.store.purge(before)
        if purged.events or purged.attempts:
            log.info(
                "retention: deleted %d events (%d deliveries) and %d attempts older than %g days",
                purged.events,
                purged.deliveries,
                purged.attempts,
                self.days,
            )
        return purged

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="retention")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        await asyncio.sleep(self.first_delay)
        while True:
            try:
                await self.run_once()
            except StoreError as err:  # a locked or full disk: the next pass tries again
                log.error("retention pass failed (%s); next pass in %g s", err, self.interval)
            except Exception:
                log.exception("retention pass failed; next pass in %g s", self.interval)
            await asyncio.sleep(self.interval)


__all__ = [
    "DAY_SECONDS",
    "FIRST_PASS_DELAY_SECONDS",
    "PASS_INTERVAL_SECONDS",
    "Retention",
]
