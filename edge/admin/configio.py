"""Config as code from the dashboard: export the merged config as TOML, apply a config file.

**Export** writes the running config with the dashboard's destination changes merged in.
Secrets never leave in clear: a reference (``env:``/``file:``) is kept as written, a value
typed in the dashboard (or written literally in the file) becomes ``env:CAPI_EDGE_<...>``
and the page lists the variables to set. A stored password hash is kept (it is not the
password).

**Apply** validates a whole config file exactly as ``capi-edge check`` does and makes its
destinations the running ones (stored encrypted by the vault, like any dashboard change).
An exported reference that is not set in this environment keeps the value the vault holds,
so export → edit → apply round-trips. Other sections (site, server, api, …) need a restart
with the file: the page says which differ.
"""

from __future__ import annotations

import copy
import datetime
import json
import os
import re
import tomllib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response

from edge.errors import ConfigError
from edge.settings import parse
from tags import TAGS

from .passwords import is_password_hash
from .registry import RegistryError, is_reference
from .web import flash, read_form, redirect, render

if TYPE_CHECKING:
    from .app import Admin

SECTION_ORDER = ("site", "server", "api", "consent", "cookies", "dispatch", "admin")
INLINE_TABLES = frozenset({"events", "rules"})
BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
MAX_APPLY_BYTES = 200_000


def env_name(*parts: str) -> str:
    return "CAPI_EDGE_" + "_".join(re.sub(r"[^A-Za-z0-9]", "_", p).upper() for p in parts)


# -- TOML writing --------------------------------------------------------------------------


def _key(key: str) -> str:
    return key if BARE_KEY.match(key) else json.dumps(key)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # a JSON string is a TOML basic string
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    raise TypeError(f"cannot write {type(value).__name__} as TOML")


def _table(lines: list[str], name: str, body: Mapping[str, Any]) -> None:
    scalars = {k: v for k, v in body.items() if not isinstance(v, dict) or k in INLINE_TABLES}
    tables = {k: v for k, v in body.items() if isinstance(v, dict) and k not in INLINE_TABLES}
    if scalars or not tables:
        lines.append(f"[{name}]")
        lines += [f"{_key(k)} = {_value(v)}" for k, v in scalars.items()]
        lines.append("")
    for key, value in tables.items():
        _table(lines, f"{name}.{_key(key)}", value)


def dump_toml(config: Mapping[str, Any], header: str = "") -> str:
    lines = [f"# {line}" if line else "#" for line in header.splitlines()]
    if lines:
        lines.append("")
    for key, value in config.items():
        if key == "destinations":
            for name, table in value.items():
                _table(lines, f"destinations.{_key(name)}", table)
        elif isinstance(value, dict):
            _table(lines, _key(key), value)
        else:
            lines.insert(0, f"{_key(key)} = {_value(value)}")
    return "\n".join(lines).rstrip() + "\n"


# -- export --------------------------------------------------------------------------------


def exported(admin: Admin) -> tuple[dict[str, Any], list[str]]:
    """The merged config with every clear secret replaced by an env: reference."""
    source = copy.deepcopy(dict(admin.settings.source))
    needed: list[str] = []

    def hide(value: Any, *parts: str) -> Any:
        if not isinstance(value, str) or is_reference(value):
            return value
        name = env_name(*parts)
        needed.append(name)
        return f"env:{name}"

    config: dict[str, Any] = {}
    for section in SECTION_ORDER:
        if section in source:
            config[section] = source[section]
    api = config.get("api")
    if isinstance(api, dict) and isinstance(api.get("keys"), list):
        api["keys"] = [
            hide(k, "api_key", str(i + 1)) if len(api["keys"]) > 1 else hide(k, "api_key")
            for i, k in enumerate(api["keys"])
        ]
    admin_section = config.get("admin")
    if isinstance(admin_section, dict) and isinstance(admin_section.get("password"), str):
        password = admin_section["password"]
        if not is_password_hash(password):
            admin_section["password"] = hide(password, "admin_password")
    destinations: dict[str, Any] = {}
    for name, table in admin.registry.merged().items():
        secret = TAGS[name].SPEC.secret_names if name in TAGS else frozenset()
        destinations[name] = {
            key: hide(value, name, key) if key in secret else value for key, value in table.items()
        }
    config["destinations"] = destinations
    return config, needed


def export_text(admin: Admin) -> tuple[str, list[str]]:
    config, needed = exported(admin)
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    header = f"capi-edge config, exported from the dashboard on {stamp}.\n"
    if needed:
        header += "Secrets are not exported; set these environment variables:\n"
        header += "\n".join(f"  {name}" for name in needed)
    return dump_toml(config, header), needed


async def export(request: Request) -> Response:
    text, _ = export_text(_admin(request))
    return Response(
        text,
        media_type="application/toml; charset=utf-8",
        headers={"content-disposition": 'attachment; filename="edge.toml"'},
    )


# -- apply ---------------------------------------------------------------------------------


def _restore_exported_secrets(admin: Admin, data: dict[str, Any]) -> None:
    """env:CAPI_EDGE_* references made by export and not set here: keep the running value."""

    def restore(value: Any, current: Any, *parts: str) -> Any:
        name = env_name(*parts)
        if value == f"env:{name}" and not os.environ.get(name) and current is not None:
            return current
        return value

    source = admin.settings.source
    api, running_api = data.get("api"), source.get("api") or {}
    if isinstance(api, dict) and isinstance(api.get("keys"), list):
        keys, running = api["keys"], list(running_api.get("keys") or [])
        api["keys"] = [
            restore(k, running[i] if i < len(running) else None, "api_key", str(i + 1))
            if len(keys) > 1
            else restore(k, running[0] if running else None, "api_key")
            for i, k in enumerate(keys)
        ]
    section, running_admin = data.get("admin"), source.get("admin") or {}
    if isinstance(section, dict) and "password" in section:
        section["password"] = restore(
            section["password"], running_admin.get("password"), "admin_password"
        )
    for name, table in (data.get("destinations") or {}).items():
        if not isinstance(table, dict) or name not in TAGS:
            continue
        current = admin.registry.raw(name) or {}
        for key in TAGS[name].SPEC.secret_names:
            if key in table:
                table[key] = restore(table[key], current.get(key), name, key)


async def apply_text(admin: Admin, text: str) -> tuple[list[str], list[str]]:
    """Apply a config file's destinations; returns (problems, sections needing a restart)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        return [f"not valid TOML: {err}"], []
    _restore_exported_secrets(admin, data)
    try:
        settings = parse(dump_toml(data), source="the applied config", base=admin.settings.base)
    except ConfigError as err:
        lines = str(err).splitlines()
        return [line.strip().removeprefix("- ") for line in lines[1:]] or lines, []
    try:
        await admin.registry.replace_all(dict(settings.source.get("destinations", {})))
    except RegistryError as err:
        return err.problems, []
    restart = [
        section
        for section in SECTION_ORDER
        if settings.source.get(section) != admin.settings.source.get(section)
    ]
    return [], restart


async def apply(request: Request) -> Response:
    admin = _admin(request)
    posted = await read_form(request)
    text = str(posted.get("config") or "")
    if not text.strip():
        flash(request, "error", "Paste a config file (or choose one) to apply.")
        return redirect(request, "/config")
    if len(text) > MAX_APPLY_BYTES:
        flash(request, "error", "That config is too large.")
        return redirect(request, "/config")
    problems, restart = await apply_text(admin, text)
    if problems:
        return await config_page(request, problems=problems)
    message = f"Applied: {len(admin.registry.active)} destination(s) running."
    if restart:
        message += (
            f" These sections differ from the running file and take effect after a restart"
            f" with the new file: {', '.join(restart)}."
        )
    flash(request, "ok", message)
    return redirect(request, "/config")


async def reset(request: Request) -> Response:
    await _admin(request).registry.reset()
    flash(request, "ok", "Dashboard changes discarded: the destinations are the config file's.")
    return redirect(request, "/config")


async def config_page(request: Request, *, problems: list[str] | None = None) -> Response:
    admin = _admin(request)
    text, needed = export_text(admin)
    origins = [
        {
            "name": n,
            "title": TAGS[n].SPEC.title if n in TAGS else n,
            "origin": admin.registry.origin(n),
        }
        for n in sorted(set(admin.registry.file) | set(admin.registry.overrides))
    ]
    return render(
        request,
        "config.html",
        status=422 if problems else 200,
        section="config",
        text=text,
        needed=needed,
        problems=problems or [],
        origins=origins,
        changed=bool(admin.registry.overrides),
    )


def _admin(request: Request) -> Admin:
    found: Admin = request.app.state.admin
    return found
