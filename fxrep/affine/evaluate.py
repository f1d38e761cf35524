"""Evaluating a region: every member's `AffineValue`, given which members are materialised.

A *materialisation set* M names the members that become tensors of their own (the region's exits
always among them). A member outside M is *virtual*: its value is folded into whatever reads it.
Then each member's value is a function of the region's entries and of M:

    value(n) = op_n( value(i) for each input i )     where value(i) = the identity on i
                                                      if i is an entry or in M

`RegionEvaluator` computes one node's value from its inputs' (the step the planner repeats for
many M); `evaluate_region` runs it over the whole region for one M. A member whose op cannot take
its inputs' values (the algebra raises `NotExact`) is *kept* as it is, which needs every input
materialised; if one is virtual the set M is infeasible and `InfeasiblePlan` names the node.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field

from torch.fx import Node

from ..algebra import NotExact
from .ops import NothingToFold, TensorLayout
from .regions import Region
from .shapes import GraphShapes
from .value import AffineValue, Source


class InfeasiblePlan(NotExact):
    """A materialisation set under which ``node`` cannot be computed (``str(error)`` says why)."""

    def __init__(self, node: Node, reason: str) -> None:
        super().__init__(reason)
        self.node = node


@dataclass
class RegionEvaluator:
    """Computes the values of one region's members (see the module docstring).

    ``shape_only`` evaluates with shape-only kernels (`fxrep.algebra.shape_only`): the same
    exactness decisions and shapes, without computing composed weights.
    """

    region: Region
    shapes: GraphShapes
    shape_only: bool = False
    layouts: dict[Node, TensorLayout] = field(default_factory=dict)
    """Layout of each member's value, learned from the first value computed for it."""
    _sources: dict[tuple[Node, TensorLayout], AffineValue] = field(default_factory=dict)

    def size_of(self, source: Source) -> tuple[int, ...] | None:
        return self.shapes.exact_size(source)

    def source(self, node: Node, index: int, known: Sequence[AffineValue]) -> AffineValue:
        """The identity on input ``index`` of ``node``'s op, read as a tensor of its own."""
        op = self.region.ops[node]
        tensor = op.inputs[index]
        layout = self.layouts.get(tensor) or op.input_layout(index, known)
        channels, nd, channel_dim = layout
        if channels is None or nd is None:
            raise NotExact(f"the shape of {tensor.name} is unknown; pass example inputs")
        key = (tensor, layout)
        if key not in self._sources:  # values are immutable: one identity per tensor and layout
            self._sources[key] = AffineValue.of_source(tensor, channels, nd, channel_dim, shape_only=self.shape_only)
        return self._sources[key]

    def apply(self, node: Node, virtual: Mapping[Node, AffineValue]) -> AffineValue:
        """``node``'s value, where ``virtual`` holds the values of its virtual inputs (the rest are tensors)."""
        op = self.region.ops[node]
        known = [virtual[i] for i in op.inputs if i in virtual]
        inputs = [virtual[i] if i in virtual else self.source(node, index, known)
                  for index, i in enumerate(op.inputs)]
        value = op.apply(inputs, self.size_of)
        self.layouts.setdefault(node, (value.channels, value.nd, value.channel_dim))
        return value


@dataclass
class Evaluation:
    """The values of a region's members under one materialisation set."""

    values: dict[Node, AffineValue]
    """Every member that could be computed, in terms of the entries and the materialised members."""
    kept: dict[Node, str]
    """Materialised members whose op cannot take its inputs' values: they stay as they are (why)."""
    materialized: frozenset[Node]
    cores: dict[Node, AffineValue] = field(default_factory=dict)
    """Members materialised as pool cores: what their tensor holds (`AffineValue.factored`)."""


def evaluate_region(region: Region, materialized: Collection[Node], shapes: GraphShapes, *,
                    shape_only: bool = False, residual: Collection[Node] = (),
                    layouts: Mapping[Node, TensorLayout] | None = None) -> Evaluation:
    """Evaluate every member of ``region`` under ``materialized`` (exits are added to it).

    Members in ``residual`` are materialised as pool cores: their readers see the core's tensor through
    the residual per-channel scale and bias (`AffineValue.factored`). Raises `InfeasiblePlan` when a
    member's op cannot take the value of a virtual input, or a residual member's value is no scaled pool.
    """
    cores_wanted = frozenset(residual)
    chosen = frozenset(materialized) | frozenset(region.exits) | cores_wanted
    evaluator = RegionEvaluator(region, shapes, shape_only, dict(layouts or {}))
    values: dict[Node, AffineValue] = {}
    seen_as: dict[Node, AffineValue] = {}  # what readers of a residual member fold
    cores: dict[Node, AffineValue] = {}
    kept: dict[Node, str] = {}
    for node in region.nodes:
        inputs = region.member_inputs(node)
        virtual = {i: seen_as[i] if i in seen_as else values[i] for i in inputs if i not in chosen or i in seen_as}
        try:
            values[node] = evaluator.apply(node, virtual)
        except NotExact as reason:
            if node not in chosen or node in cores_wanted or not set(region.member_reads(node)) <= chosen:
                raise InfeasiblePlan(node, str(reason)) from reason
            kept[node] = "" if isinstance(reason, NothingToFold) else str(reason)
            continue
        if node in cores_wanted:
            factored = values[node].factored()
            if factored is None:
                raise InfeasiblePlan(node, f"{node.name}'s value is not one scaled pool")
            core, scale, bias = factored
            cores[node] = core
            seen_as[node] = values[node].read_through(node, scale, bias)
    return Evaluation(values, kept, chosen, cores)
