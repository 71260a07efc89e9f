"""The hit path runs compiled: every module pyproject.toml lists for setup.py to compile is
imported as its mypyc extension, and no extension is older than its source (Python would
import it anyway, and run the code as it was before the edit)."""

from __future__ import annotations

import importlib
import os
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def compiled_modules() -> list[str]:
    """The list setup.py compiles: ``[tool.capi-edge] compiled`` in pyproject.toml."""
    with (ROOT / "pyproject.toml").open("rb") as f:
        return list(tomllib.load(f)["tool"]["capi-edge"]["compiled"])


def test_the_modules_every_hit_runs_through_are_compiled_and_exist() -> None:
    compiled = compiled_modules()
    # edge.hits serves a hit, edge.collect handles it, identity and routing do most of it
    hit_path = {"edge/hits.py", "edge/collect.py", "edge/identity.py", "edge/routing.py"}
    assert hit_path <= set(compiled)
    for path in compiled:
        assert (ROOT / path).is_file(), path


@pytest.mark.skipif(os.environ.get("CAPI_EDGE_PURE") == "1", reason="built pure on purpose")
@pytest.mark.parametrize("path", compiled_modules())
def test_the_module_runs_compiled(path: str) -> None:
    module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
    assert module.__file__ is not None
    assert module.__file__.endswith(".so"), (
        f"{path} runs as Python: run `bash .ci/bootstrap` to compile it (it needs a C"
        " compiler and the Python headers), or set CAPI_EDGE_PURE=1 to run it as Python"
    )


@pytest.mark.parametrize("path", compiled_modules())
def test_no_extension_is_older_than_its_source(path: str) -> None:
    source = ROOT / path
    for built in source.parent.glob(f"{source.stem}.cpython-*.so"):
        assert built.stat().st_mtime >= source.stat().st_mtime, (
            f"{built.name} was built before {path} last changed: run `bash .ci/bootstrap`"
        )
