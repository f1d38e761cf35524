"""Fold an inference-mode BatchNorm into the conv or Linear next to it.

BatchNorm with running statistics is ``a * x + c`` per channel (`fxrep.algebra.batchnorm_affine`);
the folding is `fxrep.algebra.batchnorm` (the same functions fold a BatchNorm inside a linear region):

- conv / Linear / transposed conv, then BN: scale the producer's output channels,
  ``W' = a W``, ``b' = a b + c`` (`fold_into_outputs`, on weight axis 1 for a transposed conv).
  Always exact, whatever the producer's padding mode.
- BN, then conv / Linear: scale the consumer's input channels, ``W'[o, i] = W[o, i] a[i]``,
  ``b' = b + sum_{i,t} W[o, i, t] c[i]`` (`fold_into_inputs`). Exact for a Linear, and for a conv
  that reads no zero padding or when ``c == 0`` (a padded border would see ``c`` in the original but
  0 after folding).
- BatchNorm1d and Linear fold only when the tensor is known to be (N, C): on (N, L, C) a
  BatchNorm1d normalises L, not the Linear's features.

The producer (or the BN, for folding forward) must have no other users: folding changes its value.
This pass is the local, always-profitable subset of `CollapseLinearRegions`, and the only pass
that folds into transposed convs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch.fx import GraphModule, Node

from fxrep import pass_api as api


@dataclass(frozen=True)
class FoldBatchNorm(api.Pass):
    """Fold BatchNorms into adjacent convs and Linears (see the module docstring)."""

    name: ClassVar[str] = "fold_batchnorm"

    def __call__(self, gm: GraphModule) -> api.PassResult:
        return self.rewrite_each(gm, _fold)


def _fold(node: Node, rewriter: api.Rewriter) -> api.Match | None:
    bn = api.BatchNorm.from_node(node)
    if bn is None:
        return None
    affine = api.attempt(bn.affine)
    if not affine:
        return affine
    scale, shift = affine.value
    match = _fold_into_producer(bn, scale, shift, rewriter)
    if not match:
        match = _fold_into_consumer(bn, scale, shift, rewriter, previous=match.reason)
    return match


def _users(node: Node) -> list[Node]:
    return [u for u in node.users if not api.is_side_effect_only(u)]


def _fold_into_producer(bn: api.BatchNorm, scale: torch.Tensor, shift: torch.Tensor,
                        rewriter: api.Rewriter) -> api.Match:
    producer = bn.input
    conv = api.Conv.from_node(producer)
    linear = api.Linear.from_node(producer) if conv is None else None
    if conv is not None and not (conv.weight is not None and conv.weight_is_constant and conv.bias_is_constant):
        conv = None
    if linear is not None and not (linear.is_constant and linear.weight is not None):
        linear = None
    if conv is None and linear is None:
        return api.Match.fail(f"its input {producer.name} is not a conv or Linear with constant parameters")
    users = _users(producer)
    if users != [bn.call]:
        return api.Match.fail(f"{producer.name} feeds {len(users)} users, so folding {bn.node.name} into it "
                              "would change the other uses")
    path = api.module_path_of(producer)
    if conv is not None:
        if conv.transposed:
            return _fold_into_transposed(bn, conv, scale, shift, rewriter, path)
        if conv.module is not None and api.has_hooks(conv.module):
            return api.Match.fail(f"{producer.name}'s module has hooks")
        # the padding mode does not matter here: the BN scales the conv's output
        conv_map = api.conv_map(conv.weight, conv.bias, conv.stride, conv.padding, conv.dilation, conv.groups)
        folded = api.compose(api.diagonal_map(scale, shift, conv_map.nd), conv_map)
        # the folded op keeps the producer's name and precision (it replaces the BN's value)
        new = rewriter.conv(conv.input, folded, like=bn.node, path=path, dtype=conv.weight.dtype,
                            device=conv.weight.device, padding_mode=conv.padding_mode)
    else:
        if api.rank(bn.node) != 2:
            return api.Match.fail(f"{bn.node.name} after a Linear folds only on (N, C) tensors; its rank here "
                                  f"is {api.rank(bn.node) or 'unknown'}")
        folded = api.compose(api.diagonal_map(scale, shift, 0), linear.linear_map())
        new = rewriter.conv(linear.input, folded, like=bn.node, path=path, dtype=linear.weight.dtype,
                            device=linear.weight.device)
    rewriter.replace(bn.node, new, "fold_batchnorm")
    return api.Match.ok(new)


def _fold_into_transposed(bn: api.BatchNorm, conv: api.Conv, scale: torch.Tensor, shift: torch.Tensor,
                          rewriter: api.Rewriter, path: str) -> api.Match:
    """The transposed conv's output channels are on weight axis 1: ``W'[i, j] = W[i, j] a[g(i) O_g + j]``."""
    bias = conv.bias.to(torch.float64) if conv.bias is not None else torch.zeros_like(scale)
    weight, bias = api.fold_into_outputs(conv.weight.to(torch.float64), bias, scale, shift, axis=1,
                                          groups=conv.groups)
    new = rewriter.conv_transpose(
        conv.input, weight.to(conv.weight.dtype), bias.to(conv.weight.dtype),
        stride=conv.stride, padding=tuple(lo for lo, _ in conv.padding), output_padding=conv.output_padding,
        groups=conv.groups, dilation=conv.dilation, like=bn.node, path=path)
    rewriter.replace(bn.node, new, "fold_batchnorm")
    return api.Match.ok(new)


def _fold_into_consumer(bn: api.BatchNorm, scale: torch.Tensor, shift: torch.Tensor, rewriter: api.Rewriter,
                        previous: str) -> api.Match:
    users = _users(bn.node)
    if len(users) != 1:
        return api.Match.fail(f"{previous}; and {bn.node.name} feeds {len(users)} users")
    consumer = users[0]
    conv = api.Conv.from_node(consumer)
    linear = api.Linear.from_node(consumer) if conv is None else None
    try:
        if conv is not None and conv.input is bn.node:
            consumer_map = conv.conv_map()
            folded = api.compose(consumer_map, api.diagonal_map(scale, shift, consumer_map.nd))
        elif linear is not None and linear.input is bn.node and api.rank(bn.node) == 2:
            folded = api.compose(linear.linear_map(), api.diagonal_map(scale, shift, 0))
        else:
            return api.Match.fail(previous)
    except api.NotExact as reason:
        return api.Match.fail(f"{previous}; folding forward into {consumer.name}: {reason}")
    new = rewriter.conv(bn.input, folded, like=consumer)  # the consumer's name, dtype and device
    rewriter.replace(consumer, new, "fold_batchnorm")
    return api.Match.ok(new)
