"""Affine regions: the connected pieces of a graph's affine ops, with every entry and exit.

The graph becomes a networkx DiGraph of data edges. Nodes no graph input reaches are parameter-only
constants (weights) and are left out. Every other node is classified by `affine_op`. Two affine
nodes belong to the same region when one reads the other; a region is therefore a connected DAG of
affine ops between non-linearities, graph inputs and outputs, and

- its *entries* are the tensors its ops read from outside (materialised anyway);
- its *exits* are the members whose value is read outside the region (by a non-linearity, the
  graph output, or an argument an affine op does not treat as its input). A region may have any
  number of exits; a value with several users inside the region is not an exit.

Which values a region materialises besides its exits, and how, is the planner's job
(`fxrep.affine.planner`); this module only says what the region is.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import networkx as nx
import torch
from torch.fx import GraphModule, Node

from ..lean.input_check import is_guards_call
from .ops import AffineOp, LayoutOp, affine_op

_SIDE_EFFECT_TARGETS = (
    torch.ops.aten._assert_tensor_metadata.default,
    torch.ops.aten._assert_async.msg,
    torch.ops.aten._assert_scalar.default,
)


@dataclass(frozen=True, eq=False)
class Region:
    """A connected set of affine nodes (see the module docstring), self-contained for planning."""

    nodes: tuple[Node, ...]
    """Members in topological (graph) order."""
    entries: tuple[Node, ...]
    exits: tuple[Node, ...]
    ops: Mapping[Node, AffineOp]
    """The `AffineOp` of every member."""

    @property
    def members(self) -> frozenset[Node]:
        return frozenset(self.nodes)

    @property
    def exit(self) -> Node:
        """The last exit (the one the region's decision is named after)."""
        return self.exits[-1]

    def member_inputs(self, node: Node) -> tuple[Node, ...]:
        """The inputs of ``node``'s op that are members, without repeats."""
        members = self.members
        return tuple(dict.fromkeys(i for i in self.ops[node].inputs if i in members))

    def member_reads(self, node: Node) -> tuple[Node, ...]:
        """Every member the original ``node`` reads: its op's inputs, and tensors it reads only for their
        shape (``reshape_as``'s template), which must exist for the node to stay as it is."""
        members = self.members
        return tuple(dict.fromkeys((*self.member_inputs(node), *(i for i in node.all_input_nodes if i in members))))


@dataclass
class RegionAnalysis:
    """The regions of a graph plus what was learned on the way (why nodes are not affine)."""

    regions: list[Region]
    not_affine: dict[Node, str] = field(default_factory=dict)
    """Nodes recognised as an op fxrep knows but not affine here, with the reason."""
    constants: set[Node] = field(default_factory=set)


def dataflow_graph(gm: GraphModule) -> nx.DiGraph:
    """The graph's data edges as a networkx DiGraph (``get_attr`` nodes included)."""
    graph = nx.DiGraph()
    for node in gm.graph.nodes:
        graph.add_node(node)
        for source in node.all_input_nodes:
            graph.add_edge(source, node)
    return graph


def constant_nodes(gm: GraphModule, graph: nx.DiGraph | None = None) -> set[Node]:
    """Nodes that no graph input reaches: parameters, buffers and computations on them only."""
    graph = dataflow_graph(gm) if graph is None else graph
    reached: set[Node] = set()
    for node in gm.graph.nodes:
        if node.op == "placeholder":
            reached.add(node)
            reached |= nx.descendants(graph, node)
    return {n for n in gm.graph.nodes if n not in reached and n.op not in ("output", "placeholder")}


def is_side_effect_only(node: Node) -> bool:
    """Assertion-like nodes that read a tensor without using its value (ignored as users)."""
    if node.op == "call_function" and node.target in _SIDE_EFFECT_TARGETS:
        return True
    return is_guards_call(node)


def find_regions(gm: GraphModule, allow: Callable[[AffineOp], bool] | None = None) -> RegionAnalysis:
    """The affine regions of ``gm`` (module docstring); ``allow`` restricts which ops may take part."""
    constants = constant_nodes(gm)
    analysis = RegionAnalysis([], constants=constants)
    ops: dict[Node, AffineOp] = {}
    for node in gm.graph.nodes:
        if node in constants:
            continue
        found = affine_op(node)
        if found:
            if allow is None or allow(found.value):
                ops[node] = found.value
        elif found.reason:
            analysis.not_affine[node] = found.reason

    linked = nx.Graph()
    linked.add_nodes_from(ops)
    for node, op in ops.items():
        linked.add_edges_from((node, i) for i in op.inputs if i in ops)
    order = {node: index for index, node in enumerate(gm.graph.nodes)}
    absorbed_by = {part: op.node for op in ops.values() for part in op.absorbed}
    components = sorted((sorted(c, key=order.__getitem__) for c in nx.connected_components(linked)),
                        key=lambda nodes: order[nodes[0]])
    for nodes in components:
        members = set(nodes)
        entries = [i for n in nodes for i in ops[n].inputs if i not in members]
        exits = [n for n in nodes if _read_outside(n, members, ops, absorbed_by)]
        if not exits:
            continue  # nothing reads the region: dead code, which the rewriter's clean-up removes
        region_ops = {n: ops[n] for n in nodes}
        analysis.regions.append(Region(tuple(nodes), tuple(dict.fromkeys(entries)), tuple(exits), region_ops))
    return analysis


def _read_outside(node: Node, members: set[Node], ops: Mapping[Node, AffineOp],
                  absorbed_by: Mapping[Node, Node]) -> bool:
    """Whether some reader of ``node`` needs its value as a tensor (not an op of the region reading it)."""
    for user in node.users:
        if is_side_effect_only(user):
            continue
        owner = absorbed_by.get(user, user)
        if owner not in members:
            return True
        if node not in ops[owner].inputs and not _shape_template(ops[owner]):
            return True
    return False


def _shape_template(op: AffineOp) -> bool:
    """A layout op, which reads any argument besides its input for the shape only (``reshape_as``)."""
    return isinstance(op, LayoutOp)
