"""``create_admin``: the dashboard as one ASGI app, mounted at ``/admin`` by ``edge.app``.

It shares the edge's store, dispatcher and collector: connecting a destination in the
dashboard starts its worker and routes new hits to it, without a restart.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from edge.collect import Collector
from edge.dispatcher import Dispatcher
from edge.settings import Settings
from edge.store.admin import AdminStore
from edge.vault import Vault, data_dir_for

from . import configio, pages, wizard
from .debug import DebugHub
from .registry import DestinationRegistry
from .security import AdminGuard, Sessions, SignInLimiter
from .web import STATIC


class Admin:
    def __init__(
        self,
        settings: Settings,
        store: AdminStore,
        dispatcher: Dispatcher,
        collector: Collector,
        *,
        clock: Callable[[], float] = time.time,
        environ: Mapping[str, str] = os.environ,
    ) -> None:
        if settings.admin is None:
            raise ValueError("the dashboard needs an [admin] section")
        self.settings = settings
        self.store = store
        self.dispatcher = dispatcher
        self.collector = collector
        self.clock = clock
        self.vault = Vault.load(
            settings.admin.vault_key_file, data_dir_for(settings.database), environ=environ
        )
        secret = self.vault.session_secret(b"admin-session|" + settings.admin.password.encode())
        self.sessions = Sessions(secret, settings.admin.session_seconds)
        self.limiter = SignInLimiter()
        self.registry = DestinationRegistry(
            settings, store, self.vault, dispatcher, collector, clock
        )
        self.hub = DebugHub(
            self.registry.secrets,
            lambda: self.registry.active,
            settings.default_country,
            on_watch=self._watch,
        )
        self.app = Starlette(
            routes=[
                Route("/", pages.platforms, methods=["GET"]),
                Route("/login", pages.login_page, methods=["GET"]),
                Route("/login", pages.login, methods=["POST"]),
                Route("/logout", pages.logout, methods=["POST"]),
                Route("/api/status", pages.status_json, methods=["GET"]),
                Route("/api/validate/{platform}", wizard.validate_field, methods=["POST"]),
                Route("/connect/{platform}", wizard.intro, methods=["GET"]),
                Route("/connect/{platform}/credentials", wizard.credentials, methods=["GET"]),
                Route("/connect/{platform}/credentials", wizard.save_credentials, methods=["POST"]),
                Route("/connect/{platform}/review", wizard.review, methods=["GET"]),
                Route("/connect/{platform}/activate", wizard.activate, methods=["POST"]),
                Route("/destinations/{name}", pages.destination, methods=["GET"]),
                Route("/destinations/{name}/settings", pages.save_settings, methods=["POST"]),
                Route("/destinations/{name}/enabled", pages.set_enabled, methods=["POST"]),
                Route("/destinations/{name}/test", pages.test_destination, methods=["POST"]),
                Route("/destinations/{name}/disconnect", pages.disconnect, methods=["POST"]),
                Route("/debug", pages.debug, methods=["GET"]),
                Route("/debug/stream", pages.debug_stream, methods=["GET"]),
                Route("/quality", pages.quality_page, methods=["GET"]),
                Route("/dead-letters", pages.dead_letters, methods=["GET"]),
                Route("/dead-letters/replay", pages.replay_dead, methods=["POST"]),
                Route("/config", configio.config_page, methods=["GET"]),
                Route("/config/export", configio.export, methods=["GET"]),
                Route("/config/apply", configio.apply, methods=["POST"]),
                Route("/config/reset", configio.reset, methods=["POST"]),
                Mount("/static", app=StaticFiles(directory=STATIC), name="static"),
            ],
            middleware=[Middleware(AdminGuard, sessions=self.sessions)],
        )
        self.app.state.admin = self

    def _watch(self, watching: bool) -> None:
        """Hits and requests are reported to the debug view only while someone watches."""
        self.collector.observe = self.hub.on_hits if watching else None
        self.dispatcher.set_observer(self.hub.on_attempt if watching else None)

    async def startup(self) -> None:
        """After the store opens, before the dispatcher starts: run the merged destinations."""
        await self.registry.load()

    async def shutdown(self) -> None:
        self.hub.close()


def create_admin(
    settings: Settings,
    store: AdminStore,
    dispatcher: Dispatcher,
    collector: Collector,
    *,
    clock: Callable[[], float] = time.time,
) -> Admin:
    return Admin(settings, store, dispatcher, collector, clock=clock)
