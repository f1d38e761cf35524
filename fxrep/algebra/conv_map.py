"""`ConvMap`: one affine, shift-invariant map, the value every linear region collapses to.

A ConvMap with ``nd`` spatial axes is

    y = conv_nd(zero_pad(x, padding), weight, stride, dilation, groups) + bias

with ``weight`` of shape ``(O, I / groups, *kernel)`` and per-axis padding given as a
``(low, high)`` pair, so asymmetric padding (``F.pad(x, (0, 1))``, ``padding="same"`` with an
even kernel) is represented exactly. Per axis, output index ``j`` reads input indices

    stride * j - low + dilation * t,   t in [0, kernel)

and the output has ``floor((n + low + high - dilation * (kernel - 1) - 1) / stride) + 1`` positions
for an input of ``n`` positions. ``nd == 0`` is a Linear layer on ``(N, I)``.

The kernel algebra (sum of branches, sequential composition, ...) builds new ConvMaps from old
ones; it computes in float64 and leaves the cast back to the model's dtype to the emitter.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import cached_property

import torch
import torch.nn.functional as F

Padding = tuple[tuple[int, int], ...]


@dataclass(frozen=True, eq=False)
class ConvMap:
    """An affine convolution ``y = conv(x, weight, ...) + bias`` (see the module docstring)."""

    weight: torch.Tensor
    bias: torch.Tensor | None
    stride: tuple[int, ...]
    padding: Padding
    dilation: tuple[int, ...]
    groups: int
    uniform: bool = False
    """Depthwise with one constant per channel over all taps: an average pool scaled per channel, which
    can run as a pool. Kept by per-channel scaling and by growing the padding; any other rule that
    builds a map leaves it False."""

    def __post_init__(self) -> None:
        nd = self.weight.dim() - 2
        if nd < 0:
            raise ValueError(f"a conv weight needs at least 2 dims, got shape {tuple(self.weight.shape)}")
        for name in ("stride", "padding", "dilation"):
            if len(getattr(self, name)) != nd:
                raise ValueError(f"{name} has {len(getattr(self, name))} entries for a {nd}-d kernel")
        if self.weight.shape[0] % self.groups:
            raise ValueError(f"{self.weight.shape[0]} output channels do not split into {self.groups} groups")
        if self.bias is not None and self.bias.shape != (self.weight.shape[0],):
            raise ValueError(f"bias shape {tuple(self.bias.shape)} does not match {self.weight.shape[0]} outputs")

    @property
    def nd(self) -> int:
        return self.weight.dim() - 2

    @property
    def out_channels(self) -> int:
        return self.weight.shape[0]

    @property
    def in_channels(self) -> int:
        return self.weight.shape[1] * self.groups

    @property
    def kernel_size(self) -> tuple[int, ...]:
        return tuple(self.weight.shape[2:])

    @cached_property
    def is_diagonal(self) -> bool:
        """Per-channel scaling: depthwise, 1x..x1 kernel, no stride, dilation or padding."""
        return (
            self.groups == self.in_channels == self.out_channels
            and all(k == 1 for k in self.kernel_size)
            and all(s == 1 for s in self.stride)
            and not self.has_padding
        )

    @cached_property
    def is_identity(self) -> bool:
        """The identity map: diagonal with weight 1 and no bias (never a shape-only map: its entries are unknown)."""
        if not self.is_diagonal or self.weight.is_meta:
            return False
        return bool((self.weight == 1).all()) and (self.bias is None or not self.bias.any())

    def pool_factor(self) -> torch.Tensor | None:
        """For a `uniform` map: the per-channel factor ``f`` with ``map = f * avg_pool`` (None if unknown)."""
        if not self.uniform or self.weight.is_meta:
            return None
        return self.weight.reshape(self.out_channels, -1)[:, 0] * math.prod(self.kernel_size)

    @property
    def has_padding(self) -> bool:
        return any(lo or hi for lo, hi in self.padding)

    @property
    def symmetric_padding(self) -> tuple[int, ...] | None:
        """The conv-style padding when every axis pads both sides equally, else None."""
        if all(lo == hi for lo, hi in self.padding):
            return tuple(lo for lo, _ in self.padding)
        return None

    def bias_or_zeros(self) -> torch.Tensor:
        if self.bias is not None:
            return self.bias
        return torch.zeros(self.out_channels, dtype=self.weight.dtype, device=self.weight.device)

    def span(self, axis: int) -> int:
        """Distance between the first and the last tap on ``axis``: ``dilation * (kernel - 1)``."""
        return self.dilation[axis] * (self.kernel_size[axis] - 1)

    def output_size(self, in_size: Sequence[int]) -> tuple[int, ...]:
        """Spatial output size for spatial input size ``in_size``."""
        return tuple(
            (n + lo + hi - self.span(axis) - 1) // self.stride[axis] + 1
            for axis, (n, (lo, hi)) in enumerate(zip(in_size, self.padding, strict=True))
        )

    def macs_per_output(self) -> int:
        """Multiply-accumulates per output position: ``O * I / groups * prod(kernel)``."""
        return self.out_channels * self.weight.shape[1] * math.prod(self.kernel_size)

    def to(self, dtype: torch.dtype) -> ConvMap:
        bias = None if self.bias is None else self.bias.to(dtype)
        return replace(self, weight=self.weight.to(dtype), bias=bias)

    def without_bias(self) -> ConvMap:
        return replace(self, bias=None)

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """Reference evaluation with ``torch.nn.functional`` (tests and debugging)."""
        weight = self.weight.to(x.dtype)
        bias = None if self.bias is None else self.bias.to(x.dtype)
        if self.nd == 0:
            return F.linear(x, weight, bias)
        flat_pad = [p for lo, hi in reversed(self.padding) for p in (lo, hi)]
        if any(flat_pad):
            x = F.pad(x, flat_pad)
        conv = (F.conv1d, F.conv2d, F.conv3d)[self.nd - 1]
        return conv(x, weight, bias, self.stride, 0, self.dilation, self.groups)


def _per_axis(value: int | Sequence[int], nd: int, name: str) -> tuple[int, ...]:
    if isinstance(value, int):
        return (value,) * nd
    value = tuple(int(v) for v in value)
    if len(value) == 1 and nd > 1:
        return value * nd
    if len(value) != nd:
        raise ValueError(f"{name} {value} does not have {nd} entries")
    return value


def normalize_padding(padding: int | Sequence[int] | Sequence[Sequence[int]], nd: int) -> Padding:
    """Turn conv-style padding (int, per-axis ints, or (low, high) pairs) into (low, high) pairs."""
    if isinstance(padding, int):
        return ((padding, padding),) * nd
    items = list(padding)
    if items and all(isinstance(p, Sequence) for p in items):
        pairs = tuple((int(lo), int(hi)) for lo, hi in items)
        if len(pairs) != nd:
            raise ValueError(f"padding {pairs} does not have {nd} entries")
        return pairs
    return tuple((p, p) for p in _per_axis(items, nd, "padding"))


def conv_map(
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    stride: int | Sequence[int] = 1,
    padding: int | Sequence[int] | Sequence[Sequence[int]] = 0,
    dilation: int | Sequence[int] = 1,
    groups: int = 1,
) -> ConvMap:
    """Build a ConvMap from conv-style arguments, converting parameters to float64."""
    nd = weight.dim() - 2
    return ConvMap(
        weight=weight.detach().to(torch.float64),
        bias=None if bias is None else bias.detach().to(torch.float64),
        stride=_per_axis(stride, nd, "stride"),
        padding=normalize_padding(padding, nd),
        dilation=_per_axis(dilation, nd, "dilation"),
        groups=int(groups),
    )


def linear_map(weight: torch.Tensor, bias: torch.Tensor | None = None) -> ConvMap:
    """A Linear layer ``y = x W^T + b`` as a 0-d ConvMap."""
    return conv_map(weight, bias)


def diagonal_map(scale: torch.Tensor, shift: torch.Tensor | None, nd: int) -> ConvMap:
    """Per-channel affine ``y[c] = scale[c] * x[c] + shift[c]`` as a depthwise 1x..x1 conv."""
    scale = scale.detach().to(torch.float64)
    channels = scale.numel()
    weight = scale.reshape(channels, 1, *([1] * nd))
    shift = None if shift is None else shift.detach().to(torch.float64).reshape(channels)
    return ConvMap(weight, shift, (1,) * nd, ((0, 0),) * nd, (1,) * nd, channels)


def identity_map(channels: int, nd: int) -> ConvMap:
    """The identity as a depthwise 1x..x1 conv with weight 1 (a Dirac kernel once regrouped)."""
    return diagonal_map(torch.ones(channels, dtype=torch.float64), None, nd)


def avgpool_map(
    channels: int,
    kernel_size: Sequence[int],
    stride: Sequence[int],
    padding: Sequence[int] | Padding,
) -> ConvMap:
    """AvgPool with ``count_include_pad=True``: depthwise kernel of ``1 / prod(kernel)``.

    Zero padding is counted in the divisor, so every window divides by ``prod(kernel)`` and the
    pool is exactly a depthwise conv over the zero-padded input.
    """
    nd = len(kernel_size)
    weight = torch.full((channels, 1, *kernel_size), 1.0 / math.prod(kernel_size), dtype=torch.float64)
    return ConvMap(weight, None, tuple(stride), normalize_padding(padding, nd), (1,) * nd, channels, uniform=True)
