"""Load the scripts in ``examples/`` as modules, and run them as a user would, as scripts.

``load_example(name)`` imports ``examples/<name>.py`` so tests can check its pass directly.
The ``example_runs`` fixture starts every script at once in a fresh process (one torch thread
each, outside the repository), so the suite waits for the slowest script rather than for all of
them in a row; tests read each run's exit code and output once it is done.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SCRIPT_ARGUMENTS = {"repvgg_to_tensorrt": ["--size", "32", "--out", "{folder}"]}
TIMEOUT_SECONDS = 400


def load_example(name: str) -> ModuleType:
    """``examples/<name>.py`` imported once per session as ``fxrep_examples.<name>``."""
    module_name = f"fxrep_examples.{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # dataclasses look their module up while the class is created
    spec.loader.exec_module(module)
    return module


def example_names() -> list[str]:
    return sorted(path.stem for path in EXAMPLES.glob("*.py"))


@dataclass
class ScriptRun:
    """One ``python examples/<name>.py`` process; ``finish()`` waits for it and keeps its output."""

    process: subprocess.Popen
    folder: Path
    output: str | None = None

    def finish(self) -> ScriptRun:
        if self.output is None:
            self.output, _ = self.process.communicate(timeout=TIMEOUT_SECONDS)
        return self

    @property
    def returncode(self) -> int | None:
        return self.process.returncode


@pytest.fixture(scope="session")
def example_runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, ScriptRun]]:
    environment = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    runs = {}
    for name in example_names():
        folder = tmp_path_factory.mktemp(name)  # run outside the repository, as after `pip install fxrep`
        arguments = [argument.format(folder=folder) for argument in SCRIPT_ARGUMENTS.get(name, [])]
        process = subprocess.Popen([sys.executable, str(EXAMPLES / f"{name}.py"), *arguments], cwd=folder,
                                   env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        runs[name] = ScriptRun(process, folder)
    yield runs
    for run in runs.values():
        if run.process.poll() is None:
            run.process.kill()
            run.process.wait()
