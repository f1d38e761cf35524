"""What capture records about a graph, behind one typed accessor: ``facts(gm)``.

Capture (`fxrep.capture`) learns things about a graph that its nodes do not say: which level it is
at, whether torch.export guards its input shapes, the ranges of its dynamic input sizes and the
guards torch.export put on them. It stores them in ``gm.meta`` (so they travel with deep copies of
the module); every reader goes through `GraphFacts`, and capture writes them with `record_level`
and `record_export_constraints`. The ``*_KEY`` names are the storage, not an interface.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import torch
from torch.fx import GraphModule

GraphLevel = Literal["module", "aten"]

LEVEL_KEY = "fxrep_level"
GUARDED_KEY = "fxrep_shape_guards"
RANGES_KEY = "fxrep_input_ranges"
INPUT_GUARDS_KEY = "fxrep_input_guards"


@dataclass(frozen=True)
class GraphFacts:
    """The facts capture recorded about ``gm`` (read when asked, so a later write is seen)."""

    gm: GraphModule

    @property
    def level(self) -> GraphLevel:
        """Whether the graph holds ATen ops (torch.export) or module/functional calls (symbolic_trace).

        As recorded by capture; for a graph capture never saw, "aten" when any node calls an ATen overload.
        """
        recorded = self.gm.meta.get(LEVEL_KEY)
        if recorded in ("aten", "module"):
            return recorded
        for node in self.gm.graph.nodes:
            if node.op == "call_function" and isinstance(node.target, torch._ops.OpOverload):
                return "aten"
        return "module"

    @property
    def shapes_guarded(self) -> bool:
        """True when the graph rejects inputs of other static sizes than it was traced with (torch.export
        guards), so rewrites exact only for the traced static sizes are safe; symbolic_trace graphs run on any size."""
        return bool(self.gm.meta.get(GUARDED_KEY, False))

    @property
    def input_ranges(self) -> Mapping[str, tuple[int, int | None]]:
        """``{symbol name: (lowest, highest or None)}`` of each dynamic input size of a torch.export capture
        (its range constraints, which the unlifted module does not keep); empty for other captures."""
        return self.gm.meta.get(RANGES_KEY, {})

    @property
    def input_guards(self) -> list[str]:
        """The guards torch.export put on dynamic input sizes beyond their ranges (``Eq(Mod(s0, 2), 0)``), as
        strings, recorded before any pass ran; empty for other captures."""
        return self.gm.meta.get(INPUT_GUARDS_KEY, [])

    @property
    def dynamic_batch(self) -> bool:
        """Whether the graph takes any batch size: its shapes are guarded and every tensor input's first
        size is symbolic. False for static captures and for graphs captured without torch.export, whose
        sizes fxrep does not know."""
        if not self.shapes_guarded:
            return False
        values = [node.meta.get("val") for node in self.gm.graph.find_nodes(op="placeholder")]
        tensors = [value for value in values if isinstance(value, torch.Tensor) and value.dim() > 0]
        return bool(tensors) and all(not isinstance(value.shape[0], int) for value in tensors)


def facts(gm: GraphModule) -> GraphFacts:
    """The facts capture recorded about ``gm``."""
    return GraphFacts(gm)


def record_level(gm: GraphModule, level: GraphLevel, shapes_guarded: bool | None = None) -> None:
    """Record the graph's level and whether its shapes are guarded (None: keep a recorded value, else False)."""
    gm.meta[LEVEL_KEY] = level
    if shapes_guarded is None:
        gm.meta.setdefault(GUARDED_KEY, False)
    else:
        gm.meta[GUARDED_KEY] = shapes_guarded


def record_export_constraints(gm: GraphModule, ranges: Mapping[str, tuple[int, int | None]],
                              guards: list[str]) -> None:
    """Record the ranges of a torch.export capture's dynamic input sizes and the guards on them."""
    gm.meta[RANGES_KEY] = dict(ranges)
    gm.meta[INPUT_GUARDS_KEY] = list(guards)
