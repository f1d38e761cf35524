"""Naming a rewritten region: its nodes, module path, the pass that wrote it and the rule.

A local check fails at an exit: an original node whose value the final graph does not reproduce.
To say where, `RegionNamer.region_of` gathers what the pipeline recorded about that exit:

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


class RegionNamer:
    """Names the regions of one rewritten graph (module docstring); built once, asked once per exit."""

    def __init__(self, original: GraphModule, final: GraphModule, correspondence: Correspondence,
                 changes: PassChanges, summaries: Sequence[PassSummary]) -> None:
        self.correspondence, self.changes = correspondence, changes
        self.originals = {node.name: node for node in original.graph.nodes}
        self.position = {node: index for index, node in enumerate(final.graph.nodes)}
        self.created_order = {name: index for index, name in enumerate(changes.created)}
        self.rewrites: dict[str, list[tuple[str, str]]] = {}
        self.decisions: dict[str, list[tuple[str, CostDecision]]] = {}
        self.fired: dict[str, list[str]] = {}
        for summary in summaries:
            self.fired[summary.name] = [rule for rule in summary.fired if rule != "regions"]
            for rewrite in summary.rewrites:
                self.rewrites.setdefault(rewrite.node, []).append((summary.name, rewrite.rule))
            for decision in summary.decisions:
                for member in decision.members:
                    self.decisions.setdefault(member, []).append((summary.name, decision))

    def region_of(self, exit_name: str, final_node: Node) -> Region:
        """The region whose local check compares ``final_node`` with the original node ``exit_name``."""
        chain = self.correspondence.chains.get(exit_name, ())
        computing = self._computing(final_node)
        if chain:
            passes = _in_order(self.changes.replaced.get(name) for name in chain)
        else:  # a surviving node a pass changed: blame whoever made the nodes (constants too) it reads now
            passes = self._creators(computing)
        names = dict.fromkeys((*chain, exit_name))
        rules = [rule for name in names for pass_, rule in self.rewrites.get(name, ()) if pass_ in passes]
        if not rules and passes and len(self.fired.get(passes[-1], ())) == 1:
            rules = self.fired[passes[-1]]
        found = [decision for name in names for pass_, decision in self.decisions.get(name, ()) if pass_ in passes]
        decision = ([d for d in found if d.applied] or found or [None])[-1]
        original_node = self.originals.get(exit_name)
        module = module_path_of(original_node) if original_node is not None else ""
        if not module and decision is not None:
            module = decision.module
        return Region(passes, rules[-1] if rules else None, module, (exit_name,),
                      tuple(node.name for node in computing), decision)

    def raised(self, node: Node) -> Region:
        """The region of a final node that raised during the local run."""
        exits = self.correspondence.checks.get(node.name, ())
        return Region(self._creators([node]), None, module_path_of(node), exits, (node.name,))

    def _computing(self, node: Node) -> list[Node]:
        """``node`` and the new nodes behind it, up to nodes that stand for original ones (the entries)."""
        found, stack = {node}, [node]
        while stack:
            for source in stack.pop().all_input_nodes:
                if source.name not in self.correspondence.origin and source.op != "get_attr" and source not in found:
                    found.add(source)
                    stack.append(source)
        return sorted(found, key=self.position.__getitem__)

    def _creators(self, nodes: Sequence[Node]) -> tuple[str, ...]:
        """The passes that created ``nodes`` or the nodes (constants too) they read, in the order they ran."""
        read = {source.name for node in nodes for source in [node, *node.all_input_nodes]}
        made = sorted((name for name in read if name in self.created_order), key=self.created_order.__getitem__)
        return _in_order(self.changes.created[name] for name in made)


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


def _in_order(passes: Iterable[str | None]) -> tuple[str, ...]:
    ordered: list[str] = []
    for name in passes:
        if name is not None and (not ordered or ordered[-1] != name):
            ordered.append(name)
    return tuple(ordered)


def _listed(names: Sequence[str]) -> str:
    if len(names) <= _LISTED:
        return ", ".join(names)
    return ", ".join(names[:_LISTED]) + f" and {len(names) - _LISTED} more"
