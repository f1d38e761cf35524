"""`make_lean`: the module `fxrep.optimize` returns, built from the graph the passes left.

A new plain ``torch.fx.GraphModule`` (not torch.export's unlifted module class with its pre-forward
hooks) over a copy of the passes' graph, where

- each parameter and buffer is a flat attribute (``self.stage1_0_reparam_weight`` instead of
  ``getattr(self.stage1, "0").reparam.weight``: one lookup per weight instead of four), keeping its
  kind (parameter, persistent or non-persistent buffer, plain tensor attribute);
- the per-call ``_guards_fn`` node is gone; `LeanCodeGen` writes the forward with the fast entry
  points, in-place element-wise ops where safe, and one cheap input check (`InputCheck`).

The passes' module is left as it is, so a failed verification can tell a broken pass from a broken
final stage.
"""

from __future__ import annotations

import copy
import re
from collections import Counter
from dataclasses import dataclass, field

import torch
from torch.fx import Graph, GraphModule

from .codegen import LeanCodeGen, lean_graph
from .entry_points import OpOverload
from .input_check import GUARDS_MODULE, InputCheck, input_check_for
from .reinplace import in_place_plan


@dataclass(frozen=True)
class LeanSummary:
    """What the final stage did: ops written in place, ATen calls left without a fast entry, the check."""

    in_place: int
    slow_calls: Counter = field(default_factory=Counter)
    input_check: InputCheck | None = None

    def describe(self) -> str:
        check = "no input check (the graph runs on any input size)"
        if self.input_check is not None:
            what = "torch.export's guard function" if self.input_check.guards_function else "a shape check of"
            check = f"{what} {', '.join(spec.describe() for spec in self.input_check.inputs)}"
        slow = (f"; {sum(self.slow_calls.values())} ATen call(s) have no fast entry point and keep their "
                f"torch.ops.aten call: " + ", ".join(f"{name} ({count})" for name, count in self.slow_calls.items())
                if self.slow_calls else "; every ATen call through its fast entry point")
        return f"lean forward: {self.in_place} op(s) in place{slow}; {check}"


def make_lean(gm: GraphModule) -> GraphModule:
    """The lean module for ``gm`` (module docstring); ``gm`` itself is not changed."""
    graph = Graph()
    graph.output(graph.graph_copy(gm.graph, {}))
    for node in list(graph.find_nodes(op="call_module", target=GUARDS_MODULE)):
        if not node.users:
            graph.erase_node(node)
    root, kinds = _flat_attributes(gm, graph)
    check = input_check_for(gm)
    capture_codegen = _capture_codegen(gm)
    graph.set_codegen(LeanCodeGen(copy.deepcopy(capture_codegen), check))
    lean = GraphModule(root, graph)
    for name, (tensor, persistent) in kinds.items():
        delattr(lean, name)
        lean.register_buffer(name, tensor, persistent=persistent)
    if check is not None and check.guards_function:
        lean.add_module(GUARDS_MODULE, getattr(gm, GUARDS_MODULE))
    info = getattr(capture_codegen, "pytree_info", None)
    if info is not None:  # the pytree code of nested inputs or outputs reads them (`LeanCodeGen`)
        lean._in_spec, lean._out_spec = info.in_spec, info.out_spec
    lean.meta.update(gm.meta)
    lean.train(gm.training)
    return lean


def _capture_codegen(gm: GraphModule) -> object:
    """The code generator of the capture (for a module that is already lean: the one it wraps)."""
    codegen = gm.graph._codegen
    return codegen.capture_codegen if isinstance(codegen, LeanCodeGen) else codegen


def summarize(lean: GraphModule) -> LeanSummary:
    """What `make_lean` made of the module's current graph (for the report)."""
    codegen = lean.graph._codegen
    check = codegen.input_check if isinstance(codegen, LeanCodeGen) else None
    scratch, _ = lean_graph(lean.graph)
    slow = Counter(str(node.target) for node in scratch.nodes
                   if node.op == "call_function" and isinstance(node.target, OpOverload))
    return LeanSummary(len(in_place_plan(lean.graph)), slow, check)


def _flat_attributes(gm: GraphModule, graph: Graph) -> tuple[dict[str, object], dict[str, tuple[torch.Tensor, bool]]]:
    """Point every ``get_attr`` of ``graph`` at a flat name; the root for the new module, and its buffers.

    Returns ``{name: value}`` for ``GraphModule(root, graph)`` (which registers parameters and sets
    everything else as a plain attribute) and ``{name: (tensor, persistent)}`` of the buffers to
    register afterwards.
    """
    buffers = dict(gm.named_buffers())
    persistent = set(gm.state_dict(keep_vars=True))
    root: dict[str, object] = {}
    kinds: dict[str, tuple[torch.Tensor, bool]] = {}
    flat_names: dict[str, str] = {}
    taken = {str(node.target).split(".")[0] for node in graph.nodes if node.op == "call_module"}
    for node in graph.nodes:
        if node.op == "call_module":
            root[str(node.target)] = gm.get_submodule(str(node.target))
        if node.op != "get_attr":
            continue
        target = str(node.target)
        if target not in flat_names:
            flat_names[target] = _unique(_identifier(target), taken)
            value = _fetch(gm, target)
            root[flat_names[target]] = value
            if target in buffers:
                kinds[flat_names[target]] = (value, target in persistent)
        node.target = flat_names[target]
    return root, kinds


def _fetch(gm: GraphModule, target: str) -> object:
    value: object = gm
    for part in target.split("."):
        value = getattr(value, part)
    return value


def _identifier(target: str) -> str:
    name = re.sub(r"\W", "_", target).strip("_") or "attribute"
    return f"_{name}" if name[0].isdigit() else name


def _unique(name: str, taken: set[str]) -> str:
    candidate, suffix = name, 1
    while candidate in taken or hasattr(GraphModule, candidate):
        candidate, suffix = f"{name}_{suffix}", suffix + 1
    taken.add(candidate)
    return candidate
