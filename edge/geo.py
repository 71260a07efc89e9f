"""Geolocation: the visitor's country and region from a MaxMind database, for consent defaults.

``[geo] database`` names a GeoLite2/GeoIP2 City or Country ``.mmdb`` file (MaxMind's free
GeoLite2 databases need an account; keep the file current with ``geoipupdate``). Without
one, no visitor has a known location and the global consent defaults apply.

A lookup gives ``("US", "US-CA")``: the ISO 3166-1 country and the ISO 3166-2 code of the
most specific subdivision (City databases only). Addresses the database does not know
(private ones included) and anything unparsable give ``(None, None)``. Lookups are cached per
address: a parsed City record costs tens of microseconds, a repeat visitor nothing.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import geoip2.database
import geoip2.errors
import maxminddb

GEO_CACHE_SIZE = 8192
Location = tuple[str | None, str | None]
UNKNOWN: Location = (None, None)


class GeoError(Exception):
    """The database cannot be opened or is not a City/Country database."""


class Geo:
    def __init__(self, path: str | Path) -> None:
        try:
            self.reader = geoip2.database.Reader(str(path))
        except (OSError, maxminddb.InvalidDatabaseError, ValueError) as err:
            raise GeoError(f"cannot open the MaxMind database {path}: {err}") from None
        kind = self.reader.metadata().database_type
        if "City" in kind or "Enterprise" in kind:
            self._lookup = self.reader.city
        elif "Country" in kind:
            self._lookup = self.reader.country  # type: ignore[assignment]
        else:
            self.reader.close()
            raise GeoError(f"{path} is a {kind} database; use a City or Country database")
        self.locate = lru_cache(maxsize=GEO_CACHE_SIZE)(self._locate)

    def _locate(self, ip: str | None) -> Location:
        if not ip:
            return UNKNOWN
        try:
            answer = self._lookup(ip)
        except (ValueError, geoip2.errors.AddressNotFoundError, maxminddb.InvalidDatabaseError):
            return UNKNOWN
        country = answer.country.iso_code
        if not country:
            return UNKNOWN
        region = None
        subdivisions = getattr(answer, "subdivisions", None)
        if subdivisions:
            code = subdivisions.most_specific.iso_code
            region = f"{country}-{code}" if code else None
        return country.upper(), region

    def close(self) -> None:
        self.reader.close()


def open_geo(path: Path | None) -> Geo | None:
    return Geo(path) if path is not None else None
