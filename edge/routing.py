"""Routing: for each configured destination, send or skip, with the reason kept."""

from __future__ import annotations

from collections.abc import Iterable

from edge.consent import consent_problem
from edge.schema import StoredEvent
from edge.settings import DestinationSettings
from edge.store import Decision

REASON_QUEUED = "queued"
REASON_BOT = "bot"


def route(
    event: StoredEvent, destinations: Iterable[DestinationSettings], consent_default: str
) -> list[Decision]:
    decisions = []
    for dest in destinations:
        reason = skip_reason(event, dest, consent_default)
        if reason is None:
            decisions.append(Decision(dest.name, "pending", REASON_QUEUED))
        else:
            decisions.append(Decision(dest.name, "skipped", reason))
    return decisions


def skip_reason(event: StoredEvent, dest: DestinationSettings, consent_default: str) -> str | None:
    spec = dest.spec
    if event.client.is_bot:
        return REASON_BOT
    problem = consent_problem(
        event,
        dest.consent,
        consent_default,
        honours_gpc=spec.honours_gpc,
        gpc_allowed=dest.destination.options.get("gpc_mode") == "ldu",
    )
    if problem:
        return problem
    if dest.destination.platform_event(spec, event.event) is None:
        return f"unmapped event: {event.event}"
    platform_rule = getattr(dest.tag, "skip_reason", None)
    if platform_rule is not None:
        return platform_rule(event, dest.destination)  # type: ignore[no-any-return]
    return None
