"""Picture geometry in layout coordinates (inches, y down): edge routes, region backgrounds, label places.

Pure functions of a `Layout` and the box sizes; `picture` turns the results into matplotlib patches.

A region's background is the convex hull of its boxes (grown by a rounded margin) when that hull
covers no other box; otherwise (DBB-like regions with foreign ops between their branches) it is
the union of its grown boxes, of bridges between members that are neighbours in a layer, and of
strips along the arrows between members, so only members sit on it.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass

from .layout import Layout

Point = tuple[float, float]
Rect = tuple[float, float, float, float]  # left, top, right, bottom
Sizes = Mapping[Hashable, tuple[float, float]]
Edge = tuple[Hashable, Hashable]

HULL_PAD = 0.1
BLOB_PAD = 0.15
STRIP_WIDTH = 0.26
CORNER_SAMPLES = 4
CURVE_SAMPLES = 8
PORT_STEP = 0.14


@dataclass(frozen=True)
class Label:
    """A region's label: top-left corner, size, and the leader line's start when it sits in the margin."""

    lines: tuple[str, ...]
    x: float
    y: float
    width: float
    height: float
    leader_from: Point | None = None


def box_rect(layout: Layout, sizes: Sizes, key: Hashable, pad: float = 0.0) -> Rect:
    (x, y), (w, h) = layout.positions[key], sizes[key]
    return x - w / 2 - pad, y - h / 2 - pad, x + w / 2 + pad, y + h / 2 + pad


def edge_routes(edges: Iterable[Edge], layout: Layout, sizes: Sizes) -> dict[Edge, list[Point]]:
    """Each arrow's points: bottom of its source, its bend points, top of its target.

    Arrows leaving or entering one box start or end side by side, ordered by where they go or
    come from, so an ``add`` shows its two inputs arriving apart.
    """
    routes: dict[Edge, list[Point]] = {}
    for u, v in edges:
        (xu, yu), (xv, yv) = layout.positions[u], layout.positions[v]
        routes[(u, v)] = [(xu, yu + sizes[u][1] / 2), *layout.bends.get((u, v), []), (xv, yv - sizes[v][1] / 2)]
    ports: dict[tuple[Hashable, int], list[tuple[float, Edge]]] = {}
    for (u, v), points in routes.items():
        ports.setdefault((u, 0), []).append((points[1][0], (u, v)))
        ports.setdefault((v, -1), []).append((points[-2][0], (u, v)))
    for (key, end), items in ports.items():
        if len(items) < 2:
            continue
        items.sort(key=lambda item: item[0])
        step = min(PORT_STEP, sizes[key][0] * 0.7 / (len(items) - 1))
        for index, (_, edge) in enumerate(items):
            x, y = routes[edge][end]
            routes[edge][end] = (x + (index - (len(items) - 1) / 2) * step, y)
    return routes


def bezier_segments(points: list[Point]) -> list[tuple[Point, Point, Point, Point]]:
    """Cubic segments through ``points`` that leave and enter every point vertically."""
    segments = []
    for (x0, y0), (x1, y1) in zip(points, points[1:], strict=False):
        middle = (y1 - y0) / 2
        segments.append(((x0, y0), (x0, y0 + middle), (x1, y1 - middle), (x1, y1)))
    return segments


def region_background(members: set[Hashable], layout: Layout, sizes: Sizes,
                      routes: Mapping[Edge, list[Point]]) -> list[list[Point]]:
    """Polygons, all wound the same way, whose union is the region's background (module docstring)."""
    boxes = sorted(members, key=str)  # a stable drawing order, whatever the hash seed
    corners = [p for key in boxes for p in _rounded_rect(box_rect(layout, sizes, key), HULL_PAD)]
    hull = convex_hull(corners)
    others = [box_rect(layout, sizes, key) for key in layout.positions if key not in members]
    if not any(_inside_convex(point, hull) for rect in others for point in _probe_points(rect)):
        return [hull]
    polygons = [_rounded_rect(box_rect(layout, sizes, key), BLOB_PAD) for key in boxes]
    for layer in layout.layers:
        for left, right in zip(layer, layer[1:], strict=False):
            if left in members and right in members:
                a, b = box_rect(layout, sizes, left), box_rect(layout, sizes, right)
                top, bottom = max(a[1], b[1]), min(a[3], b[3])
                polygons.append(_rounded_rect((a[2], top, b[0], bottom), BLOB_PAD))
    for (u, v), points in routes.items():
        if u not in members or v not in members:
            continue
        if (u, v) in layout.bends:
            polygons.append(_strip(sampled(points), STRIP_WIDTH))
        else:  # adjacent layers: the hull of both boxes fills the gaps between converging arrows too
            polygons.append(convex_hull(_rounded_rect(box_rect(layout, sizes, u), BLOB_PAD)
                                        + _rounded_rect(box_rect(layout, sizes, v), BLOB_PAD)))
    return [_counter_clockwise(polygon) for polygon in polygons]


def place_labels(backgrounds: list[list[list[Point]]], texts: list[tuple[str, ...]],
                 text_size: Mapping[tuple[str, ...], tuple[float, float]], layout: Layout, sizes: Sizes,
                 routes: Mapping[Edge, list[Point]]) -> list[Label]:
    """Beside each region's top right when that overlaps no box, arrow or label, else in a right margin column.

    Margin labels keep their regions' top-to-bottom order and get a leader line to their region.
    ``text_size`` gives each label's (width, height).
    """
    hulls = [convex_hull([p for polygon in background for p in polygon]) for background in backgrounds]
    obstacles = [box_rect(layout, sizes, key) for key in layout.positions]
    arrow_points = [p for points in routes.values() for p in sampled(points)]
    labels: list[Label | None] = [None] * len(hulls)
    placed: list[Rect] = []
    crowded = []
    for index in sorted(range(len(hulls)), key=lambda i: min(y for _, y in hulls[i])):
        width, height = text_size[texts[index]]
        y = min(py for _, py in hulls[index])
        x = max(px for polygon in backgrounds[index] for px, py in polygon if py <= y + height + 0.1) + 0.08
        rect = (x, y, x + width, y + height)
        if any(_overlap(rect, other) for other in obstacles + placed) or any(
                rect[0] <= px <= rect[2] and rect[1] <= py <= rect[3] for px, py in arrow_points):
            crowded.append(index)
            continue
        labels[index] = Label(texts[index], x, y, width, height)
        placed.append(rect)
    column = max([layout.width] + [r[2] for r in placed] + [max(x for x, _ in h) for h in hulls]) + 0.3
    below = -math.inf
    for index in crowded:
        width, height = text_size[texts[index]]
        y = max(min(py for _, py in hulls[index]), below + 0.08)
        below = y + height
        leader = _right_edge_at(hulls[index], y + 0.06)
        labels[index] = Label(texts[index], column, y, width, height, leader)
    return labels  # type: ignore[return-value]


def convex_hull(points: Iterable[Point]) -> list[Point]:
    """Andrew's monotone chain; counter-clockwise in a y-up frame."""
    unique = sorted(set(points))
    if len(unique) < 3:
        return unique

    def half(sequence: Iterable[Point]) -> list[Point]:
        chain: list[Point] = []
        for p in sequence:
            while len(chain) >= 2 and _cross(chain[-2], chain[-1], p) <= 0:
                chain.pop()
            chain.append(p)
        return chain

    lower, upper = half(unique), half(reversed(unique))
    return lower[:-1] + upper[:-1]


def _cross(o: Point, a: Point, b: Point) -> float:
    return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])


def _inside_convex(point: Point, hull: list[Point]) -> bool:
    return len(hull) >= 3 and all(_cross(a, b, point) > 0 for a, b in zip(hull, hull[1:] + hull[:1], strict=True))


def _probe_points(rect: Rect) -> list[Point]:
    left, top, right, bottom = rect
    return [(left, top), (right, top), (left, bottom), (right, bottom), ((left + right) / 2, (top + bottom) / 2)]


def _rounded_rect(rect: Rect, pad: float) -> list[Point]:
    """``rect`` grown by ``pad`` with round corners of radius ``pad`` (its Minkowski sum with a disc)."""
    left, top, right, bottom = rect
    points = []
    for (cx, cy), start in (((right, bottom), 0.0), ((left, bottom), 90.0), ((left, top), 180.0),
                            ((right, top), 270.0)):
        for i in range(CORNER_SAMPLES + 1):
            angle = math.radians(start + 90.0 * i / CORNER_SAMPLES)
            points.append((cx + pad * math.cos(angle), cy + pad * math.sin(angle)))
    return points


def sampled(points: list[Point]) -> list[Point]:
    """Points along the curve `bezier_segments` draws through ``points``."""
    samples = [points[0]]
    for p0, c0, c1, p1 in bezier_segments(points):
        for i in range(1, CURVE_SAMPLES + 1):
            t = i / CURVE_SAMPLES
            weights = ((1 - t) ** 3, 3 * (1 - t) ** 2 * t, 3 * (1 - t) * t ** 2, t ** 3)
            samples.append((sum(w * p[0] for w, p in zip(weights, (p0, c0, c1, p1), strict=True)),
                            sum(w * p[1] for w, p in zip(weights, (p0, c0, c1, p1), strict=True))))
    return samples


def _strip(line: list[Point], width: float) -> list[Point]:
    """A band of ``width`` around a polyline."""
    left, right = [], []
    for i, (x, y) in enumerate(line):
        (xa, ya), (xb, yb) = line[max(i - 1, 0)], line[min(i + 1, len(line) - 1)]
        length = math.hypot(xb - xa, yb - ya) or 1.0
        nx, ny = -(yb - ya) / length * width / 2, (xb - xa) / length * width / 2
        left.append((x + nx, y + ny))
        right.append((x - nx, y - ny))
    return left + right[::-1]


def _counter_clockwise(polygon: list[Point]) -> list[Point]:
    area = sum(x0 * y1 - x1 * y0 for (x0, y0), (x1, y1) in zip(polygon, polygon[1:] + polygon[:1], strict=True))
    return polygon if area > 0 else polygon[::-1]


def _overlap(a: Rect, b: Rect) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _right_edge_at(hull: list[Point], y: float) -> Point:
    """The hull's rightmost point at height ``y`` (clamped into the hull's vertical extent)."""
    top, bottom = min(py for _, py in hull), max(py for _, py in hull)
    y = min(max(y, top), bottom)
    xs = [x0 if y0 == y1 else x0 + (y - y0) * (x1 - x0) / (y1 - y0)
          for (x0, y0), (x1, y1) in zip(hull, hull[1:] + hull[:1], strict=True) if min(y0, y1) <= y <= max(y0, y1)]
    return max(xs, default=max(px for px, _ in hull)), y
