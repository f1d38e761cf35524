"""Naming a rewritten region: its nodes, module path, the pass that wrote it and the rule.

A local check fails at an exit: an original node whose value the final graph does not reproduce.
To say where, `region_of` gathers what the pipeline recorded about that exit:

- the passes: the chain of `Rewriter.replace` calls that led from the original node to its final
  node (``PassChanges.replaced``; a value re-expressed by two passes names both, in order, and the
  last one wrote the final node), or, for a survivor a pass rewired, the passes that created the
  new nodes it now reads (``PassChanges.created``);
- the rule: the `Rewrite` a pass recorded for one of those names, or the pass's only rule;
- the planner's region: the `CostDecision` whose ``members`` hold the exit (its exit node, members
  and note), when the pass planned one;
- the module path of the original node, and the final nodes that compute the exit (the exit's
  node and the new nodes behind it up to the region's entries).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from torch.fx import GraphModule, Node

from ..pass_base import CostDecision, module_path_of
from ..pass_manager import PassChanges
from .correspondence import Correspondence

if TYPE_CHECKING:
    from ..report import PassSummary

_LISTED = 6
"""How many node names a description lists before saying how many more there are."""
_NOTE = 160
"""How much of a planner's decision note a description quotes."""


@dataclass(frozen=True)
class Region:
    """A rewritten piece of the graph, as the report and `EquivalenceError` name it."""

    passes: tuple[str, ...]
    """The passes that wrote it, in order (the last one wrote its final nodes); empty if unknown."""
    rule: str | None
    module: str
    exits: tuple[str, ...]
    """The original nodes whose values it must reproduce."""
    nodes: tuple[str, ...]
    """The final graph's nodes that compute it."""
    decision: CostDecision | None = None
    """The planner's decision for it, when a pass planned it as a region (its ``members`` and note)."""

    @property
    def pass_name(self) -> str | None:
        return self.passes[-1] if self.passes else None

    def describe(self) -> str:
        """``pass 'p' (rule r) at module m: original nodes a, b -> final nodes x, y; planned region ...``."""
        if not self.passes:
            who = "a change no pass recorded (made without fxrep's Rewriter)"
        elif len(self.passes) == 1:
            who = f"pass {self.passes[0]!r}"
        else:
            who = "passes " + " then ".join(repr(p) for p in self.passes)
        rule = f" (rule {self.rule!r})" if self.rule else ""
        where = f" at module {self.module!r}" if self.module else ""
        if self.exits:
            text = f"{who}{rule}{where}: original {_listed(self.exits)} -> final {_listed(self.nodes)}"
        else:
            text = f"{who}{rule}{where}: new node {_listed(self.nodes)}"
        if self.decision is not None:
            note = self.decision.note if len(self.decision.note) <= _NOTE else self.decision.note[:_NOTE] + "..."
            text += (f"; the planner's region of {len(self.decision.members)} nodes ending at "
                     f"{self.decision.node} ({_listed(self.decision.members)}; {note})")
        return text

    def brief(self) -> str:
        """``pass 'p' at module m, exit a`` (for summary lines)."""
        who = f"pass {self.pass_name!r}" if self.pass_name else "an unrecorded change"
        where = f" at module {self.module!r}" if self.module else ""
        more = f" and {len(self.exits) - 1} more" if len(self.exits) > 1 else ""
        return f"{who}{where}, exit {self.exits[0]}{more}" if self.exits else f"{who}{where}"


@dataclass
class RegionResult:
    """One region's local check: its worst exit error over all input sets, and whether it failed."""

    region: Region
    max_abs: float = 0.0
    max_rel: float = 0.0
    inputs: str = ""
    """The input set of the worst error."""
    exit: str = ""
    """The exit with the worst error."""
    problem: str | None = None
    """Why the comparison could not be made (a node raised, another shape), if so."""
    failed: bool = False
    notes: list[str] = field(default_factory=list)
    """Comparisons beyond the tolerance that the float64 reference showed to be the region's own rounding."""


def region_of(exit_name: str, final_node: Node, correspondence: Correspondence, changes: PassChanges,
              summaries: Sequence[PassSummary], original: GraphModule) -> Region:
    """The region whose local check is the comparison of ``final_node`` with the original node ``exit_name``."""
    chain = correspondence.chains.get(exit_name, ())
    nodes = _computing(final_node, correspondence)
    if chain:
        passes = _in_order(changes.replaced.get(name) for name in chain)
    else:  # a surviving node a pass changed: blame whoever made the nodes (constants too) it reads now
        computing = [n for n in final_node.graph.nodes if n.name in set(nodes)]
        passes = _creators(computing, changes)
    names = set(chain) | {exit_name}
    rule, decision = _rule(names, passes, summaries), _decision(names, passes, summaries)
    original_node = next((n for n in original.graph.nodes if n.name == exit_name), None)
    module = module_path_of(original_node) if original_node is not None else ""
    if not module and decision is not None:
        module = decision.module
    return Region(passes, rule, module, (exit_name,), nodes, decision)


def raised_region(node: Node, correspondence: Correspondence, changes: PassChanges) -> Region:
    """The region of a final node that raised during the local run."""
    passes = _creators([node], changes)
    exits = correspondence.checks.get(node.name, ())
    return Region(passes, None, module_path_of(node), exits, (node.name,))


def region_key(region: Region) -> Any:
    """Regions with one key are one: the same passes and planned region, or the same final nodes."""
    return region.passes, region.decision.node if region.decision is not None else region.nodes


def merge(regions: Sequence[Region]) -> Region:
    """One region holding the exits and nodes of ``regions`` (which share a `region_key`)."""
    first = regions[0]
    exits = tuple(dict.fromkeys(name for region in regions for name in region.exits))
    nodes = tuple(dict.fromkeys(name for region in regions for name in region.nodes))
    rule = next((region.rule for region in regions if region.rule), None)
    return Region(first.passes, rule, first.module, exits, nodes, first.decision)


def _computing(node: Node, correspondence: Correspondence) -> tuple[str, ...]:
    """``node`` and the new nodes behind it, up to nodes that stand for original ones (the entries)."""
    found, stack = [node], [node]
    while stack:
        for source in stack.pop().all_input_nodes:
            if source.name not in correspondence.origin and source.op != "get_attr" and source not in found:
                found.append(source)
                stack.append(source)
    order = {n: i for i, n in enumerate(node.graph.nodes)}
    return tuple(n.name for n in sorted(found, key=order.__getitem__))


def _creators(nodes: Sequence[Node], changes: PassChanges) -> tuple[str, ...]:
    """The passes that created ``nodes`` or the nodes (constants too) they read, in the order they ran."""
    read = {source.name for node in nodes for source in [node, *node.all_input_nodes]}
    return _in_order(changes.created[name] for name in changes.created if name in read)  # recorded in run order


def _in_order(passes: Iterable[str | None]) -> tuple[str, ...]:
    ordered: list[str] = []
    for name in passes:
        if name is not None and (not ordered or ordered[-1] != name):
            ordered.append(name)
    return tuple(ordered)


def _rule(names: set[str], passes: tuple[str, ...], summaries: Sequence[PassSummary]) -> str | None:
    for summary in reversed([s for s in summaries if s.name in passes]):
        for rewrite in summary.rewrites:
            if rewrite.node in names:
                return rewrite.rule
    last = next((s for s in summaries if passes and s.name == passes[-1]), None)
    rules = [rule for rule in (last.fired if last is not None else {}) if rule != "regions"]
    return rules[0] if len(rules) == 1 else None


def _decision(names: set[str], passes: tuple[str, ...], summaries: Sequence[PassSummary]) -> CostDecision | None:
    candidates = [d for s in summaries if s.name in passes for d in s.decisions if names & set(d.members)]
    applied = [d for d in candidates if d.applied]
    return (applied or candidates or [None])[-1]


def _listed(names: Sequence[str]) -> str:
    if len(names) <= _LISTED:
        return ", ".join(names)
    return ", ".join(names[:_LISTED]) + f" and {len(names) - _LISTED} more"
