"""Local translation validation: every rewritten region checked on the original graph's own values.

For each input set the original graph (the capture, before any pass) runs once and records only
the values of the `Correspondence`'s entries and exits. Then the final graph runs node by node:
each node that stands for an original node is, once computed (and, for an exit, compared with the
original's recorded value), replaced by the original's recorded value before its readers use it.
So every rewritten region computes its exits from exactly the original values at its entries, an
error cannot spread from one region into the next, and a failure names the one region that made
it (`fxrep.verify.regions`).

An exit passes when ``max |final - original| / max |original|`` is within the dtype tolerance
(`fxrep.verify.outputs.TOLERANCES`). A region's own rounding is far below it (a few units of
float32 rounding for a conv + BatchNorm pair: about 1e-6, against 1e-4), so no per-region float64
reference is needed for a region that passes. When an exit fails in float32 or half precision,
its float64 reference is computed where it is cheap: the original nodes between the region's
recorded entries and the exit are evaluated again in float64 (weights and entries cast), and the
rewrite passes if it is within the tolerance of that exact value, or no more than
`ROUNDING_FACTOR` times as far from it as the original's own evaluation in the model's dtype is
(an ill-conditioned region, where the original itself is that inexact; the report says so as a
warning). A float64 model has no higher precision to fall back on, so a failure stands.

The cost is one run of the original graph and one interpreted run of the final graph per input
set, holding the recorded values (entries and exits only, far fewer than the graph's nodes) of one
set at a time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch.fx import GraphModule, Node

from ..graph_facts import facts
from ..pass_manager import PassChanges
from .correspondence import Correspondence, correspond
from .outputs import ROUNDING_FACTOR, tolerance_for, value_error
from .regions import RegionNamer, RegionResult, merge, region_key
from .running import NodeRaised, float64_copy, leaves, map_leaves, run_graph, run_node64, to_float64

if TYPE_CHECKING:
    from ..report import PassSummary


@dataclass
class LocalCheck:
    """The local checks of one optimized graph: every region's worst error, and what was recorded."""

    tolerance: float
    regions: list[RegionResult] = field(default_factory=list)
    recorded: int = 0
    """How many original values a run records (the entries and exits)."""
    graph_nodes: int = 0
    """How many nodes the original graph has."""
    skipped: str | None = None

    @property
    def failures(self) -> list[RegionResult]:
        """The regions that failed, in the final graph's order."""
        return [result for result in self.regions if result.failed]

    @property
    def passed(self) -> bool:
        return not self.failures

    @property
    def warnings(self) -> list[str]:
        return [note for result in self.regions for note in result.notes]

    @property
    def worst(self) -> RegionResult | None:
        return max(self.regions, key=lambda r: r.max_rel, default=None)

    def describe(self) -> str:
        if self.skipped is not None:
            return f"local checks skipped ({self.skipped})"
        worst = self.worst
        where = f" ({worst.region.brief()})" if worst is not None and worst.max_rel > 0 else ""
        count = f"{len(self.regions)} rewritten region{'' if len(self.regions) == 1 else 's'}"
        return (f"{count} checked locally, {len(self.failures)} failed, max rel "
                f"error {worst.max_rel if worst else 0.0:.3g}{where}; {self.recorded} of the original graph's "
                f"{self.graph_nodes} values recorded")


def local_check(original: GraphModule, final: GraphModule, sets: Sequence[tuple[str, tuple[Any, ...]]],
                changes: PassChanges, summaries: Sequence[PassSummary], tolerance: float | None = None,
                correspondence: Correspondence | None = None) -> LocalCheck:
    """Check every rewritten region of ``final`` against ``original`` on every input set (module docstring)."""
    correspondence = correspondence or correspond(original, final)
    check = LocalCheck(tolerance if tolerance is not None else tolerance_for(sets[0][1]),
                       recorded=len(correspondence.recorded), graph_nodes=correspondence.original_nodes)
    finals = {node.name: node for node in final.graph.nodes}
    namer = RegionNamer(original, final, correspondence, changes, summaries)
    results = {exit_name: RegionResult(namer.region_of(exit_name, finals[name]), exit=exit_name)
               for name, exits in correspondence.checks.items() for exit_name in exits}
    copies = facts(original).level == "module"  # module graphs may hold in-place ops that overwrite values
    run = _SetRun(original, final, correspondence, namer, results, copies)
    for label, inputs in sets:
        if tolerance is None:
            check.tolerance = max(check.tolerance, tolerance_for(inputs))
        try:
            run.check(label, inputs, check.tolerance)
        except NodeRaised as raised:
            check.skipped = (f"the captured graph itself raised at {raised.node.name} on the {label} "
                             f"({type(raised.cause).__name__}: {raised.cause}); only the outputs are compared")
            return check
        if run.stopped:
            break
    check.regions = _by_region(list(results.values()), finals)
    return check


class _SetRun:
    """The local checks on one input set at a time, updating the per-exit results."""

    def __init__(self, original: GraphModule, final: GraphModule, correspondence: Correspondence,
                 namer: RegionNamer, results: dict[str, RegionResult], copies: bool) -> None:
        self.original, self.final, self.correspondence = original, final, correspondence
        self.namer, self.results, self.copies = namer, results, copies
        self.original64: GraphModule | None = None
        self.stopped = False

    def check(self, label: str, inputs: tuple[Any, ...], tolerance: float) -> None:
        """Record the original's entries and exits, then run the final graph comparing and substituting.

        Raises `NodeRaised` when the original graph itself cannot run; a final node that raises is
        a failure of its region, and stops the checks (``stopped``).
        """
        correspondence, results = self.correspondence, self.results
        recorded = _record(self.original, inputs, correspondence.recorded, self.copies)
        beyond: dict[str, Any] = {}  # exit -> the final value that is beyond the tolerance on this set

        def compare_and_substitute(node: Node, value: Any, read: list[Any]) -> Any:
            for exit_name in correspondence.checks.get(node.name, ()):
                error = _error(recorded[exit_name], value)
                result = results[exit_name]
                if isinstance(error, str):
                    if result.problem is None:
                        result.problem, result.inputs, result.failed = f"on the {label} {error}", label, True
                    continue
                if error[1] >= result.max_rel:
                    result.max_abs, result.max_rel, result.inputs = *error, label
                if error[1] > tolerance:
                    beyond[exit_name] = value
            found = correspondence.origin.get(node.name)
            if found is not None and found in recorded:
                return _fresh(recorded[found]) if self.copies else recorded[found]
            return value

        try:
            run_graph(self.final, inputs, compare_and_substitute)
        except NodeRaised as raised:
            results[f"raised:{raised.node.name}"] = RegionResult(
                self.namer.raised(raised.node), inputs=label, exit=raised.node.name,
                problem=f"on the {label} node {raised.node.name} raised {type(raised.cause).__name__}: "
                        f"{raised.cause}", failed=True)
            self.stopped = True
            return
        for exit_name, value in beyond.items():
            note = self._float64_note(results[exit_name], exit_name, value, recorded, inputs, label, tolerance)
            if note is None:
                results[exit_name].failed = True
            else:
                results[exit_name].notes.append(note)

    def _float64_note(self, result: RegionResult, exit_name: str, value: Any, recorded: dict[str, Any],
                      inputs: tuple[Any, ...], label: str, tolerance: float) -> str | None:
        """Why a comparison beyond the tolerance is the region's own rounding (module docstring), or None."""
        dtypes = {leaf.dtype for leaf in leaves(value) if isinstance(leaf, torch.Tensor) and leaf.is_floating_point()}
        if not dtypes or torch.float64 in dtypes:
            return None
        if self.original64 is None:
            self.original64 = float64_copy(self.original)
        try:
            exact = _evaluate64(self.original64, exit_name, recorded, inputs)
        except NodeRaised:
            return None
        rewritten, own = _error(exact, to_float64(value)), _error(exact, to_float64(recorded[exit_name]))
        if isinstance(rewritten, str) or isinstance(own, str):
            return None
        if rewritten[1] > max(tolerance, ROUNDING_FACTOR * own[1]):
            return None
        dtype = str(next(iter(dtypes))).removeprefix("torch.")
        return (f"{result.region.describe()}: on the {label} it differs from the original by {result.max_rel:.3g}, "
                f"more than the tolerance {tolerance:g}, but the region is ill-conditioned: evaluated exactly "
                f"(float64) from the same entries, the original's own {dtype} result is off by {own[1]:.3g} and the "
                f"rewrite's by {rewritten[1]:.3g} (accepted up to {ROUNDING_FACTOR:g}x the original's own error)")


def _record(original: GraphModule, inputs: tuple[Any, ...], names: frozenset[str], copies: bool) -> dict[str, Any]:
    recorded: dict[str, Any] = {}

    def keep(node: Node, value: Any, read: list[Any]) -> Any:
        if node.name in names:
            recorded[node.name] = _fresh(value) if copies else value
        return value

    run_graph(original, inputs, keep)
    return recorded


def _fresh(value: Any) -> Any:
    return map_leaves(value, lambda leaf: leaf.clone() if isinstance(leaf, torch.Tensor) else leaf)


def _error(expected: Any, actual: Any) -> tuple[float, float] | str:
    """The worst `value_error` over the leaves of two node values (a tensor, or a tuple of them)."""
    expected_leaves, actual_leaves = list(leaves(expected)), list(leaves(actual))
    if len(expected_leaves) != len(actual_leaves):
        return f"returns {len(actual_leaves)} values instead of {len(expected_leaves)}"
    worst = (0.0, 0.0)
    for expected_leaf, actual_leaf in zip(expected_leaves, actual_leaves, strict=True):
        error = value_error(expected_leaf, actual_leaf)
        if isinstance(error, str):
            return error
        if error is not None and error[1] > worst[1]:
            worst = error
    return worst


def _evaluate64(original64: GraphModule, exit_name: str, recorded: dict[str, Any], inputs: tuple[Any, ...]) -> Any:
    """The exit's value computed in float64 from the recorded values (or the inputs) behind it."""
    nodes = {node.name: node for node in original64.graph.nodes}
    placeholders = [node.name for node in original64.graph.find_nodes(op="placeholder")]
    flat_inputs = dict(zip(placeholders, original64.graph.process_inputs(*inputs), strict=True))
    needed, stack = {exit_name}, [nodes[exit_name]]
    while stack:
        node = stack.pop()
        if node.name != exit_name and (node.name in recorded or node.op in ("placeholder", "get_attr")):
            continue
        for source in node.all_input_nodes:
            if source.name not in needed:
                needed.add(source.name)
                stack.append(source)
    env: dict[str, Any] = {}
    for node in original64.graph.nodes:
        if node.name not in needed:
            continue
        if node.name != exit_name and node.name in recorded:
            env[node.name] = to_float64(recorded[node.name])
        elif node.op == "placeholder":
            env[node.name] = to_float64(flat_inputs[node.name])
        else:
            env[node.name] = run_node64(original64, node, env)
    return env[exit_name]


def _by_region(results: list[RegionResult], finals: dict[str, Node]) -> list[RegionResult]:
    """One result per region (the exits of one planned region together, each region's worst exit), in graph order."""
    grouped: dict[Any, list[RegionResult]] = {}
    for result in results:
        grouped.setdefault(region_key(result.region), []).append(result)
    position = {name: index for index, name in enumerate(finals)}
    merged = []
    for members in grouped.values():
        worst = max(members, key=lambda r: (r.failed, r.problem is not None, r.max_rel))
        merged.append(RegionResult(merge([r.region for r in members]), worst.max_abs, worst.max_rel, worst.inputs,
                                   worst.exit, worst.problem, any(r.failed for r in members),
                                   [note for r in members for note in r.notes]))
    return sorted(merged, key=lambda r: min((position.get(n, len(position)) for n in r.region.nodes),
                                            default=len(position)))
