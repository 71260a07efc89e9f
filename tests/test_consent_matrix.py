"""docs/consent.md's matrix is what the code decides: each row is recomputed here.

Run ``python -m tests.test_consent_matrix`` to print the table after a policy change.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from edge.consent import BUILTIN_REGIONS, ConsentPolicy, with_tcf
from edge.routing import skip_reason
from edge.schema import Client, Consent, Data, Ids, Page, StoredEvent, User
from edge.settings import DestinationSettings, parse
from tags import PLATFORMS

from .support import CREDENTIALS, GRANTED, to_toml
from .support import SAFARI_UA as UA
from .tcfcodec import Tc, accept_all, encode, reject_all

DOC = Path(__file__).resolve().parent.parent / "docs" / "consent.md"
# Columns: destinations that decide alike share one.
COLUMNS = {
    "Meta, TikTok, Pinterest, Snapchat, Reddit": "meta",
    "Google Ads": "google_ads",
    "GA4": "ga4",
    "LinkedIn": "linkedin",
    "Criteo, Taboola, Outbrain": "criteo",
    "Awin": "awin",
}
SAME_AS = {
    "meta": ("tiktok", "pinterest", "snapchat", "reddit"),
    "criteo": ("taboola", "outbrain"),
}
LI_FOR_7 = encode(
    Tc(
        purposes=frozenset({1}),
        purposes_li=frozenset({7}),
        vendors=frozenset({42, 91, 164, 755, 804, 907}),
        vendors_li=frozenset({755, 804, 907}),
    )
)

Scenario = dict[str, object]
SCENARIOS: dict[str, Scenario] = {
    "no signals, location unknown": {},
    "Consent Mode: all granted": {"consent": GRANTED},
    "Consent Mode: ad_user_data denied": {"consent": {**GRANTED, "ad_user_data": "denied"}},
    "all granted + GPC, location unknown": {"consent": GRANTED, "gpc": True},
    "all granted + GPC, California": {"consent": GRANTED, "gpc": True, "where": ("US", "US-CA")},
    "all granted + GPC, Virginia": {"consent": GRANTED, "gpc": True, "where": ("US", "US-VA")},
    "no signals, Germany": {"where": ("DE", None)},
    "no signals, Virginia": {"where": ("US", "US-VA")},
    "TCF accept all, no Consent Mode": {"tcf": accept_all()},
    "TCF accept all but vendor 755 + all granted": {
        "consent": GRANTED,
        "tcf": accept_all(vendors=frozenset({42, 91, 164, 804, 907})),
    },
    "TCF reject all + all granted": {"consent": GRANTED, "tcf": reject_all()},
    "TCF purpose 1 consent, purpose 7 on legitimate interest + all granted": {
        "consent": GRANTED,
        "tcf": LI_FOR_7,
    },
    "a bot (any signals)": {"consent": GRANTED, "bot": True},
}


def destinations() -> dict[str, DestinationSettings]:
    config = {
        "site": {"domains": ["shop.example"], "default_country": "US"},
        "server": {"database": ":memory:"},
        "destinations": {name: CREDENTIALS[name] for name in PLATFORMS},
    }
    return dict(parse(to_toml(config)).destinations)


def event(scenario: Scenario) -> StoredEvent:
    consent = Consent(**scenario.get("consent", {}))  # type: ignore[arg-type]
    tcf = scenario.get("tcf")
    country, region = scenario.get("where", (None, None))  # type: ignore[misc]
    ids = Ids(
        fbc="fb.1.1763900000000.IwAR2",
        fbp="fb.1.1763900000000.1234567890",
        ttclid="T-1",
        ttp="2F7h37YkS1j57AYSKTI7IHhJPYH",
        gclid="Cj0-1",
        ga_client_id="123.456",
        epik="E-1",
        sccid="S-1",
        li_fat_id="L-1",
        rdt_cid="R-1",
        awc="1001_1763900000_0123456789abcdef0123456789abcdef",
        tblci="TB-1",
        ob_click_id="OB-1",
    )
    return StoredEvent(
        event="purchase",
        event_id="e-1",
        time=1_763_900_000,
        received_at=1_763_900_000.0,
        page=Page(url="https://shop.example/done"),
        user=User(email="jane@example.com"),
        data=Data(value=10.0, currency="EUR", order_id="A-1"),
        consent=with_tcf(consent, tcf),  # type: ignore[arg-type]
        gpc=bool(scenario.get("gpc")),
        tcf=tcf,  # type: ignore[arg-type]
        ids=ids,
        client=Client(
            ip="203.0.113.9",
            user_agent="Googlebot/2.1" if scenario.get("bot") else UA,
            is_bot=bool(scenario.get("bot")),
            country=country,
            region=region,
        ),
    )


def cell(reason: str | None, ev: StoredEvent, name: str) -> str:
    if reason is not None:
        return f"`{reason}`"
    return "sent (LDU)" if ev.gpc and name in ("meta", *SAME_AS["meta"]) else "sent"


def matrix(decide: Callable[[StoredEvent, DestinationSettings], str | None]) -> list[list[str]]:
    dests = destinations()
    rows = []
    for title, scenario in SCENARIOS.items():
        ev = event(scenario)
        row = [title]
        for name in COLUMNS.values():
            value = cell(decide(ev, dests[name]), ev, name)
            for twin in SAME_AS.get(name, ()):
                assert cell(decide(ev, dests[twin]), ev, twin) == value, (title, twin)
            row.append(value)
        rows.append(row)
    return rows


def computed() -> list[list[str]]:
    policy = ConsentPolicy("denied", "skip", BUILTIN_REGIONS)
    return matrix(lambda ev, dest: skip_reason(ev, dest, policy))


def table(rows: list[list[str]]) -> str:
    header = ["signals in", *COLUMNS]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def documented() -> str:
    text = DOC.read_text()
    match = re.search(r"<!-- matrix -->\n(.*?)\n<!-- /matrix -->", text, re.S)
    assert match, "docs/consent.md lost its <!-- matrix --> markers"
    return match.group(1).strip()


def test_the_documented_matrix_is_what_the_code_decides():
    assert documented() == table(computed())


def test_every_reason_the_gate_can_give_is_documented():
    text = DOC.read_text()
    for reason in (
        "consent: <purpose> not given",
        "consent: <purpose> denied",
        "gpc",
        "tcf: purpose <n> has no consent",
        "tcf: purpose <n> objected to (legitimate interest)",
        "tcf: purpose <n> not allowed by the publisher for vendor <id>",
        "tcf: vendor <id> has no consent",
        "tcf: vendor <id> legitimate interest objected to",
        "tcf: malformed TC string",
        "tcf: policy version <n> is no longer valid (TCF v2.2 needs 4+)",
        "consent withdrawn",
        "bot",
        "unmapped event: <name>",
        "no click id",
        "filtered by rule: ",
    ):
        assert f"`{reason}" in text, reason


if __name__ == "__main__":
    print(table(computed()))
