"""`Conv`: one view of a convolution, whatever form it was captured in.

Recognised forms: ``nn.Conv{1,2,3}d`` / ``nn.ConvTranspose{1,2,3}d`` modules (not subclasses that
override ``forward``), ``F.conv{1,2,3}d`` / ``F.conv_transpose{1,2,3}d``, and the ATen overloads
``aten.conv{1,2,3}d`` (int or string padding), ``aten.convolution``, ``aten._convolution`` and
``aten.conv_transpose{1,2,3}d``. Padding is stored as (low, high) pairs per spatial axis, so
``padding="same"`` with an even kernel is exact.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.fx import Node

from ..algebra import ConvMap, NotExact, conv_map, normalize_padding
from ..algebra.conv_map import Padding
from ._binding import REQUIRED, bind_call, per_axis
from ._graph import called_module, constant_value, example_value, has_hooks

aten = torch.ops.aten

_CONV = (("input", REQUIRED), ("weight", REQUIRED), ("bias", None), ("stride", 1), ("padding", 0),
         ("dilation", 1), ("groups", 1))
_CONV_T = (("input", REQUIRED), ("weight", REQUIRED), ("bias", None), ("stride", 1), ("padding", 0),
           ("output_padding", 0), ("groups", 1), ("dilation", 1))
_SIGNATURES = {
    F.conv1d: _CONV, F.conv2d: _CONV, F.conv3d: _CONV,
    F.conv_transpose1d: _CONV_T, F.conv_transpose2d: _CONV_T, F.conv_transpose3d: _CONV_T,
}
_ATEN_CONV = (aten.conv1d.default, aten.conv2d.default, aten.conv3d.default,
              aten.conv1d.padding, aten.conv2d.padding, aten.conv3d.padding)
_ATEN_CONV_T = (aten.conv_transpose1d.default, aten.conv_transpose2d.input, aten.conv_transpose3d.input)
_ATEN_GENERAL = (aten.convolution.default, aten._convolution.default)
_MODULES = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)


@dataclass(frozen=True, eq=False)
class Conv:
    """A convolution node; ``weight``/``bias`` are None when they are computed at run time."""

    node: Node
    input: Node
    weight: torch.Tensor | None
    bias: torch.Tensor | None
    weight_is_constant: bool
    bias_is_constant: bool
    stride: tuple[int, ...]
    padding: Padding
    dilation: tuple[int, ...]
    groups: int
    transposed: bool
    output_padding: tuple[int, ...]
    padding_mode: str
    module: nn.Module | None
    weight_shape: tuple[int, ...] | None = None
    """The weight's shape, also when the weight is computed at run time (from the graph's recorded tensors)."""

    @property
    def nd(self) -> int:
        return len(self.stride)

    @property
    def out_channels(self) -> int | None:
        if self.weight is None:
            return None
        return self.weight.shape[1] * self.groups if self.transposed else self.weight.shape[0]

    @property
    def kernel_size(self) -> tuple[int, ...] | None:
        return None if self.weight is None else tuple(self.weight.shape[2:])

    @classmethod
    def from_node(cls, node: Node) -> Conv | None:
        module = called_module(node)
        if module is not None:
            return _from_module(node, module)
        if node.op != "call_function":
            return None
        bound = bind_call(node, _SIGNATURES, overloads=_ATEN_CONV + _ATEN_CONV_T + _ATEN_GENERAL)
        if bound is None or not isinstance(bound["input"], Node):
            return None
        transposed = node.target in _ATEN_CONV_T or _SIGNATURES.get(node.target) is _CONV_T
        if node.target in _ATEN_GENERAL:
            transposed = bool(bound["transposed"])
        weight_value = constant_value(bound["weight"])
        bias_value = None if bound["bias"] is None else constant_value(bound["bias"])
        weight_shape = _weight_shape(bound["weight"], weight_value)
        if weight_shape is None:
            return None
        nd = len(weight_shape) - 2
        padding = bound["padding"]
        return cls(
            node=node,
            input=bound["input"],
            weight=weight_value if isinstance(weight_value, torch.Tensor) else None,
            bias=bias_value if isinstance(bias_value, torch.Tensor) else None,
            weight_is_constant=isinstance(weight_value, torch.Tensor),
            bias_is_constant=bound["bias"] is None or isinstance(bias_value, torch.Tensor),
            stride=per_axis(bound["stride"], nd),
            padding=_padding(padding, weight_shape, per_axis(bound["dilation"], nd), transposed),
            dilation=per_axis(bound["dilation"], nd),
            groups=int(bound["groups"]),
            transposed=transposed,
            output_padding=per_axis(bound.get("output_padding", 0), nd),
            padding_mode="zeros",
            module=None,
            weight_shape=weight_shape,
        )

    def geometry(self) -> ConvMap:
        """This conv as a `ConvMap` for shapes and costs only: its own weight (no float64 copy), or, for a weight
        computed at run time (DiracNet, DO-Conv, weight standardization), a meta tensor of the weight's shape."""
        if self.transposed:
            raise NotExact(f"{self.node.name} is transposed")
        if self.weight is not None:
            return ConvMap(self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)
        if self.weight_shape is None:
            raise NotExact(f"{self.node.name}'s weight shape is unknown")
        return ConvMap(torch.empty(self.weight_shape, device="meta"), None, self.stride, self.padding,
                       self.dilation, self.groups)

    def conv_map(self) -> ConvMap:
        """This conv as a `ConvMap`; raises `NotExact` when it is not a constant, zero-padded conv."""
        if self.transposed:
            raise NotExact(f"{self.node.name} is a transposed conv")
        if not (self.weight_is_constant and self.bias_is_constant) or self.weight is None:
            raise NotExact(f"{self.node.name}'s weight is computed from a graph input at run time")
        if self.padding_mode != "zeros":
            raise NotExact(f"{self.node.name} pads with mode {self.padding_mode!r}, not zeros")
        if self.module is not None and has_hooks(self.module):
            raise NotExact(f"{self.node.name}'s module has hooks that may change what it computes")
        return conv_map(self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)


def _from_module(node: Node, module: nn.Module) -> Conv | None:
    base = next((m for m in _MODULES if isinstance(module, m)), None)
    if base is None or type(module).forward is not base.forward or len(node.args) != 1 or node.kwargs:
        return None
    if not isinstance(node.args[0], Node):
        return None
    nd = module.weight.dim() - 2
    transposed = isinstance(module, nn.ConvTranspose1d | nn.ConvTranspose2d | nn.ConvTranspose3d)
    weight = module.weight.detach()
    return Conv(
        node=node,
        input=node.args[0],
        weight=weight,
        bias=None if module.bias is None else module.bias.detach(),
        weight_is_constant=True,
        bias_is_constant=True,
        stride=per_axis(module.stride, nd),
        padding=_padding(module.padding, tuple(weight.shape), per_axis(module.dilation, nd), transposed),
        dilation=per_axis(module.dilation, nd),
        groups=module.groups,
        transposed=transposed,
        output_padding=per_axis(getattr(module, "output_padding", 0), nd),
        padding_mode=module.padding_mode,
        module=module,
        weight_shape=tuple(weight.shape),
    )


def _weight_shape(arg: Any, value: Any) -> tuple[int, ...] | None:
    if isinstance(value, torch.Tensor):
        return tuple(value.shape)
    example = example_value(arg)
    if example is None or not all(isinstance(d, int) for d in example.shape):
        return None
    return tuple(example.shape)




def _padding(padding: Any, weight_shape: Sequence[int], dilation: tuple[int, ...], transposed: bool) -> Padding:
    nd = len(weight_shape) - 2
    if isinstance(padding, str):
        if padding == "valid":
            return ((0, 0),) * nd
        if padding != "same" or transposed:
            raise ValueError(f"unsupported conv padding {padding!r}")
        pairs = []
        for d, k in zip(dilation, weight_shape[2:], strict=True):
            total = d * (k - 1)
            pairs.append((total // 2, total - total // 2))
        return tuple(pairs)
    return normalize_padding(padding, nd)
