"""The integer keys the SQLite store indexes texts by: event_ids and visitors' browser IDs.

Both arrive at random, so their index entries land at random pages: as CRC-32s (a few
bytes, where the texts are forty) the B-trees are a third the size, and a batch of inserts
dirties, and writes, a third of the pages (docs/benchmarks.md). A key only narrows a
lookup: every query compares the text as well, so texts that share a CRC cost a row read,
never a wrong match.
"""

from __future__ import annotations

import zlib

# A delivery's event number, by event_id; its parameters are ``by_event_id(event_id)``.
EVENT_SEQ = "(SELECT seq FROM events WHERE event_key = ? AND event_id = ?)"
# The SQL name of ``text_key``, for the migrations that fill keys in.
TEXT_KEY_FUNCTION = "edge_text_key"


def crc(text: str) -> int:
    """The key of an event_id or a browser ID. Stored keys depend on it: it must give the
    same number in every process and every release."""
    return zlib.crc32(text.encode())


def text_key(text: str | None) -> int | None:
    return None if text is None else crc(text)


def by_event_id(event_id: str) -> tuple[int, str]:
    """The parameters that find an event by its event_id (``EVENT_SEQ``)."""
    return crc(event_id), event_id


__all__ = ["EVENT_SEQ", "TEXT_KEY_FUNCTION", "by_event_id", "crc", "text_key"]
