"""Recording sinks: local stand-ins for the platforms' APIs, for the demo, tests and staging.

Mounted at ``/_demo/sinks`` in the demo (each destination's ``base_url`` points at
``.../_demo/sinks/<platform>``) or run alone with ``capi-edge sinks --port 9100``.
Every request is recorded and answered the way the platform answers success; failures
can be scripted through the control endpoint, so outages and throttling can be rehearsed:

    POST /_control/fail   {"platform": "meta", "status": 500, "times": 3, "retry_after": 2}
    POST /_control/reset
    GET  /requests[?platform=meta]     what each platform received, as JSON
    GET  /                             the same, as a page that refreshes itself
"""

from __future__ import annotations

import html
import json
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

MAX_RECORDED = 2_000
REDACTED_HEADERS = frozenset({"authorization", "access-token", "x-api-key", "cookie"})
REDACTED_PARAMS = frozenset({"access_token", "api_secret"})  # GA4 and Snapchat: in the query

# What each platform answers on success; an event count is filled in where it reports one.
SUCCESS_BODIES: Mapping[str, Any] = {
    "meta": {"events_received": "{n}", "messages": [], "fbtrace_id": "sink"},
    "tiktok": {"code": 0, "message": "OK", "request_id": "sink", "data": {}},
    "google_ads": {"requestId": "sink-request"},
    "ga4": {"validationMessages": []},
    "pinterest": {"num_events_received": "{n}", "num_events_processed": "{n}", "events": []},
    "snapchat": {"status": "VALID", "reason": "Events have been processed successfully."},
    "linkedin": {"elements": []},
    "reddit": {"data": {"message": "Successfully processed conversion events."}},
    "criteo": {},
    "awin": {},
    "taboola": {},
    "outbrain": {},
}
# OAuth token endpoints (Google's) pointed at the sink get a token.
TOKEN_BODY = {"access_token": "sink-access-token", "expires_in": 3599, "token_type": "Bearer"}


@dataclass
class Failure:
    status: int
    times: int
    body: Any = None
    retry_after: float | None = None


@dataclass
class Recorder:
    requests: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=MAX_RECORDED))
    failures: dict[str, Failure] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def for_platform(self, platform: str | None) -> list[dict[str, Any]]:
        with self.lock:
            return [r for r in self.requests if platform is None or r["platform"] == platform]


def _event_count(body: Any) -> int:
    if isinstance(body, dict):
        for key in ("data", "events", "elements", "conversions"):
            if isinstance(body.get(key), list):
                return len(body[key])
        if isinstance(body.get("data"), dict) and isinstance(body["data"].get("events"), list):
            return len(body["data"]["events"])  # Reddit
    return 1


def _success(platform: str, method: str, body: Any, path: str) -> Any:
    if path.endswith("/token"):
        return TOKEN_BODY
    if method == "GET":
        return {"id": "sink", "name": f"{platform} (local sink)"}
    template = SUCCESS_BODIES.get(platform, {"ok": True})
    text = json.dumps(template).replace('"{n}"', str(_event_count(body)))
    return json.loads(text)


def create_sinks_app(recorder: Recorder | None = None) -> Starlette:
    recorder = recorder or Recorder()

    async def record(request: Request) -> Response:
        platform = request.path_params["platform"]
        raw = await request.body()
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        entry = {
            "platform": platform,
            "at": time.time(),
            "method": request.method,
            "path": "/" + request.path_params["rest"],
            "query": {
                k: ("[redacted]" if k in REDACTED_PARAMS else v)
                for k, v in request.query_params.items()
            },
            "headers": {
                k: ("[redacted]" if k in REDACTED_HEADERS else v)
                for k, v in request.headers.items()
            },
            "json": body,
        }
        with recorder.lock:
            failure = recorder.failures.get(platform)
            if failure and failure.times > 0:
                failure.times -= 1
                entry["answered"] = failure.status
                recorder.requests.append(entry)
                headers = {}
                if failure.retry_after is not None:
                    headers["retry-after"] = str(int(failure.retry_after))
                return JSONResponse(
                    failure.body if failure.body is not None else {"error": "sink failure"},
                    status_code=failure.status,
                    headers=headers,
                )
            entry["answered"] = 200
            recorder.requests.append(entry)
        return JSONResponse(_success(platform, request.method, body, entry["path"]))

    async def control_fail(request: Request) -> Response:
        spec = await request.json()
        recorder.failures[spec["platform"]] = Failure(
            status=int(spec.get("status", 500)),
            times=int(spec.get("times", 1)),
            body=spec.get("body"),
            retry_after=spec.get("retry_after"),
        )
        return JSONResponse({"ok": True})

    async def control_reset(request: Request) -> Response:
        with recorder.lock:
            recorder.requests.clear()
            recorder.failures.clear()
        return JSONResponse({"ok": True})

    async def listing(request: Request) -> Response:
        return JSONResponse(recorder.for_platform(request.query_params.get("platform")))

    async def page(request: Request) -> Response:
        rows = []
        for entry in reversed(recorder.for_platform(None)):
            stamp = time.strftime("%H:%M:%S", time.localtime(entry["at"]))
            rows.append(
                "<details><summary><b>{}</b> {} {} {} → {}</summary><pre>{}</pre></details>".format(
                    html.escape(entry["platform"]),
                    stamp,
                    html.escape(entry["method"]),
                    html.escape(entry["path"]),
                    entry["answered"],
                    html.escape(json.dumps(entry["json"], indent=2, ensure_ascii=False)),
                )
            )
        body = (
            "<!doctype html><meta charset=utf-8><meta http-equiv=refresh content=3>"
            "<title>What the platforms received</title>"
            "<style>body{font:14px system-ui;margin:2em}pre{background:#f4f4f4;padding:1em}"
            "summary{cursor:pointer;padding:.3em 0}</style>"
            "<h1>What the platforms received</h1>"
            "<p>Local recording sinks standing in for the platforms' APIs. "
            "<a href='/'>Back to the demo shop</a></p>"
            + ("".join(rows) or "<p>Nothing yet: accept consent in the shop and buy something.</p>")
        )
        return HTMLResponse(body)

    return Starlette(
        routes=[
            Route("/", page, methods=["GET"]),
            Route("/requests", listing, methods=["GET"]),
            Route("/_control/fail", control_fail, methods=["POST"]),
            Route("/_control/reset", control_reset, methods=["POST"]),
            Route(
                "/{platform:str}/{rest:path}",
                record,
                methods=["GET", "POST", "PUT", "DELETE"],
            ),
        ]
    )
