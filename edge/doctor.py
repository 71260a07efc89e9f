"""``capi-edge doctor``: check a live deployment from the outside and say what is wrong.

    capi-edge doctor --site https://shop.example --edge https://t.shop.example

The checks follow the path a visitor's browser takes:

    site      the shop's page answers and loads the loader from this edge
    tls       every host involved has a certificate browsers accept, not about to expire
    loader    /loader.js answers as JavaScript, compressed and cacheable
    collect   a hit sent from the shop's origin is accepted
    cookies   the edge's cookies are Secure, SameSite=Lax, with a Domain the shop can read
    address   the edge answers from the shop's address range (Safari's 7-day cookie cap)
    consent   the page declares consent, and the edge applies the consent a hit carries

Each finding is ``ok``, ``warn`` or ``FAIL`` with a sentence, and a fix where there is one;
the exit status is 1 when anything failed. The doctor's own hits cannot reach a platform:
they come from a bot user agent (bots are never forwarded), under an event name no platform
maps, with ``ad_user_data`` and ``analytics_storage`` denied. ``--resolve HOST:ADDRESS``
checks a deployment before its DNS exists (as curl's ``--resolve``), ``--ca-file`` trusts an
internal CA.
"""

from __future__ import annotations

import argparse
import functools
import ipaddress
import json
import os
import re
import socket
import ssl
import sys
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from typing import Any, Literal

import httpx

Status = Literal["ok", "warn", "FAIL"]
USER_AGENT = "Mozilla/5.0 (compatible; CapiEdgeDoctorBot/1.0; +https://github.com/capi-edge)"
EVENT_NAME = "capi_edge_doctor"
DEFAULT_TIMEOUT_SECONDS = 10.0
EXIT_USAGE = 2
CERT_WARN_DAYS = 14
MIN_LOADER_MAX_AGE = 3600
DAY = 86_400
IPV4_HALF, IPV6_HALF = 16, 64  # Safari compares the first half of the two addresses
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


@dataclass(frozen=True, slots=True)
class Finding:
    check: str
    status: Status
    message: str
    fix: str = ""


@dataclass
class Target:
    site: httpx.URL
    edge: httpx.URL | None  # the edge's base, ending in "/" (None: found on the site's page)
    resolve: Mapping[str, str] = field(default_factory=dict)
    ca_file: str | None = None
    api_key: str | None = None
    timeout: float = DEFAULT_TIMEOUT_SECONDS

    @property
    def same_origin(self) -> bool:
        return self.edge is not None and self.edge.host == self.site.host

    @property
    def mode(self) -> str:
        if self.edge is None:
            return "not known yet"
        if self.same_origin:
            return "same origin"
        if registrable(self.edge.host) == registrable(self.site.host):
            return "first-party subdomain"
        return "another site: its cookies are third-party"


@functools.cache
def _public_suffixes() -> Any:
    from publicsuffixlist import PublicSuffixList  # loaded on use: it parses the whole list

    return PublicSuffixList()


def registrable(host: str) -> str:
    return str(_public_suffixes().privatesuffix(host) or host)


def base_url(url: str) -> httpx.URL:
    """``https://t.shop.example`` or ``https://shop.example/_e`` -> a base ending in "/"."""
    parsed = httpx.URL(url if "://" in url else f"https://{url}")
    path = parsed.path if parsed.path.endswith("/") else parsed.path + "/"
    return parsed.copy_with(path=path, query=None, fragment=None)


class ResolvingTransport(httpx.BaseTransport):
    """Connect to fixed addresses for some host names, keeping the Host header and TLS SNI."""

    def __init__(self, addresses: Mapping[str, str], **options: object) -> None:
        self.addresses = {host.lower(): address for host, address in addresses.items()}
        self.inner = httpx.HTTPTransport(**options)  # type: ignore[arg-type]

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        address = self.addresses.get(request.url.host)
        if not address:
            return self.inner.handle_request(request)
        # a copy for the wire: the client keeps the request (and response.url) it made
        wire = httpx.Request(
            request.method,
            request.url.copy_with(host=address),
            headers=request.headers,  # Host still names the original host
            stream=request.stream,
            extensions={**request.extensions, "sni_hostname": request.url.host},
        )
        return self.inner.handle_request(wire)

    def close(self) -> None:
        self.inner.close()


def tls_context(ca_file: str | None) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if ca_file:
        context.load_verify_locations(cafile=ca_file)
    return context


def client_for(target: Target) -> httpx.Client:
    transport = ResolvingTransport(target.resolve, verify=tls_context(target.ca_file))
    return httpx.Client(
        transport=transport,
        timeout=target.timeout,
        headers={"user-agent": USER_AGENT},
        follow_redirects=False,
    )


def origin(url: httpx.URL) -> str:
    default = {"https": 443, "http": 80}.get(url.scheme)
    port = f":{url.port}" if url.port and url.port != default else ""
    return f"{url.scheme}://{url.host}{port}"


def certificate_error(error: Exception) -> bool:
    return "CERTIFICATE_VERIFY_FAILED" in str(error)


def fix_for(error: Exception, fix: str) -> str:
    return CERT_FIX if certificate_error(error) else fix


def explain(error: Exception, url: httpx.URL) -> str:
    """A network failure in plain words."""
    text = str(error)
    where = f"{url.host}:{url.port or (443 if url.scheme == 'https' else 80)}"
    if isinstance(error, httpx.ConnectError):
        if certificate_error(error):
            reason = re.search(r"certificate verify failed: ([^(]+)", text)
            detail = f" ({reason.group(1).strip()})" if reason else ""
            return f"{url.host} presented a certificate this machine does not trust{detail}"
        if "Name or service not known" in text or "nodename nor servname" in text:
            return f"{url.host} does not resolve to an address (no DNS record?)"
        if "refused" in text.lower():
            return f"nothing accepts connections on {where} (connection refused)"
        return f"cannot connect to {where}: {text}"
    if isinstance(error, httpx.TimeoutException):
        return f"{where} did not answer within the time limit"
    return f"{url} failed: {text or type(error).__name__}"


# -- the checks ------------------------------------------------------------------------


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
        yield from self.tls()
        yield self.loader()
        collect = self.collect()
        yield collect
        taking_hits = collect.status != "FAIL"  # the cookie and consent checks send hits
        if taking_hits:
            yield self.cookies()
        yield self.address()
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

    # tls ----------------------------------------------------------------------------

    def tls(self) -> Iterator[Finding]:
        assert self.target.edge is not None
        urls = {self.target.edge.host: self.target.edge, self.target.site.host: self.target.site}
        for host, url in urls.items():
            yield self.certificate(host, url)

    def certificate(self, host: str, url: httpx.URL) -> Finding:
        if url.scheme != "https":
            return Finding(
                "tls",
                "FAIL",
                f"{url} is plain HTTP: browsers drop the edge's Secure cookies and block "
                "the loader on an HTTPS shop",
                "serve it over HTTPS (Caddy obtains certificates by itself)",
            )
        address = self.target.resolve.get(host, host)
        port = url.port or 443
        context = tls_context(self.target.ca_file)
        try:
            with socket.create_connection((address, port), timeout=self.target.timeout) as raw:
                with context.wrap_socket(raw, server_hostname=host) as conn:
                    cert = conn.getpeercert() or {}
        except ssl.SSLCertVerificationError as error:
            return Finding("tls", "FAIL", f"{host}: {certificate_problem(error)}", CERT_FIX)
        except (OSError, ssl.SSLError) as error:
            return Finding("tls", "FAIL", f"{host}:{port}: no TLS handshake ({error})")
        not_before, not_after = cert.get("notBefore"), cert.get("notAfter")
        if not isinstance(not_before, str) or not isinstance(not_after, str):
            return Finding("tls", "ok", f"{host}: valid certificate")
        start, end = ssl.cert_time_to_seconds(not_before), ssl.cert_time_to_seconds(not_after)
        left = end - time.time()
        shown = f"{left / DAY:.0f} days" if left >= 2 * DAY else f"{left / 3600:.0f} hours"
        # Renewal happens when a third of the lifetime is left (Caddy, certbot): later than
        # that, and under two weeks, renewal is failing. Short-lived certificates are fine.
        if left < min(CERT_WARN_DAYS * DAY, (end - start) / 3):
            return Finding(
                "tls",
                "warn",
                f"{host}: the certificate expires in {shown} and has not been renewed",
                "check that renewal works (Caddy renews on its own: see its log)",
            )
        return Finding("tls", "ok", f"{host}: valid certificate, {shown} left")

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

    # address ------------------------------------------------------------------------

    def address(self) -> Finding:
        assert self.target.edge is not None
        if self.target.same_origin:
            return Finding(
                "address",
                "ok",
                "same origin: the edge answers from the shop's own address, Safari keeps "
                "its cookies for their full lifetime",
            )
        try:
            site = self.addresses(self.target.site)
            edge = self.addresses(self.target.edge)
        except OSError as error:
            return Finding("address", "FAIL", f"cannot resolve the hosts: {error}")
        unmatched = [e for e in edge if not any(same_half(e, s) for s in site)]
        shown = f"{self.target.edge.host} ({', '.join(map(str, edge))}) and " + (
            f"{self.target.site.host} ({', '.join(map(str, site))})"
        )
        if unmatched:
            return Finding(
                "address",
                "warn",
                f"{shown} differ in the first half of the address: Safari caps the cookies "
                "the edge writes at 7 days",
                f"serve the edge from the shop's address range, or use the same-origin mode "
                f"({origin(self.target.site)}/_e/…, see the Caddyfile)",
            )
        return Finding("address", "ok", f"{shown} share the first half of the address")

    def addresses(self, url: httpx.URL) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
        fixed = self.target.resolve.get(url.host)
        if fixed:
            return [ipaddress.ip_address(fixed)]
        infos = socket.getaddrinfo(url.host, url.port or 443, proto=socket.IPPROTO_TCP)
        return sorted({ipaddress.ip_address(info[4][0]) for info in infos}, key=str)

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


CERT_FIX = (
    "use a certificate from a public CA for exactly this name (Caddy gets one by itself); "
    "for an internal CA, pass --ca-file"
)
ROUTE_FIX = (
    "route the edge's paths to capi-edge (see the Caddyfile: a subdomain, or /_e/* on the "
    "shop's host) and check that capi-edge serve is running"
)


def certificate_problem(error: ssl.SSLCertVerificationError) -> str:
    message = (error.verify_message or str(error)).strip()
    lowered = message.lower()
    if "expired" in lowered:
        return "the certificate has expired"
    if "hostname mismatch" in lowered or "not valid for" in lowered:
        return "the certificate is for another name"
    if "self-signed" in lowered or "self signed" in lowered or "local issuer" in lowered:
        return "the certificate is not signed by an authority browsers trust"
    return f"the certificate is not valid ({message})"


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


def same_half(
    a: ipaddress.IPv4Address | ipaddress.IPv6Address,
    b: ipaddress.IPv4Address | ipaddress.IPv6Address,
) -> bool:
    if a.version != b.version:
        return False
    bits = IPV4_HALF if a.version == 4 else IPV6_HALF
    return ipaddress.ip_network(f"{a}/{bits}", strict=False) == ipaddress.ip_network(
        f"{b}/{bits}", strict=False
    )


# -- the command -----------------------------------------------------------------------


def parse_resolve(values: Sequence[str]) -> dict[str, str]:
    """``HOST:ADDRESS`` pairs (curl's --resolve without the port)."""
    mapping = {}
    for value in values:
        host, _, address = value.partition(":")
        try:
            ipaddress.ip_address(address.strip("[]"))
        except ValueError:
            raise ValueError(f"--resolve {value!r}: expected HOST:ADDRESS") from None
        mapping[host.lower()] = address.strip("[]")
    return mapping


def diagnose(target: Target) -> list[Finding]:
    with client_for(target) as client:
        return list(Doctor(target, client).run())


def report(target: Target, findings: Sequence[Finding]) -> str:
    lines = ["capi-edge doctor", f"  site  {target.site}"]
    if target.edge is not None:
        lines.append(f"  edge  {target.edge}  ({target.mode})")
    lines.append("")
    for finding in findings:
        lines.append(f"[{finding.status:^4}] {finding.check}: {finding.message}")
        if finding.fix and finding.status != "ok":
            lines.append(f"       fix: {finding.fix}")
    failed = sum(f.status == "FAIL" for f in findings)
    warned = sum(f.status == "warn" for f in findings)
    lines.append("")
    if failed or warned:
        lines.append(f"{failed} problem(s), {warned} warning(s).")
    else:
        lines.append("Everything checked is in order.")
    return "\n".join(lines)


def command(args: argparse.Namespace) -> int:
    """``capi-edge doctor``: exit 0 when nothing failed (warnings allowed), 1 otherwise."""
    try:
        resolve = parse_resolve(args.resolve)
    except ValueError as error:
        print(f"capi-edge doctor: {error}", file=sys.stderr)
        return EXIT_USAGE
    site = args.site if "://" in args.site else f"https://{args.site}"
    target = Target(
        site=httpx.URL(site),
        edge=base_url(args.edge) if args.edge else None,
        resolve=resolve,
        ca_file=args.ca_file,
        api_key=args.api_key or os.environ.get("CAPI_EDGE_API_KEY") or None,
        timeout=args.timeout,
    )
    findings = diagnose(target)
    print(report(target, findings))
    return 1 if any(f.status == "FAIL" for f in findings) else 0
