"""``capi-edge doctor``: check a live deployment from the outside and say what is wrong.

    capi-edge doctor --site https://shop.example --edge https://t.shop.example

The checks follow the path a visitor's browser takes:

    site      the shop's page answers and loads the loader from this edge
    tls       every host involved has a certificate browsers accept, not about to expire
    loader    /loader.js answers as JavaScript, compressed and cacheable
    collect   a hit sent from the shop's origin is accepted
    cookies   the edge's cookies are Secure, SameSite=Lax, with a Domain the shop can read
    address   the edge answers from the shop's address range (Safari's 7-day cookie cap)
    consent   the page declares consent, and the edge applies the consent a hit carries

Each finding is ``ok``, ``warn`` or ``FAIL`` with a sentence, and a fix where there is one;
the exit status is 1 when anything failed. The doctor's own hits cannot reach a platform:
they come from a bot user agent (bots are never forwarded), under an event name no platform
maps, with ``ad_user_data`` and ``analytics_storage`` denied. ``--resolve HOST:ADDRESS``
checks a deployment before its DNS exists (as curl's ``--resolve``), ``--ca-file`` trusts an
internal CA.

The package: ``target`` (the deployment under check), ``reach`` (the client, fixed addresses,
TLS, failures in plain words), ``checks`` and ``hosts`` (the checks), ``finding`` (what a check
concludes); this module is the command.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import sys
from collections.abc import Sequence

import httpx

from .checks import EVENT_NAME, Doctor
from .finding import Finding, Status
from .hosts import same_half
from .reach import USER_AGENT, ResolvingTransport, client_for
from .target import Target, base_url

__all__ = [
    "EVENT_NAME",
    "USER_AGENT",
    "Doctor",
    "Finding",
    "ResolvingTransport",
    "Status",
    "Target",
    "base_url",
    "command",
    "diagnose",
    "parse_resolve",
    "report",
    "same_half",
]

EXIT_USAGE = 2


def parse_resolve(values: Sequence[str]) -> dict[str, str]:
    """``HOST:ADDRESS`` pairs (curl's --resolve without the port)."""
    mapping = {}
    for value in values:
        host, _, address = value.partition(":")
        try:
            ipaddress.ip_address(address.strip("[]"))
        except ValueError:
            raise ValueError(f"--resolve {value!r}: expected HOST:ADDRESS") from None
        mapping[host.lower()] = address.strip("[]")
    return mapping


def diagnose(target: Target) -> list[Finding]:
    with client_for(target) as client:
        return list(Doctor(target, client).run())


def report(target: Target, findings: Sequence[Finding]) -> str:
    lines = ["capi-edge doctor", f"  site  {target.site}"]
    if target.edge is not None:
        lines.append(f"  edge  {target.edge}  ({target.mode})")
    lines.append("")
    for finding in findings:
        lines.append(f"[{finding.status:^4}] {finding.check}: {finding.message}")
        if finding.fix and finding.status != "ok":
            lines.append(f"       fix: {finding.fix}")
    failed = sum(f.status == "FAIL" for f in findings)
    warned = sum(f.status == "warn" for f in findings)
    lines.append("")
    if failed or warned:
        lines.append(f"{failed} problem(s), {warned} warning(s).")
    else:
        lines.append("Everything checked is in order.")
    return "\n".join(lines)


def command(args: argparse.Namespace) -> int:
    """``capi-edge doctor``: exit 0 when nothing failed (warnings allowed), 1 otherwise."""
    try:
        resolve = parse_resolve(args.resolve)
    except ValueError as error:
        print(f"capi-edge doctor: {error}", file=sys.stderr)
        return EXIT_USAGE
    site = args.site if "://" in args.site else f"https://{args.site}"
    target = Target(
        site=httpx.URL(site),
        edge=base_url(args.edge) if args.edge else None,
        resolve=resolve,
        ca_file=args.ca_file,
        api_key=args.api_key or os.environ.get("CAPI_EDGE_API_KEY") or None,
        timeout=args.timeout,
    )
    findings = diagnose(target)
    print(report(target, findings))
    return 1 if any(f.status == "FAIL" for f in findings) else 0
