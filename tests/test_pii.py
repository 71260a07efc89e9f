"""tags.pii: Meta's normalization rules, by example and as properties (hypothesis)."""

from __future__ import annotations

import hashlib
import re
import string
import unicodedata
from datetime import date

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from tags import pii

HEX = re.compile(r"^[0-9a-f]{64}$")


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


# -- examples (Meta's documentation and its Parameter Builder) ---------------------------------


@pytest.mark.parametrize(
    ("normalizer", "value", "expected"),
    [
        (pii.email, "  Jane.Doe@Example.COM ", "jane.doe@example.com"),
        (pii.email, "not an address", None),
        (pii.name, "Valéry", "valéry"),
        (pii.name, " Mary-Ann O'Neil ", "maryannoneil"),
        (pii.name, "अनिल", "अनिल"),  # combining vowel signs stay
        (pii.name, "Ｊｏｈｎ", "ｊｏｈｎ"),
        (pii.city, "New York", "newyork"),
        (pii.city, "Saint-Étienne 42", "saintétienne"),
        (pii.state, "California", "ca"),
        (pii.state, "CA", "ca"),
        (pii.state, "US-TX", "tx"),
        (pii.state, "Ontario", "on"),
        (pii.state, "Newfoundland and Labrador", "nl"),
        (pii.state, "Bavaria", "bavaria"),
        (pii.zip_code, "94025-1234", "94025"),
        (pii.zip_code, "M1 1AE", "m11ae"),
        (pii.zip_code, "10115", "10115"),
        (pii.country, "Germany", "de"),
        (pii.country, "United States of America", "us"),
        (pii.country, "USA", "us"),
        (pii.country, "DEU", "de"),
        (pii.country, "UK", "gb"),
        (pii.country, "Narnia", None),
        (pii.date_of_birth, "1990-04-01", "19900401"),
        (pii.date_of_birth, "19900401", "19900401"),
        (pii.date_of_birth, "04/01/1990", "19900401"),  # month first (US)
        (pii.date_of_birth, "13/01/1990", "19900113"),  # cannot be month first
        (pii.date_of_birth, "01.04.1990", "19900401"),  # dots: day first (Europe)
        (pii.date_of_birth, "5 March 1990", "19900305"),
        (pii.date_of_birth, "March 5, 1990", "19900305"),
        (pii.date_of_birth, "5. März 1990", "19900305"),
        (pii.date_of_birth, "1990-04-01T00:00:00Z", "19900401"),
        (pii.date_of_birth, "1990-02-30", None),
        (pii.date_of_birth, "2999-01-01", None),
        (pii.gender, "Female", "f"),
        (pii.gender, " MALE ", "m"),
        (pii.gender, "Mrs.", "f"),
        (pii.gender, "Frau", "f"),
        (pii.gender, "unknown", None),
        (pii.external_id, " Customer 42 ", "customer42"),
    ],
)
def test_examples(normalizer, value, expected):
    assert normalizer(value) == expected


@pytest.mark.parametrize(
    ("value", "region", "digits"),
    [
        ("(650) 555-1212", "US", "16505551212"),
        ("+1 650-555-1212", None, "16505551212"),
        ("001 650 555 1212", None, "16505551212"),
        ("650-555-1212 ext. 34", "US", "16505551212"),
        ("030 1234567", "DE", "49301234567"),  # the trunk zero goes
        ("0151 23456789", "DE", "4915123456789"),
        ("4915123456789", None, "4915123456789"),  # a + left out of a valid number
        ("16505551212", "DE", "16505551212"),
        ("6505551212", None, None),  # no country code and no region: never guessed
        ("1-800-FLOWERS", "US", None),  # letters are dropped, not dialled
        ("12", "US", None),
    ],
)
def test_phone_numbers_get_their_country_code(value, region, digits):
    assert pii.phone_digits(value, region) == digits
    assert pii.phone_e164(value, region) == (f"+{digits}" if digits else None)


def test_already_hashed_values_pass_through_every_normalizer():
    digest = sha("jane@example.com")
    for normalizer in (
        pii.email,
        pii.name,
        pii.city,
        pii.state,
        pii.zip_code,
        pii.country,
        pii.date_of_birth,
        pii.gender,
        pii.external_id,
        pii.phone_digits,
    ):
        assert normalizer(digest.upper()) == digest
    assert pii.hashed(digest.upper()) == digest
    assert pii.hashed("jane@example.com") == digest
    assert pii.hashed(None) is None and pii.hashed("") is None


# -- properties -----------------------------------------------------------------------------------

text = st.text(max_size=40)
words = st.text(alphabet=st.characters(codec="utf-8"), max_size=40)


@given(words)
def test_names_are_idempotent_lowercase_and_free_of_spaces_and_punctuation(value):
    normalized = pii.name(value)
    if normalized is None:
        return
    assert pii.name(normalized) == normalized
    assert normalized == unicodedata.normalize("NFC", normalized)
    assert not any(unicodedata.category(ch)[0] in "PZSC" for ch in normalized)
    assert normalized == normalized.lower() or not normalized.isascii()


@given(words)
def test_cities_keep_letters_only(value):
    normalized = pii.city(value)
    if normalized is None:
        return
    assert pii.city(normalized) == normalized
    assert all(unicodedata.category(ch)[0] in "LM" for ch in normalized)


@given(st.emails())
def test_emails_are_trimmed_and_lowercased(address):
    assume(not pii.is_hashed(address))
    normalized = pii.email(f"  {address.upper()} ")
    assert normalized == address.strip().lower()
    assert pii.email(normalized) == normalized


@given(st.dates(min_value=date(1900, 1, 1), max_value=date.today()))
def test_every_common_way_of_writing_a_birth_date_gives_the_same_yyyymmdd(born):
    expected = born.strftime("%Y%m%d")
    month_name = born.strftime("%B")
    for written in (
        born.isoformat(),
        expected,
        f"{born.day:02d}.{born.month:02d}.{born.year}",
        f"{born.day} {month_name} {born.year}",
        f"{month_name[:3]} {born.day}, {born.year}",
    ):
        assert pii.date_of_birth(written) == expected, written
    us = pii.date_of_birth(f"{born.month:02d}/{born.day:02d}/{born.year}")
    assert us == expected


@given(text)
def test_birth_dates_are_real_past_dates_or_nothing(value):
    normalized = pii.date_of_birth(value)
    if normalized is not None:
        assert re.fullmatch(r"\d{8}", normalized)
        assert (
            date(1900, 1, 1)
            <= date(int(normalized[:4]), int(normalized[4:6]), int(normalized[6:]))
            <= date.today()
        )
        assert pii.date_of_birth(normalized) == normalized


@given(
    st.sampled_from(["US", "DE", "GB", "FR", "BR", "IN", None]),
    st.text(string.digits + " +-()", max_size=22),
)
def test_phone_numbers_are_e164_digits_or_nothing(region, value):
    e164 = pii.phone_e164(value, region)
    digits = pii.phone_digits(value, region)
    if e164 is None:
        assert digits is None
        return
    assert re.fullmatch(r"\+[1-9]\d{6,14}", e164)
    assert digits == e164[1:]
    assert pii.phone_e164(e164) == e164  # with its country code it needs no region


@given(text)
def test_genders_are_m_f_or_nothing(value):
    assert pii.gender(value) in ("m", "f", None)


@given(text)
def test_states_zips_countries_and_external_ids_are_idempotent(value):
    for normalizer in (pii.state, pii.zip_code, pii.external_id):
        normalized = normalizer(value)
        if normalized is not None:
            assert normalizer(normalized) == normalized
            assert not any(ch.isspace() for ch in normalized)
    country = pii.country(value)
    assert country is None or re.fullmatch(r"[a-z]{2}", country)


@given(text)
def test_hashing_gives_lowercase_hex_once(value):
    digest = pii.hashed(value)
    if digest is None:
        assert value == ""
        return
    assert HEX.match(digest)
    assert pii.hashed(digest) == digest  # never hashed twice
