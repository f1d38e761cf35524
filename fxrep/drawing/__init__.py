"""Pictures of fxrep graphs: branch structure, merged regions and refusals, as SVG, PNG or PDF.

    from fxrep.drawing import before_and_after, draw

    before, after = before_and_after(model, (torch.randn(1, 3, 224, 224),), "pictures/")

    captured = fxrep.capture.capture(model, inputs).graph_module
    optimized = fxrep.optimize(model, inputs)
    draw(captured, "before.svg", report=optimized)   # merged regions and refusals highlighted
    draw(optimized, "after.svg", report=optimized)
    draw(captured, "regions.png")                    # no report: the linear regions fxrep would collapse

Graphs are laid out top to bottom in layers (`layout`), so parallel branches sit side by side
between their fork and join; boxes are coloured by op kind. Parameters, assertions and tuple
plumbing are hidden (`scene`). Only matplotlib is needed (no graphviz binary); it is imported
when a picture is drawn, so ``import fxrep.drawing`` stays light. Install it with
``pip install 'fxrep[draw]'``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from torch import nn
from torch.fx import GraphModule

from ..capture import capture, normalize_inputs
from ..optimization import optimize
from ..report import Report
from ..rewriter import RENAMES_KEY
from .highlights import Highlights, from_linear_regions, from_report
from .scene import build_scene, collapse_chains

FORMATS = {".svg": "svg", ".png": "png", ".pdf": "pdf"}


def draw(graph_module: GraphModule, path: str | Path, *, report: Report | GraphModule | None = None,
         highlight: Literal["regions"] | None = "regions", title: str | None = None,
         max_nodes: int = 400) -> Path:
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
        max_nodes: above this many boxes, runs of single-input single-output ops collapse into one
            box ("5 ops"); if that is still too many, ValueError.
    """
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
    try:
        from .picture import Header, render, save
    except ImportError as error:
        raise ImportError("fxrep.drawing needs matplotlib: pip install 'fxrep[draw]'") from error

    scene = build_scene(graph_module)
    highlights = _highlights(graph_module, scene, report, highlight)
    notes = [f"{scene.op_count} ops"]
    if len(scene.boxes) > max_nodes:
        scene, moved_to = collapse_chains(scene, highlights.groups())
        if len(scene.boxes) > max_nodes:
            raise ValueError(f"the graph has {len(scene.boxes)} boxes even with chains of ops collapsed, more than "
                             f"max_nodes={max_nodes}; pass a larger max_nodes (the picture grows with the graph)")
        highlights.moved(moved_to)
        notes.append(f"chains of ops collapsed to fit max_nodes={max_nodes}")
    notes += _highlight_notes(highlights)
    header = Header(title or type(graph_module).__name__, ", ".join(notes))
    figure = render(scene, highlights, header)
    path.parent.mkdir(parents=True, exist_ok=True)
    save(figure, path, file_format)
    return path


def before_and_after(model: nn.Module, example_inputs: Any, directory: str | Path, *, suffix: str = ".png",
                     optimized: GraphModule | None = None, max_nodes: int = 400,
                     **optimize_options: Any) -> tuple[Path, Path]:
    """Draw ``model``'s captured graph and its optimized graph, with the report's highlights.

    Writes ``before<suffix>`` and ``after<suffix>`` into ``directory`` (created if missing) and
    returns their paths. ``optimized`` is `fxrep.optimize`'s result for these inputs if you have it;
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
    before = draw(captured, directory / f"before{suffix}", report=optimized, title=f"{name} before fxrep",
                  max_nodes=max_nodes)
    after = draw(optimized, directory / f"after{suffix}", report=optimized, title=f"{name} after fxrep",
                 max_nodes=max_nodes)
    return before, after


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


__all__ = ["FORMATS", "before_and_after", "draw"]
