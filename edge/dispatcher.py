"""The dispatcher: drains the outbox to each destination, in batches, never losing an event.

One worker per destination claims due deliveries (up to the tag's batch limit, after a
short linger so a burst leaves as one request), builds the request with the tag's pure
``build`` (on a thread, so a big batch does not hold up hits), sends it through the one
shared HTTP client with bounded concurrency, and settles every event by the tag's
``classify`` verdict:

    delivered  -> sent (events the platform refused individually -> dead, with its reason)
    retry      -> pending again after exponential backoff with jitter (Retry-After wins)
    throttled  -> the whole destination waits until Retry-After, the events with it
    rejected   -> dead, with the platform's reason
    split      -> the platform refused the batch for one bad event: bisect and resend
    setup      -> the destination pauses (bad token, no permission); events stay pending

Nothing is sent past the platform's freshness window: such events go dead with that reason.
Network failures count as retry. Delivery is at-least-once; the platforms deduplicate on
the event_id the browser pixel shared.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import httpx

from edge.oauth import TokenCache, TokenError
from edge.schema import StoredEvent
from edge.settings import DestinationSettings, DispatchConfig
from edge.store import Attempt, Claimed, Settlement, Store
from tags import TAGS
from tags.base import Destination, Kind, PlatformRequest, PlatformResponse, Tag, Verdict

log = logging.getLogger("capi_edge.dispatch")

LEASE_MARGIN_SECONDS = 60.0  # a lease outlives the request it covers, whatever happens
CLAIM_CHUNK = 250  # events leased per store call while a batch is gathered
STOP_GRACE_SECONDS = 10.0
USER_AGENT = "capi-edge/0.1 (+https://github.com/capi-edge/capi-edge)"
DAY = 86_400


@dataclass
class DestinationState:
    """Live, in-memory condition of one destination (status pills read it)."""

    paused_until: float = 0.0
    pause_reason: str = ""
    last_success_at: float | None = None
    last_failure_at: float | None = None
    last_reason: str = ""
    inflight: int = 0
    last_test_ok_at: float | None = None
    refresh_expires_at: float | None = None  # the OAuth refresh token's end, when dated


@dataclass(frozen=True, slots=True)
class ConnectionTest:
    """The answer to "do these credentials work?", for the CLI and the dashboard."""

    ok: bool
    http_status: int | None
    latency_ms: float
    reason: str


# Told about every request a worker sends (the dashboard's debug view): the destination,
# the request, its events' ids, the answer (None on a network failure), the verdict, the
# latency in ms, and the batch's events by id (empty for a connection test).
AttemptObserver = Callable[
    [
        str,
        PlatformRequest,
        Sequence[str],
        "PlatformResponse | None",
        Verdict,
        float,
        Mapping[str, StoredEvent],
    ],
    None,
]


@dataclass
class _Pending:
    settlements: list[Settlement] = field(default_factory=list)


def backoff_seconds(attempts: int, base: float, cap: float, rng: random.Random) -> float:
    """Exponential backoff with equal jitter: half fixed, half random, capped."""
    delay = min(cap, base * (2 ** max(0, attempts - 1)))
    return delay / 2 + rng.uniform(0, delay / 2)


class DestinationWorker:
    def __init__(
        self,
        settings: DestinationSettings,
        tag: Tag,
        store: Store,
        client: httpx.AsyncClient,
        config: DispatchConfig,
        clock: Callable[[], float],
        rng: random.Random,
        tokens: TokenCache | None = None,
    ) -> None:
        self.settings = settings
        self.tokens = tokens or TokenCache(clock)
        self.tag = tag
        self.spec = tag.SPEC
        self.store = store
        self.client = client
        self.config = config
        self.clock = clock
        self.rng = rng
        self.state = DestinationState()
        self.wake = asyncio.Event()
        self.stopped = asyncio.Event()
        self.slots = asyncio.Semaphore(self.spec.limits.max_in_flight)
        self.tasks: set[asyncio.Task[None]] = set()
        self.stopping = False
        self.lease = self.spec.limits.timeout_seconds * 4 + LEASE_MARGIN_SECONDS
        self.observe: AttemptObserver | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    async def run(self) -> None:
        linger = self.config.linger_ms / 1000
        while not self.stopping:
            paused_for = self.state.paused_until - self.clock()
            if paused_for > 0:  # throttled or paused: new work waits with the rest
                self.wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stopped.wait(), paused_for)
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), self.config.poll_seconds)
            if self.stopping:
                break
            if self.wake.is_set() and linger > 0:
                await asyncio.sleep(linger)  # let a burst gather into one batch
            self.wake.clear()
            try:
                await self._drain()
            except Exception:  # the store failed: keep the worker alive, try again later
                log.exception("dispatch to %s failed; will retry", self.name)

    async def _drain(self) -> None:
        while not self.stopping and self.state.paused_until <= self.clock():
            await self.slots.acquire()
            try:
                batch = await self._claim()
            except BaseException:
                self.slots.release()
                raise
            if not batch:
                self.slots.release()
                return
            task = asyncio.create_task(self._send_batch(batch))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
            if len(batch) < self.spec.limits.max_batch_events:
                return

    async def _claim(self) -> list[Claimed]:
        """Up to a batch's worth of due events, leased a chunk at a time.

        A 1,000-event batch claimed in one go holds the event loop for its whole query and
        decoding; in chunks, hits are served in between.
        """
        limit = self.spec.limits.max_batch_events
        batch: list[Claimed] = []
        while len(batch) < limit:
            want = min(CLAIM_CHUNK, limit - len(batch))
            chunk = await self.store.claim(self.name, want, self.clock(), self.lease)
            batch += chunk
            if len(chunk) < want:
                break
        batch.sort(key=lambda c: (c.event.time, c.event.event_id))
        return batch

    async def _send_batch(self, batch: Sequence[Claimed]) -> None:
        self.state.inflight += 1
        try:
            attempts = {c.event.event_id: c.attempts for c in batch}
            pending = _Pending()
            now = self.clock()
            fresh = []
            for claimed in batch:
                if now - claimed.event.time > self.spec.limits.freshness_seconds:
                    pending.settlements.append(
                        Settlement(
                            claimed.event.event_id,
                            "dead",
                            f"expired: older than {self.spec.title}'s "
                            f"{self._window()} freshness window",
                            claimed.attempts,
                        )
                    )
                else:
                    fresh.append(claimed.event)
            if fresh:
                await self._deliver(fresh, attempts, pending)
            await self.store.settle(self.name, pending.settlements)
        except Exception:
            log.exception("sending a batch to %s failed; its events stay pending", self.name)
        finally:
            self.state.inflight -= 1
            self.slots.release()

    def _window(self) -> str:
        seconds = self.spec.limits.freshness_seconds
        return f"{seconds // DAY}-day" if seconds % DAY == 0 else f"{seconds // 3600}-hour"

    async def _deliver(
        self,
        events: Sequence[StoredEvent],
        attempts: Mapping[str, int],
        pending: _Pending,
        *,
        renewed: bool = False,
    ) -> None:
        """Build, send and settle ``events``; ``renewed``: the OAuth token was just renewed
        after a 401 (a second 401 then pauses)."""
        by_id = {e.event_id: e for e in events}
        try:
            destination = await self.authorized()
        except TokenError as err:
            self._settle(err.verdict, events, attempts, pending)
            return
        # On a thread: normalizing and hashing a full batch takes the CPU for a long while
        # (a thousand Meta purchases with PII: about 135 ms), and on the loop no hit would be
        # answered meanwhile. The GIL still shares the CPU, but in slices of milliseconds.
        batch = await asyncio.to_thread(self.tag.build, events, destination)
        for built in batch:
            for event_id, reason in built.rejected.items():
                pending.settlements.append(
                    Settlement(event_id, "dead", f"rejected: {reason}", attempts[event_id])
                )
            if built.request is None or not built.event_ids:
                continue
            verdict, http_status, latency = await self._send(
                built.request, built.event_ids, events=by_id
            )
            await self.store.record_attempt(
                Attempt(
                    self.name,
                    self.clock(),
                    len(built.event_ids),
                    http_status,
                    verdict.kind.value,
                    verdict.reason,
                    latency,
                )
            )
            group = [by_id[i] for i in built.event_ids]
            if http_status == 401 and destination.bearer is not None and not renewed:
                # An exchanged token refused before its expiry (revoked, rotated). The refusal
                # forgot it: ask for a new one and send again at once instead of pausing.
                await self._deliver(group, attempts, pending, renewed=True)
                continue
            if verdict.kind is Kind.SPLIT and verdict.rejected:
                # The platform named the bad events: dead-letter them, resend the rest once.
                for event_id, reason in verdict.rejected.items():
                    if event_id in by_id:
                        tried = attempts[event_id] + 1
                        pending.settlements.append(
                            Settlement(event_id, "dead", f"rejected: {reason}", tried)
                        )
                rest = [e for e in group if e.event_id not in verdict.rejected]
                if rest:
                    await self._deliver(rest, attempts, pending, renewed=renewed)
                continue
            if verdict.kind is Kind.SPLIT and len(group) > 1:
                middle = len(group) // 2
                await self._deliver(group[:middle], attempts, pending, renewed=renewed)
                await self._deliver(group[middle:], attempts, pending, renewed=renewed)
                continue
            self._settle(verdict, group, attempts, pending)

    async def authorized(self) -> Destination:
        """The destination with a fresh OAuth token where its tag needs one."""
        destination = await self.tokens.authorize(self.tag, self.settings.destination, self.fetch)
        self.state.refresh_expires_at = self.tokens.refresh_expires_at(self.name)
        return destination

    async def fetch(self, request: PlatformRequest) -> PlatformResponse:
        """Send one request; network failures raise ``httpx.HTTPError``."""
        headers = {"User-Agent": USER_AGENT, **request.headers}
        content_type = request.content_type()
        if content_type:
            headers.setdefault("Content-Type", content_type)
        response = await self.client.request(
            request.method,
            request.url,
            params=dict(request.params) or None,
            headers=headers,
            content=request.body(),
            timeout=self.spec.limits.timeout_seconds,
        )
        return PlatformResponse(response.status_code, dict(response.headers), response.content)

    async def _send(
        self,
        request: PlatformRequest,
        event_ids: Sequence[str],
        classify: Callable[[PlatformResponse], Verdict] | None = None,
        events: Mapping[str, StoredEvent] | None = None,
    ) -> tuple[Verdict, int | None, float]:
        started = time.perf_counter()
        answer: PlatformResponse | None = None
        try:
            answer = await self.fetch(request)
        except httpx.TimeoutException:
            verdict = Verdict(Kind.RETRY, "network: timeout")
        except httpx.HTTPError as err:
            verdict = Verdict(Kind.RETRY, f"network: {type(err).__name__}")
        else:
            try:
                verdict = classify(answer) if classify else self.tag.classify(answer, event_ids)
            except Exception:  # a classifier bug must not lose events: treat as transient
                log.exception("classifying %s's answer failed", self.name)
                verdict = Verdict(Kind.RETRY, f"unclassifiable answer (http {answer.status})")
            if verdict.kind is Kind.SETUP:
                self.tokens.forget(self.name)  # a refused token is asked for again next time
        latency = _ms(started)
        if self.observe is not None:
            try:
                self.observe(self.name, request, event_ids, answer, verdict, latency, events or {})
            except Exception:  # the debug view must never get in the way of a delivery
                log.exception("observing a request to %s failed", self.name)
        return verdict, (answer.status if answer is not None else None), latency

    async def test_connection(self) -> ConnectionTest:
        """Run the tag's safe probe: proves the credentials without recording a conversion."""
        started = time.perf_counter()
        try:
            destination = await self.authorized()
        except TokenError as err:
            return ConnectionTest(False, None, _ms(started), err.verdict.reason)
        except httpx.HTTPError as err:
            return ConnectionTest(False, None, _ms(started), f"network: {type(err).__name__}")
        probe_verdict = getattr(self.tag, "probe_verdict", None)

        def read(answer: PlatformResponse) -> Verdict:
            if probe_verdict is not None:
                return probe_verdict(answer)  # type: ignore[no-any-return]
            return self.tag.classify(answer, ())

        verdict, status, latency = await self._send(self.tag.probe(destination), (), read)
        ok = verdict.kind is Kind.DELIVERED
        if ok:
            self.state.last_test_ok_at = self.clock()
        return ConnectionTest(ok, status, latency, verdict.reason or ("ok" if ok else "failed"))

    def _settle(
        self,
        verdict: Verdict,
        events: Sequence[StoredEvent],
        attempts: Mapping[str, int],
        pending: _Pending,
    ) -> None:
        now = self.clock()
        kind = verdict.kind
        if kind is Kind.DELIVERED:
            self.state.last_success_at = now
            for event in events:
                tried = attempts[event.event_id] + 1
                if event.event_id in verdict.rejected:
                    reason = f"rejected: {verdict.rejected[event.event_id]}"
                    pending.settlements.append(Settlement(event.event_id, "dead", reason, tried))
                else:
                    pending.settlements.append(Settlement(event.event_id, "sent", "", tried))
            if verdict.rejected:
                self.state.last_reason = next(iter(verdict.rejected.values()))
            return
        self.state.last_failure_at = now
        self.state.last_reason = verdict.reason
        if kind in (Kind.REJECTED, Kind.SPLIT):
            for event in events:
                pending.settlements.append(
                    Settlement(
                        event.event_id,
                        "dead",
                        f"rejected: {verdict.reason}",
                        attempts[event.event_id] + 1,
                    )
                )
            return
        retry_at: float | None = None
        if kind is Kind.THROTTLED:
            wait = verdict.retry_after
            if wait is None:
                wait = backoff_seconds(2, self.config.retry_base_seconds, 60.0, self.rng)
            self.state.paused_until = max(self.state.paused_until, now + wait)
            self.state.pause_reason = f"throttled: {verdict.reason}"
            retry_at = self.state.paused_until
        elif kind is Kind.SETUP:
            self.state.paused_until = now + self.config.setup_recheck_seconds
            self.state.pause_reason = f"setup: {verdict.reason}"
            retry_at = self.state.paused_until
        elif verdict.retry_after is not None:
            retry_at = now + verdict.retry_after
        for event in events:
            tried = attempts[event.event_id] + 1
            when = retry_at
            if when is None:
                when = now + backoff_seconds(
                    tried, self.config.retry_base_seconds, self.config.retry_max_seconds, self.rng
                )
            deadline = event.time + self.spec.limits.freshness_seconds
            if kind is not Kind.SETUP and tried >= self.config.max_attempts:
                reason = f"gave up after {tried} attempts: {verdict.reason}"
                pending.settlements.append(Settlement(event.event_id, "dead", reason, tried))
            elif when > deadline:
                reason = f"expired before it could be retried: {verdict.reason}"
                pending.settlements.append(Settlement(event.event_id, "dead", reason, tried))
            else:
                pending.settlements.append(
                    Settlement(event.event_id, "pending", f"retry: {verdict.reason}", tried, when)
                )

    async def stop(self, grace: float) -> None:
        self.stopping = True
        self.stopped.set()
        self.wake.set()
        if self.tasks:
            _, unfinished = await asyncio.wait(set(self.tasks), timeout=grace)
            for task in unfinished:  # their events stay pending and are sent after restart
                task.cancel()
            if unfinished:
                await asyncio.wait(unfinished)


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)


class Dispatcher:
    def __init__(
        self,
        store: Store,
        destinations: Mapping[str, DestinationSettings],
        config: DispatchConfig,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.time,
        seed: int | None = None,
    ) -> None:
        self.store = store
        self.client = httpx.AsyncClient(
            transport=transport,
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=32),
            follow_redirects=False,
        )
        rng = random.Random(seed)  # noqa: S311 - jitter, not security
        tokens = TokenCache(clock)
        # kept for workers added at run time (the dashboard connects destinations)
        self.config, self.clock, self.rng, self.tokens = config, clock, rng, tokens
        self.observe: AttemptObserver | None = None
        self.running = False
        self.workers = {
            name: DestinationWorker(ds, TAGS[name], store, self.client, config, clock, rng, tokens)
            for name, ds in destinations.items()
        }
        self._runs: list[asyncio.Task[None]] = []

    def notify(self, destinations: Sequence[str]) -> None:
        """Called after a commit: wake the workers that have new work."""
        for name in destinations:
            worker = self.workers.get(name)
            if worker is not None:
                worker.wake.set()

    async def test_connection(self, name: str) -> ConnectionTest:
        return await self.workers[name].test_connection()

    def _worker(self, settings: DestinationSettings, tokens: TokenCache) -> DestinationWorker:
        worker = DestinationWorker(
            settings,
            TAGS[settings.name],
            self.store,
            self.client,
            self.config,
            self.clock,
            self.rng,
            tokens,
        )
        worker.observe = self.observe
        return worker

    async def upsert(self, name: str, settings: DestinationSettings) -> None:
        """Add a destination's worker, or replace it with one running ``settings``."""
        old = self.workers.get(name)
        if old is not None:
            await old.stop(STOP_GRACE_SECONDS)  # its unsent events stay pending for the new one
        self.tokens.forget(name)
        worker = self._worker(settings, self.tokens)
        self.workers[name] = worker
        if self.running:
            self._runs = [run for run in self._runs if not run.done()]
            self._runs.append(asyncio.create_task(worker.run(), name=f"dispatch-{name}"))
            worker.wake.set()  # whatever was waiting goes now

    async def remove(self, name: str) -> None:
        """Stop a destination's worker; its pending deliveries stay in the store."""
        worker = self.workers.pop(name, None)
        if worker is not None:
            await worker.stop(STOP_GRACE_SECONDS)
        self.tokens.forget(name)

    async def probe(self, settings: DestinationSettings) -> ConnectionTest:
        """Test credentials that are not connected yet (the dashboard's connect wizard)."""
        return await self._worker(settings, TokenCache(self.clock)).test_connection()

    def set_observer(self, observe: AttemptObserver | None) -> None:
        self.observe = observe
        for worker in self.workers.values():
            worker.observe = observe

    def states(self) -> dict[str, DestinationState]:
        return {name: w.state for name, w in self.workers.items()}

    async def start(self) -> None:
        self.running = True
        for worker in self.workers.values():
            self._runs.append(asyncio.create_task(worker.run(), name=f"dispatch-{worker.name}"))

    async def stop(self, grace: float = STOP_GRACE_SECONDS) -> None:
        await asyncio.gather(*(w.stop(grace) for w in self.workers.values()))
        for run in self._runs:
            run.cancel()
        await asyncio.gather(*self._runs, return_exceptions=True)
        self._runs.clear()
        await self.client.aclose()
