"""The ASGI application: routes, middleware, and the lifespan that runs store and dispatcher."""

from __future__ import annotations

import contextlib
import functools
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import ASGIApp

from edge.collect import Collector
from edge.dispatcher import Dispatcher
from edge.errors import RequestError, StoreError
from edge.hits import STORE_UNAVAILABLE, HitRoutes, error_response
from edge.loader import LoaderScript
from edge.middleware import (
    CORS,
    BodyLimit,
    BodyLimitMiddleware,
    CORSMiddleware,
    RateLimiter,
    RateLimitMiddleware,
)
from edge.retention import Retention
from edge.settings import Settings
from edge.store import Store
from edge.store.journaled import JournaledStore
from edge.store.sqlite import SQLiteStore

log = logging.getLogger("capi_edge")

HIT_PATHS = ("/collect", "/consent", "/v1/events")


# The same answers as the hit endpoints' own (edge.hits), for every other route.
async def request_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestError)
    return error_response(exc)  # type: ignore[return-value]  # a plain ASGI response


async def store_error(request: Request, exc: Exception) -> Response:
    log.error("store unavailable: %s", exc)
    return STORE_UNAVAILABLE  # type: ignore[return-value]


class EdgeApp(Starlette):
    """Starlette, with the hit endpoints' POSTs served in front of its middleware stack.

    Those requests come by the thousand; ``HitRoutes`` applies the same limits (CORS, body
    limit, rate limit) and error answers to them in one layer. An unexpected error there
    is logged with its traceback and answered 500 in JSON (``edge.hits.INTERNAL_ERROR``).
    """

    hit_routes: Callable[[ASGIApp], ASGIApp] | None = None

    def build_middleware_stack(self) -> ASGIApp:
        stack = super().build_middleware_stack()
        return self.hit_routes(stack) if self.hit_routes is not None else stack


def open_store(settings: Settings) -> Store:
    """The store ``[server] ingest`` asks for (an in-memory database cannot be journaled)."""
    if settings.ingest == "journal" and str(settings.database) != ":memory:":
        return JournaledStore(settings.database, durability=settings.durability)
    return SQLiteStore(settings.database, durability=settings.durability)


def create_app(
    settings: Settings,
    *,
    store: Store | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    clock: Callable[[], float] = time.time,
    extra_routes: list[BaseRoute] | None = None,
    rate_limit: bool = True,
    dispatch: bool = True,
) -> Starlette:
    """Build the edge. Tests inject ``transport`` (the platforms) and ``clock``."""
    store = store or open_store(settings)
    dispatcher = Dispatcher(
        store, settings.destinations, settings.dispatch, transport=transport, clock=clock
    )
    collector = Collector(settings, store, dispatcher.notify, clock)
    admin = None
    if settings.admin is not None:  # the dashboard (edge/admin), mounted at /admin
        from edge.admin.app import create_admin

        admin = create_admin(settings, store, dispatcher, collector, clock=clock)  # type: ignore[arg-type]
    loader = LoaderScript()
    # [server] retention_days; 0 keeps everything
    retention = (
        Retention(store, settings.retention_days, clock=clock) if settings.retention_days else None
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        await store.open()
        if admin is not None:
            await admin.startup()
        if dispatch:
            await dispatcher.start()
        if retention is not None:
            retention.start()
        try:
            yield {}
        finally:
            if retention is not None:
                await retention.stop()
            if admin is not None:
                await admin.shutdown()
            await dispatcher.stop()
            await store.close()

    async def health(request: Request) -> Response:
        return JSONResponse({"ok": True, "destinations": sorted(dispatcher.workers)})

    routes: list[BaseRoute] = [
        Route("/loader.js", loader.serve, methods=["GET", "HEAD"]),
        Route("/collect", collector.collect, methods=["POST"]),
        Route("/consent", collector.consent_update, methods=["POST"]),
        Route("/v1/events", collector.server_events, methods=["POST"]),
        Route("/v1/events/{event_id}", collector.event_status, methods=["GET"]),
        Route("/healthz", health, methods=["GET"]),
        *(extra_routes or []),
        *([Mount("/admin", app=admin.app)] if admin is not None else []),
    ]
    # The same limit objects serve the middleware (every other request) and HitRoutes,
    # which applies them to a hit's POST itself, outside everything (edge.hits).
    cors, body_limit = CORS(settings.domains), BodyLimit()
    middleware = [
        Middleware(CORSMiddleware, domains=settings.domains),
        Middleware(BodyLimitMiddleware),
    ]
    rate, burst = settings.rate_limit
    limiter = None
    if rate_limit and rate > 0:
        limiter = RateLimiter(trusted=settings.trusted_proxies, rate=rate, burst=burst)
        middleware.append(Middleware(RateLimitMiddleware, paths=HIT_PATHS, limiter=limiter))
    hits = {
        "/collect": collector.collect,
        "/consent": collector.consent_update,
        "/v1/events": collector.server_events,
    }
    app = EdgeApp(
        routes=routes,
        middleware=middleware,
        lifespan=lifespan,
        exception_handlers={RequestError: request_error, StoreError: store_error},
    )
    app.hit_routes = functools.partial(
        HitRoutes, endpoints=hits, cors=cors, body_limit=body_limit, limiter=limiter
    )
    app.state.settings = settings
    app.state.store = store
    app.state.dispatcher = dispatcher
    app.state.collector = collector
    app.state.retention = retention
    return app
