"""Enrichment: client IP from trusted proxies only, bots, geolocation, truncated stored IPs."""

from __future__ import annotations

import ipaddress
import sqlite3

import pytest

from edge.enrich import client_ip, is_bot, truncate_ip
from edge.geo import Geo, GeoError

from . import geodb
from .edgeapp import event_id, hit, statuses, stored
from .support import GRANTED, META_HOST, wait_until

TRUSTED = (ipaddress.ip_network("127.0.0.1/32"), ipaddress.ip_network("10.0.0.0/8"))


@pytest.mark.parametrize(
    ("peer", "forwarded", "expected"),
    [
        ("203.0.113.9", None, "203.0.113.9"),
        ("203.0.113.9", "198.51.100.1", "203.0.113.9"),  # an untrusted peer cannot claim one
        ("127.0.0.1", "198.51.100.1", "198.51.100.1"),
        ("127.0.0.1", "6.6.6.6, 198.51.100.1", "198.51.100.1"),  # the client's own XFF: no
        ("127.0.0.1", "6.6.6.6, 198.51.100.1, 10.1.2.3", "198.51.100.1"),  # proxy chain
        ("127.0.0.1", "10.1.2.3", "10.1.2.3"),  # all trusted: the farthest one
        ("127.0.0.1", "garbage, 198.51.100.1", "198.51.100.1"),
        ("127.0.0.1", "[2001:db8::1]:443", "2001:db8::1"),
        ("127.0.0.1", "198.51.100.1:5000", "198.51.100.1"),
        ("testclient", None, None),
    ],
)
def test_client_ip_believes_forwarded_for_only_from_trusted_proxies(peer, forwarded, expected):
    assert client_ip(peer, forwarded, TRUSTED) == expected


@pytest.mark.parametrize(
    ("user_agent", "bot"),
    [
        ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", True),
        ("facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)", True),
        ("Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)", True),
        ("Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; GPTBot/1.0)", True),
        ("curl/8.5.0", True),
        ("python-requests/2.31.0", True),
        ("Go-http-client/1.1", True),
        (
            "Mozilla/5.0 (Linux; Android 11) Chrome/109.0 Mobile Safari/537.36 Chrome-Lighthouse",
            True,
        ),
        ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Version/17.0 Safari/604.1", False),
        ("Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:120.0) Gecko/20100101 Firefox/120.0", False),
        ("", False),
    ],
)
def test_bots_and_non_browsers_are_flagged(user_agent, bot):
    assert is_bot(user_agent) is bot


def test_truncated_ips():
    assert truncate_ip("203.0.113.77") == "203.0.113.0"
    assert truncate_ip("2001:db8:1234:5678::1") == "2001:db8:1234::"
    assert truncate_ip("not an ip") is None and truncate_ip(None) is None


def test_bot_hits_are_stored_and_sent_nowhere(edge, platforms):
    client = edge()
    eid = event_id(hit(client, user_agent="Mozilla/5.0 (compatible; bingbot/2.0)", consent=GRANTED))
    assert set(statuses(client, eid).values()) == {("skipped", "bot")}
    assert stored(client, eid).client.is_bot


# -- the full IP: only to consented destinations, never kept ------------------------------------


def _ip_column(client, eid):  # noqa: ANN001, ANN202
    path = client.app.state.settings.database
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT ip, visitor FROM events WHERE event_id = ?", (eid,)).fetchone()


def test_the_full_ip_goes_to_consented_platforms_and_is_then_forgotten(edge, platforms):
    client = edge()
    eid = event_id(hit(client, ip="203.0.113.77", consent=GRANTED))
    event = stored(client, eid)
    assert event.client.ip is None  # the stored body never holds it
    assert event.client.ip_truncated == "203.0.113.0"
    wait_until(lambda: platforms.events_to(META_HOST))
    (meta,) = platforms.events_to(META_HOST)
    assert meta["user_data"]["client_ip_address"] == "203.0.113.77"
    wait_until(lambda: {s for s, _ in statuses(client, eid).values()} == {"sent"})
    wait_until(lambda: _ip_column(client, eid) == (None, None))


def test_an_event_nobody_may_receive_never_stores_the_full_ip(edge):
    client = edge(dispatch=False)
    eid = event_id(hit(client, ip="203.0.113.77"))  # no consent
    assert _ip_column(client, eid) == (None, None)
    assert stored(client, eid).client.ip_truncated == "203.0.113.0"


def test_a_spoofed_forwarded_for_from_an_untrusted_client_is_ignored(edge):
    spoofer = edge(dispatch=False, peer="198.51.100.9")
    eid = event_id(hit(spoofer, ip="1.2.3.4", consent=GRANTED))
    assert stored(spoofer, eid).client.ip_truncated == "198.51.100.0"


# -- geolocation --------------------------------------------------------------------------------


def test_geo_reads_country_and_subdivision(tmp_path):
    geo = Geo(geodb.build(tmp_path / "city.mmdb"))
    assert geo.locate(geodb.CALIFORNIA) == ("US", "US-CA")
    assert geo.locate(geodb.GERMANY) == ("DE", None)
    assert geo.locate(geodb.US_SOMEWHERE) == ("US", None)
    assert geo.locate(geodb.FRANCE_V6) == ("FR", None)
    assert geo.locate(geodb.UNKNOWN) == (None, None)
    assert geo.locate("not-an-ip") == (None, None) and geo.locate(None) == (None, None)
    geo.close()


def test_geo_reads_a_country_database_too(tmp_path):
    geo = Geo(geodb.build(tmp_path / "country.mmdb", kind="GeoLite2-Country"))
    assert geo.locate(geodb.CALIFORNIA) == ("US", None)


def test_geo_refuses_what_it_cannot_use(tmp_path):
    with pytest.raises(GeoError, match="cannot open"):
        Geo(tmp_path / "missing.mmdb")
    (tmp_path / "junk.mmdb").write_bytes(b"not a database")
    with pytest.raises(GeoError, match="cannot open"):
        Geo(tmp_path / "junk.mmdb")
    with pytest.raises(GeoError, match="City or Country"):
        Geo(geodb.build(tmp_path / "asn.mmdb", kind="GeoLite2-ASN"))
