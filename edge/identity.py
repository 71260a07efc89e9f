"""Identity: click IDs from the landing URL and first-party cookies, written back by the edge.

Every platform's click ID arrives once, as a query parameter of the ad click's landing URL.
The platforms' own browser tags keep it in a cookie written by script, which Safari caps at
7 days (1 day after a tracked ad click). The edge writes the same cookies from its HTTP
response, which Safari leaves alone when the edge answers from the site's own address, so
attribution survives as long as the platform's window.

One table (``CLICK_IDS``) says, per identifier: the URL parameters it comes from, the cookie
it lives in, how the cookie value is built and read back, its lifetime, and the ``Ids`` field
tags read. Rules kept from the platforms:

* ``_fbc`` is ``fb.{subdomainIndex}.{creationTimeMs}.{fbclid}`` with the fbclid's case kept;
  a new fbclid replaces it, the same one keeps the original timestamp (Meta warns about
  "modified fbclid" otherwise). ``_fbp`` is ``fb.{subdomainIndex}.{ms}.{random}``, created once.
* ``_gcl_aw`` is ``GCL.{seconds}.{gclid}``; a value we cannot parse belongs to gtag and stays.
* Cookies with a creation time inside (``_fbc``, ``_fbp``, ``_gcl_*``) are re-issued on every
  hit with their *remaining* lifetime, which repairs a cap a browser applied to the platform
  tag's copy without ever sliding the window forward.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from urllib.parse import parse_qsl, urlsplit

import msgspec
from publicsuffixlist import PublicSuffixList

from edge.schema import Ids

DAY = 86_400
MAX_ID_LENGTH = 512
# What a click ID may contain: nothing that could break out of a Set-Cookie header or a URL.
ID_CHARSET = re.compile(r"^[A-Za-z0-9._~\-]{1,512}$")
AWC_CHARSET = re.compile(r"^[A-Za-z0-9._~,\-]{1,512}$")  # several awc values, comma-joined
TTP_LENGTH = 27
TTP_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
# Random bytes -> alphanumerics in one C call (the slight modulo bias is irrelevant to an ID).
_TTP_TABLE = bytes(ord(TTP_ALPHABET[i % len(TTP_ALPHABET)]) for i in range(256))
FBP_RANDOM_MIN, FBP_RANDOM_MAX = 1_000_000_000, 2_147_483_647
COOKIE_ATTRIBUTES = "Path=/; Secure; SameSite=Lax"
# Browser IDs (_fbp, _ttp) must be unique, not secret: the module PRNG (seeded from the OS,
# reseeded after fork) avoids a urandom syscall per hit, which on the hot path costs a GIL
# hand-off to the store's writer thread.

_psl = PublicSuffixList()


@dataclass(frozen=True, slots=True)
class SetCookie:
    name: str
    value: str
    max_age: int
    domain: str | None

    def header(self) -> str:
        domain = f"; Domain={self.domain}" if self.domain else ""
        return f"{self.name}={self.value}; Max-Age={self.max_age}{domain}; {COOKIE_ATTRIBUTES}"


@dataclass(frozen=True, slots=True)
class ClickId:
    """One identifier: where it comes from, where it is kept, what tags read."""

    field: str  # the Ids field
    params: tuple[str, ...]  # landing-URL parameters, in order of preference
    cookie: str | None  # the first-party cookie the edge keeps it in
    lifetime_days: int
    # cookie value -> the Ids value (None: not ours / unparseable)
    read: Callable[[str], str | None] = field(default=lambda v: v)
    # (click id, now seconds, subdomain index) -> cookie value
    write: Callable[[str, float, int], str] = field(default=lambda v, now, idx: v)
    # (cookie value) -> creation time in seconds, when the value carries one
    created: Callable[[str], float | None] = field(default=lambda v: None)
    charset: re.Pattern[str] = ID_CHARSET


def _fb_created(value: str) -> float | None:
    parts = value.split(".")
    if len(parts) in (4, 5) and parts[0] == "fb" and parts[2].isdigit():
        return int(parts[2]) / 1000
    return None


def _fbc_read(value: str) -> str | None:
    """A valid ``_fbc`` (4 or 5 parts, the 5th an SDK appendix) is sent as is."""
    return value if _fb_created(value) is not None and value.split(".")[3] else None


def _fbclid_of(fbc: str) -> str:
    return fbc.split(".")[3]


def _gcl_read(value: str) -> str | None:
    parts = value.split(".", 2)
    if len(parts) == 3 and parts[0] in ("GCL", "1") and parts[1].isdigit() and parts[2]:
        return parts[2]
    return None


def _gcl_created(value: str) -> float | None:
    parts = value.split(".", 2)
    return float(parts[1]) if len(parts) == 3 and parts[1].isdigit() else None


def _ga_client_id(value: str) -> str | None:
    """``GA1.1.<random>.<first visit>`` -> ``<random>.<first visit>`` (the MP client_id)."""
    parts = value.split(".")
    if len(parts) >= 4 and parts[-1].isdigit() and parts[-2].isdigit():
        return f"{parts[-2]}.{parts[-1]}"
    return None


def _ga_session_id(value: str) -> str | None:
    """Session id from ``_ga_<id>``: ``GS1.1.<sid>.…`` or ``GS2.1.s<sid>$o…``."""
    if value.startswith("GS2."):
        match = re.search(r"(?:^|[.$])s(\d+)", value[4:])
        return match.group(1) if match else None
    parts = value.split(".")
    if len(parts) >= 3 and parts[0] == "GS1" and parts[2].isdigit():
        return parts[2]
    return None


def _uet_read(value: str) -> str | None:
    return value[4:] if value.startswith("_uet") and len(value) > 4 else None


def _gcl_write(click_id: str, now: float, index: int) -> str:
    return f"GCL.{int(now)}.{click_id}"


CLICK_IDS: tuple[ClickId, ...] = (
    ClickId(
        "fbc",
        ("fbclid",),
        "_fbc",
        90,
        read=_fbc_read,
        write=lambda v, now, idx: f"fb.{idx}.{int(now * 1000)}.{v}",
        created=_fb_created,
    ),
    ClickId("ttclid", ("ttclid",), "ttclid", 30),
    ClickId("gclid", ("gclid",), "_gcl_aw", 90, _gcl_read, _gcl_write, _gcl_created),
    ClickId("gbraid", ("gbraid",), "_gcl_gb", 90, _gcl_read, _gcl_write, _gcl_created),
    ClickId("wbraid", ("wbraid",), "_gcl_wb", 90, _gcl_read, _gcl_write, _gcl_created),
    ClickId("dclid", ("dclid",), "_gcl_dc", 90, _gcl_read, _gcl_write, _gcl_created),
    ClickId("epik", ("epik",), "_epik", 365),
    ClickId("sccid", ("ScCid", "sccid"), "_scclid", 365),
    ClickId("li_fat_id", ("li_fat_id",), "li_fat_id", 90),
    ClickId("rdt_cid", ("rdt_cid",), "_rdt_cid", 30),
    ClickId("awc", ("awc",), "awin_awc", 365, charset=AWC_CHARSET),
    ClickId("tblci", ("tblci",), "taboola_cid", 30),
    ClickId("ob_click_id", ("OutbrainClickId", "ob_click_id", "dicbo"), "outbrain_cid", 30),
    ClickId(
        "msclkid",
        ("msclkid",),
        "_uetmsclkid",
        90,
        read=_uet_read,
        write=lambda v, now, idx: f"_uet{v}",
    ),
)
PARAM_INDEX = {param: spec.field for spec in CLICK_IDS for param in spec.params}
COOKIE_INDEX = {spec.cookie: spec.field for spec in CLICK_IDS if spec.cookie}
# Browser IDs the platforms' own tags write; read, never written, except those we mint.
BROWSER_COOKIES: Mapping[str, tuple[str, Callable[[str], str | None]]] = {
    "_fbp": ("fbp", lambda v: v if _fb_created(v) is not None else None),
    "_ttp": ("ttp", lambda v: v),
    "_ga": ("ga_client_id", _ga_client_id),
    "_scid": ("scid", lambda v: v),
    "_rdt_uuid": ("rdt_uuid", lambda v: v),
    "crto_mapped_user_id": ("crto_mapped_user_id", lambda v: v),
    "crto_is_user_optout": ("crto_is_user_optout", lambda v: v),
}
FBP_LIFETIME_DAYS = 90
TTP_LIFETIME_DAYS = 395  # 13 months, as TikTok's pixel
_ID_FIELDS = frozenset(Ids.__struct_fields__)


@dataclass(frozen=True, slots=True)
class Identity:
    ids: Ids
    cookies: list[SetCookie]


@lru_cache(maxsize=1024)
def cookie_domain(host: str, allowed: tuple[str, ...]) -> str | None:
    """The registrable domain of ``host`` (public-suffix aware), or None for host-only.

    Only for hosts under one of the site's domains: the edge never writes cookies for a
    domain it was reached under by accident (an IP, a preview host).
    """
    host = host.lower().rstrip(".")
    if not host or not any(host == d or host.endswith("." + d) for d in allowed):
        return None
    if re.fullmatch(r"[\d.]+", host) or ":" in host or "." not in host:
        return None  # IPs and single-label hosts (localhost) take host-only cookies
    return _psl.privatesuffix(host) or None


def subdomain_index(domain: str | None) -> int:
    """Meta's subdomainIndex: labels of the cookie domain minus one (``shop.example`` = 1)."""
    return domain.count(".") if domain else 1


def valid_id(value: str | None, spec: ClickId) -> str | None:
    if value and spec.charset.match(value):
        return value
    return None


def _query(url: str | None) -> dict[str, str]:
    if not url:
        return {}
    try:
        return dict(parse_qsl(urlsplit(url).query, keep_blank_values=False))
    except ValueError:
        return {}


def _from_url(spec: ClickId, *queries: Mapping[str, str]) -> str | None:
    for query in queries:
        for param in spec.params:
            value = valid_id(query.get(param), spec)
            if value:
                return value
    return None


def _ga_session_cookie(cookies: Mapping[str, str]) -> str | None:
    for name, value in cookies.items():
        if name.startswith("_ga_"):
            session = _ga_session_id(value)
            if session:
                return session
    return None


def identify(
    cookies: Mapping[str, str],
    page_url: str | None,
    referrer: str | None,
    host: str,
    now: float,
    *,
    allowed_domains: Sequence[str],
    write_cookies: bool,
) -> Identity:
    """Click and browser IDs for this hit, and the Set-Cookie headers that keep them.

    The landing URL wins over the referrer (a redirect may have dropped the query), and both
    win over cookies: a new click is a new attribution. ``write_cookies`` is False without
    ad_storage consent or under GPC: then IDs still come from the URL, but nothing is stored
    in the browser and no browser ID is minted.
    """
    domain = cookie_domain(host, tuple(allowed_domains)) if host else None
    index = subdomain_index(domain)
    url_query, referrer_query = _query(page_url), _query(referrer)
    ids: dict[str, str] = {}
    written: list[SetCookie] = []

    def keep(name: str, value: str, lifetime_days: int, created: float | None = None) -> None:
        remaining = lifetime_days * DAY
        if created is not None:
            remaining = int(created + lifetime_days * DAY - now)
        if write_cookies and remaining > 0:
            written.append(SetCookie(name, value, remaining, domain))

    # Most hits carry no click ID and few cookies: look only at identifiers that are there.
    present = {PARAM_INDEX[k] for k in (*url_query, *referrer_query) if k in PARAM_INDEX}
    present.update(COOKIE_INDEX[k] for k in cookies if k in COOKIE_INDEX)
    for spec in CLICK_IDS:
        if spec.field not in present:
            continue
        clicked = _from_url(spec, url_query, referrer_query)
        raw_cookie = cookies.get(spec.cookie) if spec.cookie else None
        stored = spec.read(raw_cookie) if raw_cookie else None
        stored = valid_id(stored, spec) if spec.field != "fbc" else stored
        if clicked is not None:
            if spec.field == "fbc" and stored and _fbclid_of(stored) == clicked:
                ids["fbc"], ids["fbclid"] = stored, clicked  # same click: keep its timestamp
                keep(spec.cookie or "", raw_cookie or "", spec.lifetime_days, _fb_created(stored))
                continue
            value = spec.write(clicked, now, index)
            ids[spec.field] = spec.read(value) or clicked
            if spec.field == "fbc":
                ids["fbclid"] = clicked
            keep(spec.cookie or "", value, spec.lifetime_days, spec.created(value))
        elif stored is not None and raw_cookie is not None:
            ids[spec.field] = stored
            if spec.field == "fbc":
                ids["fbclid"] = _fbclid_of(stored)
            created = spec.created(raw_cookie)
            if created is not None:  # re-issue: repairs a capped copy, never extends it
                keep(spec.cookie or "", raw_cookie, spec.lifetime_days, created)

    if cookies:
        for name, (id_field, read) in BROWSER_COOKIES.items():
            raw = cookies.get(name)
            value = read(raw) if raw else None
            if value and ID_CHARSET.match(value):
                ids[id_field] = value
        if session := _ga_session_cookie(cookies):
            if ID_CHARSET.match(session):
                ids["ga_session_id"] = session

    if write_cookies:
        _browser_ids(ids, now, index, keep)
    return Identity(Ids(**{k: v for k, v in ids.items() if k in _ID_FIELDS}), written)


def _browser_ids(ids: dict[str, str], now: float, index: int, keep: Callable[..., None]) -> None:
    """Mint ``_fbp`` and ``_ttp`` for a browser that has none; re-issue ``_fbp``."""
    if "fbp" in ids:
        keep("_fbp", ids["fbp"], FBP_LIFETIME_DAYS, _fb_created(ids["fbp"]))
    else:
        random_part = random.randint(FBP_RANDOM_MIN, FBP_RANDOM_MAX)
        ids["fbp"] = f"fb.{index}.{int(now * 1000)}.{random_part}"
        keep("_fbp", ids["fbp"], FBP_LIFETIME_DAYS)
    if "ttp" not in ids:
        ids["ttp"] = random_ttp()
        keep("_ttp", ids["ttp"], TTP_LIFETIME_DAYS)


def random_ttp() -> str:
    """27 random alphanumerics, like TikTok's pixel."""
    return random.randbytes(TTP_LENGTH).translate(_TTP_TABLE).decode()


def merge(explicit: Ids | None, derived: Ids) -> Ids:
    """Identifiers a backend passed win over what the landing URL implies."""
    if explicit is None:
        return derived
    merged = msgspec.structs.asdict(derived)
    merged.update({k: v for k, v in msgspec.structs.asdict(explicit).items() if v is not None})
    return Ids(**merged)
