"""A layered top-to-bottom layout of a DAG (Sugiyama style), computed with networkx only.

1. Layers: networkx's topological generations (a node sits one layer below its deepest input),
   so the branches that leave a fork side by side (RepVGG's 3x3, 1x1 and identity) share layers.
2. Edges that skip layers get a chain of dummy points, one per skipped layer, so they route
   around boxes and take part in ordering.
3. Order within layers: start from the caller's order (graph order), then barycenter sweeps
   down and up; the order with the fewest crossings wins.
4. Coordinates: each node is pulled toward the mean x of its neighbours, subject to keeping its
   layer's order with a minimum gap. Per layer that is an isotonic regression, solved exactly
   with pool-adjacent-violators, repeated a few times downward and upward.

Units are inches, y grows downward; a node's position is its centre.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass

import networkx as nx

SWEEPS = 6
BALANCING_ROUNDS = 12
DUMMY_WIDTH = 0.12


@dataclass(frozen=True)
class Layout:
    """Box centres, the bend points of each edge (dummy points between its ends), and the extent."""

    positions: dict[Hashable, tuple[float, float]]
    bends: dict[tuple[Hashable, Hashable], list[tuple[float, float]]]
    layers: list[list[Hashable]]
    width: float
    height: float


def layered_layout(graph: nx.DiGraph, sizes: Mapping[Hashable, tuple[float, float]], *,
                   column_gap: float = 0.25, layer_gap: float = 0.32) -> Layout:
    """Lay out ``graph`` (a DAG whose node order is the preferred left-to-right order).

    ``sizes`` maps each node to its (width, height) in inches.
    """
    order_hint = {node: index for index, node in enumerate(graph.nodes)}
    layer_of: dict[Hashable, int] = {}
    for depth, generation in enumerate(nx.topological_generations(graph)):
        for node in generation:
            layer_of[node] = depth
    layers: list[list[Hashable]] = [[] for _ in range(max(layer_of.values(), default=-1) + 1)]
    for node in sorted(graph.nodes, key=order_hint.__getitem__):
        layers[layer_of[node]].append(node)

    expanded, chains = _with_dummies(graph, layer_of, layers, order_hint)
    _order(expanded, layers)
    width_of = {n: sizes[n][0] if n in sizes else DUMMY_WIDTH for n in expanded.nodes}
    x = _coordinates(expanded, layers, width_of, column_gap)

    heights = [max((sizes[n][1] for n in layer if n in sizes), default=0.0) for layer in layers]
    y_of_layer, y = [], 0.0
    for height in heights:
        y_of_layer.append(y + height / 2)
        y += height + layer_gap
    left = min((x[n] - width_of[n] / 2 for n in x), default=0.0)
    right = max((x[n] + width_of[n] / 2 for n in x), default=0.0)
    positions = {n: (x[n] - left, y_of_layer[layer_of[n]]) for n in graph.nodes}
    bends = {edge: [(x[d] - left, y_of_layer[layer_of[edge[0]] + i + 1]) for i, d in enumerate(dummies)]
             for edge, dummies in chains.items()}
    return Layout(positions, bends, [[n for n in layer if n in graph] for layer in layers],
                  right - left, max(y - layer_gap, 0.0))


def crossings(graph: nx.DiGraph, layers: list[list[Hashable]]) -> int:
    """Edge crossings between adjacent layers (edges must join adjacent layers)."""
    total = 0
    for upper, lower in zip(layers, layers[1:], strict=False):
        upper_index = {n: i for i, n in enumerate(upper)}
        lower_index = {n: i for i, n in enumerate(lower)}
        ends = [(upper_index[u], lower_index[v]) for u in upper for v in graph.successors(u) if v in lower_index]
        total += sum(1 for i, (a1, b1) in enumerate(ends) for a2, b2 in ends[i + 1:]
                     if (a1 - a2) * (b1 - b2) < 0)
    return total


@dataclass(frozen=True)
class _Dummy:
    """A bend point of the long edge ``source -> target``, in the ``index``-th skipped layer."""

    source: Hashable
    target: Hashable
    index: int


def _with_dummies(graph, layer_of, layers, order_hint):
    """A copy of ``graph`` whose long edges run through one dummy node per skipped layer."""
    expanded = nx.DiGraph()
    expanded.add_nodes_from(graph.nodes)
    chains: dict[tuple[Hashable, Hashable], list[_Dummy]] = {}
    for u, v in graph.edges:
        span = layer_of[v] - layer_of[u]
        if span <= 1:
            expanded.add_edge(u, v)
            continue
        dummies = [_Dummy(u, v, i) for i in range(span - 1)]
        nx.add_path(expanded, [u, *dummies, v])
        for i, dummy in enumerate(dummies):
            layers[layer_of[u] + i + 1].append(dummy)
        chains[(u, v)] = dummies

    def hint(node: Hashable) -> float:
        return order_hint[node.source] + 0.5 if isinstance(node, _Dummy) else order_hint[node]

    for index, layer in enumerate(layers):
        layers[index] = sorted(layer, key=hint)
    return expanded, chains


def _order(graph: nx.DiGraph, layers: list[list[Hashable]]) -> None:
    """Reorder ``layers`` in place with barycenter sweeps, keeping the order with fewest crossings."""
    best, best_count = [list(layer) for layer in layers], crossings(graph, layers)
    for sweep in range(SWEEPS):
        downward = sweep % 2 == 0
        indices = range(1, len(layers)) if downward else range(len(layers) - 2, -1, -1)
        for index in indices:
            fixed = layers[index - 1] if downward else layers[index + 1]
            position = {n: i for i, n in enumerate(fixed)}
            neighbours = graph.predecessors if downward else graph.successors
            keys = {}
            for current, node in enumerate(layers[index]):
                linked = [position[m] for m in neighbours(node) if m in position]
                keys[node] = (sum(linked) / len(linked) if linked else current, current)
            layers[index] = sorted(layers[index], key=keys.__getitem__)
        count = crossings(graph, layers)
        if count < best_count:
            best, best_count = [list(layer) for layer in layers], count
    layers[:] = best


def _coordinates(graph, layers, width_of, gap) -> dict[Hashable, float]:
    x: dict[Hashable, float] = {}
    for layer in layers:
        x.update(zip(layer, _packed(layer, width_of, gap, [0.0] * len(layer)), strict=True))
    for round_ in range(BALANCING_ROUNDS):
        sequence = layers if round_ % 2 == 0 else layers[::-1]
        for layer in sequence:
            desired = []
            for node in layer:
                linked = [x[m] for m in (*graph.predecessors(node), *graph.successors(node))]
                desired.append(sum(linked) / len(linked) if linked else x[node])
            x.update(zip(layer, _packed(layer, width_of, gap, desired), strict=True))
    return x


def _packed(layer, width_of, gap, desired: list[float]) -> list[float]:
    """Positions closest (least squares) to ``desired`` that keep ``layer``'s order with ``gap`` between boxes.

    With offsets ``o_i`` (the cumulative minimum separations), ``x_i = y_i + o_i`` where ``y`` is the
    non-decreasing least-squares fit to ``desired_i - o_i`` (pool adjacent violators).
    """
    offsets, total = [], 0.0
    for i, node in enumerate(layer):
        if i:
            total += (width_of[layer[i - 1]] + width_of[node]) / 2 + gap
        offsets.append(total)
    blocks: list[list[float]] = []  # [sum, count]
    for target in (d - o for d, o in zip(desired, offsets, strict=True)):
        blocks.append([target, 1.0])
        while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] > blocks[-1][0] / blocks[-1][1]:
            value, count = blocks.pop()
            blocks[-1][0] += value
            blocks[-1][1] += count
    fitted = [value / count for value, count in blocks for _ in range(int(count))]
    return [y + o for y, o in zip(fitted, offsets, strict=True)]
