"""`PassManager`: run passes in order, repeatedly, until none changes the graph.

After each pass the graph is linted; an exception inside a pass (or a broken graph after it) is
re-raised as `PassError` naming the pass and every pass that ran before it. ``max_iterations`` caps
the rounds, so a pass that always claims a change cannot loop forever (the cap is recorded).
``dump`` names passes whose graph before and after is written to ``dump_dir`` (as code), to see what
a pass did. After every pass run it records which pass created each new node and which pass
replaced each node (`pass_changes`), so verification can name the pass behind a rewritten region.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from torch.fx import GraphModule

from .errors import PassError
from .pass_base import Pass, PassResult
from .rewriter import RENAMES_KEY

CHANGES_KEY = "fxrep_pass_changes"
"""``gm.meta[CHANGES_KEY]``: ``{"created": {node: pass}, "replaced": {node: pass}}``; read it with `pass_changes`."""


@dataclass
class PassRecord:
    """One run of one pass."""

    name: str
    iteration: int
    result: PassResult
    seconds: float


@dataclass(frozen=True)
class PassChanges:
    """Which pass made each change to a graph (recorded by `PassManager` after every pass run)."""

    created: dict[str, str]
    """Name of every node a pass added -> that pass."""
    replaced: dict[str, str]
    """Name of every node a pass replaced (`Rewriter.replace`, see ``RENAMES_KEY``) -> that pass."""


def pass_changes(gm: GraphModule) -> PassChanges:
    """The `PassChanges` recorded on ``gm`` (empty for a graph no `PassManager` ran on)."""
    recorded = gm.meta.get(CHANGES_KEY, {})
    return PassChanges(dict(recorded.get("created", {})), dict(recorded.get("replaced", {})))


@dataclass
class PipelineRun:
    """Every pass run, in order, and whether the pipeline reached a fixed point."""

    records: list[PassRecord] = field(default_factory=list)
    converged: bool = True
    iterations: int = 0


class PassManager:
    """Runs ``passes`` to a fixed point (see the module docstring)."""

    def __init__(self, passes: Sequence[Pass], *, max_iterations: int = 8, lint: bool = True,
                 dump: Iterable[str] = (), dump_dir: str | Path | None = None) -> None:
        for item in passes:
            if not callable(item):
                raise TypeError(f"{item!r} is not a pass: passes are callables gm -> PassResult")
        if max_iterations < 1:
            raise ValueError("max_iterations must be at least 1")
        self.passes = list(passes)
        self.max_iterations = max_iterations
        self.lint = lint
        self.dump = set(dump)
        self.dump_dir = Path(dump_dir) if dump_dir is not None else Path("fxrep_dump")

    def run(self, gm: GraphModule, after_change: Callable[[str, list[str]], None] | None = None) -> PipelineRun:
        """Run to a fixed point; ``after_change(pass_name, previous)`` is called after every change."""
        run = PipelineRun()
        for iteration in range(self.max_iterations):
            run.iterations = iteration + 1
            changed = False
            for item in self.passes:
                result = self._run_one(item, gm, iteration, run)
                changed |= bool(result)
                if result and after_change is not None:
                    after_change(run.records[-1].name, [r.name for r in run.records[:-1]])
            if not changed:
                return run
        run.converged = False
        return run

    def _run_one(self, item: Pass, gm: GraphModule, iteration: int, run: PipelineRun) -> PassResult:
        name = pass_name(item)
        previous = [record.name for record in run.records]
        if name in self.dump:
            self._write(gm, f"{len(run.records):03d}_{name}_before.py")
        names, renamed = {node.name for node in gm.graph.nodes}, set(gm.meta.get(RENAMES_KEY, ()))
        start = time.perf_counter()
        try:
            result = item(gm)
            if not isinstance(result, PassResult):
                result = PassResult(modified=bool(result))
            if self.lint:
                gm.graph.lint()
        except PassError:
            raise
        except Exception as error:
            raise PassError(name, previous, error) from error
        run.records.append(PassRecord(name, iteration, result, time.perf_counter() - start))
        _record_changes(gm, name, names, renamed)
        if name in self.dump:
            self._write(gm, f"{len(run.records) - 1:03d}_{name}_after.py")
        return result

    def _write(self, gm: GraphModule, filename: str) -> None:
        self.dump_dir.mkdir(parents=True, exist_ok=True)
        (self.dump_dir / filename).write_text(gm.code)


def _record_changes(gm: GraphModule, name: str, names_before: set[str], renamed_before: set[str]) -> None:
    """Attribute the nodes that appeared and the replacements made since the sets were taken to pass ``name``."""
    recorded = gm.meta.setdefault(CHANGES_KEY, {"created": {}, "replaced": {}})
    for node in gm.graph.nodes:
        if node.name not in names_before:
            recorded["created"][node.name] = name
    for replaced in gm.meta.get(RENAMES_KEY, {}).keys() - renamed_before:
        recorded["replaced"][replaced] = name


def pass_name(item: object) -> str:
    """A pass's ``name`` (falls back to the class or function name)."""
    name = getattr(item, "name", None)
    if isinstance(name, str) and name != "pass":
        return name
    return getattr(item, "__name__", type(item).__name__)
