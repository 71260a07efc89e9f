"""Consent: Consent Mode, TCF, GPC, region defaults, withdrawal, and "why was this not sent?"."""

from __future__ import annotations

import json

import pytest

from edge.consent import (
    BUILTIN_REGIONS,
    EEA,
    ConsentPolicy,
    Region,
    consent_problem,
    is_refusal,
    may_write_ad_cookies,
    with_tcf,
)
from edge.errors import ConfigError
from edge.schema import Consent, StoredEvent
from edge.settings import parse

from . import geodb
from .edgeapp import (
    AUTH,
    event_id,
    hit,
    set_cookies,
    settings_for,
    statuses,
    stored,
)
from .support import (
    CREDENTIALS,
    DENIED,
    GRANTED,
    META_HOST,
    TIKTOK_HOST,
    base_config,
    to_toml,
    wait_until,
)
from .support import SAFARI_UA as UA
from .tcfcodec import accept_all, reject_all

MORE_DESTINATIONS = {
    "google_ads": CREDENTIALS["google_ads"],
    "criteo": CREDENTIALS["criteo"],
    "taboola": CREDENTIALS["taboola"],
}
AD_PURPOSES = frozenset({"ad_storage", "ad_user_data"})


def event(**fields: object) -> StoredEvent:
    base: dict[str, object] = {"event": "purchase", "event_id": "e1", "time": 1, "received_at": 1}
    base.update(fields)
    return StoredEvent(**base)  # type: ignore[arg-type]


# -- the decision, signal by signal ---------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"consent": Consent(**GRANTED)}, None),
        ({"consent": Consent()}, "consent: ad_storage not given"),
        ({"consent": Consent(ad_storage="granted")}, "consent: ad_user_data not given"),
        (
            {"consent": Consent(ad_storage="granted", ad_user_data="denied")},
            "consent: ad_user_data denied",
        ),
        ({"consent": Consent(**GRANTED), "gpc": True}, "gpc"),
        ({"consent": Consent(**GRANTED), "tcf": reject_all()}, "tcf: purpose 1 has no consent"),
        ({"consent": Consent(**GRANTED), "tcf": "not a tc string"}, "tcf: malformed TC string"),
        ({"consent": Consent(**GRANTED), "tcf": accept_all()}, None),
    ],
)
def test_reasons_signal_by_signal(fields, reason):
    problem = consent_problem(
        event(**fields), AD_PURPOSES, "denied", honours_gpc=True, tcf_purposes=frozenset({1, 7})
    )
    assert problem == reason


def test_tcf_vendor_consent_is_checked_for_registered_vendors_only():
    text = accept_all(vendors=frozenset({91}))  # Criteo yes, Google no
    ev = event(consent=Consent(**GRANTED), tcf=text)
    check = {"honours_gpc": True, "tcf_purposes": frozenset({1, 7})}
    assert consent_problem(ev, AD_PURPOSES, "denied", tcf_vendor=755, **check) == (
        "tcf: vendor 755 has no consent"
    )
    assert consent_problem(ev, AD_PURPOSES, "denied", tcf_vendor=91, **check) is None
    assert consent_problem(ev, AD_PURPOSES, "denied", tcf_vendor=None, **check) is None


def test_gpc_modes():
    ev = event(consent=Consent(**GRANTED), gpc=True)
    ldu = ConsentPolicy(gpc="ldu")
    assert consent_problem(ev, AD_PURPOSES, ldu, honours_gpc=True, ldu_capable=True) is None
    assert consent_problem(ev, AD_PURPOSES, ldu, honours_gpc=True) == "gpc"  # no LDU to use
    assert consent_problem(ev, AD_PURPOSES, ConsentPolicy(gpc="ignore"), honours_gpc=True) is None
    assert (
        consent_problem(ev, AD_PURPOSES, ldu, honours_gpc=True, gpc_mode="skip", ldu_capable=True)
        == "gpc"
    )
    analytics = frozenset({"analytics_storage"})
    assert consent_problem(ev, analytics, "granted", honours_gpc=False) is None  # GA4


def test_tcf_fills_consent_mode_and_a_refusal_from_either_wins():
    assert with_tcf(Consent(), accept_all()) == Consent(
        ad_storage="granted", ad_user_data="granted", ad_personalization="granted"
    )
    assert with_tcf(Consent(**GRANTED), reject_all()).ad_storage == "denied"
    assert with_tcf(Consent(ad_storage="denied"), accept_all()).ad_storage == "denied"
    assert with_tcf(Consent(analytics_storage="granted"), None) == Consent(
        analytics_storage="granted"
    )
    assert with_tcf(Consent(), accept_all()).analytics_storage is None  # no TCF equivalent


def test_explicit_refusals_withdraw_missing_signals_do_not():
    for reason in ("gpc", "consent: ad_user_data denied", "tcf: vendor 755 has no consent"):
        assert is_refusal(reason)
    for reason in ("consent: ad_storage not given", "tcf: malformed TC string", "bot", "queued"):
        assert not is_refusal(reason)


def test_region_policy_picks_the_most_specific_area():
    policy = ConsentPolicy("denied", "skip", BUILTIN_REGIONS)
    assert policy.region("DE", None).name == "eea_uk_ch"
    assert policy.region("GB", "GB-ENG").name == "eea_uk_ch"
    assert policy.region("CH", None).default == "denied"
    assert policy.region("US", "US-CA").gpc == "ldu"
    assert policy.region("US", "US-VA").name == "us"
    assert (policy.region("US", None).default, policy.region("US", None).gpc) == ("granted", "skip")
    assert policy.region("BR", None).name == "default"
    assert policy.region(None, None).default == "denied"  # unknown location: deny
    assert {"IS", "LI", "NO", "DE", "FR"} <= EEA and "GB" not in EEA


def test_ad_cookies_need_ad_storage_and_no_gpc_unless_the_region_ignores_it():
    granted = Consent(ad_storage="granted")
    assert may_write_ad_cookies(granted, False, "denied")
    assert not may_write_ad_cookies(granted, True, "denied")
    assert not may_write_ad_cookies(Consent(), False, "denied")
    assert may_write_ad_cookies(Consent(), False, Region("us", frozenset(), "granted", "skip"))
    assert may_write_ad_cookies(granted, True, Region("x", frozenset(), "denied", "ignore"))


# -- configuration ----------------------------------------------------------------------------


def test_builtin_regions_unless_configured(tmp_path):
    assert settings_for(tmp_path).consent.regions == BUILTIN_REGIONS
    custom = settings_for(
        tmp_path,
        consent={
            "default": "denied",
            "gpc": "skip",
            "regions": {
                "europe": {"areas": ["EEA", "GB"], "default": "denied"},
                "us": {"areas": ["US"], "default": "granted", "gpc": "ldu"},
            },
        },
    ).consent
    assert [r.name for r in custom.regions] == ["europe", "us"]
    assert custom.region("NO", None).name == "europe"
    assert custom.region("US", "US-TX").gpc == "ldu"
    none = parse(
        to_toml(base_config(str(tmp_path / "e.db"))) + "[consent.regions]\n", base=tmp_path
    )
    assert none.consent.regions == ()


def test_bad_region_config_names_the_key(tmp_path):
    config = base_config(
        str(tmp_path / "e.db"),
        consent={
            "regions": {
                "a": {"areas": ["europe", "DE"]},
                "b": {"areas": ["EEA"]},
                "c": {"areas": []},
            }
        },
        geo={"database": "missing.mmdb"},
    )
    with pytest.raises(ConfigError) as err:
        parse(to_toml(config), base=tmp_path)
    message = str(err.value)
    assert "consent.regions.a.areas[0]: must be EEA, EU" in message
    assert "consent.regions.b.areas: DE is already in consent.regions.a" in message
    assert "consent.regions.c.areas: list at least one area" in message
    assert "geo.database: no MaxMind database at" in message


# -- end to end: TCF --------------------------------------------------------------------------


def test_tcf_vendor_without_consent_is_skipped_with_that_reason(edge):
    client = edge(destinations=MORE_DESTINATIONS, dispatch=False)
    answer = hit(
        client,
        url="https://shop.example/p?gclid=Cj0-abc&tblci=tb-1",
        consent=GRANTED,
        tcf=accept_all(vendors=frozenset({91, 42})),
    )
    result = statuses(client, event_id(answer))
    assert result["google_ads"] == ("skipped", "tcf: vendor 755 has no consent")
    assert result["criteo"][0] == "pending"
    assert result["taboola"] == ("pending", "queued")
    assert result["meta"] == ("pending", "queued")  # not a TCF vendor: purposes 1 and 7 only


def test_a_tcf_only_cmp_is_enough(edge):
    client = edge(dispatch=False)
    answer = hit(client, tcf=accept_all())  # no Consent Mode at all
    eid = event_id(answer)
    assert statuses(client, eid)["meta"] == ("pending", "queued")
    assert stored(client, eid).consent.ad_user_data == "granted"  # implied by purposes 1+7
    assert "_fbp" in set_cookies(answer)  # purpose 1: the edge may store identifiers


def test_a_tcf_refusal_beats_a_consent_mode_grant(edge):
    client = edge(dispatch=False)
    answer = hit(client, consent=GRANTED, tcf=reject_all())
    assert statuses(client, event_id(answer))["meta"] == (
        "skipped",
        "tcf: purpose 1 has no consent",
    )
    assert set_cookies(answer) == {}


# -- end to end: regions ----------------------------------------------------------------------


def test_region_defaults_from_geolocation(edge):
    client = edge(geo=True, dispatch=False)
    germany = event_id(hit(client, ip=geodb.GERMANY))
    virginia = event_id(hit(client, ip=geodb.VIRGINIA))
    unknown = event_id(hit(client, ip=geodb.UNKNOWN))
    brazil = event_id(hit(client, ip=geodb.BRAZIL))
    assert statuses(client, germany)["meta"] == ("skipped", "consent: ad_storage not given")
    assert statuses(client, virginia)["meta"] == ("pending", "queued")  # US: opt-out regime
    assert statuses(client, unknown)["meta"] == ("skipped", "consent: ad_storage not given")
    assert statuses(client, brazil)["meta"] == ("skipped", "consent: ad_storage not given")
    assert (stored(client, virginia).client.country, stored(client, virginia).client.region) == (
        "US",
        "US-VA",
    )
    assert stored(client, germany).client.country == "DE"
    assert stored(client, unknown).client.country is None
    # An explicit denial in the US is still a denial.
    denied = event_id(hit(client, ip=geodb.VIRGINIA, consent=DENIED))
    assert statuses(client, denied)["meta"] == ("skipped", "consent: ad_storage denied")


def test_gpc_in_california_sends_meta_and_tiktok_with_limited_data_use(edge, platforms):
    client = edge(geo=True)
    answer = hit(client, ip=geodb.CALIFORNIA, gpc=True)
    eid = event_id(answer)
    assert set_cookies(answer) == {}  # an opt-out: no ad cookies
    wait_until(lambda: platforms.events_to(META_HOST) and platforms.events_to(TIKTOK_HOST))
    (meta,) = platforms.events_to(META_HOST)
    assert meta["data_processing_options"] == ["LDU"]
    assert (meta["data_processing_options_country"], meta["data_processing_options_state"]) == (
        0,
        0,
    )  # Meta geolocates
    (tiktok,) = platforms.events_to(TIKTOK_HOST)
    assert tiktok["limited_data_use"] is True
    wait_until(lambda: statuses(client, eid)["meta"][0] == "sent")


def test_gpc_elsewhere_in_the_us_skips_and_a_destination_can_opt_out_of_ldu(edge, tmp_path):
    client = edge(geo=True, dispatch=False)
    virginia = event_id(hit(client, ip=geodb.VIRGINIA, gpc=True))
    assert statuses(client, virginia) == {"meta": ("skipped", "gpc"), "tiktok": ("skipped", "gpc")}
    strict = edge(
        geo=True,
        dispatch=False,
        destinations={"meta": {**base_config("x")["destinations"]["meta"], "gpc_mode": "skip"}},
        server={"database": str(tmp_path / "strict.db")},
    )
    california = event_id(hit(strict, ip=geodb.CALIFORNIA, gpc=True))
    assert statuses(strict, california)["meta"] == ("skipped", "gpc")
    assert statuses(strict, california)["tiktok"] == ("pending", "queued")


def test_a_region_that_ignores_gpc(edge):
    client = edge(
        geo=True,
        dispatch=False,
        consent={"regions": {"br": {"areas": ["BR"], "default": "granted", "gpc": "ignore"}}},
    )
    answer = hit(client, ip=geodb.BRAZIL, gpc=True)
    assert statuses(client, event_id(answer))["meta"] == ("pending", "queued")
    assert "_fbp" in set_cookies(answer)


# -- end to end: withdrawal -------------------------------------------------------------------


def test_withdrawn_consent_cancels_what_is_still_queued(edge):
    client = edge(dispatch=False)
    first = event_id(hit(client, consent=GRANTED))  # the client keeps the cookies it got
    second = event_id(hit(client, consent=GRANTED, event="add_to_cart"))
    assert statuses(client, first)["meta"] == ("pending", "queued")
    third = event_id(hit(client, event="page_view", consent={**GRANTED, "ad_user_data": "denied"}))
    for earlier in (first, second):
        assert statuses(client, earlier)["meta"] == ("skipped", "consent withdrawn")
    assert statuses(client, first)["tiktok"] == ("skipped", "consent withdrawn")
    assert statuses(client, third)["meta"] == ("skipped", "consent: ad_user_data denied")


def test_a_missing_signal_is_not_a_withdrawal(edge):
    client = edge(dispatch=False)
    first = event_id(hit(client, consent=GRANTED))
    hit(client, event="page_view")  # an early hit before the CMP answered
    assert statuses(client, first)["meta"] == ("pending", "queued")


def test_gpc_withdraws_and_another_browser_is_untouched(edge):
    client = edge(dispatch=False)
    stranger = edge(dispatch=False, settings=client.app.state.settings)  # type: ignore[attr-defined]
    mine = event_id(hit(client, consent=GRANTED, ip="198.51.100.1"))
    hit(stranger, consent=GRANTED, ip="198.51.100.2")
    hit(stranger, gpc=True, ip="198.51.100.2")  # someone else opts out
    assert statuses(client, mine)["meta"] == ("pending", "queued")
    hit(client, gpc=True)
    assert statuses(client, mine)["meta"] == ("skipped", "consent withdrawn")


def test_withdrawal_is_found_through_the_backup_when_the_cmp_deleted_the_cookies(edge):
    client = edge(dispatch=False)
    first = event_id(hit(client, consent=GRANTED))
    backup = client.cookies.get("_edge_id")
    client.cookies.clear()
    answer = client.post(
        "/collect",
        content=json.dumps({"event": "page_view", "consent": DENIED}),
        headers={"content-type": "text/plain", "user-agent": UA, "cookie": f"_edge_id={backup}"},
    )
    assert answer.status_code == 200
    assert statuses(client, first)["meta"] == ("skipped", "consent withdrawn")
    deleted = set_cookies(answer)["_edge_id"]
    assert "Max-Age=0" in deleted and "HttpOnly" in deleted  # the backup is forgotten too


def test_a_backend_can_withdraw_for_a_browser(edge):
    client = edge(dispatch=False)
    first = event_id(hit(client, consent=GRANTED))
    fbp = client.cookies.get("_fbp")
    answer = client.post(
        "/v1/events",
        json={"event": "lead", "consent": DENIED, "ids": {"fbp": fbp}},
        headers=AUTH,
    )
    assert answer.status_code == 200
    assert statuses(client, first)["meta"] == ("skipped", "consent withdrawn")


# -- "why was this not sent?" -------------------------------------------------------------------


def test_every_kind_of_skip_says_why(edge):
    client = edge(destinations=MORE_DESTINATIONS, dispatch=False)
    bot = event_id(
        hit(client, user_agent="Mozilla/5.0 (compatible; Googlebot/2.1)", consent=GRANTED)
    )
    assert set(statuses(client, bot).values()) == {("skipped", "bot")}
    view = statuses(client, event_id(hit(client, event="page_view", consent=GRANTED)))
    assert view["tiktok"] == ("skipped", "unmapped event: page_view")
    no_click = statuses(client, event_id(hit(client, consent=GRANTED)))
    assert no_click["taboola"] == ("skipped", "no click id")
    assert no_click["meta"] == ("pending", "queued")
    gpc = statuses(client, event_id(hit(client, consent=GRANTED, gpc=True)))
    assert gpc["google_ads"] == ("skipped", "gpc")
    denied = statuses(client, event_id(hit(client, consent={**GRANTED, "ad_user_data": "denied"})))
    assert denied["google_ads"] == ("skipped", "consent: ad_user_data denied")


def test_a_stored_event_keeps_its_location_and_the_api_reads_the_store(edge):
    client = edge(geo=True, dispatch=False)
    eid = event_id(hit(client, ip=geodb.FRANCE_V6, consent=GRANTED))
    event_ = stored(client, eid)
    assert (event_.client.country, event_.client.region) == ("FR", None)
    assert client.get("/v1/events/nope", headers=AUTH).status_code == 404
    assert client.get(f"/v1/events/{eid}").status_code == 401
