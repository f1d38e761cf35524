"""Shape-only maps: `ConvMap`s whose weight lives on the ``meta`` device (geometry without numbers).

Planning a region compares many ways of computing it, and composing real kernels for each (a
dense 7x7 of 384 x 1152 channels, say) would cost seconds per candidate. Every rule of the kernel
algebra decides exactness from geometry (kernel, stride, padding, dilation, groups) and from
per-channel vectors (biases, border fills), never from the entries of a composed kernel. So the
planner runs the same algebra on maps whose weight is a meta tensor: torch computes every shape
(einsum, indexing, concatenation) without touching data. Biases and border values stay real.

A map with a meta weight is never taken for the identity (its entries are unknown); diagonal maps
(per-channel scales, which are cheap) are kept real for that reason. When real and shape-only maps
meet in one rule, `aligned` makes them all shape-only. Arithmetic on meta tensors still pays
torch's dispatch (about a millisecond per op), so each rule computes its geometry as usual and,
for shape-only maps, makes the result weight with `empty_weight` instead of computing it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import torch

from .conv_map import ConvMap

META = "meta"


def is_shape_only(conv: ConvMap) -> bool:
    """Whether ``conv``'s weight has a shape but no values."""
    return conv.weight.is_meta


def shape_only(conv: ConvMap) -> ConvMap:
    """``conv`` with its weight (and bias) on the meta device."""
    if is_shape_only(conv):
        return conv
    bias = None if conv.bias is None else conv.bias.to(META)
    return replace(conv, weight=conv.weight.to(META), bias=bias)


def aligned(*maps: ConvMap) -> tuple[ConvMap, ...]:
    """``maps`` as they are, or all shape-only when any one of them is."""
    if any(is_shape_only(m) for m in maps):
        return tuple(shape_only(m) for m in maps)
    return maps


def empty_weight(shape: Sequence[int]) -> torch.Tensor:
    """A shape-only float64 weight of ``shape``."""
    return torch.empty(tuple(shape), dtype=torch.float64, device=META)
