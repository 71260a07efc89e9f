"""Routing: for each configured destination, send or skip, with the reason kept.

The order of the checks decides which reason a skip shows: bot traffic, the destination's
routing rules, consent (GPC, TCF, Consent Mode: ``edge.consent``), the event-name map, and
last the platform's own prerequisites (a tag's ``skip_reason``, e.g. ``no click id``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from edge.consent import ConsentNeeds, ConsentPolicy, is_refusal
from edge.rules import Rules, rule_problem
from edge.schema import StoredEvent
from edge.settings import DestinationSettings
from edge.store import Decision
from tags.base import Destination, TagSpec

REASON_QUEUED = "queued"
REASON_BOT = "bot"
PlatformRule = Callable[[StoredEvent, Destination], str | None]


# Delivery states as ``GET /v1/events/{id}`` names them: what happened, not how it is stored.
API_STATUS: Mapping[str, str] = MappingProxyType(
    {
        "pending": "pending",
        "sent": "sent",
        "skipped": "skipped",
        "dead": "failed",
        "cancelled": "skipped",
    }
)


def api_status(status: str) -> str:
    return API_STATUS.get(status, status)


@dataclass(frozen=True, slots=True)
class Target:
    """A destination as routing reads it for every event, looked up once (``targets``)."""

    dest: DestinationSettings
    name: str
    spec: TagSpec
    destination: Destination
    queued: Decision  # immutable: one shared by every event queued for this destination
    consent: ConsentNeeds
    rules: Rules | None  # the dashboard's routing rules, None when there are none
    platform_rule: PlatformRule | None  # the tag's own ``skip_reason``, if it has one


def targets(destinations: Iterable[DestinationSettings]) -> list[Target]:
    return [
        Target(
            dest,
            dest.name,
            dest.spec,
            dest.destination,
            Decision(dest.name, "pending", REASON_QUEUED),
            ConsentNeeds(
                tuple(sorted(dest.consent)),
                honours_gpc=dest.spec.honours_gpc,
                gpc_mode=dest.gpc_mode,
                ldu_capable=dest.destination.options.get("gpc_mode") == "ldu",
                tcf_vendor=dest.spec.tcf_vendor_id,
                tcf_purposes=dest.spec.tcf_purposes,
            ),
            None if dest.rules.empty else dest.rules,
            getattr(dest.tag, "skip_reason", None),
        )
        for dest in destinations
    ]


def route(
    event: StoredEvent, destinations: Iterable[Target], consent: ConsentPolicy | str
) -> list[Decision]:
    if isinstance(consent, str):
        consent = ConsentPolicy(default=consent)  # once, not per destination
    decisions = []
    for target in destinations:
        reason = _skip_reason(event, target, consent)
        if reason is None:
            decisions.append(target.queued)
        else:
            decisions.append(Decision(target.name, "skipped", reason))
    return decisions


def withdrawn(decisions: Sequence[Decision]) -> frozenset[str]:
    """Destinations this hit explicitly refuses: what the visitor still has queued for them
    is cancelled (``consent withdrawn``)."""
    return frozenset(
        [d.destination for d in decisions if d.status == "skipped" and is_refusal(d.reason)]
    )


def skip_reason(
    event: StoredEvent, dest: DestinationSettings, consent: ConsentPolicy | str
) -> str | None:
    (target,) = targets([dest])
    if isinstance(consent, str):
        consent = ConsentPolicy(default=consent)
    return _skip_reason(event, target, consent)


def _skip_reason(event: StoredEvent, target: Target, consent: ConsentPolicy) -> str | None:
    if event.client.is_bot:
        return REASON_BOT
    problem = target.consent.problem(event, consent)
    if problem:
        return problem
    # Rules after consent: a refusal must be seen (and withdraw) whatever the rules say.
    # -- dashboard routing rules (edge/rules.py): "filtered by rule: ..." --
    filtered = rule_problem(event, target.rules) if target.rules is not None else None
    if filtered:
        return filtered
    if target.destination.platform_event(target.spec, event.event) is None:
        return f"unmapped event: {event.event}"
    if target.platform_rule is not None:
        return target.platform_rule(event, target.destination)
    return None
