"""The layered layout: branches side by side between fork and join, long edges bent, no overlaps, few crossings."""

from __future__ import annotations

import networkx as nx

from fxrep.drawing.layout import crossings, layered_layout

SIZE = (1.0, 0.4)


def repvgg_like() -> nx.DiGraph:
    """x -> (conv3, conv1, bn_id); conv3 -> bn3, conv1 -> bn1; bn3 + bn1 -> add; add + bn_id -> add_1 -> relu."""
    graph = nx.DiGraph()
    graph.add_edges_from([("x", "conv3"), ("x", "conv1"), ("x", "bn_id"), ("conv3", "bn3"), ("conv1", "bn1"),
                          ("bn3", "add"), ("bn1", "add"), ("add", "add_1"), ("bn_id", "add_1"), ("add_1", "relu")])
    return graph


def layout_of(graph: nx.DiGraph):
    return layered_layout(graph, dict.fromkeys(graph.nodes, SIZE))


def test_parallel_branches_share_a_layer_side_by_side_between_fork_and_join():
    layout = layout_of(repvgg_like())
    y = {n: p[1] for n, p in layout.positions.items()}
    x = {n: p[0] for n, p in layout.positions.items()}
    assert y["conv3"] == y["conv1"] == y["bn_id"]
    assert y["x"] < y["conv3"] < y["bn3"] < y["add"] < y["add_1"] < y["relu"]
    assert len({round(x[n], 6) for n in ("conv3", "conv1", "bn_id")}) == 3


def test_boxes_in_a_layer_keep_the_gap():
    graph = repvgg_like()
    sizes = {n: (0.5 + 0.1 * i, 0.4) for i, n in enumerate(graph.nodes)}
    layout = layered_layout(graph, sizes, column_gap=0.25)
    for layer in layout.layers:
        ordered = sorted(layer, key=lambda n: layout.positions[n][0])
        for left, right in zip(ordered, ordered[1:], strict=False):
            space = layout.positions[right][0] - layout.positions[left][0] - (sizes[left][0] + sizes[right][0]) / 2
            assert space >= 0.25 - 1e-9


def test_an_edge_that_skips_layers_bends_once_per_skipped_layer():
    layout = layout_of(repvgg_like())
    assert len(layout.bends[("bn_id", "add_1")]) == 2  # skips the layers of bn3 and add
    assert ("conv3", "bn3") not in layout.bends


def test_ordering_removes_avoidable_crossings():
    graph = nx.DiGraph()
    graph.add_nodes_from(["a", "b", "c", "d"])  # graph order puts c under a, but a feeds d and b feeds c
    graph.add_edges_from([("a", "d"), ("b", "c")])
    assert crossings(graph, [["a", "b"], ["c", "d"]]) == 1
    layout = layout_of(graph)
    x = {n: p[0] for n, p in layout.positions.items()}
    assert (x["a"] < x["b"]) == (x["d"] < x["c"])


def test_a_chain_is_a_straight_column_and_the_layout_is_deterministic():
    graph = nx.path_graph(["a", "b", "c", "d"], create_using=nx.DiGraph)
    layout = layout_of(graph)
    assert len({p[0] for p in layout.positions.values()}) == 1
    assert layout_of(repvgg_like()) == layout_of(repvgg_like())
