"""A tiny MaxMind City database for tests, written with ``mmdb-writer``.

Networks (documentation ranges, so nothing real is implied):

    198.51.100.0/24   US, California        203.0.113.0/24   DE
    192.0.2.0/25      US, Virginia          192.0.2.128/25   US (no subdivision)
    2001:db8::/32     FR                    100.64.0.0/24    BR
"""

from __future__ import annotations

from pathlib import Path

from mmdb_writer import MMDBWriter
from netaddr import IPSet

CALIFORNIA = "198.51.100.7"
GERMANY = "203.0.113.7"
VIRGINIA = "192.0.2.7"
US_SOMEWHERE = "192.0.2.200"
FRANCE_V6 = "2001:db8::7"
BRAZIL = "100.64.0.7"
UNKNOWN = "198.18.0.1"

NETWORKS: dict[str, dict[str, object]] = {
    "198.51.100.0/24": {"country": "US", "subdivision": "CA"},
    "203.0.113.0/24": {"country": "DE"},
    "192.0.2.0/25": {"country": "US", "subdivision": "VA"},
    "192.0.2.128/25": {"country": "US"},
    "2001:db8::/32": {"country": "FR"},
    "100.64.0.0/24": {"country": "BR"},
}


def build(path: Path, kind: str = "GeoLite2-City") -> Path:
    writer = MMDBWriter(ip_version=6, database_type=kind, languages=["en"], ipv4_compatible=True)
    for network, where in NETWORKS.items():
        record: dict[str, object] = {"country": {"iso_code": where["country"]}}
        if "subdivision" in where and "City" in kind:
            record["subdivisions"] = [{"iso_code": where["subdivision"]}]
        writer.insert_network(IPSet([network]), record)
    writer.to_db_file(str(path))
    return path
