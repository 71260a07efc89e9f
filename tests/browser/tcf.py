"""IAB TCF v2.2 TC strings for tests: a core-string encoder and a decoder, bit for bit.

Layout per the IAB's "Consent string and vendor list formats v2": base64url (no padding) of
bit fields, segments joined by ``.``. The core segment is

    Version 6 · Created 36 · LastUpdated 36 (deciseconds) · CmpId 12 · CmpVersion 12 ·
    ConsentScreen 6 · ConsentLanguage 12 (two letters, A=0) · VendorListVersion 12 ·
    TcfPolicyVersion 6 · IsServiceSpecific 1 · UseNonStandardTexts 1 ·
    SpecialFeatureOptIns 12 · PurposesConsent 24 · PurposesLITransparency 24 ·
    PurposeOneTreatment 1 · PublisherCC 12 · vendor consents · vendor legitimate interests ·
    NumPubRestrictions 12 (+ restrictions)

where a vendor section is MaxVendorId 16 · IsRangeEncoding 1 · either a bit field of
MaxVendorId bits or NumEntries 12 and entries (IsARange 1 · Start 16 · [End 16]).
The Disclosed Vendors segment (mandatory since TCF 2.3) is SegmentType 3 (=1) followed by
one vendor section without the legitimate-interest half.

The demo shop's CMP (``examples/storefront/index.html``) carries a JavaScript port of
``encode``; ``tests/browser/test_tcf.py`` checks both against strings decoded by an
independent implementation and against each other.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from dataclasses import dataclass, field

CORE_VERSION = 2
SEGMENT_DISCLOSED_VENDORS = 1
SEGMENT_PUBLISHER_TC = 3
# The demo CMP's vendors: the destinations that are on the Global Vendor List
# (Taboola 42, Criteo 91, Outbrain 164, Google 755, LinkedIn 804, Awin 907, Microsoft 1126).
DEMO_VENDORS = (42, 91, 164, 755, 804, 907, 1126)
DEMO_LI_VENDORS = (755, 804, 907)  # declare legitimate interest for purposes 2/7/9/10
ALL_PURPOSES = tuple(range(1, 12))
LI_PURPOSES = (2, 7, 8, 9, 10, 11)  # TCF 2.2: purposes 3-6 may not rest on LI; 1 never
DEMO_CMP_ID = 0  # not a registered CMP: the demo's strings must not pass for a real one
DEMO_GVL_VERSION = 150
DEMO_POLICY_VERSION = 5  # GVLs published since 2025 (TCF 2.2 strings carry 4 or more)


@dataclass(frozen=True)
class TCString:
    created: float  # seconds since the epoch (stored in deciseconds)
    last_updated: float
    cmp_id: int
    cmp_version: int
    consent_screen: int
    consent_language: str
    vendor_list_version: int
    policy_version: int
    is_service_specific: bool
    use_non_standard_texts: bool = False
    special_features: frozenset[int] = frozenset()
    purpose_consents: frozenset[int] = frozenset()
    purpose_legitimate_interests: frozenset[int] = frozenset()
    purpose_one_treatment: bool = False
    publisher_cc: str = "AA"
    vendor_consents: frozenset[int] = frozenset()
    vendor_legitimate_interests: frozenset[int] = frozenset()
    max_vendor_consent: int = 0
    max_vendor_legitimate_interest: int = 0
    disclosed_vendors: frozenset[int] | None = None
    segments: tuple[int, ...] = field(default=())  # segment types after the core
    version: int = CORE_VERSION


# -- encoding --------------------------------------------------------------------------


class _Bits:
    def __init__(self) -> None:
        self.bits: list[str] = []

    def int(self, value: int, width: int) -> None:
        if value < 0 or value >= 1 << width:
            raise ValueError(f"{value} does not fit in {width} bits")
        self.bits.append(format(value, f"0{width}b"))

    def bool(self, value: bool) -> None:
        self.bits.append("1" if value else "0")

    def set(self, ids: Iterable[int], width: int) -> None:
        chosen = set(ids)
        self.bits.append("".join("1" if i in chosen else "0" for i in range(1, width + 1)))

    def letters(self, text: str) -> None:
        for letter in text.upper():
            self.int(ord(letter) - ord("A"), 6)

    def vendors(self, ids: Iterable[int]) -> None:
        """MaxVendorId, then a bit field or ranges, whichever is shorter (as CMPs do)."""
        chosen = sorted(set(ids))
        highest = chosen[-1] if chosen else 0
        self.int(highest, 16)
        ranges = _ranges(chosen)
        range_bits = 12 + sum(33 if start != end else 17 for start, end in ranges)
        if range_bits < highest:
            self.bool(True)
            self.int(len(ranges), 12)
            for start, end in ranges:
                self.bool(start != end)
                self.int(start, 16)
                if start != end:
                    self.int(end, 16)
        else:
            self.bool(False)
            self.set(chosen, highest)

    def base64url(self) -> str:
        bits = "".join(self.bits)
        bits += "0" * (-len(bits) % 8)  # pad to whole bytes, then base64url without '='
        raw = int(bits, 2).to_bytes(len(bits) // 8, "big") if bits else b""
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _ranges(ids: list[int]) -> list[tuple[int, int]]:
    ranges: list[tuple[int, int]] = []
    for vendor in ids:
        if ranges and ranges[-1][1] == vendor - 1:
            ranges[-1] = (ranges[-1][0], vendor)
        else:
            ranges.append((vendor, vendor))
    return ranges


def encode(tc: TCString) -> str:
    core = _Bits()
    core.int(tc.version, 6)
    core.int(round(tc.created * 10), 36)
    core.int(round(tc.last_updated * 10), 36)
    core.int(tc.cmp_id, 12)
    core.int(tc.cmp_version, 12)
    core.int(tc.consent_screen, 6)
    core.letters(tc.consent_language)
    core.int(tc.vendor_list_version, 12)
    core.int(tc.policy_version, 6)
    core.bool(tc.is_service_specific)
    core.bool(tc.use_non_standard_texts)
    core.set(tc.special_features, 12)
    core.set(tc.purpose_consents, 24)
    core.set(tc.purpose_legitimate_interests, 24)
    core.bool(tc.purpose_one_treatment)
    core.letters(tc.publisher_cc)
    core.vendors(tc.vendor_consents)
    core.vendors(tc.vendor_legitimate_interests)
    core.int(0, 12)  # no publisher restrictions
    segments = [core.base64url()]
    if tc.disclosed_vendors is not None:
        disclosed = _Bits()
        disclosed.int(SEGMENT_DISCLOSED_VENDORS, 3)
        disclosed.vendors(tc.disclosed_vendors)
        segments.append(disclosed.base64url())
    return ".".join(segments)


def demo_string(*, accepted: bool, now: float) -> str:
    """What the demo shop's CMP returns: everything accepted, or everything refused."""
    return encode(demo_tc(accepted=accepted, now=now))


def demo_tc(*, accepted: bool, now: float) -> TCString:
    """The demo CMP's choices, mirrored by ``DemoCmp`` in the storefront page."""
    return TCString(
        created=now,
        last_updated=now,
        cmp_id=DEMO_CMP_ID,
        cmp_version=1,
        consent_screen=1,
        consent_language="EN",
        vendor_list_version=DEMO_GVL_VERSION,
        policy_version=DEMO_POLICY_VERSION,
        is_service_specific=True,
        purpose_consents=frozenset(ALL_PURPOSES if accepted else ()),
        purpose_legitimate_interests=frozenset(LI_PURPOSES if accepted else ()),
        publisher_cc="DE",
        vendor_consents=frozenset(DEMO_VENDORS if accepted else ()),
        vendor_legitimate_interests=frozenset(DEMO_LI_VENDORS if accepted else ()),
        disclosed_vendors=frozenset(DEMO_VENDORS),
    )


# -- decoding --------------------------------------------------------------------------


class _Reader:
    def __init__(self, segment: str) -> None:
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
        self.bits = "".join(format(byte, "08b") for byte in raw)
        self.at = 0

    def int(self, width: int) -> int:
        if self.at + width > len(self.bits):
            raise ValueError(f"TC string ends early at bit {self.at}")
        value = int(self.bits[self.at : self.at + width], 2)
        self.at += width
        return value

    def bool(self) -> bool:
        return self.int(1) == 1

    def set(self, width: int) -> frozenset[int]:
        return frozenset(i + 1 for i in range(width) if self.int(1))

    def letters(self, count: int) -> str:
        return "".join(chr(ord("A") + self.int(6)) for _ in range(count))

    def ranges(self) -> frozenset[int]:
        ids: set[int] = set()
        for _ in range(self.int(12)):
            is_range = self.bool()
            start = self.int(16)
            end = self.int(16) if is_range else start
            ids.update(range(start, end + 1))
        return frozenset(ids)

    def vendors(self) -> tuple[int, frozenset[int]]:
        highest = self.int(16)
        return highest, (self.ranges() if self.bool() else self.set(highest))


def decode(tc_string: str) -> TCString:
    """Decode a TC string, checking every field fits; raises ValueError when it does not."""
    core_text, *rest = tc_string.split(".")
    core = _Reader(core_text)
    version = core.int(6)
    if version != CORE_VERSION:
        raise ValueError(f"TC string version {version}, expected 2")
    created, last_updated = core.int(36) / 10, core.int(36) / 10
    cmp_id, cmp_version, screen = core.int(12), core.int(12), core.int(6)
    language, vendor_list, policy = core.letters(2), core.int(12), core.int(6)
    service_specific, non_standard = core.bool(), core.bool()
    special, purposes, purposes_li = core.set(12), core.set(24), core.set(24)
    p1t, publisher_cc = core.bool(), core.letters(2)
    max_consent, vendor_consents = core.vendors()
    max_li, vendor_li = core.vendors()
    for _ in range(core.int(12)):  # publisher restrictions: read past them
        core.int(8)
        core.ranges()
    disclosed: frozenset[int] | None = None
    types = []
    for segment in rest:
        reader = _Reader(segment)
        kind = reader.int(3)
        types.append(kind)
        if kind == SEGMENT_DISCLOSED_VENDORS:
            disclosed = reader.vendors()[1]
    return TCString(
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
        purpose_one_treatment=p1t,
        publisher_cc=publisher_cc,
        vendor_consents=vendor_consents,
        vendor_legitimate_interests=vendor_li,
        max_vendor_consent=max_consent,
        max_vendor_legitimate_interest=max_li,
        disclosed_vendors=disclosed,
        segments=tuple(types),
        version=version,
    )
