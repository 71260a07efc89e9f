"""IAB TCF v2.2 TC strings: decode the core string and decide per vendor and purpose.

Why our own decoder: the one Python package on PyPI (``iab-tcf`` 0.2.2, last released years
ago) reads past the end of a truncated string as zeros instead of failing, depends on a
fork of ``bitarray`` that ships only as a C source distribution, and builds a dict per bit.
The core string is a short, fixed bit layout ("Consent string and vendor list formats v2"),
so this module decodes it exactly, refuses anything malformed, and is tested against
strings encoded by the IAB's own tool and decoded by an independent implementation.

Layout of the core segment (widths in bits)::

    Version 6 · Created 36 · LastUpdated 36 · CmpId 12 · CmpVersion 12 · ConsentScreen 6 ·
    ConsentLanguage 12 · VendorListVersion 12 · TcfPolicyVersion 6 · IsServiceSpecific 1 ·
    UseNonStandardTexts 1 · SpecialFeatureOptIns 12 · PurposesConsent 24 ·
    PurposesLITransparency 24 · PurposeOneTreatment 1 · PublisherCC 12 ·
    vendor consents · vendor legitimate interests · publisher restrictions

A vendor section is ``MaxVendorId 16 · IsRangeEncoding 1`` then a bit field of MaxVendorId
bits, or ``NumEntries 12`` and entries ``IsARange 1 · Start 16 · [End 16]``. A publisher
restriction is ``PurposeId 6 · RestrictionType 2 · NumEntries 12`` and range entries.
Segments after the core (disclosed vendors, publisher TC) start with a 3-bit type.

The decision rule (``vendor_problem``) follows the TCF policy: a purpose needs its legal
basis (consent, or legitimate interest where the vendor declared it and the user did not
object), the vendor's own signal for that basis, and no publisher restriction against it.
Purposes 1 and 3-6 can never rest on legitimate interest (TCF v2.2).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from types import MappingProxyType

CORE_VERSION = 2
MIN_POLICY_VERSION = 4  # TCF v2.2; strings with an older policy are invalid since 2023-09-30
MAX_TC_STRING_LENGTH = 4096
PARSE_CACHE_SIZE = 2048  # a visitor sends the same string with every hit
SEGMENT_DISCLOSED_VENDORS = 1
SEGMENT_PUBLISHER_TC = 3
# TCF v2.2: consent only, never legitimate interest.
CONSENT_ONLY_PURPOSES = frozenset({1, 3, 4, 5, 6})
# Restriction types.
NOT_ALLOWED, REQUIRE_CONSENT, REQUIRE_LI = 0, 1, 2

REASON_MALFORMED = "tcf: malformed TC string"


class TCFError(ValueError):
    """The TC string cannot be read; the message says why (never echoes the string)."""


@dataclass(frozen=True, slots=True)
class Declaration:
    """What a vendor registered in the Global Vendor List."""

    consent: frozenset[int]  # purposes processed on consent
    legitimate_interest: frozenset[int]  # purposes processed on legitimate interest
    flexible: frozenset[int] = frozenset()  # purposes whose basis a publisher may switch


def _declaration(consent: set[int], li: set[int], flexible: set[int]) -> Declaration:
    return Declaration(frozenset(consent), frozenset(li), frozenset(flexible))


# The destinations that are TCF vendors, as the Global Vendor List v45 (2024-03) declares
# them. Vendors change their declarations rarely; re-read the live GVL when one changes.
GVL: Mapping[int, Declaration] = MappingProxyType(
    {
        755: _declaration({1, 3, 4}, {2, 7, 9, 10}, {2, 7, 9, 10}),  # Google
        804: _declaration({1, 3, 4}, {2, 7, 9, 10}, {2, 7, 9, 10}),  # LinkedIn
        1126: _declaration({1, 2, 3, 4, 7, 9, 10}, set(), {2, 7, 10}),  # Microsoft
        91: _declaration({1, 2, 3, 4, 7, 9, 10}, set(), {10}),  # Criteo
        42: _declaration({1, 2, 3, 4, 5, 6, 7, 8, 10, 11}, set(), {2, 7, 8, 10, 11}),  # Taboola
        164: _declaration(set(range(1, 12)), set(), set()),  # Outbrain
        907: _declaration({1}, {7}, {7}),  # Awin
    }
)


@dataclass(frozen=True, slots=True)
class Restriction:
    purpose: int
    kind: int  # NOT_ALLOWED, REQUIRE_CONSENT, REQUIRE_LI (3 is undefined)
    ranges: tuple[tuple[int, int], ...]

    def covers(self, vendor: int) -> bool:
        return any(start <= vendor <= end for start, end in self.ranges)


@dataclass(frozen=True, slots=True)
class TCString:
    version: int
    created: float  # unix seconds (the string keeps deciseconds)
    last_updated: float
    cmp_id: int
    cmp_version: int
    consent_screen: int
    consent_language: str
    vendor_list_version: int
    policy_version: int
    is_service_specific: bool
    use_non_standard_texts: bool
    special_features: frozenset[int]
    purpose_consents: frozenset[int]
    purpose_legitimate_interests: frozenset[int]
    purpose_one_treatment: bool
    publisher_cc: str
    vendor_consents: frozenset[int]
    vendor_legitimate_interests: frozenset[int]
    restrictions: tuple[Restriction, ...] = ()
    disclosed_vendors: frozenset[int] | None = None
    publisher_consents: frozenset[int] | None = None  # the publisher TC segment, if any

    def restriction(self, purpose: int, vendor: int) -> int | None:
        for entry in self.restrictions:
            if entry.purpose == purpose and entry.covers(vendor):
                return entry.kind
        return None


class _Bits:
    """A big-endian bit reader over one base64url segment that refuses to read past it."""

    __slots__ = ("value", "size", "at")

    def __init__(self, segment: str) -> None:
        if not segment:
            raise TCFError("empty segment")
        try:
            raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
        except (binascii.Error, ValueError):
            raise TCFError("segment is not base64url") from None
        self.value = int.from_bytes(raw, "big")
        self.size = len(raw) * 8
        self.at = 0

    def int(self, width: int) -> int:
        end = self.at + width
        if end > self.size:
            raise TCFError(f"string ends early (bit {self.at} of {self.size}, needs {width})")
        self.at = end
        return (self.value >> (self.size - end)) & ((1 << width) - 1)

    def bool(self) -> bool:
        return self.int(1) == 1

    def set(self, width: int) -> frozenset[int]:
        if width == 0:
            return frozenset()
        bits = format(self.int(width), f"0{width}b")
        return frozenset(i + 1 for i, bit in enumerate(bits) if bit == "1")

    def letters(self, count: int) -> str:
        return "".join(chr(ord("A") + self.int(6)) for _ in range(count))

    def ranges(self) -> tuple[tuple[int, int], ...]:
        entries = []
        for _ in range(self.int(12)):
            is_range = self.bool()
            start = self.int(16)
            end = self.int(16) if is_range else start
            if start == 0 or end < start:
                raise TCFError("invalid vendor range")
            entries.append((start, end))
        return tuple(entries)

    def vendors(self) -> frozenset[int]:
        highest = self.int(16)
        if not self.bool():
            return self.set(highest)
        ids: set[int] = set()
        for start, end in self.ranges():
            if end > highest:
                raise TCFError("vendor range beyond MaxVendorId")
            ids.update(range(start, end + 1))
        return frozenset(ids)


def decode(text: str) -> TCString:
    """Decode a TC string; raise ``TCFError`` for anything that is not a v2 string."""
    if not text or len(text) > MAX_TC_STRING_LENGTH:
        raise TCFError("empty or oversized TC string")
    core_text, *others = text.strip().split(".")
    core = _Bits(core_text)
    version = core.int(6)
    if version != CORE_VERSION:
        raise TCFError(f"version {version}; only TCF v2 strings are read")
    created, last_updated = core.int(36) / 10, core.int(36) / 10
    cmp_id, cmp_version, screen = core.int(12), core.int(12), core.int(6)
    language, vendor_list, policy = core.letters(2), core.int(12), core.int(6)
    service_specific, non_standard = core.bool(), core.bool()
    special, purposes, purposes_li = core.set(12), core.set(24), core.set(24)
    purpose_one_treatment, publisher_cc = core.bool(), core.letters(2)
    vendor_consents = core.vendors()
    vendor_li = core.vendors()
    restrictions = []
    for _ in range(core.int(12)):
        purpose, kind = core.int(6), core.int(2)
        restrictions.append(Restriction(purpose, kind, core.ranges()))
    disclosed = publisher = None
    for segment in others:
        reader = _Bits(segment)
        kind = reader.int(3)
        if kind == SEGMENT_DISCLOSED_VENDORS:
            disclosed = reader.vendors()
        elif kind == SEGMENT_PUBLISHER_TC:
            publisher = reader.set(24)
        elif kind == 0:
            raise TCFError("a second core segment")
        # 2 (allowed vendors, OOB) and unknown future segments are not needed here.
    return TCString(
        version=version,
        created=created,
        last_updated=last_updated,
        cmp_id=cmp_id,
        cmp_version=cmp_version,
        consent_screen=screen,
        consent_language=language,
        vendor_list_version=vendor_list,
        policy_version=policy,
        is_service_specific=service_specific,
        use_non_standard_texts=non_standard,
        special_features=special,
        purpose_consents=purposes,
        purpose_legitimate_interests=purposes_li,
        purpose_one_treatment=purpose_one_treatment,
        publisher_cc=publisher_cc,
        vendor_consents=vendor_consents,
        vendor_legitimate_interests=vendor_li,
        restrictions=tuple(restrictions),
        disclosed_vendors=disclosed,
        publisher_consents=publisher,
    )


@lru_cache(maxsize=PARSE_CACHE_SIZE)
def parse(text: str) -> TCString | str:
    """The decoded string, or the skip reason when it cannot be used (cached per string)."""
    try:
        tc = decode(text)
    except TCFError:
        return REASON_MALFORMED
    if tc.policy_version < MIN_POLICY_VERSION:
        return f"tcf: policy version {tc.policy_version} is no longer valid (TCF v2.2 needs 4+)"
    return tc


def _bases(vendor: int | None, purpose: int, tc: TCString) -> frozenset[str]:
    """The legal bases a vendor may use for a purpose here: ``consent`` and/or ``li``.

    A purpose the vendor declared on legitimate interest may also go on consent (the
    stronger signal); a publisher restriction can forbid the purpose or pin one basis,
    the latter only for purposes the vendor declared flexible.
    """
    declared = GVL.get(vendor) if vendor is not None else None
    li_declared = (
        declared is not None
        and purpose in declared.legitimate_interest
        and purpose not in CONSENT_ONLY_PURPOSES
    )
    bases = frozenset({"consent", "li"}) if li_declared else frozenset({"consent"})
    if vendor is None:
        return bases
    restriction = tc.restriction(purpose, vendor)
    flexible = declared is not None and purpose in declared.flexible
    if restriction == NOT_ALLOWED:
        return frozenset()
    if restriction == REQUIRE_CONSENT:
        return frozenset({"consent"}) if not li_declared or flexible else frozenset()
    if restriction == REQUIRE_LI:
        if purpose in CONSENT_ONLY_PURPOSES or not (li_declared or flexible):
            return frozenset()
        return frozenset({"li"})
    return bases


def vendor_problem(tc: TCString, vendor: int | None, purposes: frozenset[int]) -> str | None:
    """Why this string does not let ``vendor`` process for ``purposes``, or None.

    ``vendor`` None is a destination that is not on the Global Vendor List: only the
    purposes can be checked (its vendor-level choice has to come from elsewhere, such as
    Consent Mode). Purpose 1 under "purpose one treatment" (not disclosed to the user)
    counts as not consented. Purposes are checked before the vendor, so the reason names
    the user's broadest refusal first.
    """
    consents = tc.purpose_consents - ({1} if tc.purpose_one_treatment else set())
    allowed: dict[int, frozenset[str]] = {}
    for purpose in sorted(purposes):
        bases = _bases(vendor, purpose, tc)
        if not bases:
            return f"tcf: purpose {purpose} not allowed by the publisher for vendor {vendor}"
        usable = frozenset(
            basis
            for basis in bases
            if (basis == "consent" and purpose in consents)
            or (basis == "li" and purpose in tc.purpose_legitimate_interests)
        )
        if not usable:
            if "consent" in bases:
                return f"tcf: purpose {purpose} has no consent"
            return f"tcf: purpose {purpose} objected to (legitimate interest)"
        allowed[purpose] = usable
    if vendor is None:
        return None
    for usable in allowed.values():
        by_consent = "consent" in usable and vendor in tc.vendor_consents
        by_li = "li" in usable and vendor in tc.vendor_legitimate_interests
        if not (by_consent or by_li):
            if "consent" in usable:
                return f"tcf: vendor {vendor} has no consent"
            return f"tcf: vendor {vendor} legitimate interest objected to"
    return None


@lru_cache(maxsize=PARSE_CACHE_SIZE)
def consent_mode(text: str) -> Mapping[str, str]:
    """Consent Mode signals implied by a TC string (Google's published mapping).

    Purpose 1 → ``ad_storage``; purposes 1 and 7 → ``ad_user_data`` (7 by consent or by
    an unobjected legitimate interest, the basis Google declares for it); purposes 3 and
    4 → ``ad_personalization``. ``analytics_storage`` has no TCF equivalent and is left
    unset. An unusable string implies every ad signal denied. Each destination's own
    vendor and purpose check (``vendor_problem``) still applies on top.
    """
    tc = parse(text)
    if isinstance(tc, str):
        granted: frozenset[int] = frozenset()
        li: frozenset[int] = frozenset()
    else:
        granted = tc.purpose_consents - ({1} if tc.purpose_one_treatment else set())
        li = tc.purpose_legitimate_interests

    def state(*needed: int) -> str:
        return "granted" if all(p in granted for p in needed) else "denied"

    measure = "granted" if 1 in granted and (7 in granted or 7 in li) else "denied"
    return MappingProxyType(
        {
            "ad_storage": state(1),
            "ad_user_data": measure,
            "ad_personalization": state(3, 4),
        }
    )
