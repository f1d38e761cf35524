"""`NoOp`: a node whose result is its input at inference, so every reader may read the input instead.

- ``identity``: `Identity` ops (``nn.Identity``, dropout of any kind in eval, ``alias``, ``detach``),
  and ``clone`` / ``contiguous`` where the recorded layout of the result equals the input's (a copy
  that changes the layout may be what a later ``view`` relies on);
- ``slice``: ``aten.slice`` over a whole dimension (start 0, end at or past the size, step 1);
- ``scatter``: ``aten.slice_scatter`` over a whole dimension (the result is ``src``);
- ``arithmetic``: ``x * 1``, ``x / 1``, ``x + 0``, ``x - 0`` with a scalar constant;
- ``pad``: a `Pad` of width 0 on every side, in any mode;
- ``reshape``: a `Layout` op (``view``, ``reshape``, ``flatten``, ``permute``, ...) or ``expand`` that
  leaves the input's shape and strides as they are.

Every kind also requires the recorded result to have the input's shape and dtype (a broadcast or a
type promotion is not a no-op). Graphs fxrep rewrites are functional, so dropping an op never
un-shares a tensor that something later mutates.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch.fx import Node

from ._binding import bind_schema
from ._graph import dims, example_value, tensor_constant
from .arithmetic import Arithmetic
from .identity import Identity
from .layout import Layout
from .pad import Pad

aten = torch.ops.aten

Kind = Literal["identity", "slice", "scatter", "arithmetic", "reshape", "pad"]
_NEUTRAL = {"mul": 1.0, "div": 1.0, "add": 0.0, "sub": 0.0}
_TO_THE_END = 2 ** 62


@dataclass(frozen=True, eq=False)
class NoOp:
    """``node`` returns ``input`` (see the module docstring)."""

    node: Node
    input: Node
    kind: Kind

    @classmethod
    def from_node(cls, node: Node) -> NoOp | None:
        found = _find(node)
        if found is None:
            return None
        source, kind = found
        if not isinstance(source, Node) or not _same_value_type(node, source, require_known=kind != "identity"):
            return None
        return cls(node, source, kind)


def _find(node: Node) -> tuple[Node, Kind] | None:
    identity = Identity.from_node(node)
    if identity is not None:
        if identity.copies and not same_layout(node, identity.input):
            return None
        return identity.input, "identity"
    layout = Layout.from_node(node)
    if layout is not None:
        if same_layout(node, layout.input) and (layout.kind == "reshape" or layout.permutation == tuple(
                range(len(layout.permutation)))):
            return layout.input, "reshape"
        return None
    if node.target is aten.expand.default:
        bound = bind_schema(node)
        if bound is not None and isinstance(bound["self"], Node) and same_layout(node, bound["self"]):
            return bound["self"], "reshape"
        return None
    if node.op not in ("call_function", "call_method"):
        return None
    if node.target is aten.slice.Tensor:
        bound = bind_schema(node)
        if bound is not None and _whole(bound, bound["self"]):
            return bound["self"], "slice"
        return None
    if node.target is aten.slice_scatter.default:
        bound = bind_schema(node)
        if bound is not None and isinstance(bound["src"], Node) and _whole(bound, bound["self"]):
            return bound["src"], "scatter"
        return None
    pad = Pad.from_node(node)
    if pad is not None:
        return (pad.input, "pad") if not any(any(side) for side in pad.pads) else None
    arithmetic = Arithmetic.from_node(node)
    if arithmetic is not None and arithmetic.op in _NEUTRAL and isinstance(arithmetic.lhs, Node):
        constant = tensor_constant(arithmetic.rhs)
        if constant is not None and constant.numel() == 1 and float(constant) == _NEUTRAL[arithmetic.op]:
            return arithmetic.lhs, "arithmetic"
    return None


def _whole(bound: dict, base) -> bool:
    """``bound`` (start, end, step, dim) covers all of ``base`` along its dim."""
    shape = dims(base)
    if shape is None or bound["step"] != 1:
        return False
    dim = bound["dim"] % len(shape)
    size = shape[dim]
    start, end = bound["start"], bound["end"]
    if start not in (None, 0):
        return False
    if end is None or (isinstance(end, int) and end >= _TO_THE_END):
        return True  # torch.export writes `x[:, a:]` as end = 2**63 - 1, whatever the (maybe dynamic) size
    return isinstance(end, int) and size is not None and end >= size


def same_layout(node: Node, source: Node) -> bool:
    """Whether ``node``'s recorded value has ``source``'s shape and strides (so views of it behave alike)."""
    out, inp = example_value(node), example_value(source)
    if out is None or inp is None:
        return False
    try:
        return _symbols(out.shape) == _symbols(inp.shape) and _symbols(out.stride()) == _symbols(inp.stride())
    except (RuntimeError, TypeError):
        return False


def _same_value_type(node: Node, source: Node, *, require_known: bool) -> bool:
    out, inp = example_value(node), example_value(source)
    if out is None or inp is None:
        return not require_known
    return out.dtype == inp.dtype and _symbols(out.shape) == _symbols(inp.shape)


def _symbols(sizes) -> tuple[str, ...]:
    """Sizes or strides as text, so a dynamic size compares by its symbol (``s0``) without a guard."""
    return tuple(str(size) for size in sizes)
