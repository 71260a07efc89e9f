"""edge.identity: click IDs, first-party cookies, the Safari backup and one _fbp per browser."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from edge.identity import (
    BACKUP_COOKIE,
    CLICK_IDS,
    DAY,
    ClickId,
    Identifier,
    Identity,
    KeyedHmac,
    cookie_domain,
    identify,
    subdomain_index,
)
from edge.schema import Client, Consent, Data, Ids, Page, StoredEvent
from tags import TAGS
from tags.base import Destination

from .edgeapp import event_id, hit, set_cookies, stored
from .support import CREDENTIALS, GRANTED
from .support import SAFARI_UA as UA

SECRET = b"0123456789abcdef0123456789abcdef"
NOW = 1_763_900_000.0
DOMAINS = ("shop.example", "shop.co.uk")
CLICK = "Cj0KCQ-click_ID.9~x"  # every character a click ID may have
FBCLID = "IwAR2Xyz_AbC-9"  # base64url: no dot, which would split the _fbc value
GCLID = "Cj0KCQiA_gclid-1"


def click(spec: ClickId) -> str:
    return CLICK if spec.charset.match(CLICK) else FBCLID  # fbclid, Google: [\w-]+ only


def run(
    cookies: dict[str, str] | None = None,
    url: str | None = None,
    referrer: str | None = None,
    *,
    host: str = "t.shop.example",
    now: float = NOW,
    write: bool = True,
    identifier: Identifier | None = None,
    ip: str = "203.0.113.9",
    **kw: Any,
) -> Identity:
    identifier = identifier or Identifier(DOMAINS, SECRET)
    return identifier.identify(
        cookies or {}, url, referrer, host, now, write_cookies=write, ip=ip, user_agent=UA, **kw
    )


def written(identity: Identity) -> dict[str, Any]:
    return {c.name: c for c in identity.cookies}


def jar(identity: Identity) -> dict[str, str]:
    return {c.name: c.value for c in identity.cookies if c.max_age > 0}


def id_value(spec: ClickId, identity: Identity) -> str | None:
    value: str | None = getattr(identity.ids, spec.field)
    return value


def expected_id(spec: ClickId) -> str:
    return f"fb.1.{int(NOW * 1000)}.{FBCLID}" if spec.field == "fbc" else click(spec)


# -- every click ID: captured, validated, kept, restored ------------------------------------


@pytest.mark.parametrize("spec", CLICK_IDS, ids=lambda s: s.field)
def test_each_click_id_is_captured_from_the_landing_url_and_kept_in_its_cookie(spec):
    found = run(url=f"https://shop.example/p?utm_source=x&{spec.params[0]}={click(spec)}")
    assert id_value(spec, found) == expected_id(spec)
    cookie = written(found)[spec.cookie]
    assert cookie.value == spec.write(click(spec), NOW, 1)
    assert cookie.max_age == spec.lifetime_days * DAY
    assert cookie.domain == "shop.example" and not cookie.http_only
    assert "Secure" in cookie.header() and "SameSite=Lax" in cookie.header()


@pytest.mark.parametrize("spec", CLICK_IDS, ids=lambda s: s.field)
def test_each_click_id_comes_from_the_referrer_when_the_url_lost_it(spec):
    found = run(
        url="https://shop.example/landing",
        referrer=f"https://shop.example/redirect?{spec.params[-1]}={click(spec)}",
    )
    assert id_value(spec, found) == expected_id(spec)


@pytest.mark.parametrize("spec", CLICK_IDS, ids=lambda s: s.field)
def test_each_click_id_is_restored_on_later_hits_with_its_remaining_lifetime(spec):
    first = run(url=f"https://shop.example/?{spec.params[0]}={click(spec)}")
    ten_days = NOW + 10 * DAY
    later = run(jar(first), url="https://shop.example/cart", now=ten_days)
    assert id_value(spec, later) == expected_id(spec)
    cookie = written(later)[spec.cookie]
    assert cookie.value == written(first)[spec.cookie].value
    assert cookie.max_age == (spec.lifetime_days - 10) * DAY  # never slid forward


@pytest.mark.parametrize("spec", CLICK_IDS, ids=lambda s: s.field)
@pytest.mark.parametrize("bad", ["a b", "x;Path=/", "<script>", "é", "a" * 513])
def test_click_ids_that_could_break_a_header_are_refused(spec, bad):
    found = run(url=f"https://shop.example/?{spec.params[0]}={bad}")
    assert id_value(spec, found) is None and spec.cookie not in written(found)


PLATFORM_IDS = {
    "fbc": "fb.1.1763900000000.FBCLID-1",
    "fbp": "fb.1.1763900000000.1234567890",
    "ga_client_id": "123.456",
    "ga_session_id": "1763900000",
}


@pytest.mark.parametrize(
    ("tag_name", "field"),
    [
        (name, field)
        for name in sorted(TAGS)
        for field in TAGS[name].SPEC.click_ids
        if field != "crto_is_user_optout"  # an opt-out flag, not an identifier
    ],
)
def test_each_platform_sends_each_of_its_ids_in_its_own_field(tag_name, field):
    tag = TAGS[tag_name]
    spec = tag.SPEC
    value = PLATFORM_IDS.get(field, f"{field}-VALUE-1")
    ids = {field: value}
    if tag_name == "ga4":
        ids.setdefault("ga_client_id", PLATFORM_IDS["ga_client_id"])  # GA4 needs one
    event = StoredEvent(
        event="purchase",
        event_id="e-1",
        time=int(NOW),
        received_at=NOW,
        page=Page(url="https://shop.example/done"),
        consent=Consent(**GRANTED),
        ids=Ids(**ids),
        client=Client(ip="203.0.113.9", user_agent=UA),
        data=Data(value=10.0, currency="EUR", order_id="A-1"),
    )
    destination = Destination(
        tag_name,
        CREDENTIALS[tag_name],
        spec.base_url,
        spec.event_map,
        default_country="US",
        bearer="token",
    )
    requests = [b.request for b in tag.build([event], destination) if b.request is not None]
    assert requests, f"{tag_name} built nothing"
    sent = " ".join(
        json.dumps([r.url, dict(r.params), r.json, dict(r.form or {})]) for r in requests
    )
    assert value in sent, f"{tag_name} does not send {field}"


def test_a_gclid_from_another_google_product_is_not_an_ads_click():
    assert run(url=f"https://shop.example/?gclid={GCLID}&gclsrc=ds").ids.gclid is None
    assert run(url=f"https://shop.example/?gclid={GCLID}&gclsrc=aw.ds").ids.gclid == GCLID
    assert run(url=f"https://shop.example/?gclid={GCLID}").ids.gclid == GCLID


# -- Meta's _fbc / _fbp ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "domain", "index"),
    [
        ("t.shop.example", "shop.example", 1),
        ("shop.example", "shop.example", 1),  # same-origin path: /_e/ on the shop's host
        ("www.shop.co.uk", "shop.co.uk", 2),
        ("203.0.113.5", None, 0),
        ("localhost", None, 0),
    ],
)
def test_subdomain_index_and_cookie_domain(host, domain, index):
    allowed = (*DOMAINS, "203.0.113.5", "localhost")
    assert cookie_domain(host, allowed) == domain
    assert subdomain_index(domain, host) == index
    fbc = Identifier(allowed, SECRET).identify(
        {}, "https://x/?fbclid=ABC", None, host, NOW, write_cookies=True
    )
    assert fbc.ids.fbc == f"fb.{index}.{int(NOW * 1000)}.ABC"
    assert re.fullmatch(rf"fb\.{index}\.\d{{13}}\.\d{{10}}", fbc.ids.fbp or "")


def test_fbc_keeps_the_click_case_and_its_timestamp_and_a_new_click_replaces_it():
    first = run(url="https://shop.example/?fbclid=IwAR2Xyz_AbC")
    assert first.ids.fbc == f"fb.1.{int(NOW * 1000)}.IwAR2Xyz_AbC"  # milliseconds
    same = run(jar(first), url="https://shop.example/?fbclid=IwAR2Xyz_AbC", now=NOW + 3600)
    assert same.ids.fbc == first.ids.fbc  # the same click keeps its creation time
    new = run(jar(first), url="https://shop.example/?fbclid=NEWclick", now=NOW + 3600)
    assert new.ids.fbc == f"fb.1.{int((NOW + 3600) * 1000)}.NEWclick"
    assert new.ids.fbclid == "NEWclick"


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        ("fb.1.1763900000000.IwAR2Xyz", True),
        ("fb.1.1763900000000.IwAR2Xyz.AQ", True),  # Parameter Builder's language token
        ("fb.2.1763900000000.IwAR2Xyz.AQIBAQAB", True),  # its 8-character appendix
        ("fb.1.1763900000000.IwAR2Xyz.ZZ", False),
        ("fb.1.1763900000000.IwAR2Xyz.AQ.x", False),
        ("fb.1.176390000000x.IwAR2Xyz", False),
        ("fb.1.1763900000000", False),
        ("gb.1.1763900000000.IwAR2Xyz", False),
    ],
)
def test_fbc_and_fbp_are_read_with_four_or_five_parts(value, valid):
    found = run({"_fbc": value, "_fbp": value.replace("IwAR2Xyz", "1234567890")})
    assert (found.ids.fbc == value) is valid
    assert (found.ids.fbp == value.replace("IwAR2Xyz", "1234567890")) is valid
    if valid:  # kept as is, with what is left of its 90 days
        assert written(found)["_fbc"].value == value
        assert written(found)["_fbc"].max_age == int(1_763_900_000 + 90 * DAY - NOW)


def test_a_new_browser_gets_one_fbp_and_ttp_created_now_in_milliseconds():
    found = run()
    fbp = found.ids.fbp or ""
    parts = fbp.split(".")
    assert parts[:2] == ["fb", "1"] and len(parts[2]) == 13
    assert NOW - 20 <= int(parts[2]) / 1000 <= NOW  # created at this hit's window
    assert 1_000_000_000 <= int(parts[3]) <= 2_147_483_647
    assert re.fullmatch(r"[A-Za-z0-9]{27}", found.ids.ttp or "")
    assert written(found)["_fbp"].max_age <= 90 * DAY


def test_simultaneous_first_hits_of_one_browser_mint_the_same_ids_in_any_process():
    one, two = Identifier(DOMAINS, SECRET), Identifier(DOMAINS, SECRET)  # two processes
    a = run(identifier=one, now=NOW + 0.1)
    b = run(identifier=two, now=NOW + 0.7)
    assert (a.ids.fbp, a.ids.ttp) == (b.ids.fbp, b.ids.ttp)
    other = run(identifier=one, ip="198.51.100.1", now=NOW + 0.2)  # another browser
    assert other.ids.fbp != a.ids.fbp
    # Across a window boundary the process that saw the first hit still answers the same.
    assert run(identifier=one, now=NOW + 9.99).ids.fbp == a.ids.fbp
    assert (
        Identifier(DOMAINS, b"another-secret-another-secret-xx").mint(NOW, 1, "1.2.3.4", UA)[0]
        != one.mint(NOW, 1, "1.2.3.4", UA)[0]
    )


def test_two_simultaneous_first_hits_through_the_app_end_with_one_fbp(edge):
    client = edge(dispatch=False)
    barrier = threading.Barrier(2)

    def first_hit(_: int) -> Any:
        barrier.wait()
        return client.post(
            "/collect",
            content=json.dumps({"event": "page_view", "consent": GRANTED}),
            headers={"content-type": "text/plain", "user-agent": UA, "cookie": ""},
        )

    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(first_hit, range(2)))
    fbps = {set_cookies(a)["_fbp"].split(";")[0] for a in answers}
    assert len(fbps) == 1
    stored_fbps = {stored(client, event_id(a)).ids.fbp for a in answers}
    assert stored_fbps == {fbps.pop().removeprefix("_fbp=")}


# -- the signed HttpOnly backup (Safari) -------------------------------------------------------


def test_the_backup_is_signed_http_only_and_restores_what_safari_dropped():
    first = run(url=f"https://shop.example/?fbclid=IwAR2&gclid={GCLID}&ttclid=TT-1")
    backup = written(first)[BACKUP_COOKIE]
    assert backup.http_only and "HttpOnly" in backup.header()
    assert backup.domain == "shop.example" and backup.max_age == 395 * DAY  # the longest
    # Eight days later Safari has dropped every script-capped copy; only the backup is left.
    later = run({BACKUP_COOKIE: backup.value}, now=NOW + 8 * DAY)
    restored = written(later)
    for name in ("_fbc", "_fbp", "_ttp", "_gcl_aw", "ttclid"):
        assert restored[name].value == written(first)[name].value
        assert restored[name].max_age == written(first)[name].max_age - 8 * DAY
    assert later.ids.fbc == first.ids.fbc and later.ids.gclid == GCLID
    assert later.ids.ttclid == "TT-1" and later.ids.fbp == first.ids.fbp


def test_the_backup_original_beats_a_browser_id_a_script_minted_after_the_loss():
    first = run()
    backup = {BACKUP_COOKIE: written(first)[BACKUP_COOKIE].value}
    pixel_made = "fb.1.1764600000000.1999999999"
    later = run({**backup, "_fbp": pixel_made}, now=NOW + 8 * DAY)
    assert later.ids.fbp == first.ids.fbp
    assert written(later)["_fbp"].value == first.ids.fbp


def test_a_newer_click_wins_over_the_backup():
    first = run(url="https://shop.example/?fbclid=OLD")
    backup = {BACKUP_COOKIE: written(first)[BACKUP_COOKIE].value}
    newer = f"fb.1.{int((NOW + DAY) * 1000)}.NEWER"
    later = run({**backup, "_fbc": newer}, now=NOW + 2 * DAY)  # the pixel saw a new click
    assert later.ids.fbc == newer
    again = run({BACKUP_COOKIE: written(later)[BACKUP_COOKIE].value}, now=NOW + 3 * DAY)
    assert again.ids.fbc == newer  # and the backup now holds it


def test_a_tampered_or_foreign_backup_is_ignored():
    first = run(url="https://shop.example/?fbclid=IwAR2")
    value = written(first)[BACKUP_COOKIE].value
    flipped = "A" if value[-5] != "A" else "B"  # a character of the signature carrying bits
    for bad in (value[:-5] + flipped + value[-4:], "not-signed", value.replace(".", "-", 1)):
        assert run({BACKUP_COOKIE: bad}).ids.fbc is None
    foreign = Identifier(DOMAINS, b"x" * 32)
    assert run({BACKUP_COOKIE: value}, identifier=foreign).ids.fbc is None


def test_backup_entries_expire_with_their_cookie():
    first = run(url="https://shop.example/?ttclid=TT-1")
    backup = {BACKUP_COOKIE: written(first)[BACKUP_COOKIE].value}
    assert run(backup, now=NOW + 29 * DAY).ids.ttclid == "TT-1"
    assert run(backup, now=NOW + 31 * DAY).ids.ttclid is None  # ttclid lives 30 days


def test_a_cookie_a_platform_wrote_is_backed_up_but_not_extended():
    found = run({"ttclid": "FROM-PIXEL"})
    assert found.ids.ttclid == "FROM-PIXEL"
    assert "ttclid" not in written(found)  # its creation time is unknown: not re-issued
    later = run({BACKUP_COOKIE: written(found)[BACKUP_COOKIE].value}, now=NOW + 5 * DAY)
    assert written(later)["ttclid"].max_age == 25 * DAY  # 30 days from when first seen


def test_the_backup_stays_under_the_cookie_size_limit():
    awc = ",".join(f"1001_{i}_" + "a" * 32 for i in range(10))[:512]
    found = run(
        url=f"https://shop.example/?awc={awc}&tblci={'t' * 500}&gclid={'g' * 500}"
        f"&li_fat_id={'l' * 500}&epik={'e' * 500}&rdt_cid={'r' * 500}&fbclid={'f' * 500}"
        f"&ttclid={'x' * 500}&ScCid={'s' * 500}&dclid={'d' * 500}"
    )
    backup = written(found)[BACKUP_COOKIE]
    assert len(backup.header()) < 4096


def test_without_consent_no_ad_cookie_is_read_written_or_minted():
    first = run(url="https://shop.example/?fbclid=IwAR2")
    later = run(
        {**jar(first), "_ga": "GA1.1.123.456"}, url="https://shop.example/?gclid=G-1", write=False
    )
    assert later.cookies == []
    assert later.ids.fbp is None and later.ids.fbc is None  # cookies not read
    assert later.ids.gclid == "G-1"  # the current URL's click still counts
    assert later.ids.ga_client_id == "123.456"  # analytics: gated by analytics_storage later
    assert first.ids.fbp in later.visitors  # known, to honour a withdrawal


def test_an_explicit_refusal_forgets_the_backup():
    first = run()
    backup = {BACKUP_COOKIE: written(first)[BACKUP_COOKIE].value}
    refused = run(backup, write=False, forget=True)
    (cookie,) = refused.cookies
    assert (cookie.name, cookie.value, cookie.max_age, cookie.http_only) == (
        BACKUP_COOKIE,
        "",
        0,
        True,
    )
    assert run(backup, write=False).cookies == []  # merely unknown consent: kept


def test_without_a_secret_there_is_no_backup_and_ids_are_random():
    plain = identify(
        {}, None, None, "shop.example", NOW, allowed_domains=DOMAINS, write_cookies=True
    )
    assert BACKUP_COOKIE not in written(plain) and plain.ids.fbp
    again = identify(
        {}, None, None, "shop.example", NOW, allowed_domains=DOMAINS, write_cookies=True
    )
    assert again.ids.fbp != plain.ids.fbp


# -- through the app: both deployments ---------------------------------------------------------


@pytest.mark.parametrize("host", ["t.shop.example", "shop.example"])
def test_both_deployments_write_cookies_for_the_shop_domain(edge, host):
    client = edge(dispatch=False, host=host)
    answer = hit(client, consent=GRANTED, url="https://shop.example/?fbclid=IwAR2")
    cookies = set_cookies(answer)
    for name in ("_fbc", "_fbp", "_ttp", BACKUP_COOKIE):
        assert "Domain=shop.example" in cookies[name] and "Path=/" in cookies[name]
    assert "HttpOnly" in cookies[BACKUP_COOKIE] and "HttpOnly" not in cookies["_fbp"]


def test_the_signing_key_is_generated_once_and_kept(tmp_path):
    from edge.settings import secret_key

    from .edgeapp import settings_for

    settings = settings_for(tmp_path)
    key = secret_key(settings)
    assert len(key) >= 32 and secret_key(settings) == key
    path = tmp_path / "secret_key"
    assert path.stat().st_mode & 0o777 == 0o600
    configured = settings_for(tmp_path, server={"secret_key": "k" * 40})
    assert secret_key(configured) == b"k" * 40


def test_a_short_signing_key_is_refused(tmp_path, monkeypatch):
    from edge.errors import ConfigError

    from .edgeapp import settings_for

    monkeypatch.setenv("EDGE_SECRET", "short")
    with pytest.raises(ConfigError, match="server.secret_key: is too short"):
        settings_for(tmp_path, server={"secret_key": "env:EDGE_SECRET"})
    monkeypatch.setenv("EDGE_SECRET", "s" * 32)
    assert settings_for(tmp_path, server={"secret_key": "env:EDGE_SECRET"}).secret_key == b"s" * 32


@pytest.mark.parametrize("key_length", [1, 32, 64, 65, 200])
def test_keyed_hmac_is_hmac_sha256(key_length: int) -> None:
    # The backup's signature and the minted browser IDs depend on these bytes: keyed once
    # or set up per call, HMAC-SHA256 must give the same, for keys under, at and over a block.
    key = bytes(range(key_length % 256)) * (key_length // 256 + 1)
    key = key[:key_length]
    mac = KeyedHmac(key)
    for message in (b"", b"1.2.3.4\nMozilla/5.0\n1234", b"x" * 1000):
        assert mac.digest(message) == hmac.new(key, message, hashlib.sha256).digest()
