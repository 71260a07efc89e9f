"""The dashboard's pages: sign-in, platforms, a destination's settings, debug, quality,
dead letters. The connect wizard is in ``wizard``, export/apply in ``configio``."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from edge.admin.passwords import verify_password
from edge.enrich import client_ip
from edge.schema import STANDARD_EVENTS
from tags import PLATFORMS, TAGS

from . import replay, status
from .registry import RegistryError
from .security import is_signed_in
from .web import base, done, flash, read_form, redirect, render, session, wants_json

if TYPE_CHECKING:
    from .app import Admin

log = logging.getLogger("capi_edge.admin")

DEAD_PAGE_SIZE = 50
REPLAY_ALL_LIMIT = 1_000
STREAM_SECONDS = 25.0  # a stream ends after this; the browser reconnects (Last-Event-ID)
STREAM_KEEPALIVE_SECONDS = 10.0


def admin_of(request: Request) -> Admin:
    found: Admin = request.app.state.admin
    return found


# -- sign-in -------------------------------------------------------------------------------


def _safe_next(request: Request, target: str | None) -> str:
    root = base(request)
    if target and target.startswith(root + "/") and not target.startswith("//"):
        if "\\" not in target and "//" not in target[1:]:
            return target
    return root + "/"


async def login_page(request: Request) -> Response:
    if is_signed_in(session(request)):
        return redirect(request, "/")
    return render(request, "login.html", next=request.query_params.get("next", ""))


async def login(request: Request) -> Response:
    admin = admin_of(request)
    posted = await read_form(request)
    target = _safe_next(request, str(posted.get("next") or ""))
    address = (
        client_ip(
            request.client.host if request.client else None,
            request.headers.get("x-forwarded-for"),
            admin.settings.trusted_proxies,
        )
        or "unknown"
    )
    wait = admin.limiter.retry_after(address)
    if wait:
        log.warning("admin sign-in refused: too many attempts from one address")
        response = render(
            request,
            "login.html",
            status=429,
            next=target,
            error=f"Too many sign-in attempts. Try again in {int(wait) + 1} s.",
        )
        response.headers["retry-after"] = str(int(wait) + 1)
        return response
    password = str(posted.get("password") or "")
    assert admin.settings.admin is not None
    ok = await asyncio.to_thread(verify_password, password, admin.settings.admin.password)
    if not ok:
        log.warning("admin sign-in failed: wrong password")
        return render(request, "login.html", status=401, next=target, error="Wrong password.")
    request.scope["state"]["admin_session"] = admin.sessions.new(auth=True)  # a fresh id
    return Response(status_code=303, headers={"location": target})


async def logout(request: Request) -> Response:
    admin = admin_of(request)
    admin.sessions.revoke(session(request)["sid"])
    request.scope["state"]["admin_session"] = admin.sessions.new()
    return redirect(request, "/login")


# -- platforms -----------------------------------------------------------------------------


async def cards(admin: Admin) -> list[dict[str, Any]]:
    now = admin.clock()
    store = admin.store
    counts = await store.delivery_counts_since(now - status.COUNTS_WINDOW_SECONDS)
    states = admin.dispatcher.states()
    registry = admin.registry
    found = []
    for name in PLATFORMS:
        spec = TAGS[name].SPEC
        table = registry.raw(name)
        card: dict[str, Any] = {
            "name": name,
            "title": spec.title,
            "monogram": spec.title[:1],
            "connected": table is not None,
        }
        if table is not None:
            attempts = []
            if name in registry.active:
                attempts = await store.recent_attempts(
                    name, now - status.RECENT_WINDOW_SECONDS, status.RECENT_ATTEMPTS
                )
            state = states.get(name)
            pill = status.pill(
                attempts,
                state,
                now,
                enabled=registry.enabled(name),
                problems=registry.problems.get(name, ()),
            )
            by_status = counts.get(name, {})
            card.update(
                pill=pill.label,
                pill_css=pill.css,
                detail=pill.detail,
                delivered=by_status.get("sent", 0),
                failed=by_status.get("dead", 0),
                skipped=by_status.get("skipped", 0),
                waiting=by_status.get("pending", 0),
                origin=registry.origin(name),
                active=name in registry.active,
                test_mode=_test_mode(table),
                last_test_ok_at=state.last_test_ok_at if state else None,
                last_reason=state.last_reason if state else "",
            )
        found.append(card)
    return found


def _test_mode(table: dict[str, Any]) -> str:
    for key in ("test_event_code", "test_id"):
        if table.get(key):
            return f"test code {table[key]}"
    for key in ("test", "validate_only", "debug_mode"):
        if table.get(key) == "true":
            return f"{key} = true"
    return ""


async def platforms(request: Request) -> Response:
    return render(
        request, "platforms.html", section="platforms", cards=await cards(admin_of(request))
    )


async def status_json(request: Request) -> Response:
    keep = ("pill", "pill_css", "detail", "delivered", "failed", "skipped", "waiting", "connected")
    return JSONResponse(
        {c["name"]: {k: c[k] for k in keep if k in c} for c in await cards(admin_of(request))}
    )


# -- one destination -----------------------------------------------------------------------


def _connected(request: Request) -> tuple[Admin, str, dict[str, Any]] | Response:
    admin = admin_of(request)
    name = request.path_params["name"]
    table = admin.registry.raw(name) if name in TAGS else None
    if table is None:
        if wants_json(request):
            return JSONResponse({"ok": False, "message": f"{name} is not connected"}, 404)
        flash(request, "error", f"{name} is not connected.")
        return redirect(request, "/")
    return admin, name, table


def event_names(name: str) -> list[str]:
    spec = TAGS[name].SPEC
    names = list(spec.event_map)
    names += sorted(STANDARD_EVENTS - set(names))
    return names


async def destination(request: Request, *, errors: list[str] | None = None) -> Response:
    found = _connected(request)
    if isinstance(found, Response):
        return found
    admin, name, table = found
    spec = TAGS[name].SPEC
    card = next(c for c in await cards(admin) if c["name"] == name)
    rules = table.get("rules", {})
    overrides = table.get("events", {})
    rows = []
    for neutral in event_names(name):
        default = spec.event_map.get(neutral, neutral if spec.custom_events else "")
        value = overrides.get(neutral, default)
        rows.append(
            {
                "neutral": neutral,
                "value": "" if value is False else value,
                "default": default,
                "allowed": rules.get("events") is None or neutral in rules.get("events", []),
            }
        )
    return render(
        request,
        "destination.html",
        status=422 if errors else 200,
        section="platforms",
        card=card,
        spec=spec,
        rows=rows,
        min_value=rules.get("min_value", ""),
        errors=errors or [],
        consent=sorted(admin.registry.active[name].consent)
        if name in admin.registry.active
        else [],
    )


async def save_settings(request: Request) -> Response:
    found = _connected(request)
    if isinstance(found, Response):
        return found
    admin, name, table = found
    spec = TAGS[name].SPEC
    posted = await read_form(request)
    names = event_names(name)
    allowed = [n for n in posted.getlist("allow") if n in names]
    rules = dict(table.get("rules", {}))
    rules.pop("events", None)
    if allowed and len(allowed) < len(names):
        rules["events"] = allowed
    if not allowed:
        return await destination(request, errors=["tick at least one event to send"])
    raw_min = str(posted.get("min_value") or "").strip()
    rules.pop("min_value", None)
    if raw_min:
        try:
            rules["min_value"] = float(raw_min)
        except ValueError:
            return await destination(request, errors=["minimum value: must be a number"])
    overrides: dict[str, Any] = {}
    for neutral in names:
        value = str(posted.get(f"map.{neutral}", "")).strip()
        default = spec.event_map.get(neutral, neutral if spec.custom_events else "")
        if value != default:
            overrides[neutral] = value or False
    table = {k: v for k, v in table.items() if k not in ("rules", "events")}
    if rules:
        table["rules"] = rules
    if overrides:
        table["events"] = overrides
    try:
        await admin.registry.save(name, table)
    except RegistryError as err:
        return await destination(request, errors=err.problems)
    flash(request, "ok", f"{spec.title}: routing rules and event names saved.")
    return redirect(request, f"/destinations/{name}")


async def set_enabled(request: Request) -> Response:
    found = _connected(request)
    if isinstance(found, Response):
        return found
    admin, name, table = found
    posted = await read_form(request)
    on = posted.get("enabled") == "true"
    table.pop("enabled", None)
    if not on:
        table["enabled"] = False
    try:
        await admin.registry.save(name, table)
    except RegistryError as err:
        flash(request, "error", "; ".join(err.problems))
        return redirect(request, f"/destinations/{name}")
    title = TAGS[name].SPEC.title
    flash(request, "ok", f"{title} switched {'on' if on else 'off'}.")
    return redirect(request, f"/destinations/{name}")


async def test_destination(request: Request) -> Response:
    found = _connected(request)
    if isinstance(found, Response):
        return found
    admin, name, _ = found
    title = TAGS[name].SPEC.title
    if name not in admin.dispatcher.workers:
        return done(
            request, "/", {"ok": False, "message": f"{title} is not running (off or not valid)"}
        )
    result = await admin.dispatcher.test_connection(name)
    shown = f"HTTP {result.http_status}" if result.http_status else "no answer"
    message = (
        f"{title}: test {'OK' if result.ok else 'failed'} ({shown}, {result.latency_ms:.0f} ms)"
        + ("" if result.ok else f": {result.reason}")
    )
    back = f"/destinations/{name}" if request.query_params.get("back") == "destination" else "/"
    return done(
        request,
        back,
        {
            "ok": result.ok,
            "http_status": result.http_status,
            "latency_ms": result.latency_ms,
            "reason": result.reason,
            "message": message,
        },
    )


async def disconnect(request: Request) -> Response:
    found = _connected(request)
    if isinstance(found, Response):
        return found
    admin, name, _ = found
    await admin.registry.disconnect(name)
    flash(request, "ok", f"{TAGS[name].SPEC.title} disconnected; its credentials are forgotten.")
    return redirect(request, "/")


# -- debug view ----------------------------------------------------------------------------


async def debug(request: Request) -> Response:
    admin = admin_of(request)
    tests = {}
    for dest in admin.registry.active.values():
        code = dest.destination.options.get("test_event_code") or dest.destination.options.get(
            "test_id"
        )
        if code:
            tests[dest.spec.title] = code
    return render(request, "debug.html", section="debug", tests=tests)


async def debug_stream(request: Request) -> Response:
    hub = admin_of(request).hub
    try:
        last = int(request.headers.get("last-event-id", "0") or 0)
    except ValueError:
        last = 0
    if last > hub.seq:  # the edge restarted since: everything is new
        last = 0

    async def events() -> AsyncIterator[bytes]:
        queue = hub.subscribe()
        loop = asyncio.get_running_loop()
        ends = loop.time() + STREAM_SECONDS
        try:
            yield b"retry: 1000\n\n"
            while True:
                left = ends - loop.time()
                if left <= 0:
                    return
                try:
                    entry = await asyncio.wait_for(queue.get(), min(left, STREAM_KEEPALIVE_SECONDS))
                except TimeoutError:
                    yield b": keep-alive\n\n"
                    continue
                if entry is None:  # the server is stopping
                    return
                if entry["seq"] <= last:
                    continue
                data = json.dumps(entry, separators=(",", ":"), ensure_ascii=False)
                yield f"id: {entry['seq']}\nevent: {entry['type']}\ndata: {data}\n\n".encode()
        finally:
            hub.unsubscribe(queue)

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"cache-control": "no-store", "x-accel-buffering": "no"},
    )


# -- quality -------------------------------------------------------------------------------


async def quality_page(request: Request) -> Response:
    admin = admin_of(request)
    store = admin.store
    rows = []
    for name in [n for n in PLATFORMS if n in admin.registry.active]:
        dest = admin.registry.active[name]
        events = await store.recent_events(name, status.QUALITY_SAMPLE)
        rows.append(
            {"name": name, "title": dest.spec.title, "q": status.quality(dest.spec, events)}
        )
    return render(
        request, "quality.html", section="quality", rows=rows, sample=status.QUALITY_SAMPLE
    )


# -- dead letters --------------------------------------------------------------------------


async def dead_letters(request: Request) -> Response:
    admin = admin_of(request)
    destination_filter = request.query_params.get("destination") or None
    if destination_filter not in TAGS:
        destination_filter = None
    reason = (request.query_params.get("reason") or "").strip()[:200] or None
    try:
        page = max(0, int(request.query_params.get("page", "0")))
    except ValueError:
        page = 0
    letters, total = await admin.store.dead_letters(
        destination_filter, reason, DEAD_PAGE_SIZE, page * DEAD_PAGE_SIZE
    )
    return render(
        request,
        "dead_letters.html",
        section="dead",
        letters=letters,
        total=total,
        page=page,
        pages=(total + DEAD_PAGE_SIZE - 1) // DEAD_PAGE_SIZE,
        destination=destination_filter or "",
        reason=reason or "",
        destinations=[(n, TAGS[n].SPEC.title) for n in PLATFORMS],
        titles={n: TAGS[n].SPEC.title for n in PLATFORMS},
    )


async def replay_dead(request: Request) -> Response:
    admin = admin_of(request)
    posted = await read_form(request)
    selected: dict[str, list[str]] = {}
    if posted.get("all") == "true":
        destination_filter = str(posted.get("destination") or "")
        reason = str(posted.get("reason") or "").strip() or None
        names = [destination_filter] if destination_filter in TAGS else list(PLATFORMS)
        for name in names:
            ids = await admin.store.dead_ids(name, reason, REPLAY_ALL_LIMIT)
            if ids:
                selected[name] = ids
    else:
        for item in posted.getlist("event"):
            name, _, event_id = str(item).partition("|")
            if name in TAGS and event_id:
                selected.setdefault(name, []).append(event_id)
    outcome = replay.Outcome()
    for name, ids in selected.items():
        outcome.merge(await replay.replay(admin, name, ids))
    query = ""
    if posted.get("destination") or posted.get("reason"):
        query = "?" + urlencode(
            {"destination": posted.get("destination") or "", "reason": posted.get("reason") or ""}
        )
    return done(
        request,
        f"/dead-letters{query}",
        {
            "ok": outcome.replayed > 0 or not outcome.refused,
            "message": outcome.message(),
            **outcome.as_json(),
        },
    )
