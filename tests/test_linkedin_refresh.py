"""LinkedIn's refresh flow through the dispatcher: a real worker, store and token cache,
LinkedIn and its OAuth endpoint answered by an ``httpx.MockTransport``.

The exchange goes to the configured ``token_url``; the access token is cached until shortly
before it expires; a 401 renews it and sends again once; ``invalid_grant`` pauses
the destination without naming a secret; a failed exchange is retried; and a static
``access_token`` is sent as it always was, with no exchange at all.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest

from edge.dispatcher import DestinationWorker
from edge.oauth import EXPIRY_MARGIN_SECONDS, TokenCache
from edge.schema import Ids, StoredEvent
from edge.settings import Settings
from edge.store import Decision, DeliveryRow
from edge.store.sqlite import SQLiteStore
from tags import TAGS

LI_HOST = "linkedin.test"
OAUTH_HOST = "oauth.linkedin.test"
TOKEN_URL = f"https://{OAUTH_HOST}/oauth/v2/accessToken"
STATIC = "AQV-static-member-token-0123456789"
REFRESH = {
    "client_id": "86abcdef0g1h2i",
    "client_secret": "WPL_AP1.clientSECRET0123.abcd==",
    "refresh_token": "AQW-programmatic-refresh-token-0123456789",
}
SECRETS = (REFRESH["client_secret"], REFRESH["refresh_token"])
LIFETIME = 5_184_000  # 60 days, as LinkedIn answers
START = 1_763_900_000.0
INVALID_TOKEN = {
    "status": 401,
    "serviceErrorCode": 65600,
    "code": "INVALID_ACCESS_TOKEN",
    "message": "Invalid access token",
}

Responder = Callable[[httpx.Request], httpx.Response]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@dataclass
class LinkedIn:
    """LinkedIn's API and its token endpoint: records requests, answers as scripted.

    Unscripted, the token endpoint mints ``access-1``, ``access-2``, … and the API accepts.
    """

    requests: list[httpx.Request] = field(default_factory=list)
    scripts: dict[str, list[Responder]] = field(default_factory=dict)
    minted: int = 0

    def handler(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.requests.append(request)
        script = self.scripts.get(request.url.host)
        if script:
            return script.pop(0)(request)
        if request.url.host == OAUTH_HOST:
            self.minted += 1
            return httpx.Response(
                200,
                json={
                    "access_token": f"access-{self.minted}",
                    "expires_in": LIFETIME,
                    "refresh_token": REFRESH["refresh_token"],
                    "refresh_token_expires_in": 31_000_000,
                },
            )
        if request.method == "GET":
            return httpx.Response(200, json={"conversionMethod": "CONVERSIONS_API"})
        count = len(json.loads(request.content)["elements"])
        return httpx.Response(200, json={"elements": [{"status": 201}] * count})

    def script(self, host: str, *responders: Responder) -> None:
        self.scripts.setdefault(host, []).extend(responders)

    def exchanges(self) -> list[httpx.Request]:
        return [r for r in self.requests if r.url.host == OAUTH_HOST]

    def bearers(self) -> list[str]:
        """The Authorization header of each request to the API, in order."""
        return [r.headers["authorization"] for r in self.requests if r.url.host == LI_HOST]


def answer(status: int, body: Any, headers: dict[str, str] | None = None) -> Responder:
    return lambda request: httpx.Response(status, json=body, headers=headers)


@dataclass
class Rig:
    worker: DestinationWorker
    store: SQLiteStore
    linkedin: LinkedIn
    now: list[float]
    sent: int = 0

    async def send(self) -> str:
        """Queue one purchase and run the worker once over everything due; its event_id."""
        self.sent += 1
        event_id = f"order-{self.sent}"
        event = StoredEvent(
            event="purchase",
            event_id=event_id,
            time=int(self.now[0]),
            received_at=self.now[0],
            ids=Ids(li_fat_id="li-fat-1"),
        )
        await self.store.append([(event, [Decision("linkedin", "pending", "queued")])])
        await self.drain()
        return event_id

    async def drain(self) -> None:
        await self.worker._drain()
        while self.worker.tasks:
            await asyncio.gather(*list(self.worker.tasks))

    async def delivery(self, event_id: str) -> DeliveryRow:
        (row,) = await self.store.deliveries(event_id)
        return row

    def later(self, seconds: float) -> None:
        self.now[0] += seconds


@pytest.fixture
async def rig(tmp_path: Path, make_settings: Callable[..., Settings]) -> AsyncIterator[Any]:
    opened: list[tuple[SQLiteStore, httpx.AsyncClient]] = []

    async def make(credentials: dict[str, str]) -> Rig:
        table = {
            **credentials,
            "conversion_id": "104567",
            "base_url": f"https://{LI_HOST}",
            "token_url": TOKEN_URL,
        }
        settings = make_settings(destinations={"linkedin": table})
        linkedin = LinkedIn()
        now = [START]
        store = SQLiteStore(tmp_path / f"s{len(opened)}.db")
        await store.open()
        client = httpx.AsyncClient(transport=httpx.MockTransport(linkedin.handler))
        opened.append((store, client))
        worker = DestinationWorker(
            settings.destinations["linkedin"],
            TAGS["linkedin"],
            store,
            client,
            settings.dispatch,
            lambda: now[0],
            random.Random(0),
            TokenCache(lambda: now[0]),
        )
        return Rig(worker, store, linkedin, now)

    yield make
    for store, client in opened:
        await client.aclose()
        await store.close()


@pytest.mark.anyio
async def test_the_first_batch_exchanges_the_refresh_token_at_token_url(rig: Any) -> None:
    r = await rig(REFRESH)
    event_id = await r.send()
    (exchange,) = r.linkedin.exchanges()
    assert exchange.method == "POST" and str(exchange.url) == TOKEN_URL
    assert exchange.headers["content-type"] == "application/x-www-form-urlencoded"
    assert "authorization" not in exchange.headers
    assert parse_qs(exchange.content.decode()) == {
        "grant_type": ["refresh_token"],
        "refresh_token": [REFRESH["refresh_token"]],
        "client_id": [REFRESH["client_id"]],
        "client_secret": [REFRESH["client_secret"]],
    }
    assert r.linkedin.bearers() == ["Bearer access-1"]
    assert r.linkedin.requests[0] is exchange  # the token first, then the conversion
    assert (await r.delivery(event_id)).status == "sent"


@pytest.mark.anyio
async def test_the_refresh_tokens_end_reaches_the_destinations_state(rig: Any) -> None:
    r = await rig(REFRESH)
    assert r.worker.state.refresh_expires_at is None
    await r.send()
    assert r.worker.state.refresh_expires_at == START + 31_000_000  # what LinkedIn dated
    static = await rig({"access_token": STATIC})
    await static.send()
    assert static.worker.state.refresh_expires_at is None  # nothing dated, nothing shown


@pytest.mark.anyio
async def test_the_token_is_kept_until_shortly_before_it_expires(rig: Any) -> None:
    r = await rig(REFRESH)
    await r.send()
    r.later(LIFETIME - EXPIRY_MARGIN_SECONDS - 60)  # a minute before the margin: still good
    await r.send()
    assert len(r.linkedin.exchanges()) == 1
    r.later(61)  # inside the margin: refreshed before LinkedIn would refuse it
    last = await r.send()
    assert len(r.linkedin.exchanges()) == 2
    assert r.linkedin.bearers() == ["Bearer access-1", "Bearer access-1", "Bearer access-2"]
    assert (await r.delivery(last)).status == "sent"


@pytest.mark.anyio
async def test_a_401_renews_the_token_and_sends_again_at_once(rig: Any) -> None:
    r = await rig(REFRESH)
    r.linkedin.script(LI_HOST, answer(401, INVALID_TOKEN))
    event_id = await r.send()
    assert len(r.linkedin.exchanges()) == 2  # asked again, not the cached token
    assert r.linkedin.bearers() == ["Bearer access-1", "Bearer access-2"]
    assert (await r.delivery(event_id)).status == "sent"
    assert r.worker.state.paused_until == 0.0  # no pause for a token LinkedIn dropped early


@pytest.mark.anyio
async def test_a_401_for_the_renewed_token_too_pauses_and_keeps_the_event(rig: Any) -> None:
    r = await rig(REFRESH)
    r.linkedin.script(LI_HOST, answer(401, INVALID_TOKEN), answer(401, INVALID_TOKEN))
    event_id = await r.send()
    state = r.worker.state
    assert state.pause_reason.startswith("setup: ") and "INVALID_ACCESS_TOKEN" in state.pause_reason
    assert r.linkedin.bearers() == ["Bearer access-1", "Bearer access-2"]  # renewed once only
    row = await r.delivery(event_id)
    assert row.status == "pending" and row.next_at == state.paused_until  # kept, not lost
    r.later(state.paused_until - r.now[0] + 0.01)
    await r.drain()
    assert len(r.linkedin.exchanges()) == 3  # the refused token was forgotten again
    assert r.linkedin.bearers()[-1] == "Bearer access-3"
    assert (await r.delivery(event_id)).status == "sent"


@pytest.mark.anyio
async def test_invalid_grant_pauses_with_the_code_and_no_secret(rig: Any) -> None:
    r = await rig(REFRESH)
    description = f"refresh token {REFRESH['refresh_token']} of {REFRESH['client_secret']} expired"
    r.linkedin.script(
        OAUTH_HOST, answer(400, {"error": "invalid_grant", "error_description": description})
    )
    event_id = await r.send()
    assert r.linkedin.bearers() == []  # nothing sent without a token
    state = r.worker.state
    assert state.paused_until > r.now[0]
    assert state.pause_reason.startswith("setup: linkedin oauth invalid_grant")
    row = await r.delivery(event_id)
    assert row.status == "pending" and "invalid_grant" in row.reason
    for text in (state.pause_reason, state.last_reason, row.reason):
        for secret in SECRETS:
            assert secret not in text


@pytest.mark.anyio
@pytest.mark.parametrize(
    "failure",
    [
        answer(503, {"error": "server_error"}),
        answer(502, None),
        lambda request: (_ for _ in ()).throw(httpx.ConnectError("refused", request=request)),
    ],
    ids=["503", "502-empty", "network"],
)
async def test_a_failed_exchange_is_retried_not_paused(rig: Any, failure: Responder) -> None:
    r = await rig(REFRESH)
    r.linkedin.script(OAUTH_HOST, failure)
    event_id = await r.send()
    assert r.linkedin.bearers() == []
    assert r.worker.state.paused_until == 0.0  # a retry, not a pause
    row = await r.delivery(event_id)
    assert row.status == "pending" and row.reason.startswith("retry: ")
    assert row.next_at > r.now[0]
    r.later(row.next_at - r.now[0] + 0.01)
    await r.drain()
    assert len(r.linkedin.exchanges()) == 2 and r.linkedin.bearers() == ["Bearer access-1"]
    assert (await r.delivery(event_id)).status == "sent"


@pytest.mark.anyio
async def test_a_throttled_exchange_pauses_for_retry_after(rig: Any) -> None:
    r = await rig(REFRESH)
    r.linkedin.script(OAUTH_HOST, answer(429, {}, {"Retry-After": "30"}))
    await r.send()
    state = r.worker.state
    assert state.paused_until == r.now[0] + 30
    assert state.pause_reason.startswith("throttled: linkedin oauth")


@pytest.mark.anyio
async def test_a_static_token_is_sent_as_before_and_never_exchanged(rig: Any) -> None:
    r = await rig({"access_token": STATIC})  # token_url is set too: it must not matter
    event_id = await r.send()
    assert r.linkedin.exchanges() == []
    assert r.linkedin.bearers() == [f"Bearer {STATIC}"]
    assert (await r.delivery(event_id)).status == "sent"
    # a 401 pauses as it always did, and the same token goes again after the pause
    r.linkedin.script(LI_HOST, answer(401, INVALID_TOKEN))
    second = await r.send()
    assert r.worker.state.pause_reason.startswith("setup: ")
    r.later(r.worker.state.paused_until - r.now[0] + 0.01)
    await r.drain()
    assert r.linkedin.exchanges() == []
    assert r.linkedin.bearers() == [f"Bearer {STATIC}"] * 3
    assert (await r.delivery(second)).status == "sent"


@pytest.mark.anyio
async def test_with_both_the_refresh_flow_wins(rig: Any) -> None:
    r = await rig({**REFRESH, "access_token": STATIC})
    await r.send()
    assert len(r.linkedin.exchanges()) == 1
    assert r.linkedin.bearers() == ["Bearer access-1"]


@pytest.mark.anyio
async def test_the_connection_test_refreshes_first(rig: Any) -> None:
    r = await rig(REFRESH)
    result = await r.worker.test_connection()
    assert result.ok, result.reason
    assert len(r.linkedin.exchanges()) == 1 and r.linkedin.bearers() == ["Bearer access-1"]
    r.linkedin.script(OAUTH_HOST, answer(400, {"error": "invalid_grant"}))
    r.worker.tokens.forget("linkedin")
    failed = await r.worker.test_connection()
    assert not failed.ok and failed.reason.startswith("linkedin oauth invalid_grant")
