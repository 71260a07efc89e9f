"""Files the edge serves that live outside its Python packages: the drop-in script and the
demo's config and shop page.

The layout keeps them at the top of the tree (``static/``, ``examples/``). A wheel carries
copies inside the edge package (``edge/_static``, ``edge/_examples``: see pyproject.toml),
so the edge runs the same installed from a wheel, from a checkout or editable install.
"""

from __future__ import annotations

from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
SOURCE_TREE = PACKAGE.parent


def _shipped(packaged: str, top_level: str, name: str) -> Path:
    """The installed copy when there is one, else the source tree's file."""
    installed = PACKAGE / packaged / name
    return installed if installed.exists() else SOURCE_TREE / top_level / name


def static_file(name: str) -> Path:
    return _shipped("_static", "static", name)


def example_file(name: str) -> Path:
    return _shipped("_examples", "examples", name)


__all__ = ["example_file", "static_file"]
