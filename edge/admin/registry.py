"""The destination registry: the TOML file's destinations merged with the dashboard's changes.

The config file stays the source kept in git; what the dashboard changes is stored per
destination, as a whole destination table, encrypted by the vault in the store's
``admin_destinations`` table. The merge is simple and visible: a destination changed in the
dashboard is taken from there, every other from the file; disconnecting a destination the
file defines stores a tombstone. "Discard dashboard changes" empties the table.

Every table is validated by the same code as the config file (``validate_destination``)
before it is stored, and applied to the running edge at once: the dispatcher's worker is
added, replaced or removed and the collector routes new hits to the new set.
Only this process sees a change immediately; others read the store when they start.
"""

from __future__ import annotations

import asyncio
import copy
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from edge.settings import DestinationSettings, Settings, validate_destination
from edge.store.admin import AdminStore
from edge.vault import Vault
from tags import PLATFORMS, TAGS

DRAFT_TTL_SECONDS = 3_600
SECRET_REFERENCES = ("env:", "file:")


class RegistryError(Exception):
    """A destination table did not validate; ``problems`` lists each as ``key.path: msg``."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class Runner(Protocol):
    async def upsert(self, name: str, settings: DestinationSettings) -> None: ...

    async def remove(self, name: str) -> None: ...


class Router(Protocol):
    def set_destinations(self, destinations: list[DestinationSettings]) -> None: ...


@dataclass
class Draft:
    """A destination table being connected in the wizard, not active yet (memory only)."""

    raw: dict[str, Any]
    created: float = field(default_factory=time.monotonic)
    valid: bool = False


class DestinationRegistry:
    def __init__(
        self,
        settings: Settings,
        store: AdminStore,
        vault: Vault,
        runner: Runner,
        router: Router,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.store = store
        self.vault = vault
        self.runner = runner
        self.router = router
        self.clock = clock
        self.file: dict[str, dict[str, Any]] = copy.deepcopy(
            dict(settings.source.get("destinations", {}))
        )
        self.overrides: dict[str, dict[str, Any] | None] = {}  # None: disconnected
        self.active: dict[str, DestinationSettings] = dict(settings.destinations)
        self.problems: dict[str, list[str]] = {}  # stored tables that no longer validate
        self.drafts: dict[tuple[str, str], Draft] = {}
        self.lock = asyncio.Lock()

    # -- reading ---------------------------------------------------------------------------

    def raw(self, name: str) -> dict[str, Any] | None:
        """The destination's table as configured (secrets as written, never resolved)."""
        table = self.overrides[name] if name in self.overrides else self.file.get(name)
        return copy.deepcopy(table) if table is not None else None

    def merged(self) -> dict[str, dict[str, Any]]:
        """Every configured destination's table, in the dashboard's order."""
        tables = {}
        for name in [*PLATFORMS, *sorted(set(self.file) - set(PLATFORMS))]:
            table = self.raw(name)
            if table is not None:
                tables[name] = table
        return tables

    def origin(self, name: str) -> str:
        if name in self.overrides:
            return "dashboard" if name not in self.file else "file, changed in the dashboard"
        return "file" if name in self.file else ""

    def enabled(self, name: str) -> bool:
        table = self.raw(name)
        return table is not None and table.get("enabled", True) is not False

    def validate(
        self, name: str, raw: Mapping[str, Any]
    ) -> tuple[DestinationSettings | None, list[str]]:
        return validate_destination(
            name,
            copy.deepcopy(dict(raw)),
            default_country=self.settings.default_country,
            base=self.settings.base,
        )

    def secrets(self) -> list[str]:
        """Every secret value the edge holds now: redact these wherever anything is shown."""
        values = self.settings.secrets()
        for dest in self.active.values():
            values += dest.destination.secret_values(dest.spec)
        for (_, name), draft in list(self.drafts.items()):
            spec = TAGS[name].SPEC
            values += [v for k, v in draft.raw.items() if k in spec.secret_names and v]
        return [v for v in values if isinstance(v, str) and v]

    # -- drafts (the connect wizard) -------------------------------------------------------

    def draft(self, session: str, name: str) -> Draft | None:
        self._expire_drafts()
        return self.drafts.get((session, name))

    def put_draft(self, session: str, name: str, raw: dict[str, Any], *, valid: bool) -> None:
        self._expire_drafts()
        self.drafts[(session, name)] = Draft(raw, valid=valid)

    def drop_draft(self, session: str, name: str) -> None:
        self.drafts.pop((session, name), None)

    def _expire_drafts(self) -> None:
        now = time.monotonic()
        for key, draft in list(self.drafts.items()):
            if now - draft.created > DRAFT_TTL_SECONDS:
                del self.drafts[key]

    # -- changing --------------------------------------------------------------------------

    async def load(self) -> None:
        """Read the dashboard's stored tables and run the merged set (at start-up)."""
        blobs = await self.store.config_blobs()
        self.overrides = {
            name: json.loads(self.vault.decrypt(blob)) for name, blob in blobs.items()
        }
        await self._apply_all()

    async def save(self, name: str, raw: dict[str, Any]) -> DestinationSettings | None:
        """Validate, store encrypted and run one destination's table; RegistryError if bad."""
        dest, problems = self.validate(name, raw)
        if problems:
            raise RegistryError(problems)
        async with self.lock:
            await self.store.put_config_blob(name, self._seal(raw), self.clock())
            self.overrides[name] = copy.deepcopy(raw)
            self.problems.pop(name, None)
            await self._run(name, dest)
        return dest

    async def disconnect(self, name: str) -> None:
        async with self.lock:
            if name in self.file:
                await self.store.put_config_blob(name, self._seal(None), self.clock())
                self.overrides[name] = None
            else:
                await self.store.delete_config_blobs([name])
                self.overrides.pop(name, None)
            self.problems.pop(name, None)
            await self._run(name, None)

    async def reset(self) -> None:
        """Discard every dashboard change: back to the config file's destinations."""
        async with self.lock:
            await self.store.delete_config_blobs()
            self.overrides = {}
            await self._apply_all()

    async def replace_all(self, tables: Mapping[str, dict[str, Any]]) -> None:
        """Make ``tables`` the destinations (a config file applied from the dashboard)."""
        problems = []
        for name, raw in tables.items():
            problems += self.validate(name, raw)[1]
        if problems:
            raise RegistryError(problems)
        overrides: dict[str, dict[str, Any] | None] = {n: dict(t) for n, t in tables.items()}
        for name in self.file:
            overrides.setdefault(name, None)
        async with self.lock:
            blobs = {name: self._seal(table) for name, table in overrides.items()}
            await self.store.replace_config_blobs(blobs, self.clock())
            self.overrides = overrides
            await self._apply_all()

    def _seal(self, table: dict[str, Any] | None) -> bytes:
        return self.vault.encrypt(json.dumps(table, sort_keys=True).encode())

    async def _run(self, name: str, dest: DestinationSettings | None) -> None:
        if dest is None:
            self.active.pop(name, None)
            await self.runner.remove(name)
        else:
            self.active[name] = dest
            await self.runner.upsert(name, dest)
        self._route()

    async def _apply_all(self) -> None:
        wanted: dict[str, DestinationSettings] = {}
        self.problems = {}
        for name, raw in self.merged().items():
            dest, problems = self.validate(name, raw)
            if problems:
                self.problems[name] = problems
            elif dest is not None:
                wanted[name] = dest
        for name in list(self.active):
            if name not in wanted:
                await self.runner.remove(name)
        for name, dest in wanted.items():
            if self.active.get(name) != dest:
                await self.runner.upsert(name, dest)
        self.active = wanted
        self._route()

    def _route(self) -> None:
        order = {name: i for i, name in enumerate(PLATFORMS)}
        self.router.set_destinations(
            sorted(self.active.values(), key=lambda d: order.get(d.name, len(order)))
        )


def is_reference(value: object) -> bool:
    """A secret written as a reference (``env:NAME``, ``file:path``) rather than a value."""
    return isinstance(value, str) and value.startswith(SECRET_REFERENCES)
