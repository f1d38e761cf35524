"""How the GPU benchmark finds fxrep on a machine where it is not installed, and which compile backend it passes."""

from __future__ import annotations

import pathlib
import shutil
import subprocess
import sys
import textwrap

import preflight
import pytest

from .conftest import REPO_ROOT


def test_fxrep_imports_from_a_checkout_that_is_not_installed(tmp_path: pathlib.Path) -> None:
    """A copy of the checkout: fxrep (installed elsewhere) is refused, then imported from the copy, passes/ included."""
    copy = tmp_path / "checkout"
    for folder in ("fxrep", "passes"):
        shutil.copytree(REPO_ROOT / folder, copy / folder, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO_ROOT / "pyproject.toml", copy / "pyproject.toml")
    script = textwrap.dedent(f"""
        import pathlib, sys
        sys.path.insert(0, {str(REPO_ROOT / "benchmarks" / "gpu")!r})
        import preflight
        copy = pathlib.Path({str(copy)!r})
        try:
            preflight.check_imports(copy)
        except preflight.CannotRun as error:
            print("refused:", "not from this checkout" in str(error))
        print("how:", preflight.import_fxrep(copy))
        import fxrep, fxrep.passes
        print("fxrep:", pathlib.Path(fxrep.__file__).resolve().is_relative_to(copy))
        print("passes:", pathlib.Path(fxrep.passes.__file__).resolve() == copy / "passes" / "__init__.py")
        print("pipeline:", [type(p).__name__ for p in fxrep.passes.default_pipeline()][:1])
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "refused: True"
    assert lines[1] == "how: from the checkout by pyproject.toml's package-dir (not installed)"
    assert lines[2:4] == ["fxrep: True", "passes: True"]
    assert lines[4].startswith("pipeline: ['")


def test_this_checkout_is_the_fxrep_the_tests_import() -> None:
    preflight.check_imports(REPO_ROOT)  # the suite runs against this checkout, installed
    with pytest.raises(preflight.CannotRun, match="not from this checkout"):
        preflight.check_imports(REPO_ROOT / "benchmarks")


def test_compile_backend_is_the_registered_name_or_else_the_function(monkeypatch: pytest.MonkeyPatch) -> None:
    import compile_bench
    import torch

    from fxrep.lower.dynamo_backend import fxrep_backend

    if "fxrep" in torch.compiler.list_backends(exclude_tags=()):
        assert compile_bench.fxrep_backend()[0] == "fxrep"
    monkeypatch.setattr(torch.compiler, "list_backends", lambda exclude_tags=(): ["inductor"])
    backend, described = compile_bench.fxrep_backend()
    assert backend is fxrep_backend and "entry point not installed" in described
