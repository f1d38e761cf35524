"""Emitting an `AffineValue` as graph ops, and estimating what that costs.

``value = sum_k M_k(source_k) + bias`` becomes one op per term, added up:

- an identity map emits nothing (the source itself),
- a diagonal map (per-channel scale) emits one multiply, or one ``addcmul`` when it carries the bias,
- any other map emits one conv (a Linear for 0-d maps); the first conv carries the bias,
- a bias nothing could carry (only identities) becomes one add.

So a value with one source and a non-trivial map is exactly one conv.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.fx import Node

from ..algebra import ConvMap, NotExact, regroup
from ..cost import NOMINAL_SPATIAL, CostModel
from ..rewriter import Rewriter
from .value import AffineValue, SizeOf, Source, size_for


def emit_value(rewriter: Rewriter, value: AffineValue, *, like: Node, path: str, dtype: torch.dtype,
               device: torch.device) -> Node:
    """Emit ``value`` before ``like``; returns the node holding it. Raises `NotExact` if impossible."""
    if value.ring is not None:
        raise NotExact("the value still has a padded border that no conv padding reproduces")
    if not value.terms:
        raise NotExact("the value does not depend on any tensor")
    bias = value.bias if bool(value.bias.ne(0).any()) else None
    parts: list[Node] = []
    for source, conv in _ordered(value.terms):
        node = _source_node(rewriter, source, like)
        if conv.is_identity:
            parts.append(node)
            continue
        if conv.is_diagonal:
            scale = _broadcastable(conv.weight.reshape(-1), value).to(dtype).to(device)
            if bias is not None and not _has_conv(value):
                shift = _broadcastable(bias, value).to(dtype).to(device)
                parts.append(rewriter.addcmul(shift, node, scale, like=like, path=path))
                bias = None
            else:
                parts.append(rewriter.mul(node, scale, like=like, path=path))
            continue
        if bias is not None:
            conv = ConvMap(conv.weight, bias, conv.stride, conv.padding, conv.dilation, conv.groups)
            bias = None
        if conv.nd == 0 and conv.groups > 1:
            conv = regroup(conv, 1)
        parts.append(rewriter.conv(node, conv, like=like, path=path, dtype=dtype, device=device))
    result = parts[0]
    for part in parts[1:]:
        result = rewriter.add(result, part, like=like)
    if bias is not None:
        result = rewriter.add(result, _broadcastable(bias, value).to(dtype).to(device), like=like, path=path)
    return result


def value_seconds(model: CostModel, value: AffineValue, size_of: SizeOf, batch: int, itemsize: int,
                  out_numel: int | None) -> float:
    """Estimated time of the ops `emit_value` would emit for ``value``."""
    seconds = 0.0
    convs = 0
    out_numel = out_numel if out_numel is not None else batch * value.channels * NOMINAL_SPATIAL ** value.nd
    for source, conv in value.terms:
        if conv.is_identity:
            continue
        if conv.is_diagonal:
            seconds += model.elementwise_seconds(out_numel, 1, itemsize)
            continue
        convs += 1
        seconds += model.conv_seconds(conv, _in_size(size_of, source, conv), _rows(batch, conv, out_numel, value),
                                      itemsize)
    only_identities = all(conv.is_identity for _, conv in value.terms)
    adds = len(value.terms) - 1 + (1 if only_identities and bool(value.bias.ne(0).any()) else 0)
    return seconds + adds * model.elementwise_seconds(out_numel, 2, itemsize)


def _has_conv(value: AffineValue) -> bool:
    return any(not (conv.is_identity or conv.is_diagonal) for _, conv in value.terms)


def _in_size(size_of: SizeOf, source: Source, conv: ConvMap) -> Sequence[int]:
    size = size_for(size_of, source, conv.nd)
    return (NOMINAL_SPATIAL,) * conv.nd if size is None else size


def _rows(batch: int, conv: ConvMap, out_numel: int, value: AffineValue) -> int:
    """Rows a Linear runs over (every position but the features); the batch for convs."""
    if conv.nd:
        return batch
    return max(1, out_numel // max(1, value.channels))


def _ordered(terms: Sequence[tuple[Source, ConvMap]]) -> list[tuple[Source, ConvMap]]:
    """Convs first (so the first one can carry the bias), identities and scales after."""
    return sorted(terms, key=lambda term: (term[1].is_identity or term[1].is_diagonal))


def _broadcastable(per_channel: torch.Tensor, value: AffineValue) -> torch.Tensor:
    if value.channel_dim == -1:
        return per_channel.reshape(-1)
    return per_channel.reshape(-1, *([1] * value.nd))


def _source_node(rewriter: Rewriter, source: Source, like: Node) -> Node:
    if source.padding_mode == "zeros":
        return source.node
    flat = [p for lo, hi in reversed(source.padding) for p in (lo, hi)]
    mode = source.padding_mode
    if rewriter.level == "module":
        return rewriter.call("call_function", torch.nn.functional.pad, (source.node, flat), {"mode": mode},
                             like=like)
    return rewriter.call("call_function", torch.ops.aten.pad.default, (source.node, flat, mode), like=like)

