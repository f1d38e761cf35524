"""What a conv produces just outside its output grid, and growing that grid.

Evaluate a ConvMap at output positions beyond its grid (its "natural extension"). Position ``j``
on one axis reads input indices ``stride * j - low + dilation * t``. If none of those lies inside
``[0, n)`` the value there is just the bias. For the ring of positions ``[-w_low, 0)`` this holds iff

    dilation * (kernel - 1) - low <= stride - 1                     (position -1 reads below 0)

and for ``[out, out + w_high)`` iff ``stride * out - low >= n``, which for every ``n`` is implied by

    dilation * (kernel - 1) <= high

When the natural extension equals the padding a later op adds (zeros, or DBB's BN-bias padding),
pad-then-conv equals the conv with its padding grown by ``stride * w`` on each side: the output grid
gains ``w`` positions and every old position reads the same inputs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from .conv_map import ConvMap, Padding


def extension_is_constant(conv: ConvMap, ring: Padding, in_size: Sequence[int] | None = None) -> bool:
    """Whether ``conv`` reads no input at the output positions of ``ring`` (per-axis (low, high) widths).

    ``in_size`` (static spatial input size) makes the high-side test exact; without it the test
    holds for every input size.
    """
    for axis, (width_low, width_high) in enumerate(ring):
        stride = conv.stride[axis]
        low, high = conv.padding[axis]
        span = conv.span(axis)
        if width_low > 0 and span - low > stride - 1:
            return False
        if width_high > 0:
            if in_size is None:
                if span > high:
                    return False
            else:
                out = conv.output_size(in_size)[axis]
                if stride * out - low < in_size[axis]:
                    return False
    return True


def extend_padding(conv: ConvMap, ring: Padding) -> ConvMap:
    """``conv`` with its output grid grown by ``ring`` output positions per side (see module doc)."""
    padding = tuple(
        (low + stride * width_low, high + stride * width_high)
        for (low, high), stride, (width_low, width_high) in zip(conv.padding, conv.stride, ring, strict=True)
    )
    return replace(conv, padding=padding)
