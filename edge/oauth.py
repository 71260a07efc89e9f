"""Short-lived access tokens for tags that authenticate with OAuth (Google's refresh tokens,
LinkedIn's programmatic refresh tokens).

The tag says how to ask (``token_request``) and how to read the answer (``parse_token``);
this cache does the asking, keeps the token until shortly before it expires, and forgets it
when the platform refuses it, so the next batch asks again. One exchange at a time per
destination: a burst of batches must not stampede the token endpoint. A ``token_request``
that answers None means this destination needs no exchange (LinkedIn with a static token).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx

from tags.base import Destination, Kind, PlatformRequest, PlatformResponse, Tag, Token, Verdict

EXPIRY_MARGIN_SECONDS = 120.0  # refresh this long before the platform's expiry
# Warn (log, dashboard) this long before a refresh token the platform dates runs out: a
# member must authorise the app again, which takes a person, not a retry.
REFRESH_WARNING_SECONDS = 30 * 86_400.0

log = logging.getLogger("capi_edge.oauth")


class TokenError(Exception):
    """The exchange failed; ``verdict`` says what that means (pause, retry, throttle).

    The reason names the OAuth error code, never a secret. A tag's ``parse_token`` may raise
    a ``ValueError`` carrying its own ``verdict``; any other failure pauses the destination.
    """

    def __init__(self, verdict: Verdict) -> None:
        super().__init__(verdict.reason)
        self.verdict = verdict


Send = Callable[[PlatformRequest], Awaitable[PlatformResponse]]


@dataclass
class _Cached:
    value: str
    expires_at: float


class TokenCache:
    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self._tokens: dict[str, _Cached] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._refresh_deadlines: dict[str, float] = {}

    def refresh_expires_at(self, name: str) -> float | None:
        """When the destination's refresh token runs out, if the platform said so."""
        return self._refresh_deadlines.get(name)

    def forget(self, name: str) -> None:
        self._tokens.pop(name, None)

    async def authorize(self, tag: Tag, destination: Destination, send: Send) -> Destination:
        """``destination`` with a valid ``bearer`` (unchanged when there is nothing to ask)."""
        token_request = getattr(tag, "token_request", None)
        request = token_request(destination) if token_request is not None else None
        if request is None:  # no OAuth for this tag, or not for this destination's setup
            return destination
        lock = self._locks.setdefault(destination.name, asyncio.Lock())
        async with lock:
            cached = self._tokens.get(destination.name)
            if cached is None or cached.expires_at - EXPIRY_MARGIN_SECONDS <= self.clock():
                try:
                    response = await send(request)
                except httpx.HTTPError as err:
                    reason = f"token exchange: network: {type(err).__name__}"
                    raise TokenError(Verdict(Kind.RETRY, reason)) from None
                try:
                    token: Token = tag.parse_token(response)  # type: ignore[attr-defined]
                except (ValueError, KeyError, TypeError) as err:
                    verdict = getattr(err, "verdict", None)
                    if not isinstance(verdict, Verdict):
                        verdict = Verdict(Kind.SETUP, f"token exchange refused: {err}")
                    raise TokenError(verdict) from None
                now = self.clock()
                cached = _Cached(token.value, now + token.expires_in)
                self._tokens[destination.name] = cached
                self._note_refresh_deadline(destination.name, now, token.refresh_expires_in)
        return dataclasses.replace(destination, bearer=cached.value)

    def _note_refresh_deadline(self, name: str, now: float, remaining: float | None) -> None:
        if remaining is None:
            self._refresh_deadlines.pop(name, None)
            return
        self._refresh_deadlines[name] = now + remaining
        if remaining <= REFRESH_WARNING_SECONDS:
            log.warning(
                "%s: the refresh token runs out in %.0f days; authorise the app again and "
                "set the new refresh_token",
                name,
                remaining / 86_400,
            )
