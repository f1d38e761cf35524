"""Picture geometry: arrow ports, region backgrounds that hold only their members, label placement."""

from __future__ import annotations

import networkx as nx

from fxrep.drawing.geometry import edge_routes, place_labels, region_background
from fxrep.drawing.layout import layered_layout

SIZE = (1.0, 0.4)


def inside(point, polygon) -> bool:
    """Ray casting."""
    x, y = point
    hit = False
    for (x0, y0), (x1, y1) in zip(polygon, polygon[1:] + polygon[:1], strict=True):
        if (y0 > y) != (y1 > y) and x < x0 + (y - y0) * (x1 - x0) / (y1 - y0):
            hit = not hit
    return hit


def fork_join():
    """Layout, sizes and arrow routes of x -> a, b, c -> y: three parallel boxes between a fork and a join."""
    graph = nx.DiGraph()
    graph.add_edges_from([("x", "a"), ("x", "b"), ("x", "c"), ("a", "y"), ("b", "y"), ("c", "y")])
    sizes = dict.fromkeys(graph.nodes, SIZE)
    layout = layered_layout(graph, sizes)
    return layout, sizes, edge_routes(graph.edges, layout, sizes)


def test_arrows_into_one_box_end_side_by_side_in_the_order_they_come_from():
    layout, sizes, routes = fork_join()
    ends = {u: routes[(u, "y")][-1][0] for u in ("a", "b", "c")}
    assert sorted(ends, key=ends.get) == sorted("abc", key=lambda n: layout.positions[n][0])
    assert len({round(x, 6) for x in ends.values()}) == 3


def test_a_region_with_nothing_foreign_inside_is_one_convex_outline():
    layout, sizes, routes = fork_join()
    (outline,) = region_background({"a", "b", "c", "y"}, layout, sizes, routes)
    assert all(inside(layout.positions[n], outline) for n in "abcy")
    assert not inside(layout.positions["x"], outline)


def test_a_foreign_box_between_members_stays_off_the_background():
    layout, sizes, routes = fork_join()
    middle = sorted("abc", key=lambda n: layout.positions[n][0])[1]
    members = set("abcy") - {middle}
    polygons = region_background(members, layout, sizes, routes)
    assert len(polygons) > 1
    assert not any(inside(layout.positions[middle], polygon) for polygon in polygons)
    for member in members:
        assert any(inside(layout.positions[member], polygon) for polygon in polygons)


def test_labels_sit_beside_their_region_or_in_a_margin_column_with_a_leader():
    layout, sizes, routes = fork_join()
    left, right = sorted("ac", key=lambda n: layout.positions[n][0])
    backgrounds = [region_background({n}, layout, sizes, routes) for n in (right, left)]
    texts = [("right region",), ("left region",)]
    labels = place_labels(backgrounds, texts, dict.fromkeys(texts, (1.2, 0.15)), layout, sizes, routes)
    beside, crowded = labels
    assert beside.leader_from is None and beside.x > layout.positions[right][0]
    assert crowded.leader_from is not None and crowded.x >= beside.x + beside.width
