"""edge.tcf: the TC string decoder and the per-vendor decision."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge import tcf
from edge.tcf import NOT_ALLOWED, REQUIRE_CONSENT, REQUIRE_LI, TCFError, decode, vendor_problem

from .tcfcodec import Tc, accept_all, encode, reject_all

# Strings made with the IAB's encoder (iabtcf.com) and decoded by an independent
# implementation (LiveRamp/iabconsent's fixtures); the expectations are theirs.
IAB_RESTRICTIONS = "COvzTO5OvzTO5BRAAAENAPCoALIAADgAAAAAAewAwABAAlAB6ABBFADBQAQA9hAAAcAA"
IAB_V22 = "COvzTO5OvzTO5B7ABCENAPEYAIAAAIAAAIqIAAoAAoAA.QAAo.IAAo"
IAB_DISCLOSED = (
    "COvzTO5OvzTO5B7ABCENAPCYAKdAADkAAIqIFhwBAAGAAXAFGAsMAhYAgAMAAegBYAEKAAA."
    "IFoEUQQgAIQwgIwQABAEAAAAOIAACAIAAAAQAIAgEAACEAAAAAgAQBAAAAAAAGBAAgAAAAAAAFAAECAAAgAAQARAE"
    "QAAAAAJAAIAAgAAAYQEAAAQmAgBC3ZAYzUw.QE5QAwCvgHyATkA"
)
V1_STRING = "BOVeoB_OVeoFxC-AHAFRBtAAAAAhGAEAD4AXAA2YCEQ"


def test_decodes_a_string_with_publisher_restrictions_as_the_iab_tool_wrote_it():
    tc = decode(IAB_RESTRICTIONS)
    assert (tc.version, tc.cmp_id, tc.cmp_version, tc.consent_screen) == (2, 81, 0, 0)
    assert tc.created == tc.last_updated == 1583436280.9
    assert (tc.consent_language, tc.vendor_list_version, tc.policy_version) == ("EN", 15, 2)
    assert tc.is_service_specific and not tc.use_non_standard_texts
    assert tc.special_features == {1}
    assert tc.purpose_consents == {1, 3, 4, 7}
    assert tc.purpose_legitimate_interests == {3, 4, 5}
    assert not tc.purpose_one_treatment and tc.publisher_cc == "AA"
    assert tc.vendor_consents == {2, 37, 61}  # range encoded
    assert tc.vendor_legitimate_interests == {2, 6, 8}  # bit field
    assert [(r.purpose, r.kind, r.ranges) for r in tc.restrictions] == [
        (1, REQUIRE_CONSENT, ((123, 123),)),
        (2, NOT_ALLOWED, ()),
        (3, REQUIRE_LI, ()),
    ]
    assert tc.restriction(1, 123) == REQUIRE_CONSENT and tc.restriction(1, 124) is None


def test_decodes_a_v2_2_string_and_its_disclosed_vendors_segment():
    tc = decode(IAB_V22)
    assert (tc.cmp_id, tc.policy_version, tc.publisher_cc) == (123, 4, "FR")
    assert tc.purpose_one_treatment and tc.use_non_standard_texts
    assert tc.vendor_consents == tc.vendor_legitimate_interests == {1}
    assert tc.disclosed_vendors == {1}
    big = decode(IAB_DISCLOSED)
    assert big.purpose_consents == {1, 3, 6, 7, 8, 10}
    assert big.vendor_consents == {12, 23, 163, 707}
    assert big.vendor_legitimate_interests == {48, 61, 88, 133}
    assert big.disclosed_vendors is not None and len(big.disclosed_vendors) == 79
    assert {2, 720, 707} <= big.disclosed_vendors


@pytest.mark.parametrize(
    "text",
    [
        "",
        IAB_RESTRICTIONS[:30],  # truncated inside the vendor sections
        IAB_RESTRICTIONS.replace("A", "*", 1),  # not base64url
        V1_STRING,  # a TCF v1 consent string
        IAB_V22 + ".",  # an empty segment
        "x" * 5000,
    ],
)
def test_anything_malformed_is_refused_not_read_as_zeros(text):
    with pytest.raises(TCFError):
        decode(text)
    assert tcf.parse(text) == tcf.REASON_MALFORMED


def test_strings_from_before_tcf_v2_2_are_no_longer_valid():
    assert tcf.parse(IAB_RESTRICTIONS) == (
        "tcf: policy version 2 is no longer valid (TCF v2.2 needs 4+)"
    )
    assert isinstance(tcf.parse(encode(Tc(policy_version=5))), tcf.TCString)


vendor_ids = st.frozensets(st.integers(1, 1500), max_size=40)
purposes = st.frozensets(st.integers(1, 24), max_size=24)


@given(
    purposes,
    purposes,
    vendor_ids,
    vendor_ids,
    st.booleans(),
    st.lists(
        st.tuples(st.integers(1, 11), st.integers(0, 2), st.frozensets(st.integers(1, 1500))),
        max_size=3,
    ),
)
def test_round_trip_through_an_independent_encoder(p, li, vendors, vendors_li, ranges, rs):
    text = encode(
        Tc(
            purposes=p,
            purposes_li=li,
            vendors=vendors,
            vendors_li=vendors_li,
            ranges=ranges,
            restrictions=tuple(rs),
            disclosed=vendors | vendors_li,
        )
    )
    tc = decode(text)
    assert tc.purpose_consents == p and tc.purpose_legitimate_interests == li
    assert tc.vendor_consents == vendors and tc.vendor_legitimate_interests == vendors_li
    assert tc.disclosed_vendors == vendors | vendors_li
    for (purpose, kind, ids), got in zip(rs, tc.restrictions, strict=True):
        assert (got.purpose, got.kind) == (purpose, kind)
        assert {v for v in range(1, 1501) if got.covers(v)} == ids


GOOGLE, OUTBRAIN, TABOOLA, AWIN = 755, 164, 42, 907
CONVERSION = frozenset({1, 7})


def problem(text: str, vendor: int | None, purposes: frozenset[int] = CONVERSION) -> str | None:
    tc = tcf.parse(text)
    assert isinstance(tc, tcf.TCString), tc
    return vendor_problem(tc, vendor, purposes)


def test_accept_all_lets_every_destination_vendor_through():
    for vendor in (*tcf.GVL, None):
        assert problem(accept_all(), vendor) is None


def test_reject_all_names_the_first_purpose():
    assert problem(reject_all(), GOOGLE) == "tcf: purpose 1 has no consent"
    assert problem(reject_all(), None) == "tcf: purpose 1 has no consent"


def test_purposes_granted_but_the_vendor_refused():
    text = accept_all(vendors=frozenset({OUTBRAIN}), vendors_li=frozenset())
    assert problem(text, GOOGLE) == "tcf: vendor 755 has no consent"
    assert problem(text, OUTBRAIN) is None
    assert problem(text, None) is None  # not a GVL vendor: the purposes are all we can read


def test_purpose_7_may_rest_on_legitimate_interest_where_the_vendor_declared_it():
    li_only = accept_all(purposes=frozenset({1}), purposes_li=frozenset({7}))
    assert problem(li_only, GOOGLE) is None  # 755 declares 7 on legitimate interest
    assert problem(li_only, AWIN) is None
    assert problem(li_only, OUTBRAIN) == "tcf: purpose 7 has no consent"  # consent only
    objected = accept_all(purposes=frozenset({1}), purposes_li=frozenset())
    assert problem(objected, GOOGLE) == "tcf: purpose 7 has no consent"
    vendor_objected = accept_all(
        purposes=frozenset({1}), purposes_li=frozenset({7}), vendors_li=frozenset()
    )
    assert problem(vendor_objected, GOOGLE) == "tcf: vendor 755 legitimate interest objected to"


def test_purpose_1_never_rests_on_legitimate_interest():
    text = accept_all(purposes=frozenset({7}), purposes_li=frozenset({1, 7}))
    assert problem(text, GOOGLE) == "tcf: purpose 1 has no consent"


def test_purpose_one_treatment_means_purpose_1_was_never_asked():
    assert problem(accept_all(purpose_one_treatment=True), GOOGLE) == (
        "tcf: purpose 1 has no consent"
    )


def test_publisher_restrictions():
    banned = accept_all(restrictions=((7, NOT_ALLOWED, frozenset({GOOGLE})),))
    assert problem(banned, GOOGLE) == "tcf: purpose 7 not allowed by the publisher for vendor 755"
    assert problem(banned, OUTBRAIN) is None  # the restriction names Google only
    # Require consent: Google's legitimate interest for 7 no longer counts.
    consent_only = accept_all(
        purposes=frozenset({1}),
        purposes_li=frozenset({7}),
        restrictions=((7, REQUIRE_CONSENT, frozenset({GOOGLE})),),
    )
    assert problem(consent_only, GOOGLE) == "tcf: purpose 7 has no consent"
    # Require legitimate interest: Taboola declared 7 flexible, so it switches basis.
    li_required = accept_all(
        purposes=frozenset({1, 7}),
        purposes_li=frozenset(),
        vendors_li=frozenset({TABOOLA}),
        restrictions=((7, REQUIRE_LI, frozenset({TABOOLA})),),
    )
    assert problem(li_required, TABOOLA) == ("tcf: purpose 7 objected to (legitimate interest)")
    li_given = accept_all(
        vendors_li=frozenset({TABOOLA}), restrictions=((7, REQUIRE_LI, frozenset({TABOOLA})),)
    )
    assert problem(li_given, TABOOLA) is None
    # Outbrain declared nothing flexible: a legitimate-interest requirement bars it.
    assert problem(
        accept_all(restrictions=((7, REQUIRE_LI, frozenset({OUTBRAIN})),)), OUTBRAIN
    ) == ("tcf: purpose 7 not allowed by the publisher for vendor 164")


def test_consent_mode_signals_a_string_implies():
    assert dict(tcf.consent_mode(accept_all())) == {
        "ad_storage": "granted",
        "ad_user_data": "granted",
        "ad_personalization": "granted",
    }
    only_storage = accept_all(purposes=frozenset({1}), purposes_li=frozenset())
    assert dict(tcf.consent_mode(only_storage)) == {
        "ad_storage": "granted",
        "ad_user_data": "denied",
        "ad_personalization": "denied",
    }
    measured_on_li = accept_all(purposes=frozenset({1}), purposes_li=frozenset({7}))
    assert tcf.consent_mode(measured_on_li)["ad_user_data"] == "granted"
    assert tcf.consent_mode(accept_all(purpose_one_treatment=True))["ad_storage"] == "denied"
    assert set(tcf.consent_mode("garbage!").values()) == {"denied"}
