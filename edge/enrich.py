"""Enrichment: who is really asking (client IP behind trusted proxies) and with what browser.

* **Client IP**: the socket's peer, or ``X-Forwarded-For`` only as far as proxies listed in
  ``server.trusted_proxies`` vouch for it; a header from anyone else is ignored.
* **Bots**: the user agent is parsed by ``user-agents`` (crawlers, spiders, monitoring and
  SEO tools); a few non-browser clients and audit tools it does not flag are added here.
  Bot hits are stored and answered like any other but sent nowhere (reason ``bot``).
* **Stored IPs** are truncated (``truncate_ip``); the full address reaches only consented
  destinations (see ``edge.schema.Client``).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from functools import lru_cache

from user_agents import parse as parse_user_agent  # type: ignore[import-untyped]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
MAX_FORWARDED_HOPS = 20
UA_CACHE_SIZE = 4096
IP_CACHE_SIZE = 4096  # parsing a UA costs ~100 µs; storefront traffic repeats a few hundred
# What ``user-agents`` lets through but no person browses with: HTTP libraries, command-line
# clients, audit and preview tools. (Headless Chrome is not listed: real shops test with it.)
NOT_A_BROWSER = re.compile(
    r"(?i)^(?:curl|wget|python-requests|python-urllib|go-http-client|java|okhttp|"
    r"libwww-perl|apache-httpclient|node-fetch|axios|scrapy)\b"
    r"|chrome-lighthouse|phantomjs|\bslurp\b|\bcrawler\b|\bspider\b|bot/\d"
)


def _ip(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    value = value.strip()
    if value.startswith("[") and "]" in value:  # [v6]:port
        value = value[1 : value.index("]")]
    elif value.count(":") == 1:  # v4:port
        value = value.split(":", 1)[0]
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        return None


@lru_cache(maxsize=IP_CACHE_SIZE)
def _canonical(peer: str) -> str | None:
    addr = _ip(peer)
    return str(addr) if addr is not None else None


def _trusted(addr: ipaddress.IPv4Address | ipaddress.IPv6Address, nets: Sequence[Network]) -> bool:
    return any(addr in net for net in nets)


def client_ip(
    peer: str | None, forwarded_for: str | None, trusted: Sequence[Network]
) -> str | None:
    """The visitor's IP: X-Forwarded-For is believed only as far as trusted proxies vouch.

    Walk the chain from the nearest hop backwards; the first address not in a trusted
    network is the client. A header from an untrusted peer is ignored entirely, so a client
    cannot spoof its IP by sending X-Forwarded-For itself.
    """
    if not forwarded_for:  # the common case: the server's own peer address, already valid
        return _canonical(peer) if peer else None
    peer_addr = _ip(peer) if peer else None
    if peer_addr is None:
        return None
    if not _trusted(peer_addr, trusted):
        return str(peer_addr)
    hops = [h for h in forwarded_for.split(",")][-MAX_FORWARDED_HOPS:]
    candidate = peer_addr
    for hop in reversed(hops):
        addr = _ip(hop)
        if addr is None:
            break
        candidate = addr
        if not _trusted(addr, trusted):
            break
    return str(candidate)


@lru_cache(maxsize=UA_CACHE_SIZE)
def is_bot(user_agent: str) -> bool:
    if not user_agent:
        return False
    return bool(parse_user_agent(user_agent).is_bot) or bool(NOT_A_BROWSER.search(user_agent))


@lru_cache(maxsize=IP_CACHE_SIZE)
def truncate_ip(ip: str | None) -> str | None:
    """An IP fit for storage beyond delivery: /24 for IPv4, /48 for IPv6."""
    if not ip:
        return None
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return None
    prefix = 24 if addr.version == 4 else 48
    return str(ipaddress.ip_network(f"{addr}/{prefix}", strict=False).network_address)
