"""The consent gate: may this event go to this destination, and may we write ad cookies?

Signals, strongest first (the full matrix is in docs/consent.md):

* **Global Privacy Control** (the loader's flag or the ``Sec-GPC: 1`` header) is an opt-out
  of sale/sharing. Ad platforms skip the event (``gpc``), or, where the region's policy or
  the destination says ``ldu``, send it with the platform's Limited Data Use flags.
* **IAB TCF v2.2**: a TC string (the loader reads ``__tcfapi``; backends send ``tcf``) is
  checked per destination: its purposes, and for a registered TCF vendor its vendor signal
  (``edge.tcf``). A TC string present means GDPR applies.
* **Google Consent Mode v2**: each destination needs the purposes its spec lists
  (overridable with ``consent = [...]``). A TC string implies signals too (Google's own
  mapping): they fill the ones the site did not send, and a refusal there overrides a
  grant here. A purpose still unknown counts as the visitor's region default
  (``[consent.regions]``), else ``[consent] default``.

Reasons are stable strings: they are what ``GET /v1/events/{id}`` and the dashboard show.
An explicit refusal (``... denied``, a ``tcf:`` refusal, ``gpc``) also withdraws consent
for what that visitor still has queued; a signal that is merely missing does not.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import msgspec

from edge import tcf
from edge.schema import Consent, StoredEvent

AD_COOKIE_PURPOSE = "ad_storage"
REASON_GPC = "gpc"
REASON_WITHDRAWN = "consent withdrawn"
# The European Economic Area: the 27 EU member states, Iceland, Liechtenstein, Norway.
EEA = frozenset(
    "AT BE BG HR CY CZ DK EE FI FR DE GR HU IE IT LV LT LU MT NL PL PT RO SK SI ES SE "
    "IS LI NO".split()
)
AREA_GROUPS: Mapping[str, frozenset[str]] = MappingProxyType(
    {"EEA": EEA, "EU": EEA - {"IS", "LI", "NO"}}
)
# US states where Meta applies Limited Data Use to its Business Tools (Meta's DPO pages,
# 2024-08) - all of them also have, or are about to have, a duty to honour GPC.
META_LDU_STATES = ("US-CA", "US-CO", "US-CT", "US-FL", "US-TX", "US-OR", "US-MT")


@dataclass(frozen=True, slots=True)
class Region:
    """What applies to visitors located in ``areas``."""

    name: str
    areas: frozenset[str]  # ISO 3166-1 countries ("DE") and 3166-2 subdivisions ("US-CA")
    default: str  # a Consent Mode signal the site did not send counts as this
    gpc: str  # "skip", "ldu" (send with Limited Data Use where the platform has it), "ignore"


# Used when a [geo] database is configured and the config has no [consent.regions].
BUILTIN_REGIONS: tuple[Region, ...] = (
    Region("eea_uk_ch", EEA | {"GB", "CH"}, "denied", "skip"),
    Region("us_ldu_states", frozenset(META_LDU_STATES), "granted", "ldu"),
    Region("us", frozenset({"US"}), "granted", "skip"),
)


@dataclass(frozen=True, slots=True)
class ConsentPolicy:
    """The defaults: global, and per region of the visitor (when geolocation knows it)."""

    default: str = "denied"
    gpc: str = "skip"
    regions: tuple[Region, ...] = ()
    _index: Mapping[str, Region] = field(init=False, compare=False, repr=False)
    _fallback: Region = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        index = {area: region for region in self.regions for area in region.areas}
        object.__setattr__(self, "_index", MappingProxyType(index))
        object.__setattr__(
            self, "_fallback", Region("default", frozenset(), self.default, self.gpc)
        )

    def region(self, country: str | None, subdivision: str | None) -> Region:
        """The most specific rule for a location: subdivision, then country, then global."""
        if subdivision and subdivision in self._index:
            return self._index[subdivision]
        if country and country in self._index:
            return self._index[country]
        return self._fallback


def expand_areas(areas: Iterable[str]) -> frozenset[str]:
    expanded: set[str] = set()
    for area in areas:
        expanded |= AREA_GROUPS.get(area.upper(), {area.upper()})
    return frozenset(expanded)


def purpose_state(consent: Consent, purpose: str, default: str) -> str:
    value: str | None = getattr(consent, purpose)
    return value if value is not None else default


def with_tcf(consent: Consent, tc_string: str | None) -> Consent:
    """Consent Mode signals combined with those a TC string implies (Google's mapping).

    A signal the site did not send takes the TC string's value; where both speak, a
    refusal from either wins (deny by default), so a "denied" is never turned into
    "granted" and a CMP's TCF refusal is not overruled by a stale Consent Mode grant.
    """
    if not tc_string:
        return consent
    implied = tcf.consent_mode(tc_string)
    changes = {
        purpose: value
        for purpose, value in implied.items()
        if getattr(consent, purpose) is None or value == "denied"
    }
    return msgspec.structs.replace(consent, **changes) if changes else consent


def policy_region(event: StoredEvent, policy: ConsentPolicy) -> Region:
    return policy.region(event.client.country, event.client.region)


def consent_problem(
    event: StoredEvent,
    required: frozenset[str],
    policy: ConsentPolicy | str,
    *,
    honours_gpc: bool,
    gpc_mode: str | None = None,
    ldu_capable: bool = False,
    tcf_vendor: int | None = None,
    tcf_purposes: frozenset[int] = frozenset(),
) -> str | None:
    """Why consent forbids sending this event to a destination, or None when it may go.

    ``gpc_mode`` is the destination's own setting (None: the region decides);
    ``ldu_capable`` says whether the destination can send with Limited Data Use.
    """
    if isinstance(policy, str):
        policy = ConsentPolicy(default=policy)
    needs = ConsentNeeds(
        tuple(sorted(required)), honours_gpc, gpc_mode, ldu_capable, tcf_vendor, tcf_purposes
    )
    return needs.problem(event, policy)


@dataclass(frozen=True, slots=True)
class ConsentNeeds:
    """What a destination needs from consent: ``consent_problem``'s arguments, which routing
    builds once per destination rather than per event."""

    required: tuple[str, ...]  # Consent Mode purposes, sorted: the first missing one is named
    honours_gpc: bool
    gpc_mode: str | None = None
    ldu_capable: bool = False
    tcf_vendor: int | None = None
    tcf_purposes: frozenset[int] = frozenset()

    def problem(self, event: StoredEvent, policy: ConsentPolicy) -> str | None:
        if self.honours_gpc and event.gpc:
            mode = self.gpc_mode or policy_region(event, policy).gpc
            if mode == "skip" or (mode == "ldu" and not self.ldu_capable):
                return REASON_GPC
        if event.tcf and (self.tcf_purposes or self.tcf_vendor is not None):
            tc = tcf.parse(event.tcf)
            if isinstance(tc, str):
                return tc
            problem = tcf.vendor_problem(tc, self.tcf_vendor, self.tcf_purposes)
            if problem:
                return problem
        for purpose in self.required:
            value = getattr(event.consent, purpose)
            # the region only matters for a signal the site did not send
            if value is None and policy_region(event, policy).default != "granted":
                return f"consent: {purpose} not given"
            if value == "denied":
                return f"consent: {purpose} denied"
        return None


def is_refusal(reason: str) -> bool:
    """Whether a skip reason is the visitor's explicit refusal (which withdraws consent)."""
    return (
        reason == REASON_GPC
        or (reason.startswith("consent: ") and reason.endswith(" denied"))
        or reason.startswith(("tcf: purpose", "tcf: vendor"))
    )


def may_write_ad_cookies(consent: Consent, gpc: bool, default: str | Region) -> bool:
    """Ad cookies (click IDs, _fbp, _ttp) need ad_storage, and nothing under GPC.

    A region whose policy ignores GPC lets the cookies be written under it.
    """
    region = default if isinstance(default, Region) else None
    if gpc and (region is None or region.gpc != "ignore"):
        return False
    fallback = region.default if region is not None else str(default)
    return purpose_state(consent, AD_COOKIE_PURPOSE, fallback) == "granted"


def refuses_ad_cookies(consent: Consent, gpc: bool) -> bool:
    """An explicit refusal of ad storage (or GPC): the edge forgets its backup too."""
    return gpc or consent.ad_storage == "denied"
