"""The consent gate: may this event go to this destination, and may we write ad cookies?

Signals come from Google Consent Mode v2 (sent by the loader or a backend) and Global
Privacy Control (the loader's flag or the ``Sec-GPC: 1`` request header). A signal the site
did not send counts as ``[consent] default`` (``denied`` unless configured otherwise).
Each destination needs the purposes its spec lists (overridable with ``consent = [...]``);
ad platforms treat GPC as an opt-out of sale/sharing. Reasons are stable strings: they are
what ``GET /v1/events/{id}`` and the dashboard show.
"""

from __future__ import annotations

from edge.schema import Consent, StoredEvent

AD_COOKIE_PURPOSE = "ad_storage"
REASON_GPC = "gpc"


def purpose_state(consent: Consent, purpose: str, default: str) -> str:
    value: str | None = getattr(consent, purpose)
    return value if value is not None else default


def consent_problem(
    event: StoredEvent,
    required: frozenset[str],
    default: str,
    *,
    honours_gpc: bool,
    gpc_allowed: bool = False,
) -> str | None:
    """Why consent forbids sending this event, or None when it may go."""
    if honours_gpc and event.gpc and not gpc_allowed:
        return REASON_GPC
    for purpose in sorted(required):
        value = getattr(event.consent, purpose)
        if value is None and default != "granted":
            return f"consent: {purpose} not given"
        if value == "denied":
            return f"consent: {purpose} denied"
    return None


def may_write_ad_cookies(consent: Consent, gpc: bool, default: str) -> bool:
    """Ad cookies (click IDs, _fbp, _ttp) need ad_storage, and nothing under GPC."""
    return not gpc and purpose_state(consent, AD_COOKIE_PURPOSE, default) == "granted"
