"""Packaging: every package ships in a wheel, the extras give the demo everything it shows while
``pip install fxrep`` stays lean, and the README's quickstart is the two commands CI and a newcomer run."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from fxrep import demo

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

ROOT = Path(__file__).resolve().parents[1]


def packages_on_disk(package_dir: dict[str, str], root: Path = ROOT) -> set[str]:
    """Every package setuptools would ship under ``package_dir`` (folders with an ``__init__.py``): the
    ``fxrep`` tree under the root mapping ``""``, and each other mapping's folder under its own name."""
    found = set()
    for package, folder in package_dir.items():
        base = root / folder
        top = base / "fxrep" if package == "" else base
        for init in top.rglob("__init__.py"):
            parts = init.parent.relative_to(base).parts
            found.add(".".join((package, *parts)) if package else ".".join(parts))
    return found


def test_every_package_is_listed():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    listed = set(config["tool"]["setuptools"]["packages"])
    found = packages_on_disk(config["tool"]["setuptools"]["package-dir"])
    assert found == listed, f"add {sorted(found - listed)} / remove {sorted(listed - found)} in pyproject.toml"


def test_package_discovery_follows_the_package_dir_mapping(tmp_path):
    """A package mapped to its own folder is found there, with its subpackages, and is not found without it."""
    for folder in ("fxrep", "fxrep/ops", "passes", "passes/extra"):
        (tmp_path / folder).mkdir(parents=True)
        (tmp_path / folder / "__init__.py").touch()
    mapped = {"fxrep.passes": "passes", "": "."}
    assert packages_on_disk(mapped, tmp_path) == {"fxrep", "fxrep.ops", "fxrep.passes", "fxrep.passes.extra"}
    assert packages_on_disk({"": "."}, tmp_path) == {"fxrep", "fxrep.ops"}


def extra_requirements(config: dict, extra: str) -> set[str]:
    """The requirement names an extra brings in, following ``fxrep[...]`` references to other extras."""
    names: set[str] = set()
    for requirement in config["project"]["optional-dependencies"][extra]:
        name, _, rest = requirement.partition("[")
        if name.strip() == "fxrep":
            for inner in rest.rstrip("]").split(","):
                names |= extra_requirements(config, inner.strip())
        else:
            names.add(re.split(r"[<>=!~;\s]", requirement, maxsplit=1)[0].lower())
    return names


def quickstart_commands() -> list[str]:
    """The command lines of the README's Quickstart code block."""
    section = (ROOT / "README.md").read_text().split("## Quickstart", 1)[1]
    block = section.split("```bash\n", 1)[1].split("```", 1)[0]
    return [line for line in block.splitlines() if line.strip()]


def test_the_quickstart_is_one_demo_command_and_one_test_command():
    demo_command, test_command = quickstart_commands()
    assert demo_command == 'pip install -e ".[demo]" && fxrep demo'
    assert test_command == 'pip install -e ".[dev]" && python -m pytest -n auto'


def test_ci_runs_the_readmes_test_command():
    assert quickstart_commands()[1] in (ROOT / ".ci" / "run").read_text()


def test_the_demo_extra_brings_every_optional_step_of_the_demo():
    """Each extra the demo names when it skips a step (ONNX, the engine, the pictures) is in ``fxrep[demo]``."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    named = re.findall(r"fxrep\[([\w-]+)\]", " ".join((demo.ONNX_EXTRA, demo.ENGINE_EXTRA, demo.DRAW_EXTRA)))
    assert sorted(named) == ["draw", "onnx", "tensorrt-rtx"]
    demo_requirements = extra_requirements(config, "demo")
    for extra in named:
        assert extra_requirements(config, extra) <= demo_requirements, extra
    assert extra_requirements(config, "demo") <= extra_requirements(config, "dev")  # the tests see the demo's path


def test_the_library_alone_stays_lean():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    core = {re.split(r"[<>=!~;\s]", r, maxsplit=1)[0].lower() for r in config["project"]["dependencies"]}
    assert "torch" in core
    assert not core & extra_requirements(config, "demo")
