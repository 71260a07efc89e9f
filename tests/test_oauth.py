"""The token cache: asks only when a destination needs a token, once at a time, and keeps
the answer until shortly before it expires."""

from __future__ import annotations

import asyncio
from types import MappingProxyType, SimpleNamespace
from typing import Any

import pytest

from edge.oauth import EXPIRY_MARGIN_SECONDS, REFRESH_WARNING_SECONDS, TokenCache, TokenError
from tags.base import Destination, Kind, PlatformRequest, PlatformResponse, Token

REQUEST = PlatformRequest("POST", "https://oauth.test/token", form={"grant_type": "x"})
DEST = Destination("fake", MappingProxyType({}), "https://api.test", MappingProxyType({}))


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Exchange:
    """A token endpoint that counts its calls and answers ``token-1``, ``token-2``, …"""

    def __init__(self, delay: float = 0.0) -> None:
        self.calls: list[PlatformRequest] = []
        self.delay = delay

    async def __call__(self, request: PlatformRequest) -> PlatformResponse:
        self.calls.append(request)
        await asyncio.sleep(self.delay)
        return PlatformResponse(200, {}, f"token-{len(self.calls)}".encode())


def tag(request: PlatformRequest | None) -> Any:
    return SimpleNamespace(
        token_request=lambda destination: request,
        parse_token=lambda response: Token(response.body.decode(), 3600.0),
    )


@pytest.mark.anyio
async def test_no_token_request_means_no_exchange() -> None:
    send = Exchange()
    cache = TokenCache(lambda: 0.0)
    assert await cache.authorize(SimpleNamespace(), DEST, send) is DEST  # a tag without OAuth
    assert await cache.authorize(tag(None), DEST, send) is DEST  # OAuth, not for this setup
    assert send.calls == []


@pytest.mark.anyio
async def test_a_token_is_asked_for_once_and_kept_until_the_margin() -> None:
    now = [0.0]
    send = Exchange(delay=0.01)
    cache = TokenCache(lambda: now[0])
    burst = await asyncio.gather(*(cache.authorize(tag(REQUEST), DEST, send) for _ in range(5)))
    assert {d.bearer for d in burst} == {"token-1"} and send.calls == [REQUEST]
    now[0] = 3600.0 - EXPIRY_MARGIN_SECONDS - 1
    assert (await cache.authorize(tag(REQUEST), DEST, send)).bearer == "token-1"
    now[0] += 1
    assert (await cache.authorize(tag(REQUEST), DEST, send)).bearer == "token-2"
    cache.forget("fake")
    assert (await cache.authorize(tag(REQUEST), DEST, send)).bearer == "token-3"


@pytest.mark.anyio
async def test_a_parse_failure_without_a_verdict_pauses() -> None:
    broken = SimpleNamespace(
        token_request=lambda destination: REQUEST,
        parse_token=lambda response: {}["access_token"],
    )
    with pytest.raises(TokenError) as caught:
        await TokenCache(lambda: 0.0).authorize(broken, DEST, Exchange())
    assert caught.value.verdict.kind is Kind.SETUP


def dated(refresh_expires_in: float | None) -> Any:
    """A tag whose exchange also says how long the refresh token has left."""
    return SimpleNamespace(
        token_request=lambda destination: REQUEST,
        parse_token=lambda response: Token("t", 3600.0, refresh_expires_in),
    )


@pytest.mark.anyio
async def test_the_refresh_tokens_end_is_kept_and_warned_about_when_near(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [1_000.0]
    cache = TokenCache(lambda: now[0])
    assert cache.refresh_expires_at("fake") is None
    far = REFRESH_WARNING_SECONDS * 3
    await cache.authorize(dated(far), DEST, Exchange())
    assert cache.refresh_expires_at("fake") == 1_000.0 + far
    assert not [r for r in caplog.records if "refresh token" in r.getMessage()]
    cache.forget("fake")  # a refused access token: the refresh token's end still stands
    assert cache.refresh_expires_at("fake") == 1_000.0 + far
    now[0] = 5_000.0
    await cache.authorize(dated(12 * 86_400.0), DEST, Exchange())
    assert cache.refresh_expires_at("fake") == 5_000.0 + 12 * 86_400.0
    (warning,) = [r for r in caplog.records if "refresh token" in r.getMessage()]
    assert warning.levelname == "WARNING" and "fake" in warning.getMessage()
    assert "12 days" in warning.getMessage()
    cache.forget("fake")
    await cache.authorize(dated(None), DEST, Exchange())  # the platform stopped dating it
    assert cache.refresh_expires_at("fake") is None
