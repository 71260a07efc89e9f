"""``capi-edge doctor`` against live local deployments: a sound one, and broken ones."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

import httpx
import pytest

from edge.cli import main
from edge.doctor import Finding, Target, base_url, diagnose, same_half
from tests.browser.support import Process, answers, edge_command, free_port, wait_for
from tests.support import API_KEY, base_config, to_toml

from .stack import EDGE_HOST, FAR_ADDRESS, NO_GPC_HOST, OTHER_EDGE_HOST, SITE_HOST, Stack

pytestmark = [pytest.mark.slow, pytest.mark.caddy]
ALL_HOSTS_LOCAL = [f"{h}:127.0.0.1" for h in (SITE_HOST, EDGE_HOST, OTHER_EDGE_HOST, NO_GPC_HOST)]


def by_check(findings: list[Finding]) -> dict[str, Finding]:
    checks: dict[str, Finding] = {}
    for finding in findings:  # the worst finding of each check
        order = {"ok": 0, "warn": 1, "FAIL": 2}
        if (
            finding.check not in checks
            or order[finding.status] > order[checks[finding.check].status]
        ):
            checks[finding.check] = finding
    return checks


def doctor(stack: Stack, site: str, edge: str | None, **changes: Any) -> dict[str, Finding]:
    resolve = dict.fromkeys((SITE_HOST, EDGE_HOST, OTHER_EDGE_HOST, NO_GPC_HOST), "127.0.0.1")
    resolve.update(changes.pop("resolve", {}))
    target = Target(
        site=httpx.URL(site),
        edge=base_url(edge) if edge else None,
        resolve=resolve,
        timeout=5.0,
        **{"ca_file": str(stack.ca_file), **changes},
    )
    return by_check(diagnose(target))


def test_a_sound_subdomain_deployment_passes_every_check(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["doctor", "--site", stack.site, "--edge", stack.edge, "--ca-file", str(stack.ca_file)]
    for rule in ALL_HOSTS_LOCAL:
        args += ["--resolve", rule]
    assert main(args) == 0
    out = capsys.readouterr().out
    for check in ("site", "tls", "loader", "collect", "cookies", "address", "consent"):
        assert f"[ ok ] {check}:" in out, out
    assert "[FAIL]" not in out and "[warn]" not in out
    assert f"Domain={SITE_HOST}" in out
    assert "Everything checked is in order." in out


def test_a_sound_same_origin_deployment_passes_and_says_safari_cannot_cap(stack: Stack) -> None:
    checks = doctor(stack, f"{stack.site}same-origin/", stack.same_origin_edge)
    assert {c.status for c in checks.values()} == {"ok"}, checks
    assert "same origin" in checks["address"].message
    assert "same origin" in checks["site"].message


def test_the_edge_is_found_from_the_sites_loader_tag(stack: Stack) -> None:
    checks = doctor(stack, f"{stack.site}same-origin/", None)
    assert checks["loader"].status == "ok"
    assert stack.same_origin_edge in checks["loader"].message


def test_an_edge_in_another_address_range_is_told_about_safaris_cap(stack: Stack) -> None:
    checks = doctor(stack, stack.site, stack.edge, resolve={EDGE_HOST: FAR_ADDRESS})
    address = checks["address"]
    assert address.status == "warn"
    assert "Safari caps the cookies the edge writes at 7 days" in address.message
    assert FAR_ADDRESS in address.message and "same-origin mode" in address.fix
    assert checks["loader"].status == "ok"  # Caddy answers there too: only the range is wrong


def test_an_untrusted_certificate_is_named(stack: Stack) -> None:
    checks = doctor(stack, stack.site, stack.edge, ca_file=None)
    assert checks["tls"].status == "FAIL"
    assert "not signed by an authority browsers trust" in checks["tls"].message
    assert "--ca-file" in checks["tls"].fix


def test_cookies_the_shop_cannot_read_are_a_problem(stack: Stack) -> None:
    edge = f"https://{OTHER_EDGE_HOST}:{stack.https_port}/"
    checks = doctor(stack, stack.site, edge)
    site = checks["site"]
    assert site.status == "FAIL" and "not this edge's" in site.message
    cookies = checks["cookies"]
    assert cookies.status == "FAIL"
    assert "Domain=other.test" in cookies.message and f"pages on {SITE_HOST}" in cookies.message


def test_a_proxy_that_drops_global_privacy_control_is_caught(stack: Stack) -> None:
    edge = f"https://{NO_GPC_HOST}:{stack.https_port}/"
    consent = doctor(stack, stack.site, edge)["consent"]
    assert consent.status == "FAIL"
    assert "Sec-GPC" in consent.message and "drops the Global Privacy Control" in consent.message


def test_a_page_without_the_loader_or_without_consent(stack: Stack) -> None:
    missing = doctor(stack, f"{stack.site}no-loader.html", stack.edge)["site"]
    assert missing.status == "FAIL" and "does not load the capi-edge loader" in missing.message
    assert f'<script async src="{stack.edge}loader.js"></script>' in missing.fix

    consent = doctor(stack, f"{stack.site}no-consent.html", stack.edge)["consent"]
    assert consent.status == "warn"
    assert "nothing reaches the ad platforms" in consent.message


def test_a_wrongly_routed_edge(stack: Stack) -> None:
    checks = doctor(stack, stack.site, f"{stack.site}wrong/")
    assert checks["loader"].status == "FAIL" and "answered 404" in checks["loader"].message
    assert "route the edge's paths" in checks["loader"].fix
    assert checks["collect"].status == "FAIL"


def test_with_an_api_key_the_doctors_hit_is_read_back_and_went_nowhere(stack: Stack) -> None:
    consent = doctor(stack, stack.site, stack.edge, api_key=API_KEY)["consent"]
    assert consent.status == "ok"
    assert "the doctor's hit is stored and was sent nowhere (bot)" in consent.message


def test_an_edge_that_refuses_the_site_and_speaks_plain_http(tmp_path: Path) -> None:
    """Local servers only: an edge whose site.domains forgot the shop, without TLS."""
    config = base_config(str(tmp_path / "edge.db"))
    config["site"]["domains"] = ["elsewhere.test"]
    (tmp_path / "edge.toml").write_text(to_toml(config))
    port = free_port()
    edge = Process(
        edge_command("serve", "--config", str(tmp_path / "edge.toml"), "--port", str(port)),
        tmp_path / "edge.log",
    )
    try:
        wait_for(answers(f"http://127.0.0.1:{port}/healthz"), 20, "capi-edge serve", edge)
        target = Target(
            site=base_url(f"http://{SITE_HOST}:{port}/"),
            edge=base_url(f"http://{EDGE_HOST}:{port}"),
            resolve={SITE_HOST: "127.0.0.1", EDGE_HOST: "127.0.0.1"},
            timeout=5.0,
        )
        checks = by_check(diagnose(target))
    finally:
        edge.stop()
    assert checks["tls"].status == "FAIL" and "plain HTTP" in checks["tls"].message
    collect = checks["collect"]
    assert collect.status == "FAIL" and "origin not allowed" in collect.message
    assert f'add "{SITE_HOST}" to site.domains' in collect.fix


def test_nothing_answers() -> None:
    port = free_port()
    target = Target(
        site=base_url(f"https://{SITE_HOST}:{port}/"),
        edge=base_url(f"https://{EDGE_HOST}:{port}/"),
        resolve={SITE_HOST: "127.0.0.1", EDGE_HOST: "127.0.0.1"},
        timeout=2.0,
    )
    checks = by_check(diagnose(target))
    assert "connection refused" in checks["site"].message
    assert checks["loader"].status == "FAIL" and "connection refused" in checks["loader"].message


def test_address_halves() -> None:
    def ip(text: str) -> Any:
        return ipaddress.ip_address(text)

    assert same_half(ip("203.0.113.5"), ip("203.0.7.9"))  # same /16
    assert not same_half(ip("203.0.113.5"), ip("203.1.113.5"))
    assert same_half(ip("2001:db8:1:2::1"), ip("2001:db8:1:2:ffff::9"))  # same /64
    assert not same_half(ip("2001:db8:1:2::1"), ip("2001:db8:1:3::1"))
    assert not same_half(ip("203.0.113.5"), ip("2001:db8::1"))


def test_the_doctors_hits_are_bots_under_an_unmapped_name(stack: Stack) -> None:
    """Whatever a deployment's config, a doctor hit must never reach a platform."""
    from edge.doctor import EVENT_NAME, USER_AGENT
    from edge.enrich import is_bot

    assert is_bot(USER_AGENT)
    assert EVENT_NAME == "capi_edge_doctor"
    doctor(stack, stack.site, stack.edge)
    for platform in ("meta", "tiktok"):
        ids = {e["event_id"] for e in stack.received(platform)}
        assert not any(i.startswith("capi-edge-doctor-") for i in ids)
