"""Rendering helpers shared by the dashboard's pages: templates, flashes, JSON or HTML."""

from __future__ import annotations

import datetime
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import jinja2
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

TEMPLATES = Path(__file__).resolve().parent.parent / "templates" / "admin"
STATIC = Path(__file__).resolve().parent / "static"
NAV = (
    ("platforms", "", "Platforms"),
    ("debug", "/debug", "Debug"),
    ("quality", "/quality", "Quality"),
    ("dead", "/dead-letters", "Dead letters"),
    ("config", "/config", "Config"),
)


def _ago(stamp: float | None) -> str:
    if not stamp:
        return "never"
    seconds = max(0, time.time() - stamp)
    if seconds < 60:
        return f"{int(seconds)} s ago"
    if seconds < 3600:
        return f"{int(seconds // 60)} min ago"
    if seconds < 86400:
        return f"{int(seconds // 3600)} h ago"
    return f"{int(seconds // 86400)} d ago"


def _when(stamp: float | None) -> str:
    if not stamp:
        return ""
    return datetime.datetime.fromtimestamp(stamp, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.0f} %"


environment = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES),
    autoescape=jinja2.select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)
environment.filters.update(ago=_ago, when=_when, pct=_pct)


def base(request: Request) -> str:
    """The dashboard's URL prefix (``/admin``), from the mount."""
    return str(request.scope.get("root_path", "")).rstrip("/")


def session(request: Request) -> dict[str, Any]:
    found: dict[str, Any] = request.scope["state"]["admin_session"]
    return found


def flash(request: Request, kind: str, text: str) -> None:
    session(request)["flash"] = [kind, text[:600]]


def wants_json(request: Request) -> bool:
    return "application/json" in request.headers.get("accept", "")


def render(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    current = session(request)
    context.setdefault("section", "")
    html = environment.get_template(template).render(
        base=base(request),
        csrf=current.get("csrf", ""),
        flash=current.pop("flash", None),
        signed_in=bool(current.get("auth")),
        nav=NAV,
        **context,
    )
    return HTMLResponse(html, status_code=status)


def redirect(request: Request, path: str) -> RedirectResponse:
    return RedirectResponse(base(request) + path, status_code=303)


def done(request: Request, path: str, payload: dict[str, Any], *, status: int = 200) -> Response:
    """JSON for the page's script, a redirect with a flash for a plain form post."""
    if wants_json(request):
        return JSONResponse(payload, status_code=status)
    kind = "ok" if payload.get("ok", status < 400) else "error"
    if payload.get("message"):
        flash(request, kind, str(payload["message"]))
    return redirect(request, path)


async def read_form(request: Request) -> FormData:
    """The posted form. Every dashboard form is urlencoded (no uploads: the config page
    reads a chosen file into its textarea), so no multipart parser is needed."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        return FormData()
    body = (await request.body()).decode("utf-8", "replace")
    return FormData(parse_qsl(body, keep_blank_values=True))
