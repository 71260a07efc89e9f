"""PII normalization and hashing shared by the tags.

The rules follow Meta's customer-information parameters (the strictest and best documented;
most platforms ask for the same): normalize, then SHA-256 as lowercase hex. Every function
returns ``None`` for a value that normalizes to nothing, so a tag simply omits the key.
Values that already are SHA-256 hex pass through unchanged (lowercased): a shop that hashes
in its backend must not get hashed twice. Platform variants (TikTok's ``+`` in E.164,
Reddit's email canonicalization, Google's Gmail dots) live in the platform's tag, built from
these pieces.
"""

from __future__ import annotations

import functools
import hashlib
import re
import unicodedata
from datetime import date

import phonenumbers
import pycountry

SHA256_HEX = re.compile(r"^[0-9a-fA-F]{64}$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
MAX_PHONE_DIGITS = 15  # E.164
US_ZIP = re.compile(r"^(\d{5})(?:-?\d{4})?$")
GENDERS = {
    "m": "m",
    "male": "m",
    "man": "m",
    "boy": "m",
    "mr": "m",
    "f": "f",
    "female": "f",
    "woman": "f",
    "girl": "f",
    "mrs": "f",
    "ms": "f",
    "miss": "f",
}
# Date layouts tried in order; day-first before month-first only when unambiguous (day > 12).
_DATE_YMD = re.compile(r"^(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})(?:[T ].*)?$")
_DATE_COMPACT = re.compile(r"^(\d{4})(\d{2})(\d{2})$")
_DATE_XXY = re.compile(r"^(\d{1,2})[-/.](\d{1,2})[-/.](\d{4})$")


def is_hashed(value: str) -> bool:
    return bool(SHA256_HEX.match(value))


def sha256(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def hashed(value: str | None) -> str | None:
    """SHA-256 of an already normalized value; a value that is already a hash passes."""
    if not value:
        return None
    if is_hashed(value):
        return value.lower()
    return sha256(value)


def _passthrough(normalize):  # type: ignore[no-untyped-def]
    """Let an already-hashed value through any normalizer untouched (lowercased)."""

    @functools.wraps(normalize)
    def wrapper(value: str | None, *args: object, **kwargs: object) -> str | None:
        if value is None:
            return None
        value = value.strip()
        if is_hashed(value):
            return value.lower()
        return normalize(value, *args, **kwargs)  # type: ignore[no-any-return]

    return wrapper


def _letters_only(value: str, *, keep_digits: bool) -> str:
    """Lowercase, NFC, without whitespace or punctuation (letters of any script stay)."""
    value = unicodedata.normalize("NFC", value).lower()
    return "".join(
        ch
        for ch in value
        if unicodedata.category(ch).startswith("L")
        or (keep_digits and unicodedata.category(ch) == "Nd")
    )


@_passthrough
def email(value: str) -> str | None:
    """Trimmed and lowercased; anything that is not an address is dropped."""
    value = value.lower()
    return value if EMAIL.match(value) else None


@_passthrough
def phone_digits(value: str, default_region: str | None = None) -> str | None:
    """Digits with the country code and no ``+``: ``(650) 555-1212`` -> ``16505551212``.

    A number written without a country code takes ``default_region`` (ISO-2). Without one
    we cannot know the country, and a number without it would never match: dropped.
    """
    e164 = _e164(value, default_region)
    return e164[1:] if e164 else None


@_passthrough
def phone_e164(value: str, default_region: str | None = None) -> str | None:
    """E.164 with the ``+``: ``(650) 555-1212`` -> ``+16505551212``."""
    return _e164(value, default_region)


def _e164(value: str, default_region: str | None) -> str | None:
    raw = value.strip()
    if raw.startswith("00"):
        raw = "+" + raw[2:]
    digits = re.sub(r"\D", "", raw)
    if not digits:
        return None
    region = (default_region or "").upper() or None
    try:
        number = phonenumbers.parse(raw if raw.startswith("+") else digits, region)
    except phonenumbers.NumberParseException:
        number = None
    if number is not None and phonenumbers.is_possible_number(number):
        return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    if raw.startswith("+") and 8 <= len(digits) <= MAX_PHONE_DIGITS:
        return "+" + digits  # a country code was given; trust it even if the plan is unknown
    return None


@_passthrough
def name(value: str) -> str | None:
    """First or last name: lowercase, no punctuation or spaces, any script (``valéry``)."""
    return _letters_only(value, keep_digits=False) or None


@_passthrough
def city(value: str) -> str | None:
    """Lowercase, no spaces, punctuation or digits: ``New York`` -> ``newyork``."""
    return _letters_only(value, keep_digits=False) or None


@functools.lru_cache(maxsize=1)
def _state_codes() -> dict[str, str]:
    """US and Canadian subdivision names (and codes) -> lowercase 2-letter code."""
    codes: dict[str, str] = {}
    for country in ("US", "CA"):
        for sub in pycountry.subdivisions.get(country_code=country) or ():
            short = sub.code.split("-", 1)[1].lower()
            codes[_letters_only(sub.name, keep_digits=False)] = short
            codes[short] = short
    return codes


@_passthrough
def state(value: str) -> str | None:
    """US/Canadian state names to their 2-letter code; elsewhere lowercase letters only."""
    key = _letters_only(value, keep_digits=True)
    if not key:
        return None
    return _state_codes().get(key, key)


@_passthrough
def zip_code(value: str, country: str | None = None) -> str | None:
    """Lowercase, no spaces or dashes; US codes keep their first five digits."""
    compact = re.sub(r"[\s\-]", "", value.lower())
    us = US_ZIP.match(value.strip().replace(" ", ""))
    if us and (country is None or country.lower() == "us"):
        return us.group(1)
    return re.sub(r"[^0-9a-z]", "", compact) or None


@functools.lru_cache(maxsize=512)
def _country_code(value: str) -> str | None:
    try:
        return str(pycountry.countries.lookup(value).alpha_2).lower()
    except LookupError:
        return None


@_passthrough
def country(value: str) -> str | None:
    """ISO 3166-1 alpha-2 in lowercase, from a code or a name (``Germany`` -> ``de``)."""
    cleaned = value.strip()
    if not cleaned:
        return None
    if cleaned.lower() in ("uk", "great britain", "england", "scotland", "wales"):
        return "gb"
    return _country_code(cleaned)


@_passthrough
def date_of_birth(value: str) -> str | None:
    """``YYYYMMDD`` from ISO dates, compact dates and ``DD/MM/YYYY`` or ``MM/DD/YYYY``."""
    value = value.strip()
    candidates: list[tuple[int, int, int]] = []
    if m := _DATE_YMD.match(value) or _DATE_COMPACT.match(value):
        candidates.append((int(m.group(1)), int(m.group(2)), int(m.group(3))))
    elif m := _DATE_XXY.match(value):
        first, second, year = int(m.group(1)), int(m.group(2)), int(m.group(3))
        # Month-first is the US habit; a first part over 12 can only be a day.
        candidates += [(year, first, second), (year, second, first)]
        if first > 12:
            candidates.reverse()
    for year, month, day in candidates:
        try:
            born = date(year, month, day)
        except ValueError:
            continue
        if 1900 <= born.year <= date.today().year:
            return born.strftime("%Y%m%d")
    return None


@_passthrough
def gender(value: str) -> str | None:
    """``m`` or ``f`` from common words; anything else is dropped, never guessed."""
    return GENDERS.get(_letters_only(value, keep_digits=False))


@_passthrough
def external_id(value: str) -> str | None:
    """Trimmed and lowercased, so the same customer hashes the same everywhere."""
    return re.sub(r"\s+", "", value.lower()) or None
