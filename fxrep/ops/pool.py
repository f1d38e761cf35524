"""`AvgPool` and `MaxPool`: pooling in module, functional or ATen form.

An average pool with ``count_include_pad=True`` (or no padding), ``ceil_mode`` that adds no extra
window, and no ``divisor_override`` is a depthwise conv (see `fxrep.algebra.avgpool_map`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.fx import Node

from ..algebra import ConvMap, NotExact, avgpool_map
from ._binding import REQUIRED, bind_call, per_axis
from ._graph import called_module

aten = torch.ops.aten

_AVG = (("input", REQUIRED), ("kernel_size", REQUIRED), ("stride", None), ("padding", 0), ("ceil_mode", False),
        ("count_include_pad", True), ("divisor_override", None))
_AVG_SIGNATURES = {F.avg_pool1d: _AVG[:-1], F.avg_pool2d: _AVG, F.avg_pool3d: _AVG}
_AVG_OVERLOADS = (aten.avg_pool1d.default, aten.avg_pool2d.default, aten.avg_pool3d.default)
_AVG_MODULES = (nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d)

_MAX = (("input", REQUIRED), ("kernel_size", REQUIRED), ("stride", None), ("padding", 0), ("dilation", 1),
        ("ceil_mode", False), ("return_indices", False))
_MAX_SIGNATURES = {F.max_pool1d: _MAX, F.max_pool2d: _MAX, F.max_pool3d: _MAX}
_MAX_OVERLOADS = (aten.max_pool1d.default, aten.max_pool2d.default, aten.max_pool3d.default)
_MAX_MODULES = (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d)


@dataclass(frozen=True, eq=False)
class AvgPool:
    """An average pool over the trailing ``len(kernel_size)`` dimensions."""

    node: Node
    input: Node
    kernel_size: tuple[int, ...]
    stride: tuple[int, ...]
    padding: tuple[int, ...]
    ceil_mode: bool
    count_include_pad: bool
    divisor_override: int | None

    @classmethod
    def from_node(cls, node: Node) -> AvgPool | None:
        module = called_module(node)
        if module is not None:
            if type(module) not in _AVG_MODULES or len(node.args) != 1 or not isinstance(node.args[0], Node):
                return None
            nd = _AVG_MODULES.index(type(module)) + 1
            bound = {"input": node.args[0], "kernel_size": module.kernel_size, "stride": module.stride,
                     "padding": module.padding, "ceil_mode": module.ceil_mode,
                     "count_include_pad": module.count_include_pad,
                     "divisor_override": getattr(module, "divisor_override", None)}
        elif node.op == "call_function":
            bound = bind_call(node, _AVG_SIGNATURES, overloads=_AVG_OVERLOADS)
            if bound is None:
                return None
            if "self" in bound:
                bound["input"] = bound.pop("self")
            nd = _nd(node.target, _AVG_OVERLOADS, _AVG_SIGNATURES)
        else:
            return None
        if not isinstance(bound["input"], Node):
            return None
        kernel = per_axis(bound["kernel_size"], nd)
        stride = per_axis(bound["stride"], nd) if bound["stride"] not in (None, [], ()) else kernel
        return cls(node, bound["input"], kernel, stride, per_axis(bound["padding"], nd), bool(bound["ceil_mode"]),
                   bool(bound["count_include_pad"]), bound.get("divisor_override"))

    def conv_map(self, channels: int, in_size: Sequence[int] | None) -> ConvMap:
        """This pool as a depthwise `ConvMap`; raises `NotExact` when it is not one."""
        if self.divisor_override is not None:
            raise NotExact(f"{self.node.name} overrides the divisor")
        if not self.count_include_pad and any(self.padding):
            raise NotExact(f"{self.node.name} pads without counting the padding (count_include_pad=False), "
                           "so border windows divide by fewer elements")
        pool = avgpool_map(channels, self.kernel_size, self.stride, self.padding)
        if self.ceil_mode:
            if in_size is None:
                raise NotExact(f"{self.node.name} uses ceil_mode and the input size is not static")
            ceil = tuple(-(-(n + 2 * p - k) // s) + 1 for n, k, s, p in
                         zip(in_size, self.kernel_size, self.stride, self.padding, strict=True))
            ceil = tuple(c - 1 if (c - 1) * s >= n + p else c for c, s, n, p in
                         zip(ceil, self.stride, in_size, self.padding, strict=True))
            if ceil != pool.output_size(in_size):
                raise NotExact(f"{self.node.name} uses ceil_mode, which adds a partial window here")
        return pool


@dataclass(frozen=True, eq=False)
class MaxPool:
    """A max pool (a non-linearity: recognised for matching, drawing and cost, never folded)."""

    node: Node
    input: Node
    kernel_size: tuple[int, ...]
    stride: tuple[int, ...]
    padding: tuple[int, ...] = ()
    dilation: tuple[int, ...] = ()
    ceil_mode: bool = False

    @classmethod
    def from_node(cls, node: Node) -> MaxPool | None:
        module = called_module(node)
        if module is not None:
            if type(module) not in _MAX_MODULES or len(node.args) != 1 or not isinstance(node.args[0], Node):
                return None
            nd = _MAX_MODULES.index(type(module)) + 1
            kernel = per_axis(module.kernel_size, nd)
            stride = per_axis(module.stride, nd) if module.stride is not None else kernel
            return cls(node, node.args[0], kernel, stride, per_axis(module.padding, nd),
                       per_axis(module.dilation, nd), bool(module.ceil_mode))
        if node.op != "call_function":
            return None
        bound = bind_call(node, _MAX_SIGNATURES, overloads=_MAX_OVERLOADS)
        if bound is None:
            return None
        source = bound.get("input", bound.get("self"))
        if not isinstance(source, Node):
            return None
        nd = _nd(node.target, _MAX_OVERLOADS, _MAX_SIGNATURES)
        kernel = per_axis(bound["kernel_size"], nd)
        stride = per_axis(bound["stride"], nd) if bound["stride"] not in (None, [], ()) else kernel
        return cls(node, source, kernel, stride, per_axis(bound["padding"], nd), per_axis(bound["dilation"], nd),
                   bool(bound["ceil_mode"]))


def _nd(target: Any, overloads: Sequence[Any], signatures: dict) -> int:
    if target in overloads:
        return overloads.index(target) + 1
    return list(signatures).index(target) + 1
