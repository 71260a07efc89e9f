"""Click-ID postbacks: one GET per event, for platforms that attribute only by a click ID.

Taboola's and Outbrain's server-to-server conversions are pixel-style GETs whose query names
the click the platform recorded; without that click ID nothing can be attributed, so such
events are refused here with ``NO_CLICK_ID`` (routing already skips them for that reason).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from edge.schema import StoredEvent

from .base import Built, Destination, PlatformRequest, TagSpec

NO_CLICK_ID = "no click id"


def number(value: float) -> str:
    """A plain decimal for a query string: ``59.8``, ``100``; never an exponent."""
    return f"{value:.6f}".rstrip("0").rstrip(".")


def build_postbacks(
    events: Sequence[StoredEvent],
    destination: Destination,
    spec: TagSpec,
    path: str,
    click_id: Callable[[StoredEvent], str | None],
    params: Callable[[StoredEvent, str], dict[str, str]],
) -> list[Built]:
    """One GET per event to ``destination.base_url + path`` with ``params(event, name)``."""
    url = destination.base_url + path
    built = []
    for event in events:
        name = destination.platform_event(spec, event.event)
        if name is None or not click_id(event):
            reason = NO_CLICK_ID if name else f"event {event.event} is not mapped"
            built.append(Built(None, (), {event.event_id: reason}))
            continue
        request = PlatformRequest("GET", url, params=params(event, name))
        built.append(Built(request, (event.event_id,)))
    return built
