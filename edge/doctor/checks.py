"""The checks a visitor's browser walks through: site, loader, collect, cookies, consent.

``Doctor`` runs them in that order over one client, with the certificate and address-range
checks from ``hosts`` in between.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator, Mapping
from http.cookies import SimpleCookie

import httpx

from .finding import Finding
from .hosts import address_range, certificates
from .reach import explain, fix_for
from .target import Target, base_url, origin

EVENT_NAME = "capi_edge_doctor"
MIN_LOADER_MAX_AGE = 3600
DOCTOR_CONSENT = {
    "ad_storage": "granted",  # so that the edge writes its cookies and we can read them
    "ad_user_data": "denied",
    "analytics_storage": "denied",
    "ad_personalization": "denied",
}
LOADER_MARKER = b"capi-edge loader"
LOADER_TAG = re.compile(r"<script\b[^>]*\bsrc=[\"']([^\"']*loader\.js[^\"']*)[\"'][^>]*>", re.I)
CONSENT_SIGNS: Mapping[str, re.Pattern[str]] = {
    "a Consent Mode default (gtag('consent', 'default', …))": re.compile(
        r"consent['\"]\s*,\s*['\"]default"
    ),
    "an IAB TCF CMP (__tcfapi)": re.compile(r"__tcfapi"),
    "a consent banner script": re.compile(
        r"cookiebot|cookielaw\.org|onetrust|usercentrics|didomi|consentmanager|quantcast|"
        r"iubenda|cookieyes|termly|sourcepoint|trustarc|axeptio|klaro|osano|complianz|"
        r"cookiehub|borlabs",
        re.I,
    ),
}
ROUTE_FIX = (
    "route the edge's paths to capi-edge (see the Caddyfile: a subdomain, or /_e/* on the "
    "shop's host) and check that capi-edge serve is running"
)


class Doctor:
    def __init__(self, target: Target, client: httpx.Client) -> None:
        self.target = target
        self.client = client
        self.page: str | None = None
        self.collect_answer: httpx.Response | None = None
        self.hit_id: str | None = None

    def run(self) -> Iterator[Finding]:
        yield self.site()
        if self.target.edge is None:
            yield Finding(
                "edge",
                "FAIL",
                "no edge to check: pass --edge, or include the loader in the site's page",
            )
            return
        yield from certificates(self.target)
        yield self.loader()
        collect = self.collect()
        yield collect
        taking_hits = collect.status != "FAIL"  # the cookie and consent checks send hits
        if taking_hits:
            yield self.cookies()
        yield address_range(self.target)
        if taking_hits:
            yield self.consent()

    # site ---------------------------------------------------------------------------

    def site(self) -> Finding:
        url = self.target.site
        try:
            response = self.client.get(url, follow_redirects=True)
        except httpx.HTTPError as error:
            fix = fix_for(error, "check the --site address")
            return Finding("site", "FAIL", explain(error, url), fix)
        if response.status_code != 200:
            return Finding("site", "FAIL", f"{url} answered {response.status_code}")
        self.page = response.text
        tags = [(response.url.join(m.group(1)), m.group(0)) for m in LOADER_TAG.finditer(self.page)]
        if not tags:
            hint = self.target.edge.join("loader.js") if self.target.edge else "<edge>/loader.js"
            return Finding(
                "site",
                "FAIL",
                f"{response.url} does not load the capi-edge loader",
                f'add <script async src="{hint}"></script> to every page (see the README)',
            )
        if self.target.edge is None:
            self.target.edge = base_url(str(tags[0][0].copy_with(query=None)).rsplit("/", 1)[0])
        expected = self.target.edge.join("loader.js")
        mine = [tag for url, tag in tags if url.copy_with(query=None) == expected]
        if not mine:
            return Finding(
                "site",
                "FAIL",
                f"{response.url} loads {tags[0][0]}, not this edge's {expected}",
                "point the script tag at the edge you deployed, or pass that edge as --edge",
            )
        if not re.search(r"\basync\b", mine[0], re.I):
            return Finding(
                "site",
                "warn",
                f"{response.url} loads {expected} without async: it delays the page",
                'write <script async src="…">',
            )
        return Finding("site", "ok", f"{response.url} loads {expected} ({self.target.mode}, async)")

    # loader -------------------------------------------------------------------------

    def loader(self) -> Finding:
        assert self.target.edge is not None
        url = self.target.edge.join("loader.js")
        try:
            response = self.client.get(url, headers={"accept-encoding": "gzip"})
        except httpx.HTTPError as error:
            return Finding("loader", "FAIL", explain(error, url), fix_for(error, ROUTE_FIX))
        if response.status_code != 200:
            return Finding("loader", "FAIL", f"{url} answered {response.status_code}", ROUTE_FIX)
        if LOADER_MARKER not in response.content[:200]:
            return Finding(
                "loader", "FAIL", f"{url} is not capi-edge's loader (another app answered)",
                ROUTE_FIX,
            )  # fmt: skip
        problems = []
        kind = response.headers.get("content-type", "")
        if "javascript" not in kind:
            problems.append(f"it is served as {kind or 'no content type'}, not JavaScript")
        encoding = response.headers.get("content-encoding")
        if not encoding:
            problems.append("it is not compressed")
        max_age = cache_max_age(response.headers.get("cache-control", ""))
        if max_age < MIN_LOADER_MAX_AGE:
            problems.append(f"it may be cached for {max_age} s only")
        size = response.num_bytes_downloaded
        if problems:
            return Finding(
                "loader",
                "warn",
                f"{url}: " + "; ".join(problems),
                "let the proxy pass the edge's Content-Encoding and Cache-Control through",
            )
        return Finding(
            "loader",
            "ok",
            f"{url}: 200, {encoding}, {size:,} bytes, cached {max_age // 3600} h",
        )

    # collect and cookies ------------------------------------------------------------

    def hit(self, consent: Mapping[str, str], *, gpc: bool = False) -> httpx.Response:
        assert self.target.edge is not None
        event_id = f"capi-edge-doctor-{uuid.uuid4()}"
        body = {
            "event": EVENT_NAME,
            "event_id": event_id,
            "page": {"url": str(self.target.site)},
            "consent": dict(consent),
        }
        headers = {"content-type": "text/plain", "origin": origin(self.target.site)}
        if gpc:
            headers["sec-gpc"] = "1"
        self.hit_id = self.hit_id or event_id
        self.client.cookies.clear()  # every doctor hit is a new visitor
        return self.client.post(
            self.target.edge.join("collect"), content=json.dumps(body), headers=headers
        )

    def collect(self) -> Finding:
        assert self.target.edge is not None
        url = self.target.edge.join("collect")
        site_origin = origin(self.target.site)
        try:
            answer = self.hit(DOCTOR_CONSENT)
        except httpx.HTTPError as error:
            return Finding("collect", "FAIL", explain(error, url), fix_for(error, ROUTE_FIX))
        status = answer.status_code
        if status == 403:
            return Finding(
                "collect",
                "FAIL",
                f"the edge refuses hits from {site_origin} (origin not allowed)",
                f'add "{self.target.site.host}" to site.domains in edge.toml',
            )
        if status in (404, 405):
            return Finding("collect", "FAIL", f"POST {url} answered {status}", ROUTE_FIX)
        if status == 429:
            return Finding("collect", "warn", f"{url} is rate limiting this address (429)")
        if status != 200:
            reason = answer.text[:200].strip()
            return Finding("collect", "FAIL", f"POST {url} answered {status}: {reason}")
        self.collect_answer = answer
        allowed = answer.headers.get("access-control-allow-origin")
        if allowed != site_origin:
            return Finding(
                "collect",
                "warn",
                f"{url} accepted the hit but did not allow {site_origin} to read the answer "
                f"(Access-Control-Allow-Origin: {allowed or 'missing'})",
                "let the proxy pass the edge's CORS headers through",
            )
        return Finding("collect", "ok", f"{url} accepts hits from {site_origin}")

    def cookies(self) -> Finding:
        assert self.target.edge is not None and self.collect_answer is not None
        headers = self.collect_answer.headers.get_list("set-cookie")
        if not headers:
            return Finding(
                "cookies",
                "warn",
                "the edge wrote no cookies for a hit with ad_storage granted",
                "set [cookies] enabled = true, or the click IDs last only as long as Safari "
                "lets the platforms' own scripts keep them",
            )
        site_host, edge_host = self.target.site.host, self.target.edge.host
        names, domains, problems = [], set(), []
        for header in headers:
            jar: SimpleCookie = SimpleCookie()
            jar.load(header)
            for name, morsel in jar.items():
                names.append(name)
                domain = morsel["domain"].lstrip(".").lower()
                domains.add(domain or None)
                if not morsel["secure"]:
                    problems.append(f"{name} is not Secure")
                if morsel["samesite"].lower() != "lax":
                    problems.append(f"{name} is not SameSite=Lax")
        for domain in domains:
            scope = domain or edge_host
            if not (site_host == scope or site_host.endswith("." + scope)):
                where = f"Domain={domain}" if domain else f"host-only cookies for {edge_host}"
                return Finding(
                    "cookies",
                    "FAIL",
                    f"the edge sets {where}, which pages on {site_host} cannot read, so the "
                    "platforms' browser tags never see the click IDs",
                    f'serve the edge from a subdomain of {site_host} and list "{site_host}" '
                    "in site.domains (the edge then sets the shop's registrable domain)",
                )
        if problems:
            return Finding("cookies", "FAIL", "; ".join(problems))
        scope = ", ".join(sorted(f"Domain={d}" if d else f"host {edge_host}" for d in domains))
        return Finding(
            "cookies",
            "ok",
            f"{', '.join(names)}: {scope}, Secure, SameSite=Lax, readable on {site_host}",
        )

    # consent ------------------------------------------------------------------------

    def consent(self) -> Finding:
        signs = [
            name for name, sign in CONSENT_SIGNS.items() if self.page and sign.search(self.page)
        ]
        try:
            denied = self.hit({**DOCTOR_CONSENT, "ad_storage": "denied"})
            opted_out = self.hit(DOCTOR_CONSENT, gpc=True)
        except httpx.HTTPError as error:
            return Finding("consent", "FAIL", explain(error, self.target.edge or self.target.site))
        if denied.status_code == 200 and written(denied):
            return Finding(
                "consent",
                "FAIL",
                "the edge wrote ad cookies for a hit that denied ad_storage",
                "make sure nothing between the browser and the edge rewrites the hit",
            )
        if opted_out.status_code == 200 and written(opted_out):
            return Finding(
                "consent",
                "FAIL",
                "the edge wrote ad cookies for a hit sent with Sec-GPC: 1: the proxy drops "
                "the Global Privacy Control header",
                "pass request headers through unchanged (Caddy's reverse_proxy does)",
            )
        stored = self.stored_status()
        edge_part = "the edge applies the consent each hit carries (and GPC)" + stored
        if self.page is None:
            return Finding("consent", "ok", edge_part)
        if not signs:
            return Finding(
                "consent",
                "warn",
                f"{self.target.site} shows no consent default or CMP in its HTML, so every "
                "hit counts as [consent] default (denied unless set): nothing reaches the "
                f"ad platforms; {edge_part}",
                "run gtag('consent', 'default', {…}) before the loader, or load your CMP "
                "there (a CMP added by a tag manager is invisible to this check)",
            )
        return Finding("consent", "ok", f"the page has {' and '.join(signs)}; {edge_part}")

    def stored_status(self) -> str:
        if not self.target.api_key or not self.hit_id or self.target.edge is None:
            return ""
        try:
            answer = self.client.get(
                self.target.edge.join(f"v1/events/{self.hit_id}"),
                headers={"authorization": f"Bearer {self.target.api_key}"},
            )
        except httpx.HTTPError:
            return "; the event status API did not answer"
        if answer.status_code != 200:
            return f"; the event status API answered {answer.status_code}"
        reasons = {d.get("reason") for d in answer.json().get("destinations", {}).values()}
        return f"; the doctor's hit is stored and was sent nowhere ({', '.join(sorted(reasons))})"


def written(response: httpx.Response) -> list[str]:
    """The cookies a response stores (a Max-Age of 0 deletes one instead)."""
    names = []
    for header in response.headers.get_list("set-cookie"):
        jar: SimpleCookie = SimpleCookie()
        jar.load(header)
        names += [n for n, m in jar.items() if m["max-age"] in ("", None) or int(m["max-age"]) > 0]
    return names


def cache_max_age(header: str) -> int:
    match = re.search(r"(?:^|[,\s])max-age=(\d+)", header)
    return int(match.group(1)) if match else 0
