"""Which boxes to highlight: merged regions and refusals from a report, or the graph's linear regions.

A report names nodes of the graph the passes were working on at the time. Passes replace nodes
(``conv+BN`` becomes a new conv), and the optimized module records each replacement in
``gm.meta["fxrep_renames"]`` (old name -> new name). A drawn node belongs to a decision when its
name, followed forward through the renames, meets one of the decision's member names, or a member
followed forward reaches it: so the same report highlights both the captured graph (before) and
the optimized one (after). Without the renames (a bare `Report`) only names that survived match;
in both cases a linear op whose every user is in a region joins it, which recovers the convs that
a BatchNorm fold absorbed without a rename.

Pictures of a graph grouped by module (`grouping`) use the same highlights, computed on the whole
graph: `Highlights.grouped` counts each region on the group boxes it reaches and moves refusal
marks onto them; `Highlights.restricted` keeps what lies in one part, footnote numbers unchanged.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Hashable, Mapping
from dataclasses import dataclass, field

import networkx as nx
from torch.fx import GraphModule

from ..affine import affine_op, find_regions
from ..ops import Conv
from ..pass_base import CostDecision, Refusal, module_path_of
from ..report import Report
from .scene import Scene

MAX_FOOTNOTES = 40
MAX_SUBLABEL = 72


@dataclass
class Region:
    """Boxes drawn on one background, with a title line and further note lines."""

    boxes: set[str]
    title: str
    notes: list[str] = field(default_factory=list)
    colour: int = 0
    """Index into the picture's palette: the decision's place in the report, same before and after."""


@dataclass
class Highlights:
    """What a picture marks: region backgrounds, refused boxes and the numbered notes explaining them."""

    regions: list[Region] = field(default_factory=list)
    refused: dict[str, list[int]] = field(default_factory=dict)
    """Box key -> footnote numbers."""
    footnotes: list[str] = field(default_factory=list)
    notes: dict[int, str] = field(default_factory=dict)
    """Footnote number -> its text (the numbered entries of ``footnotes``)."""
    unplaced_decisions: int = 0
    refusal_count: int = 0
    region_legend: str = "merged region"

    def groups(self) -> dict[str, Hashable]:
        """Box key -> what highlights it (boxes in different groups must stay apart when chains collapse)."""
        found: dict[str, Hashable] = {}
        for index, region in enumerate(self.regions):
            found.update(dict.fromkeys(region.boxes, index))
        for key in self.refused:
            found[key] = ("refused", key)
        return found

    def moved(self, box_of: Mapping[str, str]) -> None:
        """Follow boxes that were merged into others (``box_of``: old key -> new key)."""
        for region in self.regions:
            region.boxes = {box_of[key] for key in region.boxes}
        refused: dict[str, list[int]] = {}
        for key, numbers in self.refused.items():
            refused.setdefault(box_of[key], []).extend(numbers)
        self.refused = refused

    def restricted(self, keys: Collection[str]) -> Highlights:
        """The highlights of the boxes ``keys`` alone (one part of a graph cut into pictures).

        Footnotes keep their numbers, so a refusal reads the same in the overview and in its part.
        """
        keys = set(keys)
        regions = [Region(region.boxes & keys, region.title, list(region.notes), region.colour)
                   for region in self.regions if region.boxes & keys]
        refused = {key: list(numbers) for key, numbers in self.refused.items() if key in keys}
        numbers = sorted({number for marks in refused.values() for number in marks})
        notes = {number: self.notes[number] for number in numbers}
        return Highlights(regions, refused, list(notes.values()), notes, refusal_count=len(numbers),
                          region_legend=self.region_legend)

    def grouped(self, unit_of: Mapping[str, str], groups: Collection[str]) -> tuple[Highlights, Counter[str]]:
        """The highlights once boxes are merged into units (``unit_of``: box key -> unit key).

        A region that reaches a group box (one of ``groups``) is not drawn; each group box it reaches
        counts it instead (the returned counter). Regions of ungrouped boxes and every refusal mark
        move to their units; the footnotes stay as they are.
        """
        regions: list[Region] = []
        counts: Counter[str] = Counter()
        for region in self.regions:
            units = {unit_of[key] for key in region.boxes}
            if units & set(groups):
                counts.update(units & set(groups))
            else:
                regions.append(Region(units, region.title, list(region.notes), region.colour))
        refused: dict[str, list[int]] = {}
        for key, numbers in self.refused.items():
            refused.setdefault(unit_of[key], []).extend(numbers)
        return Highlights(regions, {key: sorted(set(marks)) for key, marks in refused.items()}, list(self.footnotes),
                          dict(self.notes), self.unplaced_decisions, self.refusal_count, self.region_legend), counts


def from_report(gm: GraphModule, scene: Scene, report: Report, renames: Mapping[str, str]) -> Highlights:
    """Applied decisions as regions and refusals as numbered notes (see the module docstring)."""
    chains = {node.name: _forward(node.name, renames) for node in gm.graph.nodes}
    highlights = Highlights()
    _add_regions(highlights, scene, report.decisions, chains, renames)
    _absorb_linear_inputs(scene, highlights.regions)
    _add_refusals(highlights, scene, report.refusals, chains)
    return highlights


def _add_regions(highlights: Highlights, scene: Scene, decisions: list[CostDecision],
                 chains: Mapping[str, list[str]], renames: Mapping[str, str]) -> None:
    """One region per applied decision, largest first; a decision inside a drawn region adds a note line."""
    matched: list[tuple[int, CostDecision, set[str]]] = []
    for index, decision in enumerate(d for d in decisions if d.applied):
        members = set(decision.members or (decision.node,))
        reached = set().union(*(_forward(m, renames) for m in members))
        names = {name for name, chain in chains.items() if name in reached or members.intersection(chain)}
        boxes = {scene.box_of[name] for name in names if name in scene.box_of}
        if boxes:
            matched.append((index, decision, boxes))
        else:
            highlights.unplaced_decisions += 1
    matched.sort(key=lambda item: -len(item[2]))
    owner: dict[str, Region] = {}
    for index, decision, boxes in matched:
        free = boxes - owner.keys()
        if not free:
            owner[min(boxes)].notes.append(_shorten(decision.note))
            continue
        region = Region(free, decision.module or "merged region", [decision.note], index)
        highlights.regions.append(region)
        owner.update(dict.fromkeys(free, region))


def _add_refusals(highlights: Highlights, scene: Scene, refusals: list[Refusal],
                  chains: Mapping[str, list[str]]) -> None:
    """Number each distinct refusal, mark its box, and write its note (the first `MAX_FOOTNOTES`)."""
    seen: set[tuple[str, str]] = set()
    for refusal in refusals:
        if (refusal.node, refusal.reason) in seen:
            continue
        seen.add((refusal.node, refusal.reason))
        number = len(seen)
        if number > MAX_FOOTNOTES:
            continue
        name = refusal.node if refusal.node in chains else next(
            (n for n, chain in chains.items() if refusal.node in chain), None)
        where = refusal.module or "-"
        if name is not None and name in scene.box_of:
            highlights.refused.setdefault(scene.box_of[name], []).append(number)
            label = f"[{number}] {name} ({where})"
        else:
            label = f"[{number}] {refusal.node} ({where}, not in this graph)"
        highlights.notes[number] = f"{label}: {refusal.reason}"
        highlights.footnotes.append(highlights.notes[number])
    highlights.refusal_count = len(seen)
    if len(seen) > MAX_FOOTNOTES:
        highlights.footnotes.append(f"... and {len(seen) - MAX_FOOTNOTES} more (print the report for all)")


def from_linear_regions(gm: GraphModule, scene: Scene) -> Highlights:
    """The graph's own linear regions of two or more ops, as found by `fxrep.affine.find_regions`."""
    highlights = Highlights(region_legend="linear region")
    for region in find_regions(gm).regions:
        boxes = {scene.box_of[n.name] for n in region.nodes if n.name in scene.box_of}
        if len(region.nodes) < 2 or not boxes:
            continue
        path = _common_path([module_path_of(n) for n in region.nodes])
        title = f"{path}: " if path else ""
        highlights.regions.append(Region(boxes, f"{title}linear region, {len(region.nodes)} ops",
                                         colour=len(highlights.regions)))
    return highlights


def _forward(name: str, renames: Mapping[str, str]) -> list[str]:
    chain = [name]
    while chain[-1] in renames and renames[chain[-1]] not in chain:
        chain.append(renames[chain[-1]])
    return chain


def _absorb_linear_inputs(scene: Scene, regions: list[Region]) -> None:
    """Add to a region each unclaimed linear op whose users all lie in it (reverse topological order)."""
    owner = {box: region for region in regions for box in region.boxes}
    dag = scene.dag()
    for key in reversed(list(nx.topological_sort(dag))):
        box = scene.boxes[key]
        users = list(dag.successors(key))
        if key in owner or box.node is None or not users or not all(u in owner for u in users):
            continue
        region = owner[users[0]]
        if all(owner[u] is region for u in users) and _is_linear(box.node):
            region.boxes.add(key)
            owner[key] = region


def _is_linear(node) -> bool:
    """Linear in its input; a conv counts even when its weight is computed (folded into a constant later)."""
    return Conv.from_node(node) is not None or bool(affine_op(node))


def _common_path(paths: list[str]) -> str:
    split = [p.split(".") for p in paths if p]
    common: list[str] = []
    for parts in zip(*split, strict=False):
        if len(set(parts)) != 1:
            break
        common.append(parts[0])
    return ".".join(common)


def _shorten(text: str) -> str:
    return text if len(text) <= MAX_SUBLABEL else text[:MAX_SUBLABEL - 3] + "..."
