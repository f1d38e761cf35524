"""Branches that read the same input: their sum (add trees) and their concatenation (``cat``).

Branch ``i`` on one axis reads input index ``stride * j + f_i + d_i * t`` with first tap
``f_i = -low_i`` and ``t in [0, k_i)``. With equal strides, every tap of every branch is an integer
offset from ``stride * j``, so one kernel covering the union of taps reproduces them all:

    first tap  F = min_i f_i,  last tap  L = max_i (f_i + d_i (k_i - 1))
    dilation   D = gcd(d_i for k_i > 1, f_i - F)       (1 when that gcd is 0)
    kernel     K = (L - F) / D + 1,   low padding = -F

and branch ``i`` lands at indices ``(f_i - F) / D + t * d_i / D``. Kernels (and biases) add; for a
concatenation they stack along the output channels. A 1x1 kernel therefore lands at the centre of
a 3x3 with "same" padding, a 1x3 with padding (0, 1) on the middle row, and so on.

Exactness needs the same output grid: branch ``i`` has ``floor((n + r_i - 1) / stride) + 1`` outputs
with reach ``r_i = low_i + high_i - d_i (k_i - 1)``. Equal reaches give equal grids for every input
size ``n``; unequal reaches may coincide for the traced size only, which is accepted when that size
is known and static (``in_size``) and refused otherwise. Different strides are refused. Different
group counts are merged in ``gcd`` of the counts (block-diagonal expansion, exact, maybe costlier).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from .conv_map import ConvMap
from .errors import NotExact
from .groups import common_groups, regroup
from .shape_only import aligned, empty_weight, is_shape_only


@dataclass(frozen=True)
class _AxisLayout:
    first: int
    dilation: int
    kernel: int
    low: int
    high: int


def _axis_layout(maps: Sequence[ConvMap], axis: int, in_size: Sequence[int] | None) -> _AxisLayout:
    firsts = [-m.padding[axis][0] for m in maps]
    lasts = [f + m.span(axis) for f, m in zip(firsts, maps, strict=True)]
    first, last = min(firsts), max(lasts)
    dilation = math.gcd(*(m.dilation[axis] for m in maps if m.kernel_size[axis] > 1), *(f - first for f in firsts))
    dilation = dilation or 1
    kernel = (last - first) // dilation + 1
    reaches = [sum(m.padding[axis]) - m.span(axis) for m in maps]
    stride = maps[0].stride[axis]
    if len(set(reaches)) > 1:
        if in_size is None:
            raise NotExact(
                f"branch paddings {[m.padding[axis] for m in maps]} on axis {axis} give output grids that "
                "line up only for some input sizes, and the input size is not static"
            )
        counts = {(in_size[axis] + r - 1) // stride + 1 for r in reaches}
        if len(counts) > 1:
            raise NotExact(f"branch output sizes {sorted(counts)} differ on axis {axis}")
    low = -first
    high = reaches[0] + (last - first) - low
    return _AxisLayout(first, dilation, kernel, low, high)


def _check_same_geometry(maps: Sequence[ConvMap], same_out: bool) -> None:
    if not maps:
        raise ValueError("need at least one branch")
    reference = maps[0]
    for other in maps[1:]:
        if other.nd != reference.nd:
            raise NotExact(f"branches have {reference.nd}-d and {other.nd}-d kernels")
        if other.stride != reference.stride:
            raise NotExact(f"stride {other.stride} does not match {reference.stride}")
        if other.in_channels != reference.in_channels:
            raise NotExact(f"branches read {reference.in_channels} and {other.in_channels} channels")
        if same_out and other.out_channels != reference.out_channels:
            raise NotExact(f"branches produce {reference.out_channels} and {other.out_channels} channels")


def _place(conv: ConvMap, layouts: Sequence[_AxisLayout]) -> torch.Tensor:
    """``conv``'s kernel written into the union kernel described by ``layouts``."""
    kernel = tuple(layout.kernel for layout in layouts)
    placed = conv.weight.new_zeros(*conv.weight.shape[:2], *kernel)
    index: list[slice] = [slice(None), slice(None)]
    for axis, layout in enumerate(layouts):
        start = (-conv.padding[axis][0] - layout.first) // layout.dilation
        step = conv.dilation[axis] // layout.dilation if conv.kernel_size[axis] > 1 else 1
        index.append(slice(start, start + step * (conv.kernel_size[axis] - 1) + 1, step))
    placed[tuple(index)] = conv.weight
    return placed


def _merged(maps: Sequence[ConvMap], in_size: Sequence[int] | None) -> tuple[list[torch.Tensor], ConvMap]:
    layouts = [_axis_layout(maps, axis, in_size) for axis in range(maps[0].nd)]
    if is_shape_only(maps[0]):
        kernel = tuple(layout.kernel for layout in layouts)
        kernels = [empty_weight((*m.weight.shape[:2], *kernel)) for m in maps]
    else:
        kernels = [_place(m, layouts) for m in maps]
    template = ConvMap(
        weight=kernels[0],
        bias=None,
        stride=maps[0].stride,
        padding=tuple((layout.low, layout.high) for layout in layouts),
        dilation=tuple(layout.dilation for layout in layouts),
        groups=maps[0].groups,
    )
    return kernels, template


def sum_maps(maps: Sequence[ConvMap], in_size: Sequence[int] | None = None) -> ConvMap:
    """One ConvMap equal to ``sum_i maps[i](x)``; raises `NotExact` with the reason otherwise.

    ``in_size`` is the static spatial size of ``x`` when known; without it only merges that are
    exact for every input size are made.
    """
    _check_same_geometry(maps, same_out=True)
    maps = aligned(*maps)
    groups = common_groups(*maps)
    maps = [regroup(m, groups) for m in maps]
    kernels, template = _merged(maps, in_size)
    bias = None
    if any(m.bias is not None for m in maps):
        bias = sum(m.bias_or_zeros() for m in maps)
    weight = kernels[0]
    for kernel in kernels[1:] if not is_shape_only(maps[0]) else ():
        weight = weight + kernel
    return ConvMap(weight, bias, template.stride, template.padding, template.dilation, groups)


def stack_maps(maps: Sequence[ConvMap], in_size: Sequence[int] | None = None) -> ConvMap:
    """One ConvMap equal to ``cat([maps[i](x) for i], dim=channels)``; raises `NotExact` otherwise."""
    _check_same_geometry(maps, same_out=False)
    maps = aligned(*maps)
    # Stacked outputs of grouped convs are no longer contiguous per group: go dense.
    groups = maps[0].groups if len(maps) == 1 else 1
    maps = [regroup(m, groups) for m in maps]
    kernels, template = _merged(maps, in_size)
    bias = None
    if any(m.bias is not None for m in maps):
        bias = torch.cat([m.bias_or_zeros() for m in maps])
    if is_shape_only(maps[0]):
        weight = empty_weight((sum(k.shape[0] for k in kernels), *kernels[0].shape[1:]))
    else:
        weight = torch.cat(kernels)
    return ConvMap(weight, bias, template.stride, template.padding, template.dilation, groups)
