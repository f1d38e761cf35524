"""Layers shared by the reference blocks."""

from __future__ import annotations

from torch import nn

__all__ = ["conv_bn"]


def conv_bn(
    in_ch: int, out_ch: int, kernel_size: int, stride: int = 1, padding: int = 0, groups: int = 1
) -> nn.Sequential:
    """Bias-free conv followed by BatchNorm, as `Sequential(conv=..., bn=...)` (the official repos' naming)."""
    result = nn.Sequential()
    result.add_module(
        "conv",
        nn.Conv2d(in_ch, out_ch, kernel_size, stride=stride, padding=padding, groups=groups, bias=False),
    )
    result.add_module("bn", nn.BatchNorm2d(out_ch))
    return result
