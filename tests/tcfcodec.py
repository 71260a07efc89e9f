"""A TC string encoder for tests: only what ``edge.tcf`` reads, written from the IAB spec.

Independent of the decoder under test: it builds the bit string field by field and picks
range or bit-field encoding for vendor sections by a flag, so both paths get exercised.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Tc:
    purposes: frozenset[int] = frozenset()
    purposes_li: frozenset[int] = frozenset()
    vendors: frozenset[int] = frozenset()
    vendors_li: frozenset[int] = frozenset()
    # (purpose, restriction type, vendor ids)
    restrictions: tuple[tuple[int, int, frozenset[int]], ...] = ()
    special_features: frozenset[int] = frozenset()
    policy_version: int = 4
    purpose_one_treatment: bool = False
    publisher_cc: str = "DE"
    created: float = 1_700_000_000.0
    cmp_id: int = 7
    cmp_version: int = 3
    vendor_list_version: int = 150
    ranges: bool = False  # encode vendor sections as ranges instead of bit fields
    disclosed: frozenset[int] | None = None
    version: int = 2


class Bits:
    def __init__(self) -> None:
        self.bits: list[str] = []

    def int(self, value: int, width: int) -> None:
        assert 0 <= value < 1 << width, (value, width)
        self.bits.append(format(value, f"0{width}b"))

    def flag(self, value: bool) -> None:
        self.bits.append("1" if value else "0")

    def set(self, ids: Iterable[int], width: int) -> None:
        chosen = set(ids)
        self.bits.append("".join("1" if i in chosen else "0" for i in range(1, width + 1)))

    def letters(self, text: str) -> None:
        for letter in text:
            self.int(ord(letter) - ord("A"), 6)

    def ranges(self, ids: Iterable[int]) -> None:
        entries: list[list[int]] = []
        for vendor in sorted(set(ids)):
            if entries and entries[-1][1] == vendor - 1:
                entries[-1][1] = vendor
            else:
                entries.append([vendor, vendor])
        self.int(len(entries), 12)
        for start, end in entries:
            self.flag(start != end)
            self.int(start, 16)
            if start != end:
                self.int(end, 16)

    def vendors(self, ids: frozenset[int], as_ranges: bool) -> None:
        highest = max(ids, default=0)
        self.int(highest, 16)
        self.flag(as_ranges)
        if as_ranges:
            self.ranges(ids)
        else:
            self.set(ids, highest)

    def text(self) -> str:
        bits = "".join(self.bits)
        bits += "0" * (-len(bits) % 8)
        raw = int(bits, 2).to_bytes(len(bits) // 8, "big")
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def encode(tc: Tc) -> str:
    core = Bits()
    core.int(tc.version, 6)
    core.int(round(tc.created * 10), 36)
    core.int(round(tc.created * 10), 36)
    core.int(tc.cmp_id, 12)
    core.int(tc.cmp_version, 12)
    core.int(1, 6)  # consent screen
    core.letters("EN")
    core.int(tc.vendor_list_version, 12)
    core.int(tc.policy_version, 6)
    core.flag(True)  # service specific
    core.flag(False)  # non-standard texts
    core.set(tc.special_features, 12)
    core.set(tc.purposes, 24)
    core.set(tc.purposes_li, 24)
    core.flag(tc.purpose_one_treatment)
    core.letters(tc.publisher_cc)
    core.vendors(tc.vendors, tc.ranges)
    core.vendors(tc.vendors_li, tc.ranges)
    core.int(len(tc.restrictions), 12)
    for purpose, kind, vendors in tc.restrictions:
        core.int(purpose, 6)
        core.int(kind, 2)
        core.ranges(vendors)
    segments = [core.text()]
    if tc.disclosed is not None:
        disclosed = Bits()
        disclosed.int(1, 3)
        disclosed.vendors(tc.disclosed, tc.ranges)
        segments.append(disclosed.text())
    return ".".join(segments)


ALL_VENDORS = frozenset({42, 91, 164, 755, 804, 907, 1126})


def accept_all(**changes: object) -> str:
    """A CMP's "accept all": every purpose, every destination vendor, LI established."""
    fields: dict[str, object] = {
        "purposes": frozenset(range(1, 12)),
        "purposes_li": frozenset({2, 7, 8, 9, 10, 11}),
        "vendors": ALL_VENDORS,
        "vendors_li": frozenset({755, 804, 907}),
    }
    fields.update(changes)
    return encode(Tc(**fields))  # type: ignore[arg-type]


def reject_all(**changes: object) -> str:
    """A CMP's "reject all" (legitimate interests objected to as well)."""
    return encode(Tc(**changes))  # type: ignore[arg-type]
