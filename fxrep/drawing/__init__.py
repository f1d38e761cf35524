"""Pictures of fxrep graphs: branch structure, merged regions and refusals, as SVG, PNG or PDF.

    from fxrep.drawing import before_and_after, draw

    before, after = before_and_after(model, (torch.randn(1, 3, 224, 224),), "pictures/")

    captured = fxrep.capture.capture(model, inputs).graph_module
    optimized = fxrep.optimize(model, inputs)
    draw(captured, "before.svg", report=optimized)   # merged regions and refusals highlighted
    draw(optimized, "after.svg", report=optimized)
    draw(captured, "regions.png")                    # no report: the linear regions fxrep would collapse
    draw_parts(captured, "big/before.svg", report=optimized)  # any size: an overview and one picture per part

A picture shows at most ``max_nodes`` boxes (400). A larger graph first has its runs of
single-input ops collapsed; if it is still too large, it is grouped by module hierarchy
(`grouping`): an overview where a stage or block is one box with its op counts (highlighted when
it holds merged regions, red with the numbers of its refusals) and, with `draw_parts`, one detailed
picture per part of consecutive modules, so a model of any size is drawn readably.

Graphs are laid out top to bottom in layers (`layout`), so parallel branches sit side by side
between their fork and join; boxes are coloured by op kind. Parameters, assertions and tuple
plumbing are hidden (`scene`). Only matplotlib is needed (no graphviz binary); it is imported
when a picture is drawn, so ``import fxrep.drawing`` stays light. Install it with
``pip install 'fxrep[draw]'``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from torch import nn
from torch.fx import GraphModule

from ..capture import capture, normalize_inputs
from ..optimization import optimize
from ..report import Report
from ..rewriter import RENAMES_KEY
from . import grouping
from .highlights import Highlights, from_linear_regions, from_report
from .scene import GROUP, MARKED_GROUP, Box, Scene, build_scene, collapse_chains

FORMATS = {".svg": "svg", ".png": "png", ".pdf": "pdf"}
MAX_NODES = 400


def draw(graph_module: GraphModule, path: str | Path, *, report: Report | GraphModule | None = None,
         highlight: Literal["regions"] | None = "regions", title: str | None = None,
         max_nodes: int = MAX_NODES) -> Path:
    """Draw ``graph_module`` to ``path`` (format from the suffix: .svg, .png or .pdf); return the path.

    Args:
        graph_module: a captured graph (torch.export or symbolic_trace form) or an optimized one.
            It is only read.
        report: what `fxrep.optimize` did, to highlight its applied merges (a translucent
            background per region, labelled with the cost note) and its refusals (red outline,
            numbered notes with the reasons). Pass the optimized module itself (it carries the
            report and the record of which nodes replaced which) to place every entry on both the
            captured "before" graph and the optimized "after" graph; a bare `Report` places only
            entries whose node names survived.
        highlight: "regions" highlights the report's merges, or without a report the linear regions
            `find_linear_regions` finds; None draws the graph plain.
        title: the heading (default: the module's class name).
        max_nodes: the most boxes one picture shows. Above it, runs of single-input single-output
            ops collapse into one box ("5 ops"); if that is still too many, the picture is an
            overview with modules grouped into boxes (a stage or block as one box with its op
            counts, highlighted when it holds merged regions, red with the numbers of its refusals).
            `draw_parts` writes that overview and one detailed picture per part.
    """
    return _write(graph_module, path, report, highlight, title, max_nodes, with_parts=False)[0]


def draw_parts(graph_module: GraphModule, path: str | Path, *, report: Report | GraphModule | None = None,
               highlight: Literal["regions"] | None = "regions", title: str | None = None,
               max_nodes: int = MAX_NODES) -> list[Path]:
    """Like `draw`, and for a graph too large for one picture also one detailed picture per part; return all paths.

    ``path`` gets the whole graph when it fits in ``max_nodes`` boxes, else the overview grouped by
    module (see `fxrep.drawing.grouping`). Each part (consecutive modules, in graph order, of at
    most ``max_nodes`` boxes, a module never cut) is written next to it as
    ``<stem>-<n>-<first module>--<last module><suffix>``, with the merged regions and refusals
    inside it and dashed boxes for its neighbours outside. The overview comes first in the result.
    """
    return _write(graph_module, path, report, highlight, title, max_nodes, with_parts=True)


def before_and_after(model: nn.Module, example_inputs: Any, directory: str | Path, *, suffix: str = ".png",
                     optimized: GraphModule | None = None, max_nodes: int = MAX_NODES,
                     **optimize_options: Any) -> tuple[Path, Path]:
    """Draw ``model``'s captured graph and its optimized graph, with the report's highlights.

    Writes ``before<suffix>`` and ``after<suffix>`` into ``directory`` (created if missing) and
    returns their paths; a graph of more than ``max_nodes`` boxes gets an overview there and one
    picture per part beside it (`draw_parts`: ``before-1-stem--stages.1<suffix>``, ...). ``optimized`` is `fxrep.optimize`'s result for these inputs if you have it;
    otherwise the model is optimized here, with ``optimize_options`` (``passes``, ``capture_method``, ...).
    The "before" graph is captured the way the report says the optimized one was.
    """
    if suffix.lower() not in FORMATS:
        raise ValueError(f"suffix must be one of {', '.join(FORMATS)}, got {suffix!r}")
    directory = Path(directory)
    if optimized is None:
        optimized = optimize(model, example_inputs, **optimize_options)
    report = getattr(optimized, "fxrep_report", None)
    if not isinstance(report, Report):
        raise ValueError("optimized: this module was not produced by fxrep.optimize (it has no fxrep_report)")
    method = ("export" if report.capture.startswith("torch.export")
              else "symbolic_trace" if report.capture.startswith("torch.fx") else "auto")
    captured = capture(model, normalize_inputs(example_inputs), method=method).graph_module
    name = type(model).__name__
    before = draw_parts(captured, directory / f"before{suffix}", report=optimized, title=f"{name} before fxrep",
                        max_nodes=max_nodes)
    after = draw_parts(optimized, directory / f"after{suffix}", report=optimized, title=f"{name} after fxrep",
                       max_nodes=max_nodes)
    return before[0], after[0]


def _write(graph_module: GraphModule, path: str | Path, report: Report | GraphModule | None,
           highlight: str | None, title: str | None, max_nodes: int, *, with_parts: bool) -> list[Path]:
    path = Path(path)
    file_format = FORMATS.get(path.suffix.lower())
    if file_format is None:
        raise ValueError(f"cannot tell the picture format from {path.name!r}: use one of "
                         f"{', '.join(FORMATS)} as the suffix")
    if highlight not in ("regions", None):
        raise ValueError(f"highlight must be 'regions' or None, got {highlight!r}")
    if not isinstance(graph_module, GraphModule):
        raise TypeError(f"draw takes a torch.fx.GraphModule, got {type(graph_module).__name__}; capture the "
                        "model first (fxrep.capture.capture) or draw fxrep.optimize's result")
    if isinstance(max_nodes, bool) or not isinstance(max_nodes, int) or max_nodes < 1:
        raise ValueError(f"max_nodes must be a positive number of boxes, got {max_nodes!r}")
    try:
        from .picture import Header, render, save
    except ImportError as error:
        raise ImportError("fxrep.drawing needs matplotlib: pip install 'fxrep[draw]'") from error

    scene = build_scene(graph_module)
    highlights = _highlights(graph_module, scene, report, highlight)
    heading = title or type(graph_module).__name__
    if len(scene.boxes) <= max_nodes:
        pictures = [(path, scene, highlights, Header(heading, _subtitle([f"{scene.op_count} ops"], highlights)))]
    else:
        collapsed, moved_to = collapse_chains(scene, highlights.groups())
        if len(collapsed.boxes) <= max_nodes:
            highlights.moved(moved_to)
            notes = [f"{scene.op_count} ops", f"chains of ops collapsed to fit max_nodes={max_nodes}"]
            pictures = [(path, collapsed, highlights, Header(heading, _subtitle(notes, highlights)))]
        else:
            pictures = _grouped(graph_module, scene, highlights, path, heading, max_nodes, with_parts)
    path.parent.mkdir(parents=True, exist_ok=True)
    for target, drawn, marks, header in pictures:
        save(render(drawn, marks, header), target, file_format)
    return [target for target, *_ in pictures]


def _grouped(gm: GraphModule, scene: Scene, highlights: Highlights, path: Path, heading: str, max_nodes: int,
             with_parts: bool) -> list[tuple[Path, Scene, Highlights, Any]]:
    """The overview grouped by module and, ``with_parts``, one picture per part (see `grouping`)."""
    from .picture import Header

    plan = grouping.plan(scene, max_nodes)
    types = grouping.module_types(gm)
    unit_of, labels, by_parts = grouping.overview_units(scene, plan, max_nodes)
    groups = {unit for unit in unit_of.values() if unit.startswith((grouping.GROUP_PREFIX, grouping.PART_PREFIX))}
    marks, counts = highlights.grouped(unit_of, groups)

    def describe(unit: str, members: list[Box]) -> Box:
        label = labels.get(unit, unit)
        module = unit[len(grouping.GROUP_PREFIX):] if unit.startswith(grouping.GROUP_PREFIX) else None
        lines = grouping.group_lines(label, members, types.get(module) if module is not None else None)
        if counts[unit]:
            lines += (f"{counts[unit]} {highlights.region_legend}{'' if counts[unit] == 1 else 's'}",)
        names = tuple(name for box in members for name in box.names)
        return Box(unit, GROUP, MARKED_GROUP if counts[unit] else GROUP, lines, names)

    overview = grouping.grouped_scene(scene, unit_of, describe)
    shown = "part" if by_parts else "module"
    notes = [f"{scene.op_count} ops", f"grouped by {shown} to fit max_nodes={max_nodes} "
             f"({len(plan.parts)} part{'' if len(plan.parts) == 1 else 's'})"]
    if len(overview.boxes) > max_nodes:
        notes.append(f"{len(overview.boxes)} boxes even so")
    notes.append(f"one picture per part: {path.stem}-1-... " if with_parts else "fxrep.drawing.draw_parts draws each part")
    pictures = [(path, overview, marks, Header(f"{heading}: overview", _subtitle(notes, highlights)))]
    if not with_parts:
        return pictures
    atom_units = {key: atom.key for key, atom in plan.atom_of.items()}
    atom_labels = {atom.key: atom.label for atom in plan.atoms}
    for part in plan.parts:
        drawn = grouping.part_scene(scene, part, atom_units, atom_labels)
        part_marks = highlights.restricted(part.boxes)
        ops = len(part.boxes)
        notes = [f"part {part.number} of {len(plan.parts)}", f"{ops} op{'' if ops == 1 else 's'}",
                 "dashed boxes are outside this picture"]
        pictures.append((_part_path(path, part, len(plan.parts)), drawn, part_marks,
                         Header(f"{heading}: {part.label}", _subtitle(notes, part_marks))))
    return pictures


def _part_path(path: Path, part: grouping.Part, count: int) -> Path:
    names = [part.atoms[0].label] + ([part.atoms[-1].label] if len(part.atoms) > 1 else [])
    slug = "--".join(re.sub(r"[^A-Za-z0-9._]+", "_", name).strip("_.") or "ops" for name in names)[:80]
    return path.with_name(f"{path.stem}-{part.number:0{len(str(count))}d}-{slug}{path.suffix}")


def _subtitle(notes: list[str], highlights: Highlights) -> str:
    return ", ".join(notes + _highlight_notes(highlights))


def _highlights(gm: GraphModule, scene, report: Report | GraphModule | None, highlight: str | None) -> Highlights:
    if highlight is None:
        return Highlights()
    if report is None:
        return from_linear_regions(gm, scene)
    renames: dict[str, str] = {}
    if isinstance(report, GraphModule):
        renames = dict(report.meta.get(RENAMES_KEY, {}))
        report = getattr(report, "fxrep_report", None)
        if report is None:
            raise ValueError("report: this module was not produced by fxrep.optimize (it has no fxrep_report)")
    if not isinstance(report, Report):
        raise TypeError(f"report must be an fxrep Report or fxrep.optimize's result, got {type(report).__name__}")
    return from_report(gm, scene, report, renames)


def _highlight_notes(highlights: Highlights) -> list[str]:
    counts = [(len(highlights.regions), f"{highlights.region_legend}{{}} highlighted"),
              (highlights.refusal_count, "refusal{} (see notes)"),
              (highlights.unplaced_decisions, "merge{} of the report not in this graph")]
    return [f"{count} {text.format('' if count == 1 else 's')}" for count, text in counts if count]


__all__ = ["FORMATS", "MAX_NODES", "before_and_after", "draw", "draw_parts"]
