"""The OAuth 2.0 refresh-token grant (RFC 6749, section 6) as the tags that need it ask for it.

Google Ads and LinkedIn exchange a long-lived refresh token for short-lived access tokens
the same way: a form POST to the platform's token endpoint, and an answer that is either
``{access_token, expires_in, ...}`` or ``{error, error_description}``. Pure, like every tag
module: the request to send and the reading of the answer. ``edge.oauth`` sends it and
caches the token.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from .base import (
    Destination,
    Kind,
    PlatformRequest,
    PlatformResponse,
    Token,
    Verdict,
    retry_after_seconds,
)

REFRESH_KEYS = ("client_id", "client_secret", "refresh_token")
DEFAULT_TOKEN_SECONDS = 3600.0  # an answer without expires_in: ask again within the hour
TRANSIENT_ERRORS = frozenset({"server_error", "temporarily_unavailable"})  # RFC 6749 codes
MAX_CODE = 64


class TokenError(ValueError):
    """The exchange failed; ``verdict`` says what to do (setup, retry, throttle)."""

    def __init__(self, code: str, verdict: Verdict) -> None:
        super().__init__(verdict.reason)
        self.code = code
        self.verdict = verdict


def refresh_request(destination: Destination, default_url: str) -> PlatformRequest:
    """The exchange, sent to the ``token_url`` option if set (tests, staging)."""
    credentials = destination.credentials
    form = {
        "grant_type": "refresh_token",
        "client_id": credentials["client_id"],
        "client_secret": credentials["client_secret"],
        "refresh_token": credentials["refresh_token"],
    }
    return PlatformRequest("POST", destination.options.get("token_url", default_url), form=form)


def read_token(response: PlatformResponse, platform: str, hints: Mapping[str, str]) -> Token:
    """The access token, or ``TokenError`` naming the OAuth error code.

    Only the code and our own hint for it reach the reason: ``error_description`` is the
    platform's free text, and nothing of the request (all secrets) is repeated.
    """
    body = response.json()
    body = body if isinstance(body, dict) else {}
    token = body.get("access_token")
    if 200 <= response.status < 300 and isinstance(token, str) and token:
        refresh = body.get("refresh_token_expires_in")
        return Token(token, _lifetime(body.get("expires_in")), _positive(refresh))
    error = body.get("error")
    if isinstance(error, dict):  # a Google API-style {"error": {"status": ...}}
        error = error.get("status")
    code = re.sub(r"[^A-Za-z0-9_]", "", error)[:MAX_CODE] if isinstance(error, str) else ""
    code = code or f"http {response.status}"
    reason = f"{platform} oauth {code}: {hints.get(code, 'token exchange failed')}"
    if response.status == 429:
        raise TokenError(
            code, Verdict(Kind.THROTTLED, reason, retry_after_seconds(response.headers))
        )
    if response.status >= 500 or response.status < 400 or code in TRANSIENT_ERRORS:
        raise TokenError(code, Verdict(Kind.RETRY, reason))
    raise TokenError(code, Verdict(Kind.SETUP, reason))


def _lifetime(value: object) -> float:
    seconds = _positive(value)
    return DEFAULT_TOKEN_SECONDS if seconds is None else seconds


def _positive(value: object) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return float(value)
    return None


__all__ = ["REFRESH_KEYS", "TokenError", "read_token", "refresh_request"]
