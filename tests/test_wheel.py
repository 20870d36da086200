"""`pip install .` (the README's first command) installs every package of the source tree.

The editable install the tests run from finds any folder under src/, so a package left out of
pyproject.toml's explicit list only shows on a real install: `localopen.app` was missing and
`localopen` stopped at its first import on a fresh machine (found on a minimal Debian).
"""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_pyproject_lists_every_package_of_the_source_tree() -> None:
    tomllib = pytest.importorskip("tomllib")
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
    listed = set(config["packages"])
    source = ROOT / "src"
    packages = {".".join(init.parent.relative_to(source).parts) for init in (source / "localopen").rglob("__init__.py")}
    assert packages - listed == set(), "packages missing from pyproject.toml's [tool.setuptools] packages"
    assert "localopen.resources" in listed and config["package-dir"]["localopen.resources"] == "resources"
