"""Graphs too large for one picture: boxes grouped by module, an overview, and the parts it is cut into.

A graph with more boxes than one picture holds (``max_nodes``) is cut along its module hierarchy
(``node.meta["nn_module_stack"]``, read through `fxrep.pass_base.module_path_of`):

- *Atoms*. From the root down, a module whose boxes fit in one picture is an atom: one box in the
  overview, labelled with its type and op counts. A module that does not fit is opened: its child
  modules and its own ops (those of its ``forward`` outside any child) take its place. A module of
  a single box is shown as that box. Graph inputs and the output are never grouped.
- *Parts*. Consecutive atoms (in graph order) are packed into the fewest pictures of at most
  ``max_nodes`` boxes each, filled as evenly as that allows; an atom is never cut, so a stage or
  block that fits is always whole in one picture. A part is drawn in full detail, with what lies
  outside it as dashed context boxes ("from stages.1", "to head").
- *Overview*. Every atom as one box, or, when even that is more than ``max_nodes``, every part as
  one box. Units that feed each other both ways (a module called twice, with other ops between the
  calls) are merged into one box, so the overview stays a DAG.

Everything here is a pure function of a `Scene`; the picture module draws the results.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import networkx as nx
from torch.fx import GraphModule

from ..pass_base import module_path_of
from .scene import CONTEXT, INPUT, OUTPUT, Box, Scene

GROUP_PREFIX = "module:"
PART_PREFIX = "part:"
MAX_KINDS = 4


@dataclass
class Atom:
    """One overview box: a module that fits in a picture (``module`` is its path) or a single op."""

    key: str
    label: str
    boxes: list[str]
    module: str | None = None


@dataclass
class Part:
    """Consecutive atoms drawn together in one picture."""

    number: int
    atoms: list[Atom]

    @property
    def boxes(self) -> list[str]:
        return [key for atom in self.atoms for key in atom.boxes]

    @property
    def label(self) -> str:
        first, last = self.atoms[0].label, self.atoms[-1].label
        return first if len(self.atoms) == 1 else f"{first} ... {last}"


@dataclass
class Plan:
    """How a large graph is drawn: its atoms (the overview's boxes) and the parts (one picture each)."""

    atoms: list[Atom]
    parts: list[Part]
    atom_of: dict[str, Atom] = field(default_factory=dict)
    """Box key -> its atom (every box but the graph's inputs and output)."""


def plan(scene: Scene, max_nodes: int) -> Plan:
    """Atoms and parts of ``scene`` for pictures of at most ``max_nodes`` boxes (see the module docstring)."""
    if max_nodes < 1:
        raise ValueError(f"max_nodes must be at least 1, got {max_nodes}")
    order = {key: index for index, key in enumerate(scene.boxes)}
    root = _Module(())
    for key, box in scene.boxes.items():
        if box.category not in (INPUT, OUTPUT):
            root.add(_module_parts(box), key)
    atoms = root.atoms(max_nodes, order)
    parts = [Part(number, run) for number, run in enumerate(_pack(atoms, max_nodes), start=1)]
    return Plan(atoms, parts, {key: atom for atom in atoms for key in atom.boxes})


def module_types(gm: GraphModule) -> dict[str, str]:
    """Module path -> class name, from the module stacks recorded on the nodes (and the module's own submodules)."""
    found: dict[str, str] = {}
    for node in gm.graph.nodes:
        for path, kind in (node.meta.get("nn_module_stack") or {}).values():
            name = kind if isinstance(kind, str) else getattr(kind, "__qualname__", str(kind))
            found.setdefault(str(path), name.rsplit(".", 1)[-1])
    for path, module in gm.named_modules():  # symbolic_trace keeps the model's own submodules
        if path and type(module).__name__ not in ("Module", "InterpreterModule"):
            found.setdefault(path, type(module).__name__)
    return found


def overview_units(scene: Scene, plan_: Plan, max_nodes: int) -> tuple[dict[str, str], dict[str, str], bool]:
    """Box key -> overview box key, each overview box's label, and whether it had to show parts, not atoms.

    Atoms are the overview's boxes unless that is more than ``max_nodes`` boxes; then parts are.
    Inputs and the output map to themselves; units in a cycle are merged (module docstring).
    """
    io = {key: key for key, box in scene.boxes.items() if box.category in (INPUT, OUTPUT)}
    unit_of = {key: atom.key for key, atom in plan_.atom_of.items()} | io
    labels = {atom.key: atom.label for atom in plan_.atoms}
    by_parts = len(set(unit_of.values())) > max_nodes and len(plan_.parts) > 1
    if by_parts:
        width = len(str(len(plan_.parts)))
        unit_of = io | {key: f"{PART_PREFIX}{part.number:0{width}d}" for part in plan_.parts for key in part.boxes}
        labels = {f"{PART_PREFIX}{part.number:0{width}d}": f"part {part.number}: {part.label}" for part in plan_.parts}
    return _acyclic(scene, unit_of, labels), labels, by_parts


def grouped_scene(scene: Scene, unit_of: Mapping[str, str], describe: Callable[[str, list[Box]], Box]) -> Scene:
    """``scene`` with the boxes of each unit merged into one; ``describe(unit, members)`` makes a merged box.

    A unit of one box keeps that box as it is.
    """
    members: dict[str, list[Box]] = {}
    for key, box in scene.boxes.items():
        members.setdefault(unit_of[key], []).append(box)
    boxes = {unit: inner[0] if len(inner) == 1 and inner[0].key == unit else describe(unit, inner)
             for unit, inner in members.items()}
    edges = dict.fromkeys((unit_of[u], unit_of[v]) for u, v in scene.edges if unit_of[u] != unit_of[v])
    box_of = {name: unit_of[key] for name, key in scene.box_of.items()}
    return Scene(boxes, list(edges), box_of)


def part_scene(scene: Scene, part: Part, unit_of: Mapping[str, str], labels: Mapping[str, str]) -> Scene:
    """The boxes of ``part`` in full, its graph inputs and output, and a dashed box per unit it reads or feeds.

    ``unit_of`` and ``labels`` name the outside units (the overview's boxes).
    """
    inside = set(part.boxes)
    before: dict[str, Box] = {}
    after: dict[str, Box] = {}
    edges: dict[tuple[str, str], None] = {}
    for u, v in scene.edges:
        if u in inside and v in inside:
            edges[(u, v)] = None
        elif v in inside:
            source = u if scene.boxes[u].category == INPUT else f"from:{unit_of[u]}"
            if source not in before:
                before[source] = scene.boxes[u] if source == u else _context(source, "from", labels[unit_of[u]])
            edges[(source, v)] = None
        elif u in inside:
            target = v if scene.boxes[v].category == OUTPUT else f"to:{unit_of[v]}"
            if target not in after:
                after[target] = scene.boxes[v] if target == v else _context(target, "to", labels[unit_of[v]])
            edges[(u, target)] = None
    boxes = before | {key: box for key, box in scene.boxes.items() if key in inside} | after
    box_of = {name: key for name, key in scene.box_of.items() if key in boxes}
    return Scene(boxes, list(edges), box_of)


def group_lines(label: str, members: Sequence[Box], module_type: str | None) -> tuple[str, ...]:
    """A group box's label: its name, type and op count, the most frequent op kinds, its last shape."""
    ops = [box for box in members if box.category not in (INPUT, OUTPUT)]
    kinds = Counter(box.kind for box in ops).most_common()
    summary = ", ".join(f"{count} {kind}" for kind, count in kinds[:MAX_KINDS]) + (", ..." if len(kinds) > MAX_KINDS else "")
    count = f"{len(ops)} op{'' if len(ops) == 1 else 's'}"
    shape = next((box.lines[1] for box in reversed(ops) if len(box.lines) > 1), None)
    return (label, f"{module_type}, {count}" if module_type else count, summary, *((shape,) if shape else ()))


def _context(key: str, direction: str, label: str) -> Box:
    return Box(key, CONTEXT, CONTEXT, (f"{direction} {label}", "outside this picture"), ())


def _module_parts(box: Box) -> tuple[str, ...]:
    path = module_path_of(box.node) if box.node is not None else ""
    return tuple(part for part in path.split(".") if part)


class _Module:
    """A node of the module tree: its child modules and own ops, in order of first appearance."""

    def __init__(self, path: tuple[str, ...]) -> None:
        self.path = path
        self.items: list[_Module | str] = []
        self.children: dict[str, _Module] = {}
        self.size = 0

    def add(self, path: tuple[str, ...], key: str) -> None:
        module = self
        module.size += 1
        for depth, name in enumerate(path):
            child = module.children.get(name)
            if child is None:
                child = module.children[name] = _Module(path[:depth + 1])
                module.items.append(child)
            module = child
            module.size += 1
        module.items.append(key)

    def boxes(self) -> list[str]:
        found, stack = [], [self]
        while stack:
            module = stack.pop()
            for item in module.items:
                if isinstance(item, str):
                    found.append(item)
                else:
                    stack.append(item)
        return found

    def atoms(self, max_nodes: int, order: Mapping[str, int]) -> list[Atom]:
        found: list[Atom] = []
        for item in self.items:
            if isinstance(item, str):
                found.append(Atom(item, item, [item]))
            elif item.size > max_nodes:
                found += item.atoms(max_nodes, order)
            else:
                boxes = sorted(item.boxes(), key=order.__getitem__)
                path = ".".join(item.path)
                found.append(Atom(boxes[0], path, boxes) if len(boxes) == 1
                             else Atom(GROUP_PREFIX + path, path, boxes, path))
        return found


def _pack(atoms: list[Atom], cap: int) -> list[list[Atom]]:
    """The fewest runs of consecutive atoms of at most ``cap`` boxes each, with the smallest largest run."""
    if not atoms:
        return []
    sizes = [len(atom.boxes) for atom in atoms]
    count = len(_greedy(sizes, cap))
    low, high = max(sizes), max(cap, max(sizes))
    while low < high:  # the smallest cap that still needs no more runs
        middle = (low + high) // 2
        if len(_greedy(sizes, middle)) <= count:
            high = middle
        else:
            low = middle + 1
    return [atoms[start:end] for start, end in _greedy(sizes, low)]


def _greedy(sizes: list[int], cap: int) -> list[tuple[int, int]]:
    runs, start, total = [], 0, 0
    for index, size in enumerate(sizes):
        if total + size > cap and index > start:
            runs.append((start, index))
            start, total = index, 0
        total += size
    runs.append((start, len(sizes)))
    return runs


def _acyclic(scene: Scene, unit_of: dict[str, str], labels: dict[str, str]) -> dict[str, str]:
    """Merge units that lie on a common cycle of the grouped graph into one unit (labels joined)."""
    graph = nx.DiGraph()
    graph.add_nodes_from(dict.fromkeys(unit_of[key] for key in scene.boxes))
    graph.add_edges_from((unit_of[u], unit_of[v]) for u, v in scene.edges if unit_of[u] != unit_of[v])
    merged: dict[str, str] = {}
    for component in nx.strongly_connected_components(graph):
        if len(component) < 2:
            continue
        ordered = [unit for unit in graph.nodes if unit in component]
        key = GROUP_PREFIX + "+".join(ordered)
        names = [labels.get(unit, unit) for unit in ordered]
        labels[key] = " + ".join(names[:3]) + (f" + {len(names) - 3} more" if len(names) > 3 else "")
        merged.update(dict.fromkeys(ordered, key))
    return {box: merged.get(unit, unit) for box, unit in unit_of.items()}


__all__ = ["Atom", "Part", "Plan", "group_lines", "grouped_scene", "module_types", "overview_units",
           "part_scene", "plan"]
