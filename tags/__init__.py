"""The registry of tags: one module per ad platform, listed explicitly.

Each module exposes ``SPEC`` (a ``TagSpec``) and the pure functions ``build``, ``classify``
and ``probe`` (see ``tags.base``). The dispatcher looks tags up here by config name.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import cast

from . import (
    awin,
    criteo,
    ga4,
    google_ads,
    linkedin,
    meta,
    outbrain,
    pinterest,
    reddit,
    snapchat,
    taboola,
    tiktok,
)
from .base import Tag

TAGS: MappingProxyType[str, Tag] = MappingProxyType(
    {
        "meta": cast(Tag, meta),
        "tiktok": cast(Tag, tiktok),
        "google_ads": cast(Tag, google_ads),
        "ga4": cast(Tag, ga4),
        "pinterest": cast(Tag, pinterest),
        "snapchat": cast(Tag, snapchat),
        "linkedin": cast(Tag, linkedin),
        "reddit": cast(Tag, reddit),
        "criteo": cast(Tag, criteo),
        "awin": cast(Tag, awin),
        "taboola": cast(Tag, taboola),
        "outbrain": cast(Tag, outbrain),
    }
)

# Every platform the config accepts, in the order the dashboard shows them.
PLATFORMS = (
    "meta",
    "tiktok",
    "google_ads",
    "ga4",
    "pinterest",
    "snapchat",
    "linkedin",
    "reddit",
    "criteo",
    "awin",
    "taboola",
    "outbrain",
)

__all__ = ["PLATFORMS", "TAGS", "Tag"]
