"""Packaging: every package directory is listed in pyproject.toml, so a wheel ships all of fxrep."""

from __future__ import annotations

from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

ROOT = Path(__file__).resolve().parents[1]


def test_every_package_is_listed():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    listed = set(config["tool"]["setuptools"]["packages"])
    found = {".".join(path.parent.relative_to(ROOT).parts) for path in (ROOT / "fxrep").rglob("__init__.py")}
    found.add("fxrep.passes")
    assert found == listed, f"add {sorted(found - listed)} / remove {sorted(listed - found)} in pyproject.toml"
    assert config["tool"]["setuptools"]["package-dir"]["fxrep.passes"] == "passes"
