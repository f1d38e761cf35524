"""`Layout`: ops that move a tensor's elements between axes without changing any value.

Two kinds, in module, functional, Tensor-method or ATen form:

- ``reshape``: ``view`` / ``reshape`` / ``_unsafe_view`` / ``flatten`` / ``unflatten`` / ``reshape_as`` /
  ``view_as`` / ``squeeze`` / ``unsqueeze`` / ``nn.Flatten``: a row-major reshape, described by the
  recorded input and output shapes (the arguments are not needed);
- ``permute``: ``permute`` / ``transpose`` / ``t`` / ``swapaxes``: ``permutation[i]`` is the input axis
  that becomes output axis ``i``.

``replay`` describes a reshape by axes alone where the op allows it (``("flatten", start, end)``,
``("unsqueeze", axis)``, ``("squeeze", axes)``), so it can be re-applied to a tensor of any size; a
``view(8, -1, 64)`` has only sizes, valid for the traced shapes.

`channel_after` says where a tensor's channel axis goes, or None when the op splits it or merges it
with another axis (then a per-channel affine on one side is not per-channel on the other).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn
from torch.fx import Node

from ._binding import bind_schema
from ._graph import called_module, dims

aten = torch.ops.aten

_RESHAPE_OVERLOADS = (
    aten.view.default, aten.reshape.default, aten._unsafe_view.default, aten.flatten.using_ints,
    aten.unflatten.int, aten.reshape_as.default, aten.view_as.default, aten.squeeze.dim, aten.squeeze.dims,
    aten.squeeze.default, aten.unsqueeze.default,
)
_RESHAPE_FUNCTIONS = (torch.reshape, torch.flatten, torch.unflatten, torch.squeeze, torch.unsqueeze)
_RESHAPE_METHODS = ("view", "reshape", "flatten", "unflatten", "reshape_as", "view_as", "squeeze", "unsqueeze")
_PERMUTE_METHODS = ("permute", "transpose", "t", "swapaxes", "swapdims")

Dims = tuple[int | None, ...]


@dataclass(frozen=True, eq=False)
class Layout:
    """``node`` rearranges ``input`` (see the module docstring)."""

    node: Node
    input: Node
    kind: Literal["reshape", "permute"]
    in_dims: Dims
    out_dims: Dims
    permutation: tuple[int, ...] = ()
    replay: tuple | None = None

    @classmethod
    def from_node(cls, node: Node) -> Layout | None:
        found = _find(node)
        if found is None:
            return None
        source, kind, permutation = found
        in_dims, out_dims = dims(source), dims(node)
        if in_dims is None or out_dims is None:
            return None
        if kind == "permute" and (len(permutation) != len(in_dims) or sorted(permutation) != list(range(len(in_dims)))):
            return None
        replay = _replay(node, len(in_dims), len(out_dims)) if kind == "reshape" else None
        return cls(node, source, kind, in_dims, out_dims, permutation, replay)

    def channel_after(self, channel: int) -> int | None:
        """Output axis holding input axis ``channel`` whole, or None when the op splits or merges it."""
        if self.kind == "permute":
            return self.permutation.index(channel)
        size = self.in_dims[channel]
        suffix = _product(self.in_dims[channel + 1:])
        if size is None or suffix is None:
            return None
        for axis, out_size in enumerate(self.out_dims):
            if out_size == size and _product(self.out_dims[axis + 1:]) == suffix:
                return axis
        return None


def _find(node: Node) -> tuple[Node, str, tuple[int, ...]] | None:
    module = called_module(node)
    if module is not None:
        if isinstance(module, nn.Flatten) and len(node.args) == 1 and isinstance(node.args[0], Node):
            return node.args[0], "reshape", ()
        return None
    if node.op == "call_method":
        if not node.args or not isinstance(node.args[0], Node):
            return None
        if node.target in _RESHAPE_METHODS:
            return node.args[0], "reshape", ()
        if node.target in _PERMUTE_METHODS:
            permutation = _permutation(node, str(node.target), node.args[1:], node.kwargs)
            return None if permutation is None else (node.args[0], "permute", permutation)
        return None
    if node.op != "call_function":
        return None
    if node.target in _RESHAPE_OVERLOADS or node.target in _RESHAPE_FUNCTIONS:
        source = node.args[0] if node.args else node.kwargs.get("input")
        return (source, "reshape", ()) if isinstance(source, Node) else None
    if node.target is aten.permute.default:
        bound = bind_schema(node)
        if bound is None or not isinstance(bound["self"], Node):
            return None
        rank = len(dims(bound["self"]) or ())
        return bound["self"], "permute", tuple(d % rank for d in bound["dims"]) if rank else ()
    if node.target in (aten.transpose.int, aten.t.default):
        bound = bind_schema(node)
        if bound is None or not isinstance(bound["self"], Node):
            return None
        name = "transpose" if node.target is aten.transpose.int else "t"
        permutation = _permutation(node, name, [bound[k] for k in ("dim0", "dim1") if k in bound], {})
        return None if permutation is None else (bound["self"], "permute", permutation)
    if node.target in (torch.permute, torch.transpose, torch.t, torch.swapaxes):
        if not node.args or not isinstance(node.args[0], Node):
            return None
        name = {torch.permute: "permute", torch.transpose: "transpose", torch.t: "t"}.get(node.target, "transpose")
        permutation = _permutation(node, name, node.args[1:], node.kwargs)
        return None if permutation is None else (node.args[0], "permute", permutation)
    return None


_FLATTEN = (aten.flatten.using_ints, torch.flatten)
_SQUEEZE = (aten.squeeze.dim, aten.squeeze.dims, torch.squeeze)
_UNSQUEEZE = (aten.unsqueeze.default, torch.unsqueeze)


def _replay(node: Node, in_rank: int, out_rank: int) -> tuple | None:
    """The reshape as an axes-only op (see the module docstring), or None when it is given by sizes."""
    module = called_module(node)
    args = list(node.args[1:])
    if module is not None and isinstance(module, nn.Flatten):
        return ("flatten", module.start_dim % in_rank, module.end_dim % in_rank)
    name = node.target if node.op == "call_method" else None
    if name == "flatten" or node.target in _FLATTEN:
        start = args[0] if args else node.kwargs.get("start_dim", 0)
        end = args[1] if len(args) > 1 else node.kwargs.get("end_dim", -1)
        return ("flatten", start % in_rank, end % in_rank) if isinstance(start, int) and isinstance(end, int) else None
    if name == "unsqueeze" or node.target in _UNSQUEEZE:
        axis = args[0] if args else node.kwargs.get("dim")
        return ("unsqueeze", axis % out_rank) if isinstance(axis, int) else None
    if name == "squeeze" or node.target in _SQUEEZE:
        axes = args[0] if args else node.kwargs.get("dim")
        axes = (axes,) if isinstance(axes, int) else axes
        if not axes or not all(isinstance(a, int) for a in axes):
            return None
        return ("squeeze", tuple(sorted(a % in_rank for a in axes)))
    return None


def _permutation(node: Node, name: str, args: Sequence, kwargs: dict) -> tuple[int, ...] | None:
    source = node.args[0]
    rank = len(dims(source) or ())
    if not rank:
        return None
    if name == "permute":
        order = args[0] if len(args) == 1 and isinstance(args[0], list | tuple) else list(args)
        order = list(kwargs.get("dims", order))
        if not all(isinstance(d, int) for d in order):
            return None
        return tuple(d % rank for d in order)
    if name == "t":
        return (1, 0) if rank == 2 else tuple(range(rank))
    values = list(args) + [kwargs[k] for k in ("dim0", "dim1", "axis0", "axis1") if k in kwargs]
    if len(values) != 2 or not all(isinstance(d, int) for d in values):
        return None
    a, b = (d % rank for d in values)
    order = list(range(rank))
    order[a], order[b] = order[b], order[a]
    return tuple(order)


def _product(sizes: Sequence[int | None]) -> int | None:
    if any(size is None for size in sizes):
        return None
    return math.prod(sizes)  # type: ignore[arg-type]
