"""`BorderFill`: overwriting a slice of a tensor with a constant, as captured by torch.export.

Diverse Branch Block's ``BNAndPadLayer`` pads with zeros and then assigns the BN bias to the border
rows and columns in place (``out[:, :, 0:p, :] = pad_values``). Functionalised ATen graphs express
each assignment as

    slice_scatter(base, copy(slice(base, dim, start, end), value), dim, start, end)

(or with ``value`` itself as the scattered source). ``value`` is a constant, or ``expand`` of one
(the broadcast to a dynamic batch size that torch.export leaves in the graph). The view normalises
``start``/``end`` with the base's static size along the filled dim (other dims, such as a dynamic
batch, may be symbolic); the linear-region algebra decides whether the fill only restores the
values the border already has.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.fx import Node

from ._binding import bind_schema
from ._graph import dims, tensor_constant

aten = torch.ops.aten


@dataclass(frozen=True, eq=False)
class BorderFill:
    """``base`` with ``base[dim, start:end]`` replaced by ``value`` (broadcast)."""

    node: Node
    base: Node
    value: torch.Tensor
    dim: int
    start: int
    end: int
    parts: tuple[Node, ...] = ()
    """The ``copy`` and ``slice`` nodes that only serve this fill (empty when ``value`` is scattered directly)."""

    @classmethod
    def from_node(cls, node: Node) -> BorderFill | None:
        if node.op != "call_function" or node.target is not aten.slice_scatter.default:
            return None
        bound = bind_schema(node)
        shape = dims(node)
        if bound is None or shape is None or bound["step"] != 1 or not isinstance(bound["self"], Node):
            return None
        dim = bound["dim"] % len(shape)
        if shape[dim] is None:
            return None
        start, end = _resolve(bound["start"], bound["end"], shape[dim])
        value = _filled_value(bound["src"], bound["self"], dim, start, end, shape)
        if value is None:
            return None
        src = bound["src"]
        parts = () if not isinstance(src, Node) or src.op == "get_attr" else (src, src.args[0])
        return cls(node, bound["self"], value, dim, start, end, parts)


def _resolve(start: int | None, end: int | None, size: int) -> tuple[int, int]:
    start = 0 if start is None else start
    end = size if end is None else end
    start = max(0, start + size if start < 0 else min(start, size))
    end = max(0, end + size if end < 0 else min(end, size))
    return start, end


def _filled_value(src, base: Node, dim: int, start: int, end: int, shape) -> torch.Tensor | None:
    constant = _broadcast_constant(src)
    if constant is not None:
        return constant
    if not isinstance(src, Node) or src.op != "call_function" or src.target is not aten.copy.default:
        return None
    bound = bind_schema(src)
    if bound is None:
        return None
    sliced = bound["self"]
    if not isinstance(sliced, Node) or sliced.target is not aten.slice.Tensor:
        return None
    sliced_args = bind_schema(sliced)
    if sliced_args is None or sliced_args["self"] is not base or sliced_args["step"] != 1:
        return None
    if sliced_args["dim"] % len(shape) != dim:
        return None
    if _resolve(sliced_args["start"], sliced_args["end"], shape[dim]) != (start, end):
        return None
    return _broadcast_constant(bound["src"])


def _broadcast_constant(arg) -> torch.Tensor | None:
    """A constant, or the constant an ``aten.expand`` broadcasts (it fills the same values)."""
    constant = tensor_constant(arg)
    if constant is not None:
        return constant
    if isinstance(arg, Node) and arg.op == "call_function" and arg.target is aten.expand.default:
        bound = bind_schema(arg)
        if bound is not None:
            return tensor_constant(bound["self"])
    return None
