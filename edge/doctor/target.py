"""The deployment under check: the shop's site, the edge, and how to reach them."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

DEFAULT_TIMEOUT_SECONDS = 10.0


@dataclass
class Target:
    site: httpx.URL
    edge: httpx.URL | None  # the edge's base, ending in "/" (None: found on the site's page)
    resolve: Mapping[str, str] = field(default_factory=dict)
    ca_file: str | None = None
    api_key: str | None = None
    timeout: float = DEFAULT_TIMEOUT_SECONDS

    @property
    def same_origin(self) -> bool:
        return self.edge is not None and self.edge.host == self.site.host

    @property
    def mode(self) -> str:
        if self.edge is None:
            return "not known yet"
        if self.same_origin:
            return "same origin"
        if registrable(self.edge.host) == registrable(self.site.host):
            return "first-party subdomain"
        return "another site: its cookies are third-party"


@functools.cache
def _public_suffixes() -> Any:
    from publicsuffixlist import PublicSuffixList  # loaded on use: it parses the whole list

    return PublicSuffixList()


def registrable(host: str) -> str:
    return str(_public_suffixes().privatesuffix(host) or host)


def base_url(url: str) -> httpx.URL:
    """``https://t.shop.example`` or ``https://shop.example/_e`` -> a base ending in "/"."""
    parsed = httpx.URL(url if "://" in url else f"https://{url}")
    path = parsed.path if parsed.path.endswith("/") else parsed.path + "/"
    return parsed.copy_with(path=path, query=None, fragment=None)


def origin(url: httpx.URL) -> str:
    default = {"https": 443, "http": 80}.get(url.scheme)
    port = f":{url.port}" if url.port and url.port != default else ""
    return f"{url.scheme}://{url.host}{port}"
