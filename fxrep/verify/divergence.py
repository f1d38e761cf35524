"""Why the outputs differ although every rewritten region passed its local check.

Each region reproduces the original's values within rounding, but rounding differences still flow
through the rest of the graph, and two things can blow them up:

1. **A discrete op.** ``topk``, ``sort``, ``argmax`` / ``argmin``, ``max(dim)``, comparisons,
   ``nonzero``, NMS-like selection, casts to integers, ``floor`` / ``round`` / ``sign``: any op
   that reads floating values and returns integers, booleans or steps. Two candidates whose
   scores differ by less than the rounding swap places, and every value indexed with the result
   changes completely. `explain` runs the original graph and the rewritten graph on the input set
   side by side, *pinning* the rewritten graph's discrete results (their non-floating outputs) to
   the original's: each discrete op whose own result differed is a flip; the difference of its
   floating inputs is "the size of the difference before it"; and with the original's choices the
   outputs are compared again. If every discrete op's inputs and the pinned outputs are within the
   tolerance, the whole difference comes from the flips and the optimized model is exact up to the
   first one: a warning, not an error.
2. **Amplification.** An ill-conditioned model (randomized BatchNorm statistics deep in a net)
   magnifies float32 rounding by orders of magnitude, so that even the original model run in
   float32 is far from its exact value. Then `explain` evaluates the original graph in float64
   (with the same pinned discrete choices) as the exact reference, and compares at every discrete
   op's inputs and at the outputs: the original's own float32 values are off by ``original_error``,
   the optimized module's by ``optimized_error``. If the optimized module is no farther than
   `ROUNDING_FACTOR` times the original from the exact result (or within the tolerance of it), the
   difference is rounding the model amplifies (by about ``original_error`` / the dtype's unit
   roundoff): a warning. The rewritten graph is also run in float64 (``optimized64_error``: what
   is left when only its weights are rounded) for the report.

Anything else, a difference before any discrete op that float64 does not show to be rounding, is
not explained, and stays an `EquivalenceError` although no region failed: never silently passed.
A model already in float64 has no higher precision to compare against, so (2) does not apply.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.fx import GraphModule, Node

from ..ops import target_name
from ..pass_base import module_path_of
from .correspondence import Correspondence
from .outputs import ROUNDING_FACTOR, value_error
from .running import NodeRaised, float64_copy, leaves, map_leaves, run_graph

STEP_FUNCTIONS = frozenset({"floor", "ceil", "round", "trunc", "sign", "sgn", "floor_divide", "fmod", "remainder"})
"""Floating ops with discrete results (named by `fxrep.ops.target_name`), besides those returning integers."""


@dataclass(frozen=True)
class Flip:
    """A discrete op whose result in the optimized graph differs from the original's."""

    node: str
    op: str
    module: str
    input_error: float
    """Max relative difference of its floating inputs, optimized vs original."""

    def describe(self) -> str:
        where = f" in module {self.module!r}" if self.module else ""
        return f"`{self.op}` (node {self.node}{where})"


@dataclass(frozen=True)
class Float64Comparison:
    """Distances from the exact (float64) evaluation of the original graph, at the worst watch point."""

    original_error: float
    """Of the original graph run in the model's dtype."""
    optimized_error: float
    """Of the optimized graph run in the model's dtype."""
    optimized64_error: float
    """Of the optimized graph run in float64 (only its weights rounded)."""
    amplification: float
    """``original_error`` over the dtype's unit roundoff."""
    where: str


@dataclass
class Divergence:
    """The explanation of an output difference on one input set (module docstring)."""

    inputs: str
    cause: str
    """"discrete" or "rounding" (explained), "lean", "capture" or "unexplained"."""
    message: str
    output_error: float = 0.0
    """The end-to-end max relative error being explained."""
    flips: list[Flip] = field(default_factory=list)
    before_error: float = 0.0
    """Max relative difference of every discrete op's floating inputs (the difference before them)."""
    pinned_error: float = 0.0
    """Max relative output difference with the original's discrete choices."""
    float64: Float64Comparison | None = None

    @property
    def explained(self) -> bool:
        return self.cause in ("discrete", "rounding")


@dataclass
class _Run:
    """What one run of a graph kept: each discrete op's result and floating inputs, and the outputs."""

    results: dict[str, Any] = field(default_factory=dict)
    inputs: dict[str, list[Any]] = field(default_factory=dict)
    outputs: list[Any] = field(default_factory=list)
    flips: list[Flip] = field(default_factory=list)


def explain(original: GraphModule, final: GraphModule, correspondence: Correspondence, label: str,
            inputs: tuple[Any, ...], output_error: float, tolerance: float) -> Divergence:
    """Explain why ``final`` (every region of which passed) differs from ``original`` on one input set."""
    reference = _run(original, inputs, pinned=None)
    optimized = _run(final, inputs, pinned=reference, correspondence=correspondence)
    pinned_error = _worst(reference.outputs, optimized.outputs)
    before_error = max((_worst(reference.inputs[name], values) for name, values in optimized.inputs.items()),
                       default=0.0)
    flips = optimized.flips
    if flips and pinned_error <= tolerance and before_error <= tolerance:
        first = flips[0]
        others = f" ({len(flips) - 1} other discrete ops flipped after it)" if len(flips) > 1 else ""
        message = (
            f"on the {label} the outputs differ from the model's by {output_error:.3g} (tolerance {tolerance:g}) "
            f"because the discrete op {first.describe()} chose differently{others}: its input differs from the "
            f"original's by only {first.input_error:.3g} (rounding), and with the original's choices at the "
            f"discrete ops the optimized module matches to {pinned_error:.3g}. Every rewritten region passed its "
            "local check, so the optimized model is exact up to that op; the model's own result depends on "
            "differences below the rounding of its dtype there")
        return Divergence(label, "discrete", message, output_error, flips, before_error, pinned_error)
    comparison = _float64(original, final, correspondence, inputs, reference, optimized)
    if comparison is None:
        message = (f"on the {label} the outputs differ from the model's by {output_error:.3g} (tolerance "
                   f"{tolerance:g}; {_flip_text(flips, before_error, pinned_error)}) although every rewritten "
                   "region passed its local check, and the model is already in float64, so rounding cannot be "
                   "told from a wrong rewrite")
        return Divergence(label, "unexplained", message, output_error, flips, before_error, pinned_error)
    limit = max(tolerance, ROUNDING_FACTOR * comparison.original_error)
    if comparison.optimized_error <= limit:
        message = (
            f"on the {label} the outputs differ from the model's by {output_error:.3g} (tolerance {tolerance:g}), "
            f"but every rewritten region passed its local check and the difference is rounding the model amplifies "
            f"(about {comparison.amplification:.2g}x its dtype's unit roundoff): evaluated exactly (float64), the "
            f"original model's own outputs are off by {comparison.original_error:.3g} at {comparison.where} and the "
            f"optimized module's by {comparison.optimized_error:.3g} (in float64 the optimized graph differs by "
            f"{comparison.optimized64_error:.3g}); {_flip_text(flips, before_error, pinned_error)}")
        return Divergence(label, "rounding", message, output_error, flips, before_error, pinned_error, comparison)
    message = (
        f"on the {label} the outputs differ from the model's by {output_error:.3g} (tolerance {tolerance:g}) although "
        f"every rewritten region passed its local check, and rounding does not explain it: evaluated exactly "
        f"(float64), the original's outputs are off by {comparison.original_error:.3g} at {comparison.where} but "
        f"the optimized module's by {comparison.optimized_error:.3g} (in float64 the optimized graph differs by "
        f"{comparison.optimized64_error:.3g}); {_flip_text(flips, before_error, pinned_error)}")
    return Divergence(label, "unexplained", message, output_error, flips, before_error, pinned_error, comparison)


def is_discrete(node: Node, value: Any, inputs: Sequence[Any]) -> bool:
    """Whether ``node`` turns floating inputs into integers, booleans or steps (module docstring)."""
    if node.op not in ("call_function", "call_method", "call_module"):
        return False
    if not any(_is_float(leaf) for item in inputs for leaf in leaves(item)):
        return False
    if any(isinstance(leaf, torch.Tensor) and not leaf.is_floating_point() for leaf in leaves(value)):
        return True
    try:
        return target_name(node) in STEP_FUNCTIONS
    except Exception:  # a target without a readable name is no step function of ours
        return False


def _run(gm: GraphModule, inputs: tuple[Any, ...], pinned: _Run | None, correspondence: Correspondence | None = None,
         float64: bool = False) -> _Run:
    """Run ``gm``; with ``pinned``, every node standing for an original discrete op gets its discrete result."""
    kept = _Run()

    def watch(node: Node, value: Any, read: list[Any]) -> Any:
        if node.op == "output":
            kept.outputs = list(leaves(value))
            return value
        name = node.name if correspondence is None else correspondence.origin.get(node.name)
        if pinned is None:
            if not is_discrete(node, value, read):
                return value
        elif name is None or name not in pinned.results:
            return value
        kept.results[name] = value
        kept.inputs[name] = [leaf for item in read for leaf in leaves(item) if _is_float(leaf)]
        if pinned is None:
            return value
        choice = pinned.results[name]
        if not float64 and _discrete_part_differs(choice, value):
            kept.flips.append(Flip(name, target_name(node), module_path_of(node),
                                   _worst(pinned.inputs[name], kept.inputs[name])))
        return _pin(node, value, choice)

    run_graph(gm, inputs, watch, float64=float64)
    return kept


def _pin(node: Node, value: Any, choice: Any) -> Any:
    """``value`` with the discrete part of ``choice`` (all of it for a step function)."""
    if target_name(node) in STEP_FUNCTIONS:
        return choice
    chosen = iter(list(leaves(choice)))

    def take(leaf: Any) -> Any:
        picked = next(chosen, None)
        if isinstance(leaf, torch.Tensor) and not leaf.is_floating_point() and isinstance(picked, torch.Tensor):
            return picked
        return leaf

    return map_leaves(value, take)


def _discrete_part_differs(expected: Any, actual: Any) -> bool:
    expected_leaves, actual_leaves = list(leaves(expected)), list(leaves(actual))
    if len(expected_leaves) != len(actual_leaves):
        return True
    for a, b in zip(expected_leaves, actual_leaves, strict=True):
        if isinstance(a, torch.Tensor) and not a.is_floating_point():
            if not isinstance(b, torch.Tensor) or a.shape != b.shape or not bool(torch.equal(a, b)):
                return True
    return False


def _float64(original: GraphModule, final: GraphModule, correspondence: Correspondence, inputs: tuple[Any, ...],
             reference: _Run, optimized: _Run) -> Float64Comparison | None:
    dtypes = {leaf.dtype for leaf in reference.outputs if _is_float(leaf)}
    if not dtypes or torch.float64 in dtypes:
        return None
    try:
        exact = _run(float64_copy(original), inputs, pinned=reference, float64=True)
        optimized64 = _run(float64_copy(final), inputs, pinned=reference, correspondence=correspondence,
                           float64=True)
    except NodeRaised:
        return None
    points = [("the outputs", exact.outputs, reference.outputs, optimized.outputs, optimized64.outputs)]
    points += [(f"the inputs of {name}", exact.inputs[name], reference.inputs[name], optimized.inputs[name],
                optimized64.inputs.get(name, []))
               for name in exact.inputs if name in optimized.inputs]
    worst = None
    for where, exact_values, original_values, optimized_values, optimized64_values in points:
        own, ours = _worst(exact_values, original_values), _worst(exact_values, optimized_values)
        ratio = ours / max(own, 1e-300)
        if worst is None or ratio > worst[0]:
            worst = (ratio, where, own, ours, _worst(exact_values, optimized64_values))
    _, where, own, ours, ours64 = worst
    roundoff = torch.finfo(next(iter(dtypes))).eps / 2
    return Float64Comparison(own, ours, ours64, own / roundoff, where)


def _worst(expected: Sequence[Any], actual: Sequence[Any]) -> float:
    """The largest relative error between two lists of values (inf when they cannot be compared)."""
    if len(expected) != len(actual):
        return float("inf")
    worst = 0.0
    for a, b in zip(expected, actual, strict=True):
        if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.dtype != b.dtype:
            a, b = a.double(), b.double()
        error = value_error(a, b)
        if isinstance(error, str):
            return float("inf")
        if error is not None:
            worst = max(worst, error[1])
    return worst


def _flip_text(flips: Sequence[Flip], before_error: float, pinned_error: float) -> str:
    if not flips:
        return "no discrete op chose differently"
    return (f"the discrete op {flips[0].describe()} chose differently, with its inputs {before_error:.3g} apart "
            f"before it and the outputs {pinned_error:.3g} apart with the original's choices")


def _is_float(value: Any) -> bool:
    return isinstance(value, torch.Tensor) and value.is_floating_point()
