"""Linear regions: maximal single-exit subgraphs of linear ops, found on the graph's data-flow DAG.

The graph is turned into a networkx DiGraph of data edges. Nodes no graph input reaches are
parameter-only constants (weights) and are left out. Every other node is classified by
`linear_op`. A linear node joins the region of its users when all of its users are linear and
belong to one region; otherwise it is the exit of its own region. Sweeping the DAG in reverse
topological order decides every node after all its users, so each region is

- single-exit: only the exit's value is used outside the region (interior values may be read by
  several ops inside it, e.g. the input of parallel branches);
- maximal: growing it by an input would let that input's value escape to another user.

A region may have several entries (tensors it reads from outside). The collapse pass evaluates
each region into `AffineValue`s and decides what to emit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import networkx as nx
import torch
from torch.fx import GraphModule, Node

from .ops import LinearOp, linear_op

_SIDE_EFFECT_TARGETS = (
    torch.ops.aten._assert_tensor_metadata.default,
    torch.ops.aten._assert_async.msg,
    torch.ops.aten._assert_scalar.default,
)


@dataclass(frozen=True, eq=False)
class Region:
    """A single-exit set of linear nodes, in topological order with the exit last."""

    exit: Node
    nodes: tuple[Node, ...]
    entries: tuple[Node, ...]


@dataclass
class RegionAnalysis:
    """Regions of a graph plus what was learned on the way (why nodes are not linear or are shared)."""

    regions: list[Region]
    ops: dict[Node, LinearOp]
    not_linear: dict[Node, str] = field(default_factory=dict)
    shared: dict[Node, str] = field(default_factory=dict)
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
    return node.op == "call_module" and str(node.target) == "_guards_fn"


def find_linear_regions(gm: GraphModule, allow: Callable[[LinearOp], bool] | None = None) -> RegionAnalysis:
    """Partition the linear nodes of ``gm`` into maximal single-exit regions (module docstring).

    ``allow`` restricts which linear ops may take part (e.g. only conv and BatchNorm).
    """
    graph = dataflow_graph(gm)
    constants = constant_nodes(gm, graph)
    analysis = RegionAnalysis([], {}, constants=constants)
    for node in gm.graph.nodes:
        if node in constants:
            continue
        op = linear_op(node)
        if isinstance(op, LinearOp) and (allow is None or allow(op)):
            analysis.ops[node] = op
        elif isinstance(op, str):
            analysis.not_linear[node] = op

    absorbed_by = {part: op.node for op in analysis.ops.values() for part in op.absorbed}
    owner: dict[Node, Node] = {}
    for node in reversed(list(nx.topological_sort(graph))):
        if node not in analysis.ops:
            continue
        users = list(dict.fromkeys(absorbed_by.get(u, u) for u in node.users if not is_side_effect_only(u)))
        if users and all(u in analysis.ops for u in users):
            exits = {owner[u] for u in users}
            if len(exits) == 1:
                owner[node] = exits.pop()
                continue
            analysis.shared[node] = (
                f"{node.name} feeds {len(users)} users ({', '.join(u.name for u in users)}) that end in "
                "different places, so folding into it would change the other uses"
            )
        elif len(users) > 1 and any(u in analysis.ops for u in users):
            analysis.shared[node] = (
                f"{node.name} feeds {len(users)} users ({', '.join(u.name for u in users)}), not all of them "
                "linear, so folding into it would change the other uses"
            )
        owner[node] = node

    members: dict[Node, list[Node]] = {}
    for node in gm.graph.nodes:
        if node in owner:
            members.setdefault(owner[node], []).append(node)
    for exit_, nodes in members.items():
        inside = set(nodes)
        entries = [i for n in nodes for i in analysis.ops[n].inputs if i not in inside]
        analysis.regions.append(Region(exit_, tuple(nodes), tuple(dict.fromkeys(entries))))
    return analysis
