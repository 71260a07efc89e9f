"""Google's identifiers for a conversion: the one click ID, and hashed user identifiers.

Google matches on its own normalization before SHA-256 (Gmail without dots and ``+suffix``,
names without punctuation or titles, phones E.164), so it lives here, shared by the Data
Manager and the legacy payloads of ``tags.google_ads``. Pure, like every tag module.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from edge.schema import StoredEvent

from . import pii
from .base import Destination

CLICK_IDS = ("gclid", "gbraid", "wbraid")  # preference order; exactly one is sent
NO_CLICK_ID = "no click id"
GMAIL = frozenset({"gmail.com", "googlemail.com"})
NAME_PREFIXES = frozenset({"mr", "mrs", "ms", "miss", "dr"})
NAME_SUFFIXES = frozenset({"jr", "sr", "ii", "iii", "iv"})


def google_email(value: str) -> str | None:
    """Trimmed, lowercased; Gmail and Googlemail lose dots and any ``+suffix`` locally."""
    address = pii.email(value)
    if not address or pii.is_hashed(address):
        return address
    local, _, domain = address.rpartition("@")
    if domain in GMAIL:
        local = local.split("+", 1)[0].replace(".", "")
    return f"{local}@{domain}" if local else None


def google_name(value: str | None) -> str | None:
    """Lowercase, no punctuation, single spaces, without prefixes (Mrs.) or suffixes (Jr.)."""
    value = (value or "").strip()
    if not value or pii.is_hashed(value):
        return value.lower() or None
    text = unicodedata.normalize("NFC", value).lower()
    words = "".join(c for c in text if c.isspace() or c.isalnum()).split()
    if len(words) > 1 and words[0] in NAME_PREFIXES:
        words = words[1:]
    if len(words) > 1 and words[-1] in NAME_SUFFIXES:
        words = words[:-1]
    return " ".join(words) or None


def _region(event: StoredEvent, destination: Destination) -> str | None:
    country = pii.country(event.user.country) if event.user.country else None
    region = (country or event.client.country or destination.default_country or "").upper()
    return region if re.fullmatch(r"[A-Z]{2}", region) else None


def _address(event: StoredEvent, region: str | None) -> dict[str, str] | None:
    user = event.user
    zip_code = (user.zip or "").strip()
    if region == "US":
        zip_code = pii.zip_code(zip_code, "us") or ""
    fields = {
        "givenName": pii.hashed(google_name(user.first_name)),
        "familyName": pii.hashed(google_name(user.last_name)),
        "regionCode": region,
        "postalCode": " ".join(zip_code.split()) if not pii.is_hashed(zip_code) else None,
    }
    return {k: v for k, v in fields.items() if v} if all(fields.values()) else None


def identifiers(event: StoredEvent, destination: Destination) -> list[tuple[str, Any]]:
    """(kind, value) pairs: hashed emails, hashed phones, then the address, deduplicated."""
    region = _region(event, destination)
    found: list[tuple[str, Any]] = []
    for kind, digest in [("email", pii.hashed(google_email(e))) for e in event.user.emails()] + [
        ("phone", pii.hashed(pii.phone_e164(p, region))) for p in event.user.phones()
    ]:
        if digest and (kind, digest) not in found:
            found.append((kind, digest))
    if address := _address(event, region):
        found.append(("address", address))
    return found


def click_id(event: StoredEvent) -> tuple[str, str] | None:
    """The one click ID to send: gclid, else gbraid, else wbraid."""
    return next(((n, v) for n in CLICK_IDS if (v := getattr(event.ids, n))), None)


def shares_user_data(event: StoredEvent) -> bool:
    """False when ``ad_user_data`` is denied: then no user data, IP or user agent is sent."""
    return event.consent.ad_user_data != "denied"


def skip_reason(event: StoredEvent, destination: Destination) -> str | None:
    """Google attributes through a click ID or user identifiers; with neither: skipped."""
    if click_id(event) or (shares_user_data(event) and identifiers(event, destination)):
        return None
    return NO_CLICK_ID
