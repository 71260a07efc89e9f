"""The wheel carries everything the edge serves: it runs installed, not only from a checkout."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import textwrap
import tomllib
import zipfile
from pathlib import Path

import pytest
from setuptools import Distribution, Extension

from edge import assets

ROOT = Path(__file__).resolve().parent.parent
SHIPPED_OUTSIDE_PACKAGES = {
    "edge/_static/loader.js": ROOT / "static" / "loader.js",
    "edge/_examples/demo.toml": ROOT / "examples" / "demo.toml",
    "edge/_examples/storefront/index.html": ROOT / "examples" / "storefront" / "index.html",
}


def test_the_package_list_names_every_package() -> None:
    """pyproject.toml lists packages by hand (it maps static/ and examples/ into edge)."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    listed = set(config["tool"]["setuptools"]["packages"])
    found = {
        ".".join(init.parent.relative_to(ROOT).parts)
        for top in ("edge", "tags")
        for init in (ROOT / top).rglob("__init__.py")
    }
    assert found <= listed, f"add to [tool.setuptools] packages: {sorted(found - listed)}"


def test_assets_prefer_the_installed_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "site" / "edge"
    (package / "_static").mkdir(parents=True)
    (package / "_static" / "loader.js").write_text("installed")
    monkeypatch.setattr(assets, "PACKAGE", package)
    monkeypatch.setattr(assets, "SOURCE_TREE", ROOT)
    assert assets.static_file("loader.js") == package / "_static" / "loader.js"
    # nothing installed for the examples: the source tree's copy
    assert assets.example_file("demo.toml") == ROOT / "examples" / "demo.toml"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Built from a copy: setuptools leaves build/ behind, and a stale build/ in the checkout
    # would put files into the wheel that the tree no longer has.
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "setup.py", "README.md", "LICENSE"):
        if (ROOT / name).exists():
            shutil.copy2(ROOT / name, source / name)
    for name in ("edge", "tags", "static", "examples"):
        skipped = shutil.ignore_patterns("__pycache__", "*.so")  # the in-place compiled modules
        shutil.copytree(ROOT / name, source / name, ignore=skipped)
    out = tmp_path_factory.mktemp("wheel")
    # Offline: the test environment has setuptools (the test extra), so no build isolation;
    # pure (the compiled hit path is tested where the suite runs it: tests/test_compiled.py).
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"]
        + ["--wheel-dir", str(out), str(source)],
        check=True,
        capture_output=True,
        timeout=120,
        env={**os.environ, "CAPI_EDGE_PURE": "1"},
    )
    (built,) = out.glob("capi_edge-*.whl")
    return built


@pytest.mark.slow
def test_the_wheel_holds_the_loader_and_the_demo(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        for name, source in SHIPPED_OUTSIDE_PACKAGES.items():
            assert archive.read(name) == source.read_bytes(), name
        names = archive.namelist()
    assert "edge/templates/admin/base.html" in names
    assert "edge/admin/static/admin.js" in names
    assert not [n for n in names if n.startswith(("tests/", "bench/", "static/", "examples/"))]


@pytest.mark.slow
def test_the_unpacked_wheel_serves_the_loader_and_the_demo_shop(
    wheel: Path, tmp_path: Path
) -> None:
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)
    script = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(site)!r})
        from pathlib import Path
        import edge
        assert Path(edge.__file__).is_relative_to({str(site)!r}), edge.__file__
        from starlette.testclient import TestClient
        from edge.app import create_app
        from edge.demo import demo_routes, demo_settings
        settings = demo_settings("127.0.0.1", 8000, Path({str(tmp_path / "data")!r}))
        app = create_app(settings, extra_routes=demo_routes(), dispatch=False)
        with TestClient(app) as client:
            loader, shop = client.get("/loader.js"), client.get("/")
        assert loader.status_code == 200 and b"sendBeacon" in loader.content, loader.status_code
        assert shop.status_code == 200 and b"loader.js" in shop.content, shop.status_code
        print("served from", Path(edge.__file__).parent)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert str(site) in done.stdout


def build_ext_then_wheel_tag(tmp_path: Path, source: str) -> tuple[bool, tuple[str, str, str]]:
    """Build one C extension with setup.py's build_ext, as a wheel build would: whether the
    wheel is then pure, and its tag."""
    spec = importlib.util.spec_from_file_location("capi_edge_setup", ROOT / "setup.py")
    assert spec is not None and spec.loader is not None
    setup_script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(setup_script)  # defines the commands; setup() runs only as main
    (tmp_path / "probe.c").write_text(source)
    dist = Distribution(
        {
            "name": "probe",
            "version": "0",
            "ext_modules": [Extension("probe", [str(tmp_path / "probe.c")])],
            "cmdclass": {"build_ext": setup_script.OptionalBuildExt},
        }
    )
    wheel = dist.get_command_obj("bdist_wheel")
    wheel.ensure_finalized()
    assert not wheel.root_is_pure  # an extension to build: a platform wheel, so far
    build = dist.get_command_obj("build_ext")
    build.build_temp, build.build_lib = str(tmp_path / "temp"), str(tmp_path / "lib")
    build.ensure_finalized()
    build.run()
    return bool(wheel.root_is_pure), wheel.get_tag()


def test_a_wheel_whose_compile_failed_is_tagged_pure(tmp_path: Path) -> None:
    """No compiler, or a compile error: the hit path stays Python and the wheel holds no
    extension, so it must not claim this platform."""
    pure, tag = build_ext_then_wheel_tag(tmp_path, "#error this compile fails on purpose\n")
    assert pure
    assert tag == ("py3", "none", "any")
    assert not list((tmp_path / "lib").glob("probe*"))


def test_a_wheel_whose_compile_worked_keeps_its_platform_tag(tmp_path: Path) -> None:
    module = """
#include <Python.h>
static struct PyModuleDef probe = {PyModuleDef_HEAD_INIT, "probe", NULL, -1, NULL};
PyMODINIT_FUNC PyInit_probe(void) { return PyModule_Create(&probe); }
"""
    pure, tag = build_ext_then_wheel_tag(tmp_path, module)
    assert not pure
    assert tag[0].startswith("cp3") and tag[2] != "any"
    assert list((tmp_path / "lib").glob("probe*.so"))
