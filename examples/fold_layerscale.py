"""Fold a LayerScale (a learned per-channel ``gamma * x``) into the conv before it.

ConvNeXt, CaiT, PoolFormer and FastViT multiply each block's output by a learned vector ``gamma``
of shape (C, 1, 1). At inference ``gamma`` is a constant, so ``gamma * conv(x)`` is one conv with

    W'[o] = gamma[o] * W[o],    b'[o] = gamma[o] * b[o]

This example writes that fold as a custom pass: a declarative pattern finds ``conv(x) * gamma`` in
either order and in any captured form (``nn.Conv2d`` or ``aten.conv2d``; ``gamma * y`` or
``y * gamma``), and a small rewrite callback builds the folded conv with fxrep's kernel algebra.
A conv whose output is also used elsewhere is left alone (folding would change the other use), and
the pass says so in the report.

(fxrep's built-in ``collapse_linear_regions`` folds such scales too, as part of whole linear regions;
this pass is the local, readable version and a template for folds of your own.)

Run: python examples/fold_layerscale.py
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from fxrep.passes import FoldBatchNorm
from torch import nn
from torch.fx import Node

import fxrep
from fxrep import pass_api as api
from fxrep import patterns as P
from fxrep.models import randomize_


def conv_times_gamma(x: Any, weight: Any, gamma: Any) -> Any:
    """The pattern: a 2-d conv (any weight, stride, padding...) times a constant."""
    return P.named("conv", F.conv2d(x, weight)) * P.constant(gamma)


def per_channel_scale(gamma: torch.Tensor | float, channels: int) -> torch.Tensor | None:
    """``gamma`` as one factor per output channel, or None when it scales anything but channels."""
    gamma = torch.as_tensor(gamma, dtype=torch.float64)
    if gamma.numel() == 1:
        return gamma.reshape(1).expand(channels)
    shape = list(gamma.shape)
    while shape and shape[0] == 1 and len(shape) > 3:  # (1, C, 1, 1) broadcasts like (C, 1, 1)
        shape.pop(0)
    if len(shape) == 3 and shape == [channels, 1, 1]:
        return gamma.reshape(channels)
    return None


def fold_into_conv(match: P.PatternMatch, rewriter: api.Rewriter) -> Node | api.Match:
    """Emit the conv with ``gamma`` folded in; refuse (with the reason) when it is not a channel scale."""
    conv = api.Conv.from_node(match["conv"])
    scale = per_channel_scale(match["gamma"], conv.out_channels)
    if scale is None:
        shape = tuple(torch.as_tensor(match["gamma"]).shape)
        return api.Match.fail(f"gamma has shape {shape}; only a scalar or a (C, 1, 1) per-channel scale folds "
                              "into the conv")
    folded = api.compose(api.diagonal_map(scale, None, conv.nd), conv.conv_map())  # raises api.NotExact
    return rewriter.conv(conv.input, folded, like=match.root, path=api.module_path_of(conv.node),
                         dtype=conv.weight.dtype, device=conv.weight.device)


@dataclass(frozen=True)
class FoldLayerScale(P.PatternPass):
    """``gamma * conv(x)`` -> one conv (see the module docstring)."""

    name: str = "fold_layerscale"
    pattern: Any = conv_times_gamma
    rewrite: Any = fold_into_conv


class ConvNeXtBlock(nn.Module):
    """A ConvNeXt block in conv form: ``x + gamma * pw2(gelu(pw1(bn(dw(x)))))``."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.dw = nn.Conv2d(channels, channels, 7, padding=3, groups=channels)
        self.norm = nn.BatchNorm2d(channels)
        self.pw1 = nn.Conv2d(channels, 4 * channels, 1)
        self.act = nn.GELU()
        self.pw2 = nn.Conv2d(4 * channels, channels, 1)
        self.gamma = nn.Parameter(torch.full((channels, 1, 1), 1e-6))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.gamma * self.pw2(self.act(self.pw1(self.norm(self.dw(x)))))


class TappedBlock(ConvNeXtBlock):
    """The same block, but pw2's output is also returned (a deep-supervision tap): gamma cannot fold."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        branch = self.pw2(self.act(self.pw1(self.norm(self.dw(x)))))
        return x + self.gamma * branch, branch


def build_model(blocks: int = 2, channels: int = 8) -> nn.Module:
    model = nn.Sequential(*[ConvNeXtBlock(channels) for _ in range(blocks)])
    return randomize_(model, seed=0).eval()


def main() -> None:
    torch.manual_seed(0)
    model = build_model()
    inputs = (torch.randn(2, 8, 16, 16),)
    gm = fxrep.optimize(model, inputs, passes=[FoldBatchNorm(), FoldLayerScale()])
    report = fxrep.report_of(gm)
    print(report)
    print(f"\nfold_layerscale fired {report.fired('fold_layerscale')['fold_layerscale']} times; "
          f"mul ops {report.ops_before['mul']} -> {report.ops_after['mul']}")
    error = (gm(*inputs) - model(*inputs)).abs().max().item()
    print(f"max abs error against the original model: {error:.3g}")

    tapped = randomize_(TappedBlock(8), seed=1).eval()
    gm = fxrep.optimize(tapped, inputs, passes=[FoldLayerScale()])
    print("\nwhen pw2's output is used elsewhere, the pass refuses:")
    for refusal in fxrep.report_of(gm).refusals:
        print(f"  {refusal.node}: {refusal.reason}")


if __name__ == "__main__":
    main()
