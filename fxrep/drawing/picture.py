"""Render a laid-out scene with matplotlib: boxes, curved arrows, region backgrounds, legend, notes.

Drawing coordinates are the layout's (inches, y down), flipped once by `_Canvas.point`; fonts are
in points, so text keeps its size however large the graph grows. Only ``matplotlib.figure.Figure``
is used (no pyplot state), and rcParams are set for the save only.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import matplotlib
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch, PathPatch, Rectangle
from matplotlib.path import Path as MplPath
from matplotlib.textpath import TextToPath

from .geometry import Label, Point, bezier_segments, edge_routes, place_labels, region_background
from .highlights import Highlights
from .layout import layered_layout
from .scene import CHAIN, CONTEXT, GROUP, INPUT, MARKED_GROUP, OUTPUT, Scene

FONT, SMALL, TITLE = 8.0, 7.0, 11.0
MARGIN, PAD_X, PAD_Y, LINE = 0.3, 0.09, 0.05, 1.25
MIN_BOX_WIDTH, MIN_WIDTH = 0.55, 6.0
NOTE_LINE = 0.16
MAX_PIXELS = 32000
PNG_DPI = 110.0
REFUSED, EDGE, TEXT, GREY = "#d62728", "#4d4d4d", "#222222", "#555555"

COLOURS = {  # category -> (legend label, face colour, edge colour)
    "conv": ("conv / linear", "#9ecae1", "#3182bd"),
    "batchnorm": ("batchnorm", "#fdd49e", "#d7301f"),
    "add/sub": ("add / sub", "#c7e9c0", "#31a354"),
    "mul/div": ("mul / div", "#dadaeb", "#756bb1"),
    "pad/pool": ("pad / pool", "#e6d5b8", "#8c6d31"),
    "cat": ("cat", "#b2e2e2", "#2ca25f"),
    "activation": ("activation", "#fcbba1", "#cb181d"),
    "other": ("other", "#ececec", "#737373"),
    CHAIN: ("collapsed chain", "#f7f7f7", "#737373"),
    GROUP: ("module (its op counts)", "#e9eff7", "#3b5b87"),
    MARKED_GROUP: ("module with {}s", "#fff0b3", "#3b5b87"),
    CONTEXT: ("outside this picture", "#ffffff", "#8c8c8c"),
    INPUT: ("input / output", "#ffffff", "#252525"),
    OUTPUT: ("input / output", "#ffffff", "#252525"),
}
DASHED = (CHAIN, CONTEXT)
MAX_MARKS = 6
REGION_COLOURS = ("#fff0b3", "#d1f0ff", "#ffdbe7", "#daf5da", "#ece0ff", "#ffe6cc", "#d9f7f5", "#f5ede4")


@dataclass(frozen=True)
class Header:
    title: str
    subtitle: str


def render(scene: Scene, highlights: Highlights, header: Header) -> Figure:
    """A figure sized to ``scene`` (1 data unit = 1 inch)."""
    sizes = {key: _box_size(box.lines) for key, box in scene.boxes.items()}
    layout = layered_layout(scene.dag(), sizes)
    routes = edge_routes(scene.edges, layout, sizes)
    backgrounds = [region_background(r.boxes, layout, sizes, routes) for r in highlights.regions]
    texts = [((r.title,) if r.title else ()) + tuple(r.notes) for r in highlights.regions]
    labels = place_labels(backgrounds, texts, {t: _label_size(t) for t in texts}, layout, sizes, routes)

    right = max([layout.width] + [label.x + label.width for label in labels]
                + [layout.positions[key][0] + sizes[key][0] / 2 + 0.4 for key in highlights.refused])
    width = max(MIN_WIDTH, right + 2 * MARGIN)
    legend_rows = _legend_rows(_legend_entries(scene, highlights), width - 2 * MARGIN)
    subtitle = _wrapped_text(header.subtitle, width - 2 * MARGIN, FONT)
    header_height = 0.3 + 0.2 * len(subtitle) + 0.24 * len(legend_rows) + 0.15
    notes = _wrapped(highlights.footnotes, width - 2 * MARGIN)
    graph_height = max([layout.height] + [label.y + label.height for label in labels])
    height = header_height + graph_height + ((0.25 + NOTE_LINE * len(notes)) if notes else 0) + 2 * MARGIN

    figure = Figure(figsize=(width, height))
    axes = figure.add_axes((0, 0, 1, 1))
    axes.set_xlim(0, width)
    axes.set_ylim(0, height)
    axes.axis("off")
    canvas = _Canvas(axes, height, MARGIN, MARGIN + header_height)
    _draw_header(axes, height, header.title, subtitle, legend_rows)
    for region, polygons, label in zip(highlights.regions, backgrounds, labels, strict=True):
        canvas.region(polygons, label, REGION_COLOURS[region.colour % len(REGION_COLOURS)])
    for points in routes.values():
        canvas.arrow(points)
    for key, box in scene.boxes.items():
        canvas.box(box.category, box.lines, layout.positions[key], sizes[key], highlights.refused.get(key))
    top = height - (MARGIN + header_height + graph_height + 0.25)
    for index, line in enumerate(notes):
        axes.text(MARGIN, top - NOTE_LINE * index, line, fontsize=SMALL, va="top", ha="left", color=TEXT,
                  fontweight="bold" if index == 0 else "normal")
    return figure


def save(figure: Figure, path: Path, file_format: str) -> None:
    """Write ``figure``: no timestamps, stable SVG ids, text kept as text (searchable, testable)."""
    metadata = {"svg": {"Date": None}, "pdf": {"CreationDate": None}, "png": {}}[file_format]
    dpi = min(PNG_DPI, MAX_PIXELS / max(figure.get_size_inches()))
    style = {"svg.fonttype": "none", "svg.hashsalt": "fxrep", "pdf.fonttype": 42}
    with matplotlib.rc_context(style):
        figure.savefig(path, format=file_format, dpi=dpi, metadata=metadata, facecolor="white")


class _Canvas:
    """Draws in layout coordinates (inches, y down) below the header."""

    def __init__(self, axes, height: float, left: float, top: float) -> None:
        self.axes, self.height, self.left, self.top = axes, height, left, top

    def point(self, x: float, y: float) -> Point:
        return self.left + x, self.height - (self.top + y)

    def box(self, category: str, lines: tuple[str, ...], centre: Point, size: tuple[float, float],
            footnotes: list[int] | None) -> None:
        _, face, edge = COLOURS[category]
        x, y = self.point(*centre)
        w, h = size
        width = 1.8 if footnotes else 1.3 if category in (GROUP, MARKED_GROUP) else 0.8
        self.axes.add_patch(FancyBboxPatch(
            (x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0,rounding_size=0.06", facecolor=face,
            edgecolor=REFUSED if footnotes else edge, linewidth=width,
            linestyle="--" if category in DASHED else "-", zorder=3))
        heights = [_line_height(i) for i in range(len(lines))]
        cursor = y + sum(heights) / 2
        for index, (line, line_height) in enumerate(zip(lines, heights, strict=True)):
            self.axes.text(x, cursor - line_height / 2, line, ha="center", va="center", zorder=4,
                           fontsize=FONT if index == 0 else SMALL, color=TEXT if index == 0 else GREY)
            cursor -= line_height
        if footnotes:
            self.axes.text(x + w / 2 + 0.03, y + h / 2, _marks(footnotes), fontsize=SMALL,
                           color=REFUSED, ha="left", va="top", zorder=4, fontweight="bold")

    def arrow(self, points: list[Point]) -> None:
        vertices, codes = [self.point(*points[0])], [MplPath.MOVETO]
        for _, control_a, control_b, end in bezier_segments(points):
            vertices += [self.point(*control_a), self.point(*control_b), self.point(*end)]
            codes += [MplPath.CURVE4] * 3
        self.axes.add_patch(FancyArrowPatch(path=MplPath(vertices, codes), arrowstyle="-|>", mutation_scale=7,
                                            linewidth=0.8, color=EDGE, zorder=2))

    def region(self, polygons: list[list[Point]], label: Label, colour: str) -> None:
        """One background: the union of ``polygons`` (same winding, non-zero fill), with a rim.

        The rim is the stroke of every polygon; the opaque fill drawn over it hides the strokes
        inside the union, leaving only the outline.
        """
        vertices, codes = [], []
        for polygon in polygons:
            vertices += [self.point(*p) for p in polygon] + [self.point(*polygon[0])]
            codes += [MplPath.MOVETO] + [MplPath.LINETO] * (len(polygon) - 1) + [MplPath.CLOSEPOLY]
        path = MplPath(vertices, codes)
        self.axes.add_patch(PathPatch(path, facecolor="none", edgecolor=_darker(colour), linewidth=1.6, zorder=0))
        self.axes.add_patch(PathPatch(path, facecolor=colour, edgecolor="none", zorder=1))
        if label.leader_from is not None:
            end = (label.x - 0.04, label.y + 0.06)
            self.axes.plot(*zip(self.point(*label.leader_from), self.point(*end), strict=True),
                           color=_darker(colour), linewidth=0.8, linestyle=":", zorder=1)
        for index, line in enumerate(label.lines):
            self.axes.text(*self.point(label.x, label.y + index * _line_height(1)), line, fontsize=SMALL,
                           ha="left", va="top", color=TEXT, zorder=1, fontweight="bold" if index == 0 else "normal")


def _legend_entries(scene: Scene, highlights: Highlights) -> list[tuple[str, str, str, str]]:
    """(label, face, edge, line style) for each category present, then the highlight marks."""
    present = {box.category for box in scene.boxes.values()}
    entries, seen = [], set()
    for category, (label, face, edge) in COLOURS.items():
        label = label.format(highlights.region_legend)
        if category in present and label not in seen:
            seen.add(label)
            entries.append((label, face, edge, "--" if category in DASHED else "-"))
    if highlights.regions:
        entries.append((highlights.region_legend, REGION_COLOURS[0], _darker(REGION_COLOURS[0]), "-"))
    if highlights.refused:
        entries.append(("refused (see notes)", "#ffffff", REFUSED, "-"))
    return entries


def _legend_rows(entries, width: float) -> list[list[tuple[float, tuple[str, str, str, str]]]]:
    rows: list[list[tuple[float, tuple[str, str, str, str]]]] = []
    x = width
    for entry in entries:
        entry_width = 0.22 + _text_width(entry[0], SMALL) + 0.25
        if x + entry_width > width:
            rows.append([])
            x = 0.0
        rows[-1].append((x, entry))
        x += entry_width
    return rows


def _draw_header(axes, height: float, title: str, subtitle: list[str], legend_rows) -> None:
    y = height - MARGIN
    axes.text(MARGIN, y, title, fontsize=TITLE, fontweight="bold", va="top", ha="left", color=TEXT)
    y -= 0.3
    for line in subtitle:
        axes.text(MARGIN, y, line, fontsize=FONT, color=GREY, va="top", ha="left")
        y -= 0.2
    for row in legend_rows:
        for x, (label, face, edge, style) in row:
            axes.add_patch(Rectangle((MARGIN + x, y - 0.15), 0.16, 0.12, facecolor=face, edgecolor=edge,
                                     linewidth=1.2 if edge == REFUSED else 0.8, linestyle=style))
            axes.text(MARGIN + x + 0.22, y - 0.09, label, fontsize=SMALL, va="center", ha="left", color=TEXT)
        y -= 0.24


def _marks(numbers: list[int]) -> str:
    """``[1,2,3]``, or ``[1,2,3,4,5,...]`` (12 in all) for a group box holding many refusals."""
    if len(numbers) <= MAX_MARKS:
        return "[" + ",".join(map(str, numbers)) + "]"
    return "[" + ",".join(map(str, numbers[:MAX_MARKS - 1])) + f",...] ({len(numbers)})"


def _wrapped_text(text: str, width: float, size: float) -> list[str]:
    """``text`` in lines of at most ``width`` inches at ``size`` points (none for an empty text)."""
    return textwrap.wrap(text, max(40, int(width / (0.56 * size / 72))))


def _wrapped(footnotes: list[str], width: float) -> list[str]:
    columns = max(40, int(width / (0.56 * SMALL / 72)))
    lines = [line for note in footnotes for line in textwrap.wrap(note, columns, subsequent_indent="    ")]
    return ["Notes (candidates left alone):", *lines] if lines else []


def _box_size(lines: tuple[str, ...]) -> tuple[float, float]:
    widths = [_text_width(line, FONT if i == 0 else SMALL) for i, line in enumerate(lines)]
    height = sum(_line_height(i) for i in range(len(lines))) + 2 * PAD_Y
    return max(MIN_BOX_WIDTH, max(widths, default=0.0) + 2 * PAD_X), height


def _label_size(lines: tuple[str, ...]) -> tuple[float, float]:
    width = max((_text_width(line, SMALL) for line in lines), default=0.0) * 1.08  # first line is bold
    return width, len(lines) * _line_height(1) + 0.04


def _line_height(index: int) -> float:
    return (FONT if index == 0 else SMALL) * LINE / 72


@lru_cache(maxsize=4096)
def _text_width(text: str, size: float) -> float:
    """Width of ``text`` in inches at ``size`` points in matplotlib's default font."""
    width, _, _ = _TEXT_TO_PATH.get_text_width_height_descent(text, FontProperties(size=size), ismath=False)
    return width / 72


def _darker(colour: str, factor: float = 0.7) -> str:
    red, green, blue = (int(colour[i:i + 2], 16) for i in (1, 3, 5))
    return "#{:02x}{:02x}{:02x}".format(*(int(c * factor) for c in (red, green, blue)))


_TEXT_TO_PATH = TextToPath()
