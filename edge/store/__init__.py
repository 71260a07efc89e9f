"""The durable store: outbox, delivery states and attempts behind one interface.

``SQLiteStore`` (embedded, WAL, group commit) is the default. A distributed implementation
shares the same interface: ``claim`` hands out leases, so several processes can drain one
outbox without sending an event twice at once, and a crashed holder's lease simply expires.

Delivery states, per (event, destination):

    pending ──send──> sent
       │  └─retry──> pending (next_at later, attempts + 1)
       ├──────────> dead       (rejected, expired, or out of attempts; replayable)
       └──────────> cancelled  (consent withdrawn before sending)
    skipped                    (never queued: consent, unmapped event, bot, …)

``GET /v1/events/{id}`` shows ``dead`` as ``failed`` and ``cancelled`` as ``skipped`` (with
the reason ``consent withdrawn``): see ``edge.routing.API_STATUS``.

Privacy duties of every implementation: the stored event body never holds the full client
IP (``append`` strips ``client.ip``; ``client.ip_truncated`` stays); the full IP is kept
beside the event only while one of its deliveries is pending, and put back on the events
``claim`` hands out. ``cancel_pending`` finds events by the visitor key
(``edge.identity.visitor_key``) they were filed under.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from edge.schema import StoredEvent

Status = Literal["pending", "sent", "skipped", "dead", "cancelled"]
FINAL_STATUSES = ("sent", "skipped", "dead", "cancelled")


@dataclass(frozen=True, slots=True)
class Decision:
    """What routing decided for one destination when the event arrived."""

    destination: str
    status: Literal["pending", "skipped"]
    reason: str


@dataclass(frozen=True, slots=True)
class Claimed:
    event: StoredEvent
    attempts: int


@dataclass(frozen=True, slots=True)
class Settlement:
    """The new state of one delivery after an attempt (or a decision not to attempt)."""

    event_id: str
    status: Status
    reason: str
    attempts: int
    next_at: float = 0.0


@dataclass(frozen=True, slots=True)
class DeliveryRow:
    event_id: str
    destination: str
    status: Status
    reason: str
    attempts: int
    next_at: float
    updated_at: float


@dataclass(frozen=True, slots=True)
class Attempt:
    destination: str
    at: float
    events: int
    http_status: int | None
    verdict: str
    reason: str
    latency_ms: float


@dataclass(frozen=True, slots=True)
class Purged:
    """What one retention pass deleted (``Store.purge``)."""

    events: int = 0
    deliveries: int = 0
    attempts: int = 0


class Store(Protocol):
    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def append(self, items: Sequence[tuple[StoredEvent, Sequence[Decision]]]) -> list[bool]:
        """Store events and their routing decisions durably; True where the event is new.

        Returns only after the data is committed. A repeated event_id is not stored again.
        """
        ...

    async def claim(
        self, destination: str, limit: int, now: float, lease_seconds: float
    ) -> list[Claimed]: ...

    async def settle(self, destination: str, settlements: Sequence[Settlement]) -> None:
        """Record outcomes. A cancelled delivery is never set back to pending."""
        ...

    async def cancel_pending(
        self, visitors: Sequence[str], destinations: Sequence[str], reason: str, now: float
    ) -> int:
        """Cancel pending deliveries to ``destinations`` of events filed under any of
        ``visitors`` (a consent withdrawal); returns how many."""
        ...

    async def record_attempt(self, attempt: Attempt) -> None: ...

    async def deliveries(self, event_id: str) -> list[DeliveryRow]: ...

    async def counts(self) -> dict[str, dict[str, int]]:
        """destination -> status -> number of deliveries."""
        ...

    async def get_event(self, event_id: str) -> StoredEvent | None: ...

    async def purge(self, before: float) -> Purged:
        """Delete events received before ``before`` none of whose deliveries is pending,
        with their deliveries, and attempts recorded before it (``edge.retention``). An
        event still pending is kept, however old, until it is settled."""
        ...


__all__ = [
    "FINAL_STATUSES",
    "Attempt",
    "Claimed",
    "Decision",
    "DeliveryRow",
    "Purged",
    "Settlement",
    "Status",
    "Store",
]
