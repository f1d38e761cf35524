"""Sequential composition ``outer(inner(x))`` of two convs with no non-linearity between.

Per axis, output ``j`` reads inner output ``s2 j - p2 + d2 t2``, which reads input
``s1 (s2 j - p2 + d2 t2) - p1 + d1 t1``. Hence (DESIGN.md section 4, generalised to dilation and
(low, high) padding):

    stride   S = s1 s2
    padding  P = p1 + s1 p2                 (low and high separately)
    taps     u = s1 d2 t2 + d1 t1  ->  dilation D = gcd(s1 d2, d1), kernel K = (s1 d2 (k2-1) + d1 (k1-1)) / D + 1
    weight   W[o, i, u / D] = sum_{m, t1, t2 : s1 d2 t2 + d1 t1 = u} W2[o, m, t2] W1[m, i, t1]
    bias     b[o] = b2[o] + sum_{m, t2} W2[o, m, t2] b1[m]

(the kernel is the full correlation of W1 with W2 dilated by s1). The output grids agree for every
input size. Groups compose in ``gcd(g1, g2)``. The result is exact iff the outer conv reads only the
inner conv's grid, or the values it pads with equal what the inner conv produces there: the
inner's natural extension must be constant (see `fxrep.algebra.borders`) and equal to the pad
value, i.e. for zero padding the inner bias must be 0. A kxk inner conv with padding followed by a
padded outer conv reads real inputs at its border and is refused.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import torch

from .batchnorm import fold_into_inputs, fold_into_outputs, input_response
from .borders import extension_is_constant
from .conv_map import ConvMap
from .errors import NotExact
from .groups import common_groups, regroup
from .shape_only import aligned, empty_weight, is_shape_only


def compose_kernels(outer: ConvMap, inner: ConvMap) -> ConvMap:
    """The composite ConvMap, without checking the border condition (see `compose`)."""
    if outer.nd != inner.nd:
        raise NotExact(f"cannot compose a {outer.nd}-d conv after a {inner.nd}-d conv")
    if outer.in_channels != inner.out_channels:
        raise ValueError(f"outer conv reads {outer.in_channels} channels, inner produces {inner.out_channels}")
    outer, inner = aligned(outer, inner)
    if outer.is_diagonal:
        return _scale_outputs(inner, outer)
    if inner.is_diagonal:
        return _scale_inputs(outer, inner)
    groups = common_groups(outer, inner)
    outer, inner = regroup(outer, groups), regroup(inner, groups)
    nd = inner.nd
    w1 = inner.weight.reshape(groups, inner.out_channels // groups, *inner.weight.shape[1:])
    w2 = outer.weight.reshape(groups, outer.out_channels // groups, *outer.weight.shape[1:])

    dilation, kernel, tap_offset, tap_step = [], [], [], []
    for axis in range(nd):
        s1, d1, d2 = inner.stride[axis], inner.dilation[axis], outer.dilation[axis]
        k1, k2 = inner.kernel_size[axis], outer.kernel_size[axis]
        outer_step = s1 * d2
        d = math.gcd(outer_step if k2 > 1 else 0, d1 if k1 > 1 else 0) or 1
        dilation.append(d)
        kernel.append((outer_step * (k2 - 1) + d1 * (k1 - 1)) // d + 1)
        tap_offset.append(outer_step // d)
        tap_step.append(d1 // d if k1 > 1 else 1)

    if is_shape_only(inner):
        weight = empty_weight((groups, w2.shape[1], w1.shape[2], *kernel))
        taps = ()
    else:
        weight = w1.new_zeros(groups, w2.shape[1], w1.shape[2], *kernel)
        taps = itertools.product(*(range(k) for k in outer.kernel_size))
    for t2 in taps:
        contribution = torch.einsum("gom,gmi...->goi...", w2[(..., *t2)], w1)
        index = [slice(None)] * 3
        for axis, tap in enumerate(t2):
            start = tap * tap_offset[axis]
            index.append(slice(start, start + tap_step[axis] * (inner.kernel_size[axis] - 1) + 1, tap_step[axis]))
        weight[tuple(index)] += contribution

    bias = outer.bias
    if inner.bias is not None:
        passed = propagate_bias(outer.without_bias(), inner.bias)
        bias = passed if bias is None else bias + passed

    return ConvMap(
        weight=weight.reshape(outer.out_channels, *weight.shape[2:]),
        bias=bias,
        stride=tuple(s1 * s2 for s1, s2 in zip(inner.stride, outer.stride, strict=True)),
        padding=tuple(
            (lo1 + s1 * lo2, hi1 + s1 * hi2)
            for (lo1, hi1), (lo2, hi2), s1 in zip(inner.padding, outer.padding, inner.stride, strict=True)
        ),
        dilation=tuple(dilation),
        groups=groups,
    )


def _scale_outputs(inner: ConvMap, outer: ConvMap) -> ConvMap:
    """Diagonal ``outer`` (per-channel ``a``, ``c``): ``W = a W1``, ``b = a b1 + c`` (`fold_into_outputs`)."""
    weight, bias = fold_into_outputs(inner.weight, inner.bias, outer.weight.reshape(-1), outer.bias)
    return ConvMap(weight, bias, inner.stride, inner.padding, inner.dilation, inner.groups, uniform=inner.uniform)


def _scale_inputs(outer: ConvMap, inner: ConvMap) -> ConvMap:
    """Diagonal ``inner`` (per-channel ``a``, ``c``): `fold_into_inputs`, ``W[o, m] = W2[o, m] a[m]``."""
    weight, bias = fold_into_inputs(outer.weight, outer.bias, inner.weight.reshape(-1), inner.bias,
                                    groups=outer.groups)
    return ConvMap(weight, bias, outer.stride, outer.padding, outer.dilation, outer.groups, uniform=outer.uniform)


def propagate_bias(outer: ConvMap, bias: torch.Tensor) -> torch.Tensor:
    """``outer`` applied to a constant per-channel input ``bias``: ``b2 + sum_{m,t} W2[o, m, t] bias[m]``."""
    passed = input_response(outer.weight, bias, outer.groups)
    return passed if outer.bias is None else passed + outer.bias


def check_border(outer: ConvMap, inner: ConvMap, inner_bias: torch.Tensor | None,
                 in_size: Sequence[int] | None = None) -> None:
    """Raise `NotExact` unless ``outer``'s zero padding equals what ``inner`` (+ ``inner_bias``) yields there."""
    if not outer.has_padding:
        return
    if not extension_is_constant(inner, outer.padding, in_size):
        raise NotExact(
            f"the outer conv zero-pads (padding {outer.padding}) the output of a conv with kernel "
            f"{inner.kernel_size} and padding {inner.padding}, whose border outputs depend on the input"
        )
    if inner_bias is not None and bool(inner_bias.ne(0).any()):
        channel = int(torch.nonzero(inner_bias)[0])
        raise NotExact(
            f"the outer conv zero-pads (padding {outer.padding}) a tensor whose border value is its bias "
            f"({float(inner_bias[channel]):.4g} on channel {channel}), not 0"
        )


def compose(outer: ConvMap, inner: ConvMap, in_size: Sequence[int] | None = None) -> ConvMap:
    """One ConvMap equal to ``outer(inner(x))``; raises `NotExact` with the reason otherwise."""
    check_border(outer, inner, inner.bias, in_size)
    return compose_kernels(outer, inner)
