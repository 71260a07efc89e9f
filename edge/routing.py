"""Routing: for each configured destination, send or skip, with the reason kept.

The order of the checks decides which reason a skip shows: bot traffic, the destination's
routing rules, consent (GPC, TCF, Consent Mode: ``edge.consent``), the event-name map, and
last the platform's own prerequisites (a tag's ``skip_reason``, e.g. ``no click id``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from types import MappingProxyType

from edge.consent import ConsentPolicy, consent_problem, is_refusal
from edge.rules import rule_problem
from edge.schema import StoredEvent
from edge.settings import DestinationSettings
from edge.store import Decision

REASON_QUEUED = "queued"
REASON_BOT = "bot"


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


def route(
    event: StoredEvent,
    destinations: Iterable[DestinationSettings],
    consent: ConsentPolicy | str,
) -> list[Decision]:
    decisions = []
    for dest in destinations:
        reason = skip_reason(event, dest, consent)
        if reason is None:
            decisions.append(Decision(dest.name, "pending", REASON_QUEUED))
        else:
            decisions.append(Decision(dest.name, "skipped", reason))
    return decisions


def withdrawn(decisions: Sequence[Decision]) -> frozenset[str]:
    """Destinations this hit explicitly refuses: what the visitor still has queued for them
    is cancelled (``consent withdrawn``)."""
    return frozenset(
        d.destination for d in decisions if d.status == "skipped" and is_refusal(d.reason)
    )


def skip_reason(
    event: StoredEvent, dest: DestinationSettings, consent: ConsentPolicy | str
) -> str | None:
    spec = dest.spec
    if event.client.is_bot:
        return REASON_BOT
    problem = consent_problem(
        event,
        dest.consent,
        consent,
        honours_gpc=spec.honours_gpc,
        gpc_mode=dest.gpc_mode,
        ldu_capable=dest.destination.options.get("gpc_mode") == "ldu",
        tcf_vendor=spec.tcf_vendor_id,
        tcf_purposes=spec.tcf_purposes,
    )
    if problem:
        return problem
    # Rules after consent: a refusal must be seen (and withdraw) whatever the rules say.
    # -- dashboard routing rules (edge/rules.py): "filtered by rule: ..." --
    filtered = rule_problem(event, dest.rules)
    if filtered:
        return filtered
    if dest.destination.platform_event(spec, event.event) is None:
        return f"unmapped event: {event.event}"
    platform_rule = getattr(dest.tag, "skip_reason", None)
    if platform_rule is not None:
        return platform_rule(event, dest.destination)  # type: ignore[no-any-return]
    return None
