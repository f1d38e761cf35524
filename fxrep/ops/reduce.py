"""`Mean`: the average of a tensor over some of its axes (``mean`` and adaptive average pools to size 1);
`AdaptiveAvgPool`: an adaptive average pool to any size.

``x.mean(dims, keepdim)``, ``torch.mean``, ``aten.mean.dim``, and ``adaptive_avg_pool1d/2d/3d`` (module,
functional or ATen form) whose output size is 1 on every pooled axis (then it is ``mean(keepdim=True)``
over the trailing axes). A mean is linear and, over axes a per-channel map does not read, commutes with
it: ``mean(M(x)) = M(mean(x))`` for a pointwise ``M`` (`fxrep.affine.value.AffineValue.relayout`).

`channel_after` has the same meaning as for `fxrep.ops.Layout`: where the channel axis goes, None when
the mean runs over it. An adaptive pool to another size is an ordinary average pool (kernel = stride =
input / output size) exactly when every input size is a multiple of the output size; whether it is
depends on the input size, so the affine algebra uses it only where the graph checks its input sizes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn
from torch.fx import Node

from ._binding import bind_schema
from ._graph import called_module, dims

aten = torch.ops.aten

_ADAPTIVE = {F.adaptive_avg_pool1d: 1, F.adaptive_avg_pool2d: 2, F.adaptive_avg_pool3d: 3,
             aten.adaptive_avg_pool1d.default: 1, aten.adaptive_avg_pool2d.default: 2,
             aten._adaptive_avg_pool2d.default: 2, aten.adaptive_avg_pool3d.default: 3,
             aten._adaptive_avg_pool3d.default: 3}
_ADAPTIVE_MODULES = {nn.AdaptiveAvgPool1d: 1, nn.AdaptiveAvgPool2d: 2, nn.AdaptiveAvgPool3d: 3}

Dims = tuple[int | None, ...]


@dataclass(frozen=True, eq=False)
class Mean:
    """``node`` averages ``input`` over ``axes`` (non-negative, sorted), keeping them as size 1 if ``keepdim``."""

    node: Node
    input: Node
    axes: tuple[int, ...]
    keepdim: bool
    in_dims: Dims
    out_dims: Dims
    kind: Literal["mean"] = "mean"

    @classmethod
    def from_node(cls, node: Node) -> Mean | None:
        found = _find(node)
        if found is None:
            return None
        source, axes, keepdim = found
        in_dims, out_dims = dims(source), dims(node)
        if in_dims is None or out_dims is None:
            return None
        rank = len(in_dims)
        axes = tuple(sorted({a % rank for a in axes})) if axes else tuple(range(rank))
        return cls(node, source, axes, keepdim, in_dims, out_dims)

    def channel_after(self, channel: int) -> int | None:
        if channel in self.axes:
            return None
        return channel if self.keepdim else channel - sum(a < channel for a in self.axes)


def _find(node: Node) -> tuple[Node, tuple[int, ...], bool] | None:
    module = called_module(node)
    if module is not None:
        nd = _ADAPTIVE_MODULES.get(type(module))
        if nd is None or len(node.args) != 1 or not isinstance(node.args[0], Node):
            return None
        return _adaptive(node.args[0], nd, module.output_size)
    if node.op == "call_method" and node.target == "mean":
        source = node.args[0] if node.args else None
        axes = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim")
        keepdim = node.args[2] if len(node.args) > 2 else node.kwargs.get("keepdim", False)
        return _mean(source, axes, keepdim, node.kwargs.get("dtype"))
    if node.op != "call_function":
        return None
    if node.target is torch.mean:
        source = node.args[0] if node.args else node.kwargs.get("input")
        axes = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim")
        keepdim = node.args[2] if len(node.args) > 2 else node.kwargs.get("keepdim", False)
        return _mean(source, axes, keepdim, node.kwargs.get("dtype"))
    if node.target is aten.mean.dim:
        bound = bind_schema(node)
        if bound is None:
            return None
        return _mean(bound["self"], bound["dim"], bound["keepdim"], bound.get("dtype"))
    if node.target in _ADAPTIVE:
        source = node.args[0] if node.args else None
        size = node.args[1] if len(node.args) > 1 else node.kwargs.get("output_size")
        return _adaptive(source, _ADAPTIVE[node.target], size) if isinstance(source, Node) else None
    return None


def _mean(source, axes, keepdim, dtype) -> tuple[Node, tuple[int, ...], bool] | None:
    if not isinstance(source, Node) or dtype is not None or not isinstance(keepdim, bool):
        return None
    if axes is None:
        return None  # a mean over every axis, the channels included
    axes = (axes,) if isinstance(axes, int) else tuple(axes)
    return (source, axes, keepdim) if all(isinstance(a, int) for a in axes) else None


def _adaptive(source: Node, nd: int, size) -> tuple[Node, tuple[int, ...], bool] | None:
    sizes = (size,) * nd if isinstance(size, int) else tuple(size)
    if len(sizes) != nd or any(s != 1 for s in sizes):
        return None  # only pooling to size 1 is a plain mean
    return source, tuple(range(-nd, 0)), True


@dataclass(frozen=True, eq=False)
class AdaptiveAvgPool:
    """``adaptive_avg_pool{1,2,3}d(input, output_size)`` in module, functional or ATen form."""

    node: Node
    input: Node
    output_size: tuple[int, ...]

    @classmethod
    def from_node(cls, node: Node) -> AdaptiveAvgPool | None:
        module = called_module(node)
        if module is not None:
            nd = _ADAPTIVE_MODULES.get(type(module))
            if nd is None or len(node.args) != 1 or not isinstance(node.args[0], Node):
                return None
            source, size = node.args[0], module.output_size
        elif node.op == "call_function" and node.target in _ADAPTIVE:
            nd = _ADAPTIVE[node.target]
            source = node.args[0] if node.args else None
            size = node.args[1] if len(node.args) > 1 else node.kwargs.get("output_size")
        else:
            return None
        sizes = (size,) * nd if isinstance(size, int) else tuple(size)
        if not isinstance(source, Node) or len(sizes) != nd or not all(isinstance(s, int) for s in sizes):
            return None  # None entries keep the input size: not handled
        return cls(node, source, sizes)

    def kernel_for(self, in_size) -> tuple[int, ...] | None:
        """The average-pool kernel (= stride) this pool is for input size ``in_size``; None if not one."""
        if in_size is None or len(in_size) != len(self.output_size):
            return None
        if any(n % out for n, out in zip(in_size, self.output_size, strict=True)):
            return None
        return tuple(n // out for n, out in zip(in_size, self.output_size, strict=True))
