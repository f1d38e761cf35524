"""fxrep's built-in passes use only the public pass API, the API is curated, and a failing pass is named.

Every ``passes/*.py`` is parsed with ``ast``: from fxrep it may import only ``fxrep.pass_api``
(``from fxrep import pass_api as api`` or ``import fxrep.pass_api``); besides that, relative imports
within ``passes/``, the standard library, torch and networkx. So a custom pass written against
``fxrep.pass_api`` can do everything a built-in one does.

The other direction: fxrep's own modules never import ``pass_api`` (they import from the module that
defines a name), ``pass_api`` re-exports only names public in their own module, ``fxrep.patterns``
imports no private module of another package, and ``docs/api.md`` lists every public name.
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pytest
import torch
from fxrep.passes import FoldBatchNorm
from torch import nn

import fxrep
from fxrep import pass_api as api

ROOT = Path(__file__).resolve().parents[1]
PASSES = ROOT / "passes"
FXREP = ROOT / "fxrep"
ALLOWED_PACKAGES = frozenset({"torch", "networkx", "__future__"}) | frozenset(sys.stdlib_module_names)
RULE = ("passes may import from fxrep only the public pass API, as `from fxrep import pass_api as api` "
        "or `import fxrep.pass_api`")


def import_violations(source: str, filename: str) -> list[str]:
    """One message per import in ``source`` that breaks the rule, naming the file, line and import."""
    problems = []
    for node in ast.walk(ast.parse(source, filename)):
        if not isinstance(node, ast.Import | ast.ImportFrom) and not (
                isinstance(node, ast.Call) and _is_dynamic_import(node)):
            continue
        where = f"{filename}:{node.lineno}: `{ast.get_source_segment(source, node) or ''}`"
        if isinstance(node, ast.Import):
            for alias in node.names:
                root = alias.name.split(".")[0]
                if root == "fxrep" and alias.name != "fxrep.pass_api":
                    problems.append(f"{where}: {RULE}")
                elif root != "fxrep" and root not in ALLOWED_PACKAGES:
                    problems.append(f"{where}: {alias.name} is not the standard library, torch or networkx")
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            root = module.split(".")[0]
            if node.level > 1:
                problems.append(f"{where}: relative imports must stay within passes/")
            elif node.level == 1:
                continue
            elif root == "fxrep":
                if module != "fxrep" or any(alias.name != "pass_api" for alias in node.names):
                    problems.append(f"{where}: {RULE}")
            elif root not in ALLOWED_PACKAGES:
                problems.append(f"{where}: {module} is not the standard library, torch or networkx")
        else:
            argument = node.args[0] if node.args else None
            if isinstance(argument, ast.Constant) and str(argument.value).startswith("fxrep"):
                problems.append(f"{where}: {RULE} (no dynamic imports of fxrep modules)")
    return problems


def _is_dynamic_import(call: ast.Call) -> bool:
    function = call.func
    name = function.attr if isinstance(function, ast.Attribute) else getattr(function, "id", "")
    return name in ("import_module", "__import__")


def pass_files() -> list[Path]:
    return sorted(PASSES.glob("*.py"))


def test_there_are_passes_to_check():
    assert len(pass_files()) >= 4


@pytest.mark.parametrize("path", pass_files(), ids=lambda path: path.name)
def test_pass_imports_only_the_public_api(path: Path):
    problems = import_violations(path.read_text(), f"passes/{path.name}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("source, expected", [
    ("from fxrep import pass_api as api", None),
    ("import fxrep.pass_api", None),
    ("from .fold_batchnorm import FoldBatchNorm", None),
    ("import torch.nn.functional as F\nimport networkx as nx\nfrom collections import Counter", None),
    ("from fxrep.ops import Conv", "x.py:1: `from fxrep.ops import Conv`: passes may import from fxrep only"),
    ("import os\nfrom fxrep import optimize", "x.py:2: `from fxrep import optimize`"),
    ("from fxrep.pass_api import Conv", "x.py:1: `from fxrep.pass_api import Conv`"),
    ("import fxrep.rewriter", "x.py:1: `import fxrep.rewriter`"),
    ("from ..rewriter import Rewriter", "relative imports must stay within passes/"),
    ("import numpy as np", "numpy is not the standard library"),
    ("def f():\n    import importlib\n    return importlib.import_module('fxrep.ops')", "x.py:3"),
], ids=["api", "import-api", "relative", "allowed-packages", "ops", "fxrep-top", "from-api", "rewriter",
        "parent-relative", "numpy", "dynamic"])
def test_checker_names_file_line_and_import(source: str, expected: str | None):
    problems = import_violations(source, "x.py")
    if expected is None:
        assert problems == []
    else:
        assert len(problems) == 1 and expected in problems[0], problems


def _imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in a module of fxrep, TYPE_CHECKING ones included."""
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[:len(package.split(".")) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            found += [(node.lineno, f"{module}.{alias.name}") for alias in node.names]
    return found


def test_fxrep_modules_do_not_import_the_pass_api():
    """Internal code imports a name from the module that defines it; ``pass_api`` is for passes and users."""
    problems = [f"{path.relative_to(ROOT)}:{line}: imports {module}"
                for path in sorted(FXREP.rglob("*.py")) if path.name != "pass_api.py"
                for line, module in _imported_modules(path) if "pass_api" in module.split(".")]
    assert not problems, "\n".join(problems)


def test_patterns_import_no_private_module_of_another_package():
    problems = [f"{path.relative_to(ROOT)}:{line}: imports {module}"
                for path in sorted((FXREP / "patterns").glob("*.py"))
                for line, module in _imported_modules(path)
                if module.startswith("fxrep.") and not module.startswith("fxrep.patterns.")
                and any(part.startswith("_") and part != "__future__" for part in module.split(".")[:-1])]
    assert not problems, "\n".join(problems)


PUBLIC_HOMES = ("fxrep.ops", "fxrep.algebra", "fxrep.affine", "fxrep.cost", "fxrep.patterns", "fxrep.match",
                "fxrep.pass_base", "fxrep.rewriter")


def test_the_pass_api_re_exports_only_names_public_in_their_own_module():
    import importlib

    homes = {name: importlib.import_module(name) for name in PUBLIC_HOMES}
    for name in api.__all__:
        value = getattr(api, name)
        if name == "affine":
            assert value is homes["fxrep.affine"]
            continue
        owners = [home for home, module in homes.items()
                  if getattr(module, name, None) is value and name in getattr(module, "__all__", [name])]
        assert owners, f"pass_api.{name} is not a public name of {', '.join(PUBLIC_HOMES)}"


def test_the_pass_api_exports_exactly_its_all():
    exported = {name for name in vars(api) if not name.startswith("_")}
    assert exported == set(api.__all__)


def _documented_names() -> dict[str, set[str]]:
    """``{"fxrep": {...}, "fxrep.pass_api": {...}}``: the names docs/api.md lists, one ``- `name` `` line each."""
    sections: dict[str, set[str]] = {}
    current = None
    for line in (ROOT / "docs" / "api.md").read_text().splitlines():
        if line.startswith("## "):
            current = "fxrep.pass_api" if "pass_api" in line else "fxrep" if "`fxrep`" in line else None
        elif current and line.startswith("- `"):
            sections.setdefault(current, set()).add(line[3:].split("`")[0].split("(")[0])
    return sections


def test_the_api_page_lists_every_public_name_once():
    documented = _documented_names()
    assert documented.get("fxrep.pass_api") == set(api.__all__)
    assert documented.get("fxrep") == set(fxrep.__all__) - {"__version__"}


@dataclass(frozen=True)
class Exploding(api.Pass):
    """A user pass with a bug."""

    name: ClassVar[str] = "exploding"

    def __call__(self, gm):
        raise RuntimeError("boom")


def test_a_failing_user_pass_is_named_with_the_passes_before_it():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)).eval()
    with pytest.raises(fxrep.PassError) as raised:
        fxrep.optimize(model, (torch.randn(1, 3, 8, 8),), passes=[FoldBatchNorm(), Exploding()])
    error = raised.value
    assert error.pass_name == "exploding" and error.previous == ["fold_batchnorm"]
    assert "pass 'exploding' failed with RuntimeError: boom" in str(error)
    assert "passes that ran before it (in order): fold_batchnorm" in str(error)
    assert isinstance(error.__cause__, RuntimeError)
