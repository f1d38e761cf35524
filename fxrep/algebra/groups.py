"""Re-expressing a grouped conv with fewer groups (block-diagonal expansion).

A conv with ``g`` groups is a dense conv whose weight is zero outside ``g`` diagonal blocks. For
``g2`` dividing ``g`` the same map has ``g2`` groups, each holding ``r = g / g2`` of the old blocks on
its diagonal:

    W2[j2 * r * Og + a * Og + o, a * Ig + i] = W[(j2 * r + a) * Og + o, i],   a in [0, r)

Sums and compositions of maps with different group counts work in ``gcd`` of the counts.
"""

from __future__ import annotations

import math
from dataclasses import replace

import torch

from .conv_map import ConvMap
from .shape_only import empty_weight


def regroup(conv: ConvMap, groups: int) -> ConvMap:
    """The same map as ``conv`` expressed with ``groups`` groups (must divide ``conv.groups``)."""
    if groups == conv.groups:
        return conv
    if groups <= 0 or conv.groups % groups:
        raise ValueError(f"cannot regroup a {conv.groups}-group conv into {groups} groups")
    ratio = conv.groups // groups
    out_per_old = conv.out_channels // conv.groups
    in_per_old = conv.weight.shape[1]
    kernel = conv.kernel_size
    if conv.weight.is_meta:  # shape-only (fxrep.algebra.shape_only): the block layout needs no values
        weight = empty_weight((conv.out_channels, ratio * in_per_old, *kernel))
        return replace(conv, weight=weight, groups=groups, uniform=False)
    old = conv.weight.reshape(groups, ratio, out_per_old, in_per_old, *kernel)
    new = conv.weight.new_zeros(groups, ratio, out_per_old, ratio, in_per_old, *kernel)
    block = torch.arange(ratio, device=conv.weight.device)
    # Advanced indices split by a slice move to the front: new[:, block, :, block] has shape
    # (ratio, groups, out_per_old, in_per_old, *kernel).
    new[:, block, :, block] = old.transpose(0, 1)
    weight = new.reshape(conv.out_channels, ratio * in_per_old, *kernel)
    return replace(conv, weight=weight, groups=groups, uniform=False)


def common_groups(*convs: ConvMap) -> int:
    """Largest group count every conv can be regrouped into."""
    return math.gcd(*(conv.groups for conv in convs))
