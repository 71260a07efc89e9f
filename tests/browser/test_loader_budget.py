"""The drop-in script stays small: at most 3,072 bytes after ``gzip -9``, as it is served."""

from __future__ import annotations

import gzip

from edge.loader import LOADER_PATH, LoaderScript

BUDGET_BYTES = 3_072


def test_the_loader_fits_its_gzip_budget() -> None:
    source = LOADER_PATH.read_bytes()
    size = len(gzip.compress(source, compresslevel=9, mtime=0))
    assert size <= BUDGET_BYTES, f"static/loader.js is {size} bytes gzipped (budget {BUDGET_BYTES})"


def test_the_served_copy_is_the_one_measured() -> None:
    script = LoaderScript()
    assert len(script.gzipped) <= BUDGET_BYTES
    assert gzip.decompress(script.gzipped) == LOADER_PATH.read_bytes()
