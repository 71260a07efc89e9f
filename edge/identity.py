"""Identity: click IDs from the landing URL and first-party cookies, written back by the edge.

Every platform's click ID arrives once, as a query parameter of the ad click's landing URL
(or of the referrer, when a redirect dropped the query). The platforms' own browser tags
keep it in a cookie written by script, which Safari caps at 7 days (1 day after a tracked
ad click). The edge writes the same cookies from its HTTP response, which Safari leaves
alone when the edge answers from the site's own address, so attribution survives as long
as the platform's window.

One table (``CLICK_IDS``) says, per identifier: the URL parameters it comes from, the cookie
it lives in, how the cookie value is built and read back, its lifetime, and the ``Ids`` field
tags read. Rules kept from the platforms:

* ``_fbc`` is ``fb.{subdomainIndex}.{creationTimeMs}.{fbclid}`` with the fbclid's case kept;
  a new fbclid replaces it, the same one keeps the original timestamp (Meta warns about
  "modified fbclid" otherwise). ``_fbp`` is ``fb.{subdomainIndex}.{ms}.{random}``, created
  once. Both are read with 4 parts or with the 5th "appendix" Meta's Parameter Builder adds.
* ``_gcl_aw`` is ``GCL.{seconds}.{gclid}``; a value we cannot parse belongs to gtag and stays.
  A ``gclid`` with a ``gclsrc`` that is not Google Ads' (``aw.*``) is not an Ads click.
* Cookies are re-issued on every hit with their *remaining* lifetime, which repairs a cap
  a browser applied to the platform tag's copy without ever sliding the window forward.

**The backup.** Everything the edge keeps is also written, with its creation time, into one
signed (itsdangerous), ``HttpOnly`` cookie, ``_edge_id``. Scripts cannot read, overwrite or
cap it, so when Safari drops a browser-visible cookie (or a platform script replaces it
with a fresh value after the loss) the edge restores the original from the backup, with
the lifetime it has left. Browser IDs (``_fbp``, ``_ttp``) in the backup win over a
different visible value (the older identity is the real one); click IDs follow the newest
click.

**One ``_fbp`` per browser.** A new visitor's first page often sends two hits at once, both
without cookies. The browser IDs minted for them are derived from an HMAC of the client
address and user agent with the server's secret, in 10-second windows, and remembered in
a small in-process table; so simultaneous first hits get the same ``_fbp`` and ``_ttp``
without a store round trip. (Two new visitors behind one address with an identical user
agent in the same 10 seconds would share them: rare, and bounded by the window.)
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import hmac
import random
import re
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache, partial
from types import MappingProxyType
from urllib.parse import parse_qsl, urlsplit

import msgspec
from itsdangerous import BadSignature, Signer
from publicsuffixlist import PublicSuffixList

from edge.schema import Ids

DAY = 86_400
MAX_ID_LENGTH = 512
# What a click ID may contain: nothing that could break out of a Set-Cookie header or a URL.
ID_CHARSET = re.compile(rf"^[A-Za-z0-9._~\-]{{1,{MAX_ID_LENGTH}}}$")
# several awc values, comma-joined
AWC_CHARSET = re.compile(rf"^[A-Za-z0-9._~,\-]{{1,{MAX_ID_LENGTH}}}$")
# An fbclid is base64url: a dot in it would split the _fbc value into the wrong parts. Google's
# click IDs are [\w-]+ too (gtag reads nothing else from a _gcl_* cookie).
FBCLID_CHARSET = GCLID_CHARSET = re.compile(rf"^[A-Za-z0-9_\-]{{1,{MAX_ID_LENGTH}}}$")
TTP_LENGTH = 27
TTP_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
# Random bytes -> alphanumerics in one C call (the slight modulo bias is irrelevant to an ID).
_TTP_TABLE = bytes(ord(TTP_ALPHABET[i % len(TTP_ALPHABET)]) for i in range(256))
FBP_RANDOM_MIN, FBP_RANDOM_MAX = 1_000_000_000, 2_147_483_647
# Meta's Parameter Builder appendix: a 2-character language token or 8 base64url chars.
FB_APPENDIX_TOKENS = frozenset({"AQ", "Ag", "Aw", "BA", "BQ", "Bg"})
FB_APPENDIX_LENGTH = 8
COOKIE_ATTRIBUTES = "Path=/; Secure; SameSite=Lax"
BACKUP_COOKIE = "_edge_id"
BACKUP_SALT = "capi-edge.identity.v1"
MAX_BACKUP_BYTES = 3_800  # a cookie must stay under 4,096 bytes with its name and attributes
MINT_WINDOW_SECONDS = 10  # hits of one new browser within this share the IDs minted for it
MINT_MEMO_SIZE = 4_096
BACKUP_CACHE_SIZE = 4_096  # verifying a signature per hit is cheap; not doing it is cheaper
SITE_CACHE_SIZE = 64  # Host headers a site is reached under
FB_CACHE_SIZE = 4_096
QUERY_CACHE_SIZE = 1_024
HMAC_BLOCK_SIZE = 64  # SHA-256's
# Browser IDs (_fbp, _ttp) must be unique, not secret: without a server secret the module
# PRNG (seeded from the OS, reseeded after fork) avoids a urandom syscall per hit.

_psl = PublicSuffixList()
_backup_decoder = msgspec.json.Decoder(dict[str, list[str | int]])
_backup_encoder = msgspec.json.Encoder(order="sorted")  # {name: [value, created]} by name
_URLSAFE = bytes.maketrans(b"+/", b"-_")


class SetCookie(msgspec.Struct, frozen=True):
    """One Set-Cookie header. (A struct: several are built per hit, a frozen dataclass's
    ``__init__`` costs several times more.)"""

    name: str
    value: str
    max_age: int
    domain: str | None
    http_only: bool = False

    def header(self) -> str:
        domain = f"; Domain={self.domain}" if self.domain else ""
        http_only = "; HttpOnly" if self.http_only else ""
        return (
            f"{self.name}={self.value}; Max-Age={self.max_age}{domain}; "
            f"{COOKIE_ATTRIBUTES}{http_only}"
        )


@dataclass(frozen=True, slots=True)
class ClickId:
    """One identifier: where it comes from, where it is kept, what tags read."""

    field: str  # the Ids field
    params: tuple[str, ...]  # landing-URL parameters, in order of preference
    cookie: str  # the first-party cookie the edge keeps it in
    lifetime_days: int
    # cookie value -> the Ids value (None: not ours / unparseable)
    read: Callable[[str], str | None] = dataclasses.field(default=lambda v: v)
    # (click id, now seconds, subdomain index) -> cookie value
    write: Callable[[str, float, int], str] = dataclasses.field(default=lambda v, now, idx: v)
    # (cookie value) -> creation time in seconds, when the value carries one
    created: Callable[[str], float | None] = dataclasses.field(default=lambda v: None)
    charset: re.Pattern[str] = ID_CHARSET


class KeyedHmac:
    """HMAC-SHA256 under one key, keyed once: RFC 2104's inner and outer hash states, so a
    message costs two hash copies, where ``hmac.new`` sets up OpenSSL's HMAC afresh each
    time. ``digest(m)`` equals ``hmac.new(key, m, hashlib.sha256).digest()``."""

    def __init__(self, key: bytes) -> None:
        if len(key) > HMAC_BLOCK_SIZE:
            key = hashlib.sha256(key).digest()  # as HMAC does with a key over a block
        block = key.ljust(HMAC_BLOCK_SIZE, b"\0")
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in block))
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in block))

    def digest(self, message: bytes) -> bytes:
        inner = self._inner.copy()
        inner.update(message)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()


def _b64(data: bytes) -> bytes:
    """base64url without padding, as itsdangerous writes it: what
    ``base64.urlsafe_b64encode(data).rstrip(b"=")`` gives, without its two Python calls
    (twice per backup cookie)."""
    return binascii.b2a_base64(data, newline=False).translate(_URLSAFE).rstrip(b"=")


@lru_cache(maxsize=FB_CACHE_SIZE)  # a browser's _fbp/_fbc come back on every hit
def _fb_parts(value: str) -> tuple[str, ...] | None:
    """``fb.{index}.{ms}.{payload}[.{appendix}]`` split, or None when it is not one."""
    parts = tuple(value.split("."))
    if len(parts) not in (4, 5) or parts[0] != "fb" or not parts[3]:
        return None
    if not (parts[1].isdigit() and parts[2].isdigit()):
        return None
    if len(parts) == 5 and not (
        parts[4] in FB_APPENDIX_TOKENS or len(parts[4]) == FB_APPENDIX_LENGTH
    ):
        return None
    return parts


def _fb_created(value: str) -> float | None:
    parts = _fb_parts(value)
    return int(parts[2]) / 1000 if parts else None


def _fb_read(value: str) -> str | None:
    """A valid ``_fbc``/``_fbp`` (4 or 5 parts) is sent exactly as the cookie holds it."""
    return value if _fb_parts(value) else None


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
        read=_fb_read,
        write=lambda v, now, idx: f"fb.{idx}.{int(now * 1000)}.{v}",
        created=_fb_created,
        charset=FBCLID_CHARSET,
    ),
    ClickId("ttclid", ("ttclid",), "ttclid", 30),
    ClickId("gclid", ("gclid",), "_gcl_aw", 90, _gcl_read, _gcl_write, _gcl_created, GCLID_CHARSET),
    ClickId(
        "gbraid", ("gbraid",), "_gcl_gb", 90, _gcl_read, _gcl_write, _gcl_created, GCLID_CHARSET
    ),
    ClickId(
        "wbraid", ("wbraid",), "_gcl_wb", 90, _gcl_read, _gcl_write, _gcl_created, GCLID_CHARSET
    ),
    ClickId("dclid", ("dclid",), "_gcl_dc", 90, _gcl_read, _gcl_write, _gcl_created, GCLID_CHARSET),
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
CLICK_ID_SPECS = {spec.field: spec for spec in CLICK_IDS}
CLICK_ID_ORDER = {spec.field: i for i, spec in enumerate(CLICK_IDS)}
PARAM_INDEX = {param: spec.field for spec in CLICK_IDS for param in spec.params}
COOKIE_INDEX = {spec.cookie: spec.field for spec in CLICK_IDS}
# Browser IDs the platforms' own tags write; read, never written, except those we mint.
# Advertising ones are read only with ad_storage; GA's (analytics) always (GA4 is gated by
# analytics_storage at routing).
BROWSER_COOKIES: Mapping[str, tuple[str, Callable[[str], str | None]]] = {
    "_fbp": ("fbp", _fb_read),
    "_ttp": ("ttp", lambda v: v),
    "_scid": ("scid", lambda v: v),
    "_rdt_uuid": ("rdt_uuid", lambda v: v),
    "crto_mapped_user_id": ("crto_mapped_user_id", lambda v: v),
    "crto_is_user_optout": ("crto_is_user_optout", lambda v: v),
}
FBP_LIFETIME_DAYS = 90
TTP_LIFETIME_DAYS = 395  # 13 months, as TikTok's pixel
MINTED = {"_fbp": ("fbp", FBP_LIFETIME_DAYS), "_ttp": ("ttp", TTP_LIFETIME_DAYS)}
LIFETIMES = {spec.cookie: spec.lifetime_days for spec in CLICK_IDS} | {
    name: days for name, (_, days) in MINTED.items()
}
# The browser IDs a consent withdrawal is matched on, and how their cookies are read.
VISITOR_COOKIES: tuple[tuple[str, str, Callable[[str], str | None]], ...] = (
    ("_fbp", "fbp", _fb_read),
    ("_ttp", "ttp", lambda v: v if ID_CHARSET.match(v) else None),
)


VisitorKeys = Callable[[], tuple[str, ...]]


class Identity(msgspec.Struct, frozen=True):
    ids: Ids
    cookies: list[SetCookie]
    # Works ``visitors`` out: only a consent withdrawal needs them, so only then.
    find_visitors: VisitorKeys = tuple

    @property
    def visitors(self) -> tuple[str, ...]:
        """Every identifier that names this browser (from cookies or the backup, whatever
        the consent): what a consent withdrawal is matched on. Never stored or sent."""
        return self.find_visitors()


def visitor_key(ids: Ids) -> str | None:
    """The one identifier an event is filed under for consent withdrawals."""
    return ids.fbp or ids.ttp or ids.ga_client_id


@lru_cache(maxsize=1024)
def cookie_domain(host: str, allowed: tuple[str, ...]) -> str | None:
    """The registrable domain of ``host`` (public-suffix aware), or None for host-only.

    Only for hosts under one of the site's domains: the edge never writes cookies for a
    domain it was reached under by accident (an IP, a preview host). The same answer for
    both deployments: ``t.shop.example`` (a subdomain) and ``shop.example`` (the shop's own
    host, the edge under ``/_e/``) both give ``shop.example``.
    """
    host = host.lower().rstrip(".")
    if not host or not any(host == d or host.endswith("." + d) for d in allowed):
        return None
    if _is_ip_or_single_label(host):
        return None  # IPs and single-label hosts (localhost) take host-only cookies
    return _psl.privatesuffix(host) or None


def _is_ip_or_single_label(host: str) -> bool:
    return bool(re.fullmatch(r"[\d.]+", host)) or ":" in host or "." not in host


def subdomain_index(domain: str | None, host: str = "") -> int:
    """Meta's subdomainIndex: labels of the cookie domain minus one (``shop.example`` = 1).

    An IP or single-label host counts 0 (as Meta's Parameter Builder); a value built
    without a cookie domain (a backend event) uses 1, as Meta recommends.
    """
    if domain:
        return domain.count(".")
    if host and _is_ip_or_single_label(host.lower()):
        return 0
    return 1


def valid_id(value: str | None, spec: ClickId) -> str | None:
    """A click ID as a URL brings it, if it is safe and well-formed."""
    if value and spec.charset.match(value):
        return value
    return None


def _read_cookie(spec: ClickId, raw: str) -> str | None:
    """The Ids value a cookie (or the backup) holds, if it is ours and safe to send."""
    value = spec.read(raw)
    charset = AWC_CHARSET if spec.charset is AWC_CHARSET else ID_CHARSET
    return value if value and charset.match(value) else None


Query = tuple[Mapping[str, str], frozenset[str]]  # parameters, the Ids fields they carry
_NO_QUERY: Query = (MappingProxyType({}), frozenset())


def _query(url: str | None) -> Query:
    if not url or "?" not in url:
        return _NO_QUERY
    return _parse_query(url)


@lru_cache(maxsize=QUERY_CACHE_SIZE)  # a page's hits share its URL; the next page's, as referrer
def _parse_query(url: str) -> Query:
    """The URL's query parameters and the click IDs among them (shared: never change them)."""
    try:
        query = urlsplit(url).query
        if "%" in query or "+" in query:  # something to decode: the standard parser
            params = dict(parse_qsl(query, keep_blank_values=False))
        else:
            # What parse_qsl gives when there is nothing to decode, without its calls per
            # field: "&"-separated pairs, those without "=" or with an empty value dropped,
            # the last one of a name winning.
            pairs = [piece.split("=", 1) for piece in query.split("&")]
            params = {pair[0]: pair[1] for pair in pairs if len(pair) == 2 and pair[1]}
    except ValueError:
        return _NO_QUERY
    return params, frozenset(PARAM_INDEX[k] for k in params if k in PARAM_INDEX)


def _from_url(spec: ClickId, *queries: Mapping[str, str]) -> str | None:
    for query in queries:
        if spec.field == "gclid" and "aw" not in query.get("gclsrc", "aw"):
            continue  # gclsrc=ds (Search Ads 360) etc.: not a Google Ads click
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


Entries = dict[str, tuple[str, int]]  # cookie name -> (value, created unix seconds)


def _known(backup: Entries, name: str, value: str) -> float | None:
    """When the backup says this cookie value was created, if it holds this value."""
    entry = backup.get(name)
    return entry[1] if entry and entry[0] == value else None


class Identifier:
    """Identity for one site: cookie domain, the signed backup, and browser-ID minting."""

    def __init__(self, allowed_domains: Sequence[str], secret: bytes | None = None) -> None:
        self.allowed = tuple(allowed_domains)
        self.secret = secret
        # itsdangerous' Signer (HMAC-SHA256) over base64url JSON. The key is derived from
        # the secret once here, not per cookie; no compression: click IDs are random.
        key = hmac.new(secret, BACKUP_SALT.encode(), hashlib.sha256).digest() if secret else b""
        self.signer = (
            Signer(key, key_derivation="none", digest_method=hashlib.sha256) if secret else None
        )
        # ``_sign`` makes the Signer's signatures (the test suite checks they agree).
        self._backup_mac = KeyedHmac(key)
        self._mint_mac = KeyedHmac(secret) if secret else None
        self._minted: OrderedDict[tuple[str, str], tuple[float, str, str]] = OrderedDict()
        self._load = lru_cache(maxsize=BACKUP_CACHE_SIZE)(self._load_backup)
        self._site = lru_cache(maxsize=SITE_CACHE_SIZE)(self._site_of)

    def _site_of(self, host: str) -> tuple[str | None, int]:
        """The cookie domain and Meta's subdomainIndex for a Host (a site has a few)."""
        domain = cookie_domain(host, self.allowed) if host else None
        return domain, subdomain_index(domain, host)

    # -- the backup cookie -----------------------------------------------------------------

    def _load_backup(self, raw: str) -> tuple[tuple[str, str, int], ...]:
        if self.signer is None:
            return ()
        try:
            payload = self.signer.unsign(raw)
            data = _backup_decoder.decode(
                base64.urlsafe_b64decode(payload + b"=" * (-len(payload) % 4))
            )
        except (BadSignature, ValueError, TypeError, msgspec.DecodeError):
            return ()
        if not isinstance(data, dict):
            return ()
        entries = []
        for name, entry in data.items():
            if (
                name in LIFETIMES
                and isinstance(entry, list)
                and len(entry) == 2
                and isinstance(entry[0], str)
                and isinstance(entry[1], int)
                and AWC_CHARSET.match(entry[0])
            ):
                entries.append((name, entry[0], entry[1]))
        return tuple(entries)

    def _sign(self, value: bytes) -> str:
        """``self.signer.sign(value)``: the value, ``.``, its base64url HMAC-SHA256."""
        return (value + b"." + _b64(self._backup_mac.digest(value))).decode()

    def _dump(self, entries: Entries) -> str:
        kept = dict(entries)
        while True:
            value = self._sign(_b64(_backup_encoder.encode(kept)))
            if len(value) <= MAX_BACKUP_BYTES or not kept:
                return value
            del kept[max(sorted(kept), key=lambda name: len(kept[name][0]))]  # the bulkiest

    def backup(self, cookies: Mapping[str, str], now: float) -> Entries:
        raw = cookies.get(BACKUP_COOKIE)
        if not raw or self.signer is None:
            return {}
        return {
            name: (value, created)
            for name, value, created in self._load(raw)
            if created + LIFETIMES[name] * DAY > now
        }

    # -- minting -----------------------------------------------------------------------------

    def mint(
        self, now: float, index: int, ip: str | None, user_agent: str | None
    ) -> tuple[str, str]:
        """``(_fbp, _ttp)`` for a browser that has neither: equal for its simultaneous hits."""
        mac = self._mint_mac
        if mac is None or not ip:
            return (
                f"fb.{index}.{int(now * 1000)}.{random.randint(FBP_RANDOM_MIN, FBP_RANDOM_MAX)}",
                random_ttp(),
            )
        browser = (ip, user_agent or "")
        known = self._minted.get(browser)
        if known is not None and known[0] > now:
            return known[1], known[2]
        window = int(now // MINT_WINDOW_SECONDS)
        message = f"{ip}\n{user_agent or ''}\n{window}".encode()
        digest = mac.digest(message)
        random_part = FBP_RANDOM_MIN + int.from_bytes(digest[:8], "big") % (
            FBP_RANDOM_MAX - FBP_RANDOM_MIN + 1
        )
        # A creation time just before the window began: in the past, and the same for every
        # hit of the window (whichever process answers it).
        created_ms = window * MINT_WINDOW_SECONDS * 1000 - int.from_bytes(digest[8:10], "big") % (
            MINT_WINDOW_SECONDS * 1000
        )
        ttp_bytes = mac.digest(message + b"\nttp")
        fbp = f"fb.{index}.{created_ms}.{random_part}"
        ttp = ttp_bytes[:TTP_LENGTH].translate(_TTP_TABLE).decode()
        self._minted[browser] = (now + MINT_WINDOW_SECONDS, fbp, ttp)
        if len(self._minted) > MINT_MEMO_SIZE:
            self._minted.popitem(last=False)
        return fbp, ttp

    # -- one hit -------------------------------------------------------------------------------

    def identify(
        self,
        cookies: Mapping[str, str],
        page_url: str | None,
        referrer: str | None,
        host: str,
        now: float,
        *,
        write_cookies: bool,
        ip: str | None = None,
        user_agent: str | None = None,
        forget: bool = False,
    ) -> Identity:
        """Click and browser IDs for this hit, and the Set-Cookie headers that keep them.

        The landing URL wins over the referrer (a redirect may have dropped the query), and
        both win over cookies: a new click is a new attribution. ``write_cookies`` is False
        without ad_storage consent or under GPC: then IDs come from the URL only, no ad
        cookie is read, written or minted. ``forget`` (an explicit refusal) also deletes
        the backup.
        """
        domain, index = self._site(host)
        (url_query, url_ids), (referrer_query, referrer_ids) = _query(page_url), _query(referrer)
        backup = self.backup(cookies, now) if cookies else {}
        jar: Mapping[str, str] = cookies if write_cookies else {}
        ids: dict[str, str] = {}
        written: list[SetCookie] = []
        kept: Entries = {}

        def keep(name: str, value: str, created: float | None) -> None:
            """Re-issue a cookie with its remaining lifetime and note it for the backup.

            A value whose creation time is unknown (no timestamp inside, not in the backup:
            a platform tag wrote it) is only noted, as first seen now: re-issuing it with a
            whole lifetime would extend it.
            """
            if not write_cookies:
                return
            if created is None:
                kept[name] = (value, int(now))
                return
            remaining = int(created + LIFETIMES[name] * DAY - now)
            if remaining > 0:
                written.append(SetCookie(name, value, remaining, domain))
                kept[name] = (value, int(created))

        # Most hits carry no click ID and few cookies: look only at identifiers that are there.
        present = url_ids | referrer_ids
        if jar:
            present |= {COOKIE_INDEX[k] for k in jar.keys() & COOKIE_INDEX.keys()}
        if write_cookies and backup:
            present |= {COOKIE_INDEX[k] for k in backup.keys() & COOKIE_INDEX.keys()}
        for id_field in sorted(present, key=CLICK_ID_ORDER.__getitem__):  # Set-Cookie order
            spec = CLICK_ID_SPECS[id_field]
            clicked = _from_url(spec, url_query, referrer_query)
            raw_cookie = jar.get(spec.cookie)
            stored = _read_cookie(spec, raw_cookie) if raw_cookie else None
            if stored is None and write_cookies and spec.cookie in backup:
                raw_cookie = backup[spec.cookie][0]  # Safari (or a script) lost it: restore
                stored = _read_cookie(spec, raw_cookie)
            if clicked is not None:
                if spec.field == "fbc" and stored and _fbclid_of(stored) == clicked:
                    clicked = None  # the same click: keep its timestamp (below)
                else:
                    value = spec.write(clicked, now, index)
                    ids[spec.field] = spec.read(value) or clicked
                    if spec.field == "fbc":
                        ids["fbclid"] = clicked
                    keep(spec.cookie, value, spec.created(value) or now)
                    continue
            if stored is not None and raw_cookie is not None:
                ids[spec.field] = stored
                if spec.field == "fbc":
                    ids["fbclid"] = _fbclid_of(stored)
                created = spec.created(raw_cookie)
                keep(spec.cookie, raw_cookie, created or _known(backup, spec.cookie, raw_cookie))

        if jar:
            for name, (id_field, read) in BROWSER_COOKIES.items():
                raw = jar.get(name)
                found = read(raw) if raw else None
                if found and ID_CHARSET.match(found):
                    ids[id_field] = found
        if cookies:
            ga = cookies.get("_ga")
            client_id = _ga_client_id(ga) if ga else None
            if client_id and ID_CHARSET.match(client_id):
                ids["ga_client_id"] = client_id
            if (session := _ga_session_cookie(cookies)) and ID_CHARSET.match(session):
                ids["ga_session_id"] = session

        if write_cookies:
            self._browser_ids(ids, backup, now, index, ip, user_agent, keep)
            if self.signer is not None and kept:
                written.append(self._backup_cookie(kept, backup, cookies, now, domain))
        elif forget and cookies.get(BACKUP_COOKIE):
            written.append(SetCookie(BACKUP_COOKIE, "", 0, domain, http_only=True))
        # (a copy of the cookies: the caller may add the ones written here to them)
        visitors = partial(self._visitors, dict(cookies) if cookies else {}, backup, ids)
        return Identity(Ids(**ids), written, visitors)  # every key in ids is an Ids field

    def _browser_ids(
        self,
        ids: dict[str, str],
        backup: Entries,
        now: float,
        index: int,
        ip: str | None,
        user_agent: str | None,
        keep: Callable[[str, str, float | None], None],
    ) -> None:
        """Keep ``_fbp``/``_ttp`` (the backup's original wins), or mint them once."""
        minted: tuple[str, str] | None = None
        for name, (id_field, _) in MINTED.items():
            saved = backup.get(name)
            if saved is not None and saved[0] != ids.get(id_field):
                ids[id_field] = saved[0]  # lost, or replaced by a script after the loss
            if id_field not in ids:
                minted = minted or self.mint(now, index, ip, user_agent)
                ids[id_field] = minted[0] if id_field == "fbp" else minted[1]
                created = _fb_created(ids[id_field]) if id_field == "fbp" else None
                keep(name, ids[id_field], created or now)
                continue
            created = _fb_created(ids[id_field]) if id_field == "fbp" else None
            keep(name, ids[id_field], created or _known(backup, name, ids[id_field]))

    def _backup_cookie(
        self,
        kept: Entries,
        backup: Entries,
        cookies: Mapping[str, str],
        now: float,
        domain: str | None,
    ) -> SetCookie:
        entries = backup | kept
        raw = cookies.get(BACKUP_COOKIE)
        value = raw if raw and entries == backup else self._dump(entries)
        max_age = max([c + LIFETIMES[n] * DAY for n, (_, c) in entries.items()]) - int(now)
        return SetCookie(BACKUP_COOKIE, value, max(max_age, 0), domain, http_only=True)

    def _visitors(
        self, cookies: Mapping[str, str], backup: Entries, ids: Mapping[str, str]
    ) -> tuple[str, ...]:
        found: list[str] = []
        for name, id_field, read in VISITOR_COOKIES:
            raw, saved = cookies.get(name), backup.get(name)
            for value in (ids.get(id_field), raw and read(raw), saved and saved[0]):
                if value and value not in found:
                    found.append(value)
        if ids.get("ga_client_id"):
            found.append(ids["ga_client_id"])
        return tuple(found)


@lru_cache(maxsize=16)
def _plain(allowed: tuple[str, ...]) -> Identifier:
    return Identifier(allowed)


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
    """``Identifier.identify`` without a server secret (no backup, random browser IDs)."""
    return _plain(tuple(allowed_domains)).identify(
        cookies, page_url, referrer, host, now, write_cookies=write_cookies
    )


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
