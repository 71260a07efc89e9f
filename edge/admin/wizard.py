"""The connect wizard: intro, credentials, review and test. A successful test activates.

Each field is checked as soon as it loses focus (``POST api/validate/<platform>``, the same
``Credential.problem`` the config file uses) and the whole table again on submit
(``validate_destination``). Secrets typed here are kept in this process's memory until the
test succeeds, then stored encrypted by the vault; they are never sent back to the browser:
a secret field shows only whether it is set. A secret may also be written as a reference
(``env:NAME`` or ``file:/path``), exactly as in the config file.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from edge.settings import _Problems, resolve_secret
from tags import TAGS
from tags.base import TagSpec

from .registry import RegistryError, is_reference
from .web import done, flash, read_form, redirect, render, session, wants_json

if TYPE_CHECKING:
    from .app import Admin

BASE_URL = "base_url"
MAX_FIELD_LENGTH = 4_096


def _admin(request: Request) -> Admin:
    found: Admin = request.app.state.admin
    return found


def _spec(request: Request) -> TagSpec | None:
    tag = TAGS.get(request.path_params["platform"])
    return tag.SPEC if tag is not None else None


def _unknown(request: Request) -> Response:
    flash(request, "error", "There is no such platform.")
    return redirect(request, "/")


def fields(spec: TagSpec) -> list[dict[str, Any]]:
    """The wizard's fields: credentials, then options, then the API origin."""
    out = []
    for cred in spec.credentials:
        out.append(
            {
                "name": cred.name,
                "title": cred.title,
                "hint": cred.hint,
                "secret": cred.secret,
                "required": cred.required,
                "example": cred.example,
                "group": "credentials",
            }
        )
    for option in spec.options:
        out.append(
            {
                "name": option.name,
                "title": option.name.replace("_", " ").capitalize(),
                "hint": option.hint,
                "secret": option.secret,
                "required": False,
                "example": "",
                "group": "options",
            }
        )
    out.append(
        {
            "name": BASE_URL,
            "title": "API base URL",
            "hint": f"leave empty for {spec.base_url}; set it for staging or a local test server",
            "secret": False,
            "required": False,
            "example": "",
            "group": "advanced",
        }
    )
    return out


def field_problem(admin: Admin, spec: TagSpec, name: str, value: str) -> str | None:
    """What is wrong with one field's value, or None; messages never include the value."""
    if name == BASE_URL:
        if value and not value.startswith(("http://", "https://")):
            return "API base URL must be an http:// or https:// URL"
        return None
    checks = {c.name: c for c in spec.credentials} | {o.name: o for o in spec.options}
    check = checks.get(name)
    if check is None:
        return "unknown field"
    title = getattr(check, "title", name.replace("_", " "))
    if not value:
        if getattr(check, "required", False):
            return f"{title} is required: {check.hint}"
        return None
    if len(value) > MAX_FIELD_LENGTH:
        return f"{title} is too long"
    resolved: str | None = value
    if value.startswith(("env:", "file:", "literal:")):
        problems = _Problems()
        resolved = resolve_secret(value, name, problems, admin.settings.base)
        if problems.lines:
            return f"{title}: {problems.lines[0].split(': ', 1)[1]}"
    problem = check.problem(resolved)
    return f"{title} {problem}" if problem else None


def _current(admin: Admin, request: Request, name: str) -> tuple[dict[str, Any], bool]:
    """The table being edited (a draft, else the connected one) and whether it is a draft."""
    draft = admin.registry.draft(session(request)["sid"], name)
    if draft is not None:
        return dict(draft.raw), True
    return admin.registry.raw(name) or {}, False


def _display(spec: TagSpec, table: dict[str, Any]) -> list[dict[str, Any]]:
    """Each field as it may be shown: secrets only as set/unset or as their reference."""
    secret = spec.secret_names
    rows = []
    for item in fields(spec):
        value = table.get(item["name"])
        if value in (None, ""):
            shown = ""
        elif isinstance(value, str) and is_reference(value):
            kind, _, target = value.partition(":")
            shown = (
                f"from environment variable {target}" if kind == "env" else f"from file {target}"
            )
        elif item["name"] in secret:
            shown = "•••••••• (set)"
        else:
            shown = str(value)
        rows.append({**item, "shown": shown, "set": value not in (None, "")})
    return rows


async def intro(request: Request) -> Response:
    spec = _spec(request)
    if spec is None:
        return _unknown(request)
    admin = _admin(request)
    return render(
        request,
        "connect_intro.html",
        section="platforms",
        spec=spec,
        fields=fields(spec),
        connected=admin.registry.raw(spec.name) is not None,
        step=1,
    )


async def credentials(
    request: Request, *, errors: dict[str, str] | None = None, general: list[str] | None = None
) -> Response:
    spec = _spec(request)
    if spec is None:
        return _unknown(request)
    admin = _admin(request)
    table, _ = _current(admin, request, spec.name)
    rows = []
    for row in _display(spec, table):
        value = table.get(row["name"])
        row["value"] = "" if row["secret"] or value is None else str(value)
        if row["secret"] and isinstance(value, str) and is_reference(value):
            row["value"] = value  # a reference names a variable, not the secret: editable
        row["error"] = (errors or {}).get(row["name"], "")
        rows.append(row)
    return render(
        request,
        "connect_credentials.html",
        status=422 if errors or general else 200,
        section="platforms",
        spec=spec,
        fields=rows,
        general=general or [],
        step=2,
    )


async def save_credentials(request: Request) -> Response:
    spec = _spec(request)
    if spec is None:
        return _unknown(request)
    admin = _admin(request)
    posted = await read_form(request)
    table, _ = _current(admin, request, spec.name)
    for item in fields(spec):
        name = item["name"]
        value = str(posted.get(name) or "").strip()[:MAX_FIELD_LENGTH]
        if not value:
            if item["secret"] and table.get(name):
                continue  # blank keeps the stored secret
            table.pop(name, None)
        else:
            table[name] = value
    table.pop("enabled", None)  # connecting switches it on
    _, problems = admin.registry.validate(spec.name, table)
    sid = session(request)["sid"]
    admin.registry.put_draft(sid, spec.name, table, valid=not problems)
    if problems:
        errors: dict[str, str] = {}
        general = []
        prefix = f"destinations.{spec.name}."
        for line in problems:
            path, _, message = line.partition(": ")
            key = path.removeprefix(prefix).split(".")[0]
            if path.startswith(prefix) and any(f["name"] == key for f in fields(spec)):
                title = next(f["title"] for f in fields(spec) if f["name"] == key)
                errors.setdefault(key, f"{title} {message}")
            else:
                general.append(line)
        return await credentials(request, errors=errors, general=general)
    return redirect(request, f"/connect/{spec.name}/review")


async def review(request: Request, *, result: dict[str, Any] | None = None) -> Response:
    spec = _spec(request)
    if spec is None:
        return _unknown(request)
    admin = _admin(request)
    draft = admin.registry.draft(session(request)["sid"], spec.name)
    if draft is None or not draft.valid:
        return redirect(request, f"/connect/{spec.name}/credentials")
    return render(
        request,
        "connect_review.html",
        status=422 if result and not result["ok"] else 200,
        section="platforms",
        spec=spec,
        rows=[r for r in _display(spec, draft.raw) if r["set"]],
        result=result,
        step=3,
    )


async def activate(request: Request) -> Response:
    spec = _spec(request)
    if spec is None:
        return _unknown(request)
    admin = _admin(request)
    sid = session(request)["sid"]
    draft = admin.registry.draft(sid, spec.name)
    if draft is None or not draft.valid:
        return done(
            request,
            f"/connect/{spec.name}/credentials",
            {"ok": False, "message": "Enter the credentials first."},
            status=409,
        )
    dest, problems = admin.registry.validate(spec.name, draft.raw)
    if dest is None or problems:
        return done(
            request,
            f"/connect/{spec.name}/credentials",
            {"ok": False, "message": "; ".join(problems) or "not valid"},
            status=422,
        )
    test = await admin.dispatcher.probe(dest)
    answer = f"HTTP {test.http_status}" if test.http_status else "no answer"
    result = {
        "ok": test.ok,
        "http_status": test.http_status,
        "latency_ms": test.latency_ms,
        "reason": test.reason,
        "message": f"Test {'passed' if test.ok else 'failed'}: {answer} in {test.latency_ms:.0f} ms"
        + ("" if test.ok else f" ({test.reason})"),
    }
    if not test.ok:
        if wants_json(request):
            return JSONResponse(result, status_code=422)
        return await review(request, result=result)
    try:
        await admin.registry.save(spec.name, draft.raw)
    except RegistryError as err:
        return done(
            request,
            f"/connect/{spec.name}/credentials",
            {"ok": False, "message": str(err)},
            status=422,
        )
    worker = admin.dispatcher.workers.get(spec.name)
    if worker is not None:
        worker.state.last_test_ok_at = admin.clock()
    admin.registry.drop_draft(sid, spec.name)
    result["message"] = f"{spec.title} is connected. {result['message']}."
    result["redirect"] = f"{request.scope.get('root_path', '')}/"
    return done(request, "/", result)


async def validate_field(request: Request) -> Response:
    spec = _spec(request)
    if spec is None:
        return JSONResponse({"ok": False, "message": "unknown platform"}, status_code=404)
    try:
        body = await request.json()
    except ValueError:
        body = None
    if not isinstance(body, dict) or not isinstance(body.get("field"), str):
        return JSONResponse({"ok": False, "message": 'send {"field": ..., "value": ...}'}, 400)
    value = body.get("value")
    value = value.strip() if isinstance(value, str) else ""
    name = body["field"]
    if not value and name in spec.secret_names:
        table, _ = _current(_admin(request), request, spec.name)
        if table.get(name):
            return JSONResponse({"ok": True, "message": ""})  # blank keeps the stored one
    problem = field_problem(_admin(request), spec, name, value)
    return JSONResponse({"ok": problem is None, "message": problem or ""})
