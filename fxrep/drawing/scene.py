"""What a picture shows: the boxes and arrows of a GraphModule, before any geometry.

Parameters (``get_attr`` nodes and computations on parameters only), assertion-like nodes
(`is_side_effect_only`, e.g. torch.export's ``_guards_fn``) and tuple plumbing are hidden: a
tuple-returning op such as ATen's ``_native_batch_norm_legit_no_training`` is drawn as the box of
its ``getitem`` (one "batchnorm" box), and arrows pass through hidden nodes. Placeholders and the
output are shown. Every fx node name that a box stands for maps to that box (``box_of``), so
report entries naming hidden plumbing still land on a box.
"""

from __future__ import annotations

import operator
from collections import Counter
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field

import networkx as nx
from torch.fx import GraphModule, Node

from ..affine import constant_nodes, is_side_effect_only
from ..ops import (
    Activation,
    AvgPool,
    BatchNorm,
    BorderFill,
    Cat,
    Conv,
    Linear,
    MaxPool,
    Pad,
    example_value,
    op_kind,
    target_name,
    view_of,
)

INPUT, OUTPUT, CHAIN = "input", "output", "chain"
GROUP, MARKED_GROUP, CONTEXT = "group", "marked group", "context"
"""Boxes of grouped pictures (`grouping`): a module as one box, one holding highlighted regions, a neighbour
outside the picture."""

CATEGORY_OF_VIEW = {
    Conv: "conv", Linear: "conv", BatchNorm: "batchnorm", Pad: "pad/pool",
    AvgPool: "pad/pool", MaxPool: "pad/pool", BorderFill: "pad/pool", Cat: "cat",
    Activation: "activation",
}
CATEGORY_OF_ARITHMETIC = {"add": "add/sub", "sub": "add/sub", "neg": "add/sub", "mul": "mul/div", "div": "mul/div"}


@dataclass
class Box:
    """One drawn box: an op (or a collapsed chain of ops), a graph input, or the output."""

    key: str
    kind: str
    category: str
    lines: tuple[str, ...]
    names: tuple[str, ...]
    """The fx node names this box stands for (its own first, then hidden plumbing or chain members)."""
    node: Node | None = None


@dataclass
class Scene:
    """Boxes in graph order and the arrows between them."""

    boxes: dict[str, Box]
    edges: list[tuple[str, str]]
    box_of: dict[str, str] = field(default_factory=dict)

    @property
    def op_count(self) -> int:
        return sum(1 for b in self.boxes.values() if b.category not in (INPUT, OUTPUT))

    def dag(self) -> nx.DiGraph:
        graph = nx.DiGraph()
        graph.add_nodes_from(self.boxes)
        graph.add_edges_from(self.edges)
        return graph


def build_scene(gm: GraphModule) -> Scene:
    """The visible boxes and arrows of ``gm`` (see the module docstring); reads ``gm`` only."""
    nodes = list(gm.graph.nodes)
    has_inputs = any(n.op == "placeholder" for n in nodes)
    constants = constant_nodes(gm) if has_inputs else {n for n in nodes if n.op == "get_attr"}
    hidden = {n for n in nodes if n in constants or n.op == "get_attr" or is_side_effect_only(n)}
    tuples = {n for n in nodes if n not in hidden and _returns_tuple(n)}
    hidden |= {n for n in nodes if _is_getitem(n) and n.args[0] in tuples and not _used(n)}

    scene = Scene({}, [])
    edges: dict[tuple[str, str], None] = {}  # ordered set
    for node in nodes:
        if node in hidden or node in tuples:
            continue
        producer = node.args[0] if _is_getitem(node) and node.args[0] in tuples else None
        kind, category, lines = describe(node, producer)
        names = (node.name,) if producer is None else (node.name, producer.name)
        scene.boxes[node.name] = Box(node.name, kind, category, lines, names, node)
        for name in names:
            scene.box_of.setdefault(name, node.name)
        for source in _visible_inputs(producer if producer is not None else node, hidden, tuples):
            edges[(scene.box_of[source.name], node.name)] = None
    scene.edges = list(edges)
    return scene


def describe(node: Node, producer: Node | None = None) -> tuple[str, str, tuple[str, ...]]:
    """``(kind, colour category, label lines)`` of a node; ``producer`` is the tuple op a getitem reads."""
    shape = _shape_text(node)
    if node.op == "placeholder":
        return INPUT, INPUT, (f"input {node.name}",) + ((shape,) if shape else ())
    if node.op == "output":
        return OUTPUT, OUTPUT, ("output",)
    kind = op_kind(node)
    if kind is None:
        kind = target_name(producer if producer is not None else node)
        if producer is not None:
            kind += f"[{node.args[1]}]"
        title, category = kind, _category_of_name(kind)
    else:
        title, category = kind + _detail(node), _category(node, kind)
    return kind, category, (title,) + ((shape,) if shape else ())


def collapse_chains(scene: Scene, group_of: Mapping[str, Hashable] | None = None) -> tuple[Scene, dict[str, str]]:
    """Merge every run of ops that only feed each other (one input, one user) into one box.

    Boxes with different ``group_of`` values (their highlight) never share a run. Returns the new
    scene and the box each old box went into.
    """
    group_of = group_of or {}
    out_degree = Counter(u for u, _ in scene.edges)
    in_degree = Counter(v for _, v in scene.edges)
    inner = {key for key, box in scene.boxes.items() if box.category not in (INPUT, OUTPUT)}
    next_of = {u: v for u, v in scene.edges
               if u in inner and v in inner and out_degree[u] == 1 and in_degree[v] == 1
               and group_of.get(u) == group_of.get(v)}
    followers = set(next_of.values())
    head_of: dict[str, str] = {}
    boxes: dict[str, Box] = {}
    for key, box in scene.boxes.items():
        if key in followers:
            continue
        run = [key]
        while run[-1] in next_of:
            run.append(next_of[run[-1]])
        head_of.update(dict.fromkeys(run, key))
        if len(run) == 1:
            boxes[key] = box
            continue
        kinds = list(dict.fromkeys(scene.boxes[m].kind for m in run))
        summary = ", ".join(kinds[:3]) + (", ..." if len(kinds) > 3 else "")
        names = tuple(n for m in run for n in scene.boxes[m].names)
        last_shape = scene.boxes[run[-1]].lines[1:]
        boxes[key] = Box(key, CHAIN, CHAIN, (f"{len(run)} ops", summary, *last_shape), names)
    edges = dict.fromkeys((head_of[u], head_of[v]) for u, v in scene.edges if head_of[u] != head_of[v])
    box_of = {name: head_of[key] for name, key in scene.box_of.items()}
    return Scene(boxes, list(edges), box_of), head_of


def _detail(node: Node) -> str:
    conv = Conv.from_node(node)
    if conv is not None:
        parts = ["x".join(map(str, conv.kernel_size))] if conv.kernel_size else []
        parts += _axes("s", conv.stride) + _axes("d", conv.dilation)
        parts += [f"g{conv.groups}"] if conv.groups != 1 else []
        return " " + " ".join(parts) if parts else ""
    pool = AvgPool.from_node(node) or MaxPool.from_node(node)
    if pool is not None:
        return " " + " ".join(["x".join(map(str, pool.kernel_size)), *_axes("s", pool.stride)])
    pad = Pad.from_node(node)
    if pad is not None:
        widths = sorted({w for pair in pad.pads for w in pair})
        mode = "" if pad.mode == "constant" and pad.value == 0 else f" {pad.mode}"
        return f" {','.join(map(str, widths))}{mode}"
    return ""


def _axes(prefix: str, values: tuple[int, ...]) -> list[str]:
    if all(v == 1 for v in values):
        return []
    return [prefix + (str(values[0]) if len(set(values)) == 1 else "x".join(map(str, values)))]


def _category(node: Node, kind: str) -> str:
    if kind in CATEGORY_OF_ARITHMETIC:
        return CATEGORY_OF_ARITHMETIC[kind]
    view = view_of(node, tuple(CATEGORY_OF_VIEW))
    return "other" if view is None else CATEGORY_OF_VIEW[type(view)]


def _category_of_name(name: str) -> str:
    """A colour for ops no view recognises, from their name (``adaptive_avg_pool2d``, ``constant_pad_nd``)."""
    if "pool" in name or name.startswith("pad") or "_pad" in name:
        return "pad/pool"
    if name in ("cat", "concat", "concatenate", "stack"):
        return "cat"
    return "other"


def _shape_text(node: Node) -> str:
    value = example_value(node)
    if value is None:
        return ""
    shape = [str(d) for d in value.shape]
    return "x".join(shape[1:] if len(shape) >= 2 else shape) or "scalar"


def _is_getitem(node: Node) -> bool:
    return node.op == "call_function" and node.target is operator.getitem and isinstance(node.args[0], Node)


def _used(node: Node) -> bool:
    return any(not is_side_effect_only(user) for user in node.users)


def _returns_tuple(node: Node) -> bool:
    """A node whose value is only read through getitem (ATen batch norm, split, max pool with indices)."""
    if node.op not in ("call_function", "call_module", "call_method") or _is_getitem(node):
        return False
    users = [u for u in node.users if not is_side_effect_only(u)]
    return bool(users) and all(_is_getitem(u) and u.args[0] is node for u in users)


def _visible_inputs(node: Node, hidden: set[Node], tuples: set[Node]) -> list[Node]:
    found: list[Node] = []
    for source in node.all_input_nodes:
        if source in hidden:
            continue
        if source in tuples:
            found += _visible_inputs(source, hidden, tuples)
        elif source not in found:
            found.append(source)
    return found
