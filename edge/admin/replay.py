"""Replaying dead letters: each is checked again before it goes back to the outbox.

A dead delivery is sent again only if it still could be: the destination is connected and
running, the event is inside the platform's freshness window (with a margin for the time
the send takes), routing (consent, rules, event-name mapping, the platform's prerequisites)
still says send, and the tag builds it without refusing it. Those that pass go back to
pending with their attempts counted from zero and the worker is woken; the rest stay dead
and the dashboard says why, grouped by reason.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from edge.routing import skip_reason

if TYPE_CHECKING:
    from .app import Admin

FRESHNESS_MARGIN_SECONDS = 300  # do not requeue what would expire before it can be sent


@dataclass
class Outcome:
    replayed: int = 0
    refused: Counter[str] = field(default_factory=Counter)

    def merge(self, other: Outcome) -> None:
        self.replayed += other.replayed
        self.refused.update(other.refused)

    def message(self) -> str:
        parts = [f"{self.replayed} event(s) queued again"]
        if self.refused:
            why = "; ".join(f"{n} × {reason}" for reason, n in self.refused.most_common(5))
            parts.append(f"{sum(self.refused.values())} not replayable ({why})")
        return ", ".join(parts) + "."

    def as_json(self) -> dict[str, Any]:
        return {"replayed": self.replayed, "refused": dict(self.refused)}


async def replay(admin: Admin, name: str, event_ids: Sequence[str]) -> Outcome:
    outcome = Outcome()
    dest = admin.registry.active.get(name)
    if dest is None or name not in admin.dispatcher.workers:
        outcome.refused[f"{name} is not connected or switched off"] += len(event_ids)
        return outcome
    spec = dest.spec
    now = admin.clock()
    window = spec.limits.freshness_seconds - FRESHNESS_MARGIN_SECONDS
    ready = []
    for event_id in dict.fromkeys(event_ids):
        event = await admin.store.get_event(event_id)
        if event is None:
            outcome.refused["the event is no longer stored"] += 1
            continue
        if now - event.time > window:
            outcome.refused[f"older than {spec.title}'s freshness window"] += 1
            continue
        reason = skip_reason(event, dest, admin.settings.consent)  # as collect routes
        if reason is not None:
            outcome.refused[reason] += 1
            continue
        try:
            built = dest.tag.build([event], dest.destination)
        except Exception as err:  # a tag that cannot build it now will not later either
            outcome.refused[f"cannot be built: {type(err).__name__}"] += 1
            continue
        refused = next((b.rejected[event_id] for b in built if event_id in b.rejected), None)
        if refused is not None:
            outcome.refused[f"rejected: {refused}"] += 1
            continue
        ready.append(event_id)
    if ready:
        outcome.replayed = await admin.store.requeue(name, ready, now)
        admin.dispatcher.notify([name])
    return outcome
