"""Compiles the hit path with mypyc; everything else is in pyproject.toml.

The modules every hit runs through (HTTP plumbing, identity and cookies, consent, routing,
the collect endpoint) are plain, typed Python compiled to C extension modules by mypyc:
the same source, about 40 % less CPU per hit (docs/benchmarks.md). ``CAPI_EDGE_PURE=1``
builds without compiling; so does a machine without mypy or a C compiler, with a warning:
the edge then runs the same modules as Python.
"""

from __future__ import annotations

import os
import sys
import tomllib
from pathlib import Path

from setuptools import setup
from setuptools.command.build_ext import build_ext

# pyproject.toml's [tool.capi-edge] compiled: one list, also read by the bootstrap and tests
COMPILED_MODULES: list[str] = tomllib.loads(
    (Path(__file__).resolve().parent / "pyproject.toml").read_text(encoding="utf-8")
)["tool"]["capi-edge"]["compiled"]


def compiled_extensions() -> list:
    if os.environ.get("CAPI_EDGE_PURE") == "1":
        return []
    try:
        from mypyc.build import mypycify
    except ImportError:
        print("capi-edge: mypyc is not installed; the hit path runs as Python", file=sys.stderr)
        return []
    # The build environment holds only the build requirements: third-party modules are
    # typed as Any there (compiled code calls them as Python would), and the modules these
    # import are read for their types only (their own type errors are not the build's).
    options = ["--ignore-missing-imports", "--follow-imports=silent"]
    return mypycify([*options, *COMPILED_MODULES], opt_level="3")


class OptionalBuildExt(build_ext):
    """A compile that fails (no C compiler, no Python headers) leaves the hit path as
    Python instead of failing the install. All or nothing: the compiled modules share one
    runtime library, so whatever was built before the failure is removed, and a wheel
    being built is then tagged pure (``py3-none-any``): it holds no extension, so it is
    not tied to this platform."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as err:  # noqa: BLE001 - any failure means: stay pure Python
            for extension in self.extensions:
                built = self.get_ext_fullpath(extension.name)
                if os.path.exists(built):
                    os.remove(built)
            # bdist_wheel decided "not pure" from ext_modules before building, and reads
            # the flag again once the build is done, for the tag and the WHEEL file.
            wheel = self.distribution.get_command_obj("bdist_wheel", create=False)
            if wheel is not None:
                wheel.root_is_pure = True
            print(
                f"capi-edge: the hit path was not compiled ({err}); it runs as Python",
                file=sys.stderr,
            )


if __name__ == "__main__":  # as setuptools runs it; tests import the classes above
    setup(ext_modules=compiled_extensions(), cmdclass={"build_ext": OptionalBuildExt})
