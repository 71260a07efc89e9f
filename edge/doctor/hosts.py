"""The checks beneath HTTP: each host's TLS certificate, and the edge's address range."""

from __future__ import annotations

import ipaddress
import socket
import ssl
import time
from collections.abc import Iterator

import httpx

from .finding import Finding
from .reach import CERT_FIX, certificate_problem, tls_context
from .target import Target, origin

CERT_WARN_DAYS = 14
DAY = 86_400
IPV4_HALF, IPV6_HALF = 16, 64  # Safari compares the first half of the two addresses


# tls ------------------------------------------------------------------------------------


def certificates(target: Target) -> Iterator[Finding]:
    assert target.edge is not None
    urls = {target.edge.host: target.edge, target.site.host: target.site}
    for host, url in urls.items():
        yield certificate(target, host, url)


def certificate(target: Target, host: str, url: httpx.URL) -> Finding:
    if url.scheme != "https":
        return Finding(
            "tls",
            "FAIL",
            f"{url} is plain HTTP: browsers drop the edge's Secure cookies and block "
            "the loader on an HTTPS shop",
            "serve it over HTTPS (Caddy obtains certificates by itself)",
        )
    address = target.resolve.get(host, host)
    port = url.port or 443
    context = tls_context(target.ca_file)
    try:
        with socket.create_connection((address, port), timeout=target.timeout) as raw:
            with context.wrap_socket(raw, server_hostname=host) as conn:
                cert = conn.getpeercert() or {}
    except ssl.SSLCertVerificationError as error:
        return Finding("tls", "FAIL", f"{host}: {certificate_problem(error)}", CERT_FIX)
    except (OSError, ssl.SSLError) as error:
        return Finding("tls", "FAIL", f"{host}:{port}: no TLS handshake ({error})")
    not_before, not_after = cert.get("notBefore"), cert.get("notAfter")
    if not isinstance(not_before, str) or not isinstance(not_after, str):
        return Finding("tls", "ok", f"{host}: valid certificate")
    start, end = ssl.cert_time_to_seconds(not_before), ssl.cert_time_to_seconds(not_after)
    left = end - time.time()
    shown = f"{left / DAY:.0f} days" if left >= 2 * DAY else f"{left / 3600:.0f} hours"
    # Renewal happens when a third of the lifetime is left (Caddy, certbot): later than
    # that, and under two weeks, renewal is failing. Short-lived certificates are fine.
    if left < min(CERT_WARN_DAYS * DAY, (end - start) / 3):
        return Finding(
            "tls",
            "warn",
            f"{host}: the certificate expires in {shown} and has not been renewed",
            "check that renewal works (Caddy renews on its own: see its log)",
        )
    return Finding("tls", "ok", f"{host}: valid certificate, {shown} left")


# address --------------------------------------------------------------------------------


def address_range(target: Target) -> Finding:
    assert target.edge is not None
    if target.same_origin:
        return Finding(
            "address",
            "ok",
            "same origin: the edge answers from the shop's own address, Safari keeps "
            "its cookies for their full lifetime",
        )
    try:
        site = addresses(target, target.site)
        edge = addresses(target, target.edge)
    except OSError as error:
        return Finding("address", "FAIL", f"cannot resolve the hosts: {error}")
    unmatched = [e for e in edge if not any(same_half(e, s) for s in site)]
    shown = f"{target.edge.host} ({', '.join(map(str, edge))}) and " + (
        f"{target.site.host} ({', '.join(map(str, site))})"
    )
    if unmatched:
        return Finding(
            "address",
            "warn",
            f"{shown} differ in the first half of the address: Safari caps the cookies "
            "the edge writes at 7 days",
            f"serve the edge from the shop's address range, or use the same-origin mode "
            f"({origin(target.site)}/_e/…, see the Caddyfile)",
        )
    return Finding("address", "ok", f"{shown} share the first half of the address")


def addresses(
    target: Target, url: httpx.URL
) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    fixed = target.resolve.get(url.host)
    if fixed:
        return [ipaddress.ip_address(fixed)]
    infos = socket.getaddrinfo(url.host, url.port or 443, proto=socket.IPPROTO_TCP)
    return sorted({ipaddress.ip_address(info[4][0]) for info in infos}, key=str)


def same_half(
    a: ipaddress.IPv4Address | ipaddress.IPv6Address,
    b: ipaddress.IPv4Address | ipaddress.IPv6Address,
) -> bool:
    if a.version != b.version:
        return False
    bits = IPV4_HALF if a.version == 4 else IPV6_HALF
    return ipaddress.ip_network(f"{a}/{bits}", strict=False) == ipaddress.ip_network(
        f"{b}/{bits}", strict=False
    )
