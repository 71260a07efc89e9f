"""PII normalization and hashing shared by the tags.

The rules follow Meta's customer-information parameters (the strictest and best documented;
most platforms ask for the same), cross-checked with Meta's own Parameter Builder
(``capi-param-builder``): normalize, then SHA-256 as lowercase hex. Every function returns
``None`` for a value that normalizes to nothing, so a tag simply omits the key. Values that
already are SHA-256 hex pass through unchanged (lowercased): a shop that hashes in its
backend must not get hashed twice. Platform variants (TikTok's ``+`` in E.164, Reddit's
email canonicalization, Google's Gmail dots) live in the platform's tag, built from these
pieces.

=============  ===============================================================================
field          rule
=============  ===============================================================================
email          trimmed, lowercased; not an address -> dropped
phone          E.164 digits without ``+`` (``16505551212``); the country code from the number,
               else the default region (the user's country, the visitor's geolocated country,
               ``site.default_country``); without any -> dropped, never guessed
first/last     lowercased (NFC), no whitespace or punctuation; letters of any script kept
name           with their combining marks (``valéry``, ``अनिल``)
city           lowercased, letters only (``New York`` -> ``newyork``)
state          US and Canadian names and ISO codes (``US-CA``) -> 2-letter code; elsewhere
               lowercased letters and digits
zip            lowercased, no spaces or dashes; US codes keep their first 5 digits
country        ISO 3166-1 alpha-2, lowercased, from a code or a name (``Germany`` -> ``de``)
date of birth  ``YYYYMMDD`` from ISO, compact, ``D.M.Y`` (day first), ``M/D/Y`` (month first
               unless impossible) and written-out months (``5 March 1990``, ``Mar 5, 1990``)
gender         ``m`` or ``f`` from common words in several languages; anything else dropped
external_id    trimmed, lowercased, no whitespace
=============  ===============================================================================
"""

from __future__ import annotations

import functools
import hashlib
import re
import unicodedata
from collections.abc import Iterable
from datetime import date

import phonenumbers
import pycountry

SHA256_HEX = re.compile(r"^[0-9a-fA-F]{64}$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
MAX_PHONE_DIGITS = 15  # E.164
MIN_PHONE_DIGITS = 7
US_ZIP = re.compile(r"^(\d{5})(?:-?\d{4})?$")
EARLIEST_BIRTH_YEAR = 1900
GENDERS = {
    **dict.fromkeys(
        "m male man boy mr mister sir gentleman guy he him his masculine "
        "männlich mann herr homme monsieur masculin hombre masculino señor uomo maschio "
        "maschile signor heer man mężczyzna".split(),
        "m",
    ),
    **dict.fromkeys(
        "f female woman girl mrs ms miss madam lady she her hers feminine "
        "weiblich frau femme madame féminin mujer femenino señora donna femmina femminile "
        "signora mevrouw vrouw kobieta".split(),
        "f",
    ),
}
MONTHS = {
    name: number
    for number, names in enumerate(
        (
            "january jan januar janvier enero gennaio januari",
            "february feb februar février fevrier febrero febbraio februari",
            "march mar märz maerz mars marzo maart",
            "april apr avril abril aprile",
            "may mai mayo maggio mei",
            "june jun juni juin junio giugno",
            "july jul juli juillet julio luglio",
            "august aug août aout agosto augustus",
            "september sep sept septembre septiembre settembre",
            "october oct oktober octobre octubre ottobre",
            "november nov novembre noviembre",
            "december dec dezember décembre decembre diciembre dicembre",
        ),
        start=1,
    )
    for name in names.split()
}
COUNTRY_ALIASES = {
    "uk": "gb",
    "greatbritain": "gb",
    "england": "gb",
    "scotland": "gb",
    "wales": "gb",
    "northernireland": "gb",
    "usa": "us",
    "unitedstates": "us",
    "unitedstatesofamerica": "us",
    "america": "us",
    "deutschland": "de",
    "holland": "nl",
    "southkorea": "kr",
    "northkorea": "kp",
    "russia": "ru",
    "czechia": "cz",
    "ivorycoast": "ci",
    "vietnam": "vn",
}
_DATE_YMD = re.compile(r"^(\d{4})[-/. ](\d{1,2})[-/. ](\d{1,2})(?:[T ].*)?$", re.ASCII)
_DATE_COMPACT = re.compile(r"^(\d{4})(\d{2})(\d{2})$", re.ASCII)
_DATE_XXY = re.compile(r"^(\d{1,2})([-/. ])(\d{1,2})[-/. ](\d{4})$", re.ASCII)
_DATE_WORDS = re.compile(r"[^\W\d_]+|[0-9]+")


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


def hashed_list(values: Iterable[str | None]) -> list[str]:
    """SHA-256 of each normalized value, empty ones dropped, duplicates once, order kept."""
    return list(dict.fromkeys(h for h in (hashed(v) for v in values) if h))


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


def _kept(value: str, categories: tuple[str, ...]) -> str:
    """Lowercase (NFC) with only the characters whose Unicode category starts as given."""
    value = unicodedata.normalize("NFC", value.lower())
    return unicodedata.normalize(
        "NFC", "".join(ch for ch in value if unicodedata.category(ch).startswith(categories))
    )


def _letters_only(value: str, *, keep_digits: bool) -> str:
    """Lowercase, NFC, letters (with their marks) of any script; digits when asked."""
    return _kept(value, ("L", "M", "Nd") if keep_digits else ("L", "M"))


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


def _parsed(text: str, region: str | None) -> phonenumbers.PhoneNumber | None:
    try:
        return phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None


E164 = re.compile(r"^\+[1-9]\d{6,14}$")


def _e164(value: str, default_region: str | None) -> str | None:
    found = _e164_candidate(value, default_region)
    return found if found and E164.match(found) else None


def _e164_candidate(value: str, default_region: str | None) -> str | None:
    # Letters are dropped, never read as a vanity keypad (Meta: "remove letters").
    raw = re.sub(r"(?i)(?:ext\.?|x|#)\s*\d+\s*$", "", value.strip())  # an extension
    raw = re.sub(r"[^\d+]", "", raw)
    if raw.startswith("00"):
        raw = "+" + raw[2:]
    digits = raw.replace("+", "")
    if not MIN_PHONE_DIGITS <= len(digits) <= MAX_PHONE_DIGITS + 1:  # + a trunk prefix
        return None
    region = (default_region or "").upper() or None
    if raw.startswith("+"):
        number = _parsed("+" + digits, None)
        if number is not None and phonenumbers.is_possible_number(number):
            return _format(number)
        if 8 <= len(digits) <= MAX_PHONE_DIGITS and digits[0] != "0":
            return "+" + digits  # a country code was given; trust it even if the plan is unknown
        return None
    # A national number in the default region; or an international one whose + was left
    # out (``4915112345678``), but only when it is a valid number: never a mere guess.
    national = _parsed(digits, region) if region else None
    international = _parsed("+" + digits, None)
    if national is not None and phonenumbers.is_valid_number(national):
        return _format(national)
    if international is not None and phonenumbers.is_valid_number(international):
        return _format(international)
    if national is not None and phonenumbers.is_possible_number(national):
        return _format(national)
    return None


def _format(number: phonenumbers.PhoneNumber) -> str:
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


@_passthrough
def name(value: str) -> str | None:
    """First or last name: lowercase, no punctuation or spaces, any script (``valéry``)."""
    return _kept(value, ("L", "M", "N")) or None


@_passthrough
def city(value: str) -> str | None:
    """Lowercase, no spaces, punctuation or digits: ``New York`` -> ``newyork``."""
    return _letters_only(value, keep_digits=False) or None


@functools.lru_cache(maxsize=1)
def _state_codes() -> dict[str, str]:
    """US and Canadian subdivision names (and codes) -> lowercase 2-letter code."""
    codes: dict[str, str] = {}
    for country_code in ("US", "CA"):
        for sub in pycountry.subdivisions.get(country_code=country_code) or ():
            short = sub.code.split("-", 1)[1].lower()
            codes[_letters_only(sub.name, keep_digits=False)] = short
            codes[short] = short
            codes[f"{country_code.lower()}{short}"] = short  # "US-CA" once punctuation goes
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
    alias = COUNTRY_ALIASES.get(_letters_only(cleaned, keep_digits=False))
    return alias or _country_code(cleaned)


def _valid_birth_date(year: int, month: int, day: int) -> str | None:
    try:
        born = date(year, month, day)
    except ValueError:
        return None
    if EARLIEST_BIRTH_YEAR <= born.year and born <= date.today():
        return born.strftime("%Y%m%d")
    return None


@_passthrough
def date_of_birth(value: str) -> str | None:
    """``YYYYMMDD`` from the common ways of writing a date (see the table above).

    ``D.M.Y`` with dots is read day first (the European habit); with slashes or dashes
    month first (the US habit) unless the first number cannot be a month.
    """
    value = value.strip()
    candidates: list[tuple[int, int, int]] = []
    if m := _DATE_YMD.match(value) or _DATE_COMPACT.match(value):
        candidates.append((int(m.group(1)), int(m.group(2)), int(m.group(3))))
    elif m := _DATE_XXY.match(value):
        first, separator, second, year = (
            int(m.group(1)),
            m.group(2),
            int(m.group(3)),
            int(m.group(4)),
        )
        day_first = separator == "." or first > 12
        candidates += [(year, second, first), (year, first, second)]
        if not day_first:
            candidates.reverse()
    else:
        candidates += _written_out(value)
    for year, month, day in candidates:
        if found := _valid_birth_date(year, month, day):
            return found
    return None


def _written_out(value: str) -> list[tuple[int, int, int]]:
    """``5 March 1990``, ``March 5, 1990``, ``1990 Mar 5``, ``5. März 1990``."""
    tokens = _DATE_WORDS.findall(value.lower())
    months = [MONTHS[t.rstrip(".")] for t in tokens if t.rstrip(".") in MONTHS]
    numbers = [int(t) for t in tokens if t.isascii() and t.isdigit()]
    words = [t for t in tokens if not (t.isascii() and t.isdigit())]
    if len(months) != 1 or len(numbers) != 2 or len(words) > 2:
        return []
    years = [n for n in numbers if n >= 1000]
    days = [n for n in numbers if n < 1000]
    if len(years) != 1 or len(days) != 1:
        return []
    return [(years[0], months[0], days[0])]


@_passthrough
def gender(value: str) -> str | None:
    """``m`` or ``f`` from common words; anything else is dropped, never guessed."""
    return GENDERS.get(_letters_only(value, keep_digits=False))


@_passthrough
def external_id(value: str) -> str | None:
    """Trimmed and lowercased, so the same customer hashes the same everywhere."""
    return re.sub(r"\s+", "", value.lower()) or None
