"""`RegionPlan`: how a region will be computed, and `emit_plan`, which writes it into the graph.

A plan is the list of `Emission`s of the members it materialises (exits among them), in
topological order. Its estimated time and its op count are sums over those emissions, and
`emit_plan` emits exactly those ops, so what is costed, counted, reported and emitted is one thing.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import torch
from torch.fx import Node

from ..ops import BatchNorm, Conv, Linear, example_value
from ..pass_base import module_path_of
from ..rewriter import Rewriter
from .emission import Emission, emit
from .regions import Region


@dataclass(frozen=True, eq=False)
class RegionPlan:
    """The emissions that compute a region (see the module docstring)."""

    region: Region
    emissions: tuple[Emission, ...]
    seconds: float
    op_count: int
    residual: frozenset[Node] = frozenset()
    """Members whose tensor holds a pool core; their readers fold the rest (`AffineValue.factored`)."""

    @property
    def materialized(self) -> tuple[Node, ...]:
        return tuple(e.node for e in self.emissions)

    @property
    def changes(self) -> bool:
        """Whether the plan computes anything differently from the graph as it is."""
        return any(not e.keeps for e in self.emissions) or len(self.emissions) < len(self.region.nodes)

    @property
    def rules(self) -> Counter:
        return sum((e.rules for e in self.emissions), Counter())

    def describe(self) -> str:
        """``a = conv3x3 ...; b kept`` for the materialised nodes that change."""
        return "; ".join(e.describe() for e in self.emissions if not e.keeps) or "as it is"


@dataclass(frozen=True)
class PlanSummary:
    """Another plan of the same region, in brief: what it materialises and its estimate."""

    materialized: tuple[str, ...]
    """Names of the non-exit members it materialises."""
    seconds: float
    op_count: int

    def describe(self) -> str:
        cuts = ", ".join(self.materialized) if self.materialized else "nothing besides the exits"
        return f"materialising {cuts}: {self.op_count} ops, {self.seconds * 1e6:.1f} us"


@dataclass(frozen=True, eq=False)
class PlanChoice:
    """What planning found for one region: the chosen plan and what it was weighed against."""

    plan: RegionPlan
    as_is_seconds: float
    as_is_ops: int
    runner_up: PlanSummary | None
    """The best plan with another materialisation set (None if the region has only one)."""
    exact: bool
    """Whether the search was exhaustive (False: the bounded fallback pruned states)."""
    largest_frontier: int
    """The most search states alive at once."""
    cuts: dict[Node, str]
    """Why each member the plan materialises besides the exits is not folded into its readers."""


def emit_plan(rewriter: Rewriter, plan: RegionPlan) -> dict[Node, Node]:
    """Write ``plan`` into the graph; returns the members it replaced (old node -> new node).

    A member materialised as a pool core is not replaced: its core tensor holds another value than the
    member did, and only the plan's own emissions (which fold the rest) read it.
    """
    dtype, device = _dtype_and_device(plan.region.nodes)
    replaced: dict[Node, Node] = {}
    cores: dict[Node, Node] = {}

    def resolve(node: Node) -> Node:
        return cores.get(node) or rewriter.current(node)

    for emission in plan.emissions:
        new = emit(rewriter, emission, resolve=resolve, path=module_path_of(emission.node),
                   dtype=emission_dtype(emission.node, dtype), device=device)
        if new is None:
            continue
        if emission.node in plan.residual:
            cores[emission.node] = new
            for rule, times in emission.rules.items():
                rewriter.count(rule, times)
            continue
        rewriter.replace(emission.node, new)
        replaced[emission.node] = new
        for rule, times in emission.rules.items():
            rewriter.count(rule, times)
    if replaced:
        rewriter.count("regions")
    return replaced


def emission_dtype(node: Node, default: torch.dtype) -> torch.dtype:
    example = example_value(node)
    return example.dtype if example is not None and example.dtype.is_floating_point else default


def _dtype_and_device(nodes) -> tuple[torch.dtype, torch.device]:
    """The dtype and device of the region's parameters (the recorded values' dtype otherwise)."""
    for node in nodes:
        for view_type in (Conv, Linear, BatchNorm):
            view = view_type.from_node(node)
            weight = getattr(view, "weight", None) if view is not None else None
            if weight is None and view is not None:
                weight = getattr(view, "running_mean", None)
            if weight is not None:
                return weight.dtype, weight.device
    for node in nodes:
        example = example_value(node)
        if example is not None and example.dtype.is_floating_point:
            return example.dtype, torch.device("cpu")
    return torch.float32, torch.device("cpu")
