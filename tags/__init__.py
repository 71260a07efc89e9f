"""The registry of tags: one module per ad platform, listed explicitly.

Each module exposes ``SPEC`` (a ``TagSpec``) and the pure functions ``build``, ``classify``
and ``probe`` (see ``tags.base``). The dispatcher looks tags up here by config name.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import cast

from . import meta, tiktok
from .base import Tag

TAGS: MappingProxyType[str, Tag] = MappingProxyType(
    {
        "meta": cast(Tag, meta),
        "tiktok": cast(Tag, tiktok),
    }
)

# Every platform the config accepts; the ones not in TAGS yet are refused with a clear message.
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
