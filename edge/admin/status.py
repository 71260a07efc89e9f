"""Status pills and match quality, computed from the store and the dispatcher's live state.

**Recent** means the destination's last ``RECENT_ATTEMPTS`` requests within the last
``RECENT_WINDOW_SECONDS`` (attempts table), each weighted by the number of events it
carried; a request failed when its verdict was anything but ``delivered`` (retry,
throttled, rejected, split, setup, network errors). In this order:

* **OFF**: ``enabled = false``;
* **SETUP**: the stored table no longer validates (a variable went missing, say);
* **DROPPED**: paused by the platform (bad token, no permission), or more than half of the
  recent events failed, or the last ``DROPPED_STREAK`` requests all failed;
* **IDLE**: no request in the window (credentials valid, no events yet, or none lately);
* **DEGRADED**: at least ``DEGRADED_SHARE`` (5 %) of the recent events failed, or the most
  recent request did, or the OAuth refresh token runs out within
  ``edge.oauth.REFRESH_WARNING_SECONDS`` (30 days; only platforms that date it);
* **OK**: the most recent request succeeded and fewer than 5 % of recent events failed.

Card counts (delivered, failed, skipped, waiting) cover deliveries created in the last 24 h.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from edge.dispatcher import DestinationState
from edge.oauth import REFRESH_WARNING_SECONDS
from edge.schema import StoredEvent
from edge.store import Attempt
from tags.base import TagSpec

RECENT_ATTEMPTS = 50
RECENT_WINDOW_SECONDS = 24 * 3600
COUNTS_WINDOW_SECONDS = 24 * 3600
DEGRADED_SHARE = 0.05
DROPPED_SHARE = 0.5
DROPPED_STREAK = 3
QUALITY_SAMPLE = 500
DELIVERED = "delivered"

# Which browser pixel hands a destination's platform the shared event_id (loader's names).
PIXEL_OF = {
    "meta": "meta",
    "tiktok": "tiktok",
    "pinterest": "pinterest",
    "snapchat": "snapchat",
    "reddit": "reddit",
    "google_ads": "google",
    "ga4": "google",
    "linkedin": "linkedin",
}
# Browser-ID cookies are not click IDs: they say "this browser", not "came from an ad".
BROWSER_IDS = frozenset({"fbp", "ttp", "scid", "rdt_uuid", "ga_client_id", "ga_session_id"})


@dataclass(frozen=True, slots=True)
class Pill:
    label: str  # OK, DEGRADED, DROPPED, IDLE, OFF, SETUP
    detail: str
    failed_share: float | None = None

    @property
    def css(self) -> str:
        return self.label.lower()


def pill(
    attempts: Sequence[Attempt],
    state: DestinationState | None,
    now: float,
    *,
    enabled: bool = True,
    problems: Sequence[str] = (),
) -> Pill:
    """The pill for one destination; ``attempts`` are the recent ones, newest first."""
    found = _pill(attempts, state, now, enabled=enabled, problems=problems)
    ending = state.refresh_expires_at if state is not None else None
    if (
        found.label in ("OK", "IDLE")
        and ending is not None
        and ending - now <= REFRESH_WARNING_SECONDS
    ):
        days = max(0, int((ending - now) // 86_400))
        detail = (
            f"the OAuth refresh token runs out in {days} days: authorise the app again and set "
            f"the new refresh_token; {found.detail}"
        )
        return Pill("DEGRADED", detail, found.failed_share)
    return found


def _pill(
    attempts: Sequence[Attempt],
    state: DestinationState | None,
    now: float,
    *,
    enabled: bool,
    problems: Sequence[str],
) -> Pill:
    if not enabled:
        return Pill("OFF", "switched off (enabled = false)")
    if problems:
        return Pill("SETUP", problems[0])
    if state is not None and state.paused_until > now and state.pause_reason.startswith("setup"):
        return Pill("DROPPED", f"paused by the platform: {state.pause_reason}")
    if not attempts:
        tested = state is not None and state.last_test_ok_at is not None
        detail = "credentials valid, no events yet" if tested else "no events in the last 24 h"
        return Pill("IDLE", detail)
    total = sum(max(1, a.events) for a in attempts)
    failed = sum(max(1, a.events) for a in attempts if a.verdict != DELIVERED)
    share = failed / total
    streak = 0
    for attempt in attempts:
        if attempt.verdict == DELIVERED:
            break
        streak += 1
    latest = attempts[0]
    last = (
        "last request delivered"
        if latest.verdict == DELIVERED
        else f"last request failed: {latest.reason or latest.verdict}"
    )
    detail = f"{share:.0%} of recent events failed; {last}"
    if share > DROPPED_SHARE or streak >= DROPPED_STREAK:
        return Pill("DROPPED", detail, share)
    if share >= DEGRADED_SHARE or streak:
        return Pill("DEGRADED", detail, share)
    return Pill("OK", f"{last}; {share:.0%} of recent events failed", share)


@dataclass
class Quality:
    """Per destination: the share of recent events carrying each match key."""

    sampled: int
    keys: dict[str, float] = field(default_factory=dict)
    click_ids: tuple[str, ...] = ()
    pixel: str | None = None
    pixel_share: float | None = None


def quality(spec: TagSpec, events: Sequence[StoredEvent]) -> Quality:
    click_ids = tuple(c for c in spec.click_ids if c not in BROWSER_IDS)
    pixel = PIXEL_OF.get(spec.name)
    result = Quality(sampled=len(events), click_ids=click_ids, pixel=pixel)
    checks: dict[str, Any] = {
        "email": lambda e: bool(e.user.emails()),
        "phone": lambda e: bool(e.user.phones()),
        "external_id": lambda e: bool(e.user.external_id),
        "fbc": lambda e: bool(e.ids.fbc),
        "fbp": lambda e: bool(e.ids.fbp),
        # the store keeps only the truncated address once deliveries are done
        "ip": lambda e: bool(e.client.ip or getattr(e.client, "ip_truncated", None)),
        "user agent": lambda e: bool(e.client.user_agent),
    }
    if click_ids:
        checks["click ID"] = lambda e: any(getattr(e.ids, c, None) for c in click_ids)
    for key, check in checks.items():
        result.keys[key] = _share(events, check)
    if pixel is not None:
        result.pixel_share = _share(events, lambda e: pixel in e.pixels)
    return result


def _share(events: Sequence[StoredEvent], check: Any) -> float:
    if not events:
        return 0.0
    return sum(1 for e in events if check(e)) / len(events)
