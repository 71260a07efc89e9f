"""Routing rules: which events a destination wants, set per destination in the config.

    [destinations.meta]
    rules = { events = ["purchase", "lead"], min_value = 10 }

* ``events``: only these (neutral) event names go to the destination;
* ``exclude_events``: these never do;
* ``min_value``: events that carry ``data.value`` go only when the value reaches this
  threshold (events without a value, such as ``page_view``, are not filtered by it: combine
  with ``events`` to send only valuable purchases).

A filtered event is skipped with a reason that starts ``filtered by rule:`` so
``GET /v1/events/{id}``, the debug view and the dashboard say why it did not go.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from edge.schema import StoredEvent

RULE_KEYS = ("events", "exclude_events", "min_value")
REASON_PREFIX = "filtered by rule: "


@dataclass(frozen=True, slots=True)
class Rules:
    events: frozenset[str] | None = None  # None: every event
    exclude_events: frozenset[str] = frozenset()
    min_value: float | None = None

    @property
    def empty(self) -> bool:
        return self.events is None and not self.exclude_events and self.min_value is None

    def as_config(self) -> dict[str, Any]:
        """The TOML table that parses back into these rules."""
        table: dict[str, Any] = {}
        if self.events is not None:
            table["events"] = sorted(self.events)
        if self.exclude_events:
            table["exclude_events"] = sorted(self.exclude_events)
        if self.min_value is not None:
            table["min_value"] = self.min_value
        return table


NO_RULES = Rules()


def parse_rules(raw: object) -> tuple[Rules, list[tuple[str, str]]]:
    """Rules from a config table, and (key, message) for every problem found."""
    if not isinstance(raw, Mapping):
        return NO_RULES, [("", 'must be a table such as { events = ["purchase"] }')]
    problems: list[tuple[str, str]] = []
    for key in raw:
        if key not in RULE_KEYS:
            problems.append((f".{key}", f"unknown rule; rules take {', '.join(RULE_KEYS)}"))

    def names(key: str) -> frozenset[str] | None:
        value = raw.get(key)
        if value is None:
            return None
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            problems.append((f".{key}", "must be a list of event names"))
            return None
        return frozenset(value)

    min_value = raw.get("min_value")
    if min_value is not None and (
        isinstance(min_value, bool) or not isinstance(min_value, int | float) or min_value < 0
    ):
        problems.append((".min_value", "must be a number >= 0"))
        min_value = None
    rules = Rules(
        events=names("events"),
        exclude_events=names("exclude_events") or frozenset(),
        min_value=float(min_value) if min_value is not None else None,
    )
    return rules, problems


def rule_problem(event: StoredEvent, rules: Rules) -> str | None:
    """Why the destination's rules filter this event out, or None when it may go."""
    if rules.empty:
        return None
    if rules.events is not None and event.event not in rules.events:
        return f"{REASON_PREFIX}{event.event} is not in events"
    if event.event in rules.exclude_events:
        return f"{REASON_PREFIX}{event.event} is in exclude_events"
    value = event.data.value
    if rules.min_value is not None and value is not None and value < rules.min_value:
        return f"{REASON_PREFIX}value {value:g} is below min_value {rules.min_value:g}"
    return None
