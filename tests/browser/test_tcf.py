"""The test/demo TC string encoder, checked against strings decoded by another implementation.

The expected values of the first two strings are those the GDPR::IAB::TCFv2 Perl
distribution asserts for them (``t/01-parse.t``); the last two come from its TCF 2.3 tests
(``t/05-tcf-v23.t``). Our decoder must read the same fields, and our encoder must rebuild
the very same strings from them.
"""

from __future__ import annotations

import dataclasses

import pytest

from . import tcf

BITFIELD = "CLcVDxRMWfGmWAVAHCENAXCkAKDAADnAABRgA5mdfCKZuYJez-NQm0TBMYA4oCAAGQYIAAAAAAEAIAEgAA"
RANGES = "COyfVVoOyfVVoADACHENAwCAAAAAAAAAAAAAE5QBgALgAqgD8AQACSwEygJyAnSAMABgAFkAgQCDASeAmYBOgAA"
WITH_DISCLOSED_VENDORS = (
    "COwAdDhOwAdDhN4ABAENAPCgAAQAAv___wAAAFP_AAp_4AI6ACACAA.ILrtR_G__bXlv-bb36ftkeYxf9_hr7sQxBgbJs"
    "24FzLvW7JwX32E7NEzatqYKmRIAu3TBIQNtHJjURVChKIgVrzDsaEyUoTtKJ-BkiHMRY2NYCFxvm4tjWQCZ5vr_91d9m"
    "T-N7dr-2dzyy7hnv3a9_-S1WJidKYetHfv8bBKT-_IU9_x-_4v4_N7pE2-eS1v_tGvt639-4vP_dpvxt-7yffz____73"
    "_e7X__d_______Xf_7____________4AAA"
)
POLICY_5 = (
    "CP188cAQKFpAAAHABBENBSFsAP_gAEPgAAiQKqNX_H__bW9r8X73aft0eY1P9_j77uQxBhfJE-4FzLvW_JwXx2ExNA"
    "36tqIKmRIEu3bBIQNlHJHUTVigaogVryHMak2cpTNKJ6BkiFMRM2dYCF5vm4tj-QKY5_r993dx2D-t_dv83dzyz81H"
    "n3f5_2e0eLCdQ5-tDfv9bROb-9IPd_78v4v8_l_rk2_eT1n_tevr7D_-ft8__XW_9_fff_9Pn_-uB_-_3_vf_EFUwC"
    "TDQqIA-wJCQg0DCKBACoKwgIoFAQAAJA0QEAJgwKdgYALrCRACAFAAMEAIAAQZAAgAAAgAQiACQAoEAAEAgUAAYAEA"
    "wEABAwAAgAsBAIAAQHQMUwIIFAsIEjMioUwIQoEggJbKhBICgQVwhCLPAIgERMFAAgAAAVgACAsFgcSSAlQkECXUG0"
    "AABAAgFEIFQgk9MAAwJmy1B4MG0ZWmAYPmCRDTAMgCIIyEAAAA.f_wACHwAAAAA"
)


def test_decodes_a_bit_field_string_as_an_independent_decoder_does() -> None:
    tc = tcf.decode(BITFIELD)
    assert (tc.version, tc.created, tc.last_updated) == (2, 1228644257.7, 1326215413.4)
    assert (tc.cmp_id, tc.cmp_version, tc.consent_screen) == (21, 7, 2)
    assert (tc.consent_language, tc.vendor_list_version, tc.policy_version) == ("EN", 23, 2)
    assert tc.is_service_specific and not tc.use_non_standard_texts
    assert not tc.purpose_one_treatment and tc.publisher_cc == "KM"
    assert tc.special_features == {2}
    assert tc.purpose_consents == {1, 3, 9, 10}
    assert tc.purpose_legitimate_interests == {3, 4, 5, 8, 9, 10}
    assert (tc.max_vendor_consent, tc.max_vendor_legitimate_interest) == (115, 113)
    assert tc.vendor_consents == {
        2, 3, 6, 7, 8, 10, 12, 13, 14, 15, 16, 21, 25, 27, 30, 31, 34, 35, 37, 38, 39, 42, 43,
        49, 52, 54, 55, 56, 57, 59, 60, 63, 64, 65, 66, 67, 68, 69, 73, 74, 76, 78, 83, 86, 87,
        89, 90, 92, 96, 99, 100, 106, 109, 110, 114, 115,
    }  # fmt: skip
    assert tc.vendor_legitimate_interests == {1, 9, 26, 27, 30, 36, 37, 43, 86, 97, 110, 113}


def test_decodes_a_range_encoded_string_as_an_independent_decoder_does() -> None:
    tc = tcf.decode(RANGES)
    assert (tc.created, tc.cmp_id, tc.cmp_version, tc.consent_screen) == (1587946020, 3, 2, 7)
    assert (tc.vendor_list_version, tc.publisher_cc, tc.is_service_specific) == (48, "AA", False)
    assert tc.purpose_consents == frozenset() and tc.special_features == frozenset()
    assert tc.vendor_consents == {23, 42, 126, 127, 128, 587, 613, 626}
    assert tc.vendor_legitimate_interests == {24, 44, 129, 130, 131, 591, 614, 628}
    assert (tc.max_vendor_consent, tc.max_vendor_legitimate_interest) == (626, 628)


@pytest.mark.parametrize("tc_string", [BITFIELD, RANGES])
def test_the_encoder_rebuilds_those_strings_bit_for_bit(tc_string: str) -> None:
    assert tcf.encode(tcf.decode(tc_string)) == tc_string


def test_reads_the_disclosed_vendors_segment() -> None:
    tc = tcf.decode(WITH_DISCLOSED_VENDORS)
    assert tc.segments == (tcf.SEGMENT_DISCLOSED_VENDORS,)
    assert tc.disclosed_vendors is not None
    assert 284 in tc.disclosed_vendors and 9999 not in tc.disclosed_vendors


def test_reads_a_current_string_with_a_publisher_segment() -> None:
    tc = tcf.decode(POLICY_5)
    assert tc.policy_version == 5 and tc.segments == (tcf.SEGMENT_PUBLISHER_TC,)


@pytest.mark.parametrize("accepted", [True, False])
def test_demo_strings_round_trip(accepted: bool) -> None:
    tc_string = tcf.demo_string(accepted=accepted, now=1_795_454_882.3)
    core, disclosed = tc_string.split(".")
    assert core.startswith("C")  # version 2 in the first six bits
    tc = tcf.decode(tc_string)
    expected = dataclasses.replace(
        tcf.demo_tc(accepted=accepted, now=1_795_454_882.3),
        max_vendor_consent=1126 if accepted else 0,
        max_vendor_legitimate_interest=907 if accepted else 0,
        segments=(tcf.SEGMENT_DISCLOSED_VENDORS,),
    )
    assert tc == expected
    assert tcf.encode(tc) == tc_string


def test_truncated_strings_are_refused() -> None:
    with pytest.raises(ValueError, match="ends early"):
        tcf.decode(BITFIELD[:-8])
