"""Small classification nets stacking each reference block, for tests, demos and benchmarks.

Each net takes an (N, 3, H, W) image batch (H, W from 32 to 224; 32 to 64 runs in a few
milliseconds on one CPU core) and returns (N, num_classes) logits: `features` (the blocks),
global average pooling, flatten, `fc`. Stacks mix stride 1 / 2, grouped and depthwise instances so
that every code path of a block appears at least once. Build-time randomness comes from the global
RNG (`torch.manual_seed`); use `fxrep.models.randomize_` for non-trivial BatchNorm statistics.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from fxrep.models.acnet import ACBlock
from fxrep.models.dbb import DiverseBranchBlock
from fxrep.models.diracnet import DiracNetBlock
from fxrep.models.doconv import DOConv2d
from fxrep.models.expandnet import ExpandCK, ExpandCL, ExpandFC
from fxrep.models.inception import BasicConv2d, InceptionBlock
from fxrep.models.mobileone import MobileOneBlock, mobileone_unit
from fxrep.models.repmixer import RepMixerBlock
from fxrep.models.repvgg import RepVGG

__all__ = [
    "SmallNet",
    "acnet_small",
    "dbb_small",
    "diracnet_small",
    "doconv_small",
    "expandnet_small",
    "inception_small",
    "mobileone_small",
    "repmixer_small",
    "repvgg_small",
]


class SmallNet(nn.Module):
    """`fc(flatten(global_avg_pool(features(x))))`."""

    def __init__(self, features: nn.Module, fc: nn.Module) -> None:
        super().__init__()
        self.features = features
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = fc

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.features(x))
        return self.fc(torch.flatten(x, 1))


def _conv_bn_relu(conv: nn.Module, channels: int) -> list[nn.Module]:
    return [conv, nn.BatchNorm2d(channels), nn.ReLU()]


def repvgg_small(num_classes: int = 10, *, deploy: bool = False) -> RepVGG:
    """RepVGG with blocks [1, 2, 2, 1], widths 16-16-32-64-128, layers 3 / 5 grouped (g2 / g4), 14 convs."""
    return RepVGG(
        num_blocks=[1, 2, 2, 1],
        num_classes=num_classes,
        width_multiplier=[0.25, 0.25, 0.25, 0.25],
        override_groups_map={3: 2, 5: 4},
        deploy=deploy,
    )


def acnet_small(num_classes: int = 10) -> SmallNet:
    """Four ACBlocks + ReLU (3->16, 16->32 s2, 32->32 groups 4, 32->64 s2): 12 convs."""
    features = nn.Sequential(
        ACBlock(3, 16),
        nn.ReLU(),
        ACBlock(16, 32, stride=2),
        nn.ReLU(),
        ACBlock(32, 32, groups=4),
        nn.ReLU(),
        ACBlock(32, 64, stride=2),
        nn.ReLU(),
    )
    return SmallNet(features, nn.Linear(64, num_classes))


def dbb_small(num_classes: int = 10, pad_mode: Literal["bn", "zero"] = "bn") -> SmallNet:
    """Four DBBs (3->16, 16->32 s2, 32->32 depthwise, 32->64 s2), ReLU inside each block."""
    features = nn.Sequential(
        DiverseBranchBlock(3, 16, pad_mode=pad_mode),
        DiverseBranchBlock(16, 32, stride=2, pad_mode=pad_mode),
        DiverseBranchBlock(32, 32, groups=32, pad_mode=pad_mode),
        DiverseBranchBlock(32, 64, stride=2, pad_mode=pad_mode),
    )
    return SmallNet(features, nn.Linear(64, num_classes))


def mobileone_small(num_classes: int = 10, num_conv_branches: int = 4) -> SmallNet:
    """MobileOne stem (3->16 s2, one branch) + units 16->32 and 32->64 s2 (depthwise + pointwise)."""
    features = nn.Sequential(
        MobileOneBlock(3, 16, kernel_size=3, stride=2, padding=1, num_conv_branches=1),
        mobileone_unit(16, 32, stride=1, num_conv_branches=num_conv_branches),
        mobileone_unit(32, 64, stride=2, num_conv_branches=num_conv_branches),
    )
    return SmallNet(features, nn.Linear(64, num_classes))


def diracnet_small(num_classes: int = 10) -> SmallNet:
    """DiracNet v2 (CIFAR layout): conv-BN-ReLU stem, 2 blocks at 16, max pool, blocks 16->32 and 32->32."""
    features = nn.Sequential(
        *_conv_bn_relu(nn.Conv2d(3, 16, 3, padding=1, bias=False), 16),
        DiracNetBlock(16, 16),
        DiracNetBlock(16, 16),
        nn.MaxPool2d(2),
        DiracNetBlock(16, 32),
        DiracNetBlock(32, 32),
    )
    return SmallNet(features, nn.Linear(32, num_classes))


def doconv_small(num_classes: int = 10) -> SmallNet:
    """DO-Conv (3->16), DO-Conv s2 (16->32, D_mul 16), DO-DConv depthwise (32), DO-Conv 1x1 (32->64), each + BN + ReLU."""
    features = nn.Sequential(
        *_conv_bn_relu(DOConv2d(3, 16, 3, padding=1, bias=False), 16),
        *_conv_bn_relu(DOConv2d(16, 32, 3, D_mul=16, stride=2, padding=1, bias=False), 32),
        *_conv_bn_relu(DOConv2d(32, 32, 3, padding=1, groups=32, bias=False), 32),
        *_conv_bn_relu(DOConv2d(32, 64, 1, bias=False), 64),
    )
    return SmallNet(features, nn.Linear(64, num_classes))


def expandnet_small(num_classes: int = 10, expansion: int = 4) -> SmallNet:
    """ExpandCL 3x3 (3->8), ExpandCK 5x5 (8->16), ExpandCL 3x3 s2 (16->32), each + BN + ReLU; ExpandFC head."""
    features = nn.Sequential(
        *_conv_bn_relu(ExpandCL(3, 8, 3, padding=1, expansion=expansion), 8),
        nn.MaxPool2d(2),
        *_conv_bn_relu(ExpandCK(8, 16, 5, expansion=expansion), 16),
        *_conv_bn_relu(ExpandCL(16, 32, 3, stride=2, padding=1, expansion=expansion), 32),
    )
    return SmallNet(features, ExpandFC(32, num_classes, expansion=expansion))


def repmixer_small(num_classes: int = 10, dim: int = 16) -> SmallNet:
    """MobileOne stem (3->dim s2, one branch), two FastViT RepMixerBlocks (mlp_ratio 3)."""
    features = nn.Sequential(
        MobileOneBlock(3, dim, kernel_size=3, stride=2, padding=1, num_conv_branches=1),
        RepMixerBlock(dim, mlp_ratio=3.0),
        RepMixerBlock(dim, mlp_ratio=3.0),
    )
    return SmallNet(features, nn.Linear(dim, num_classes))


def inception_small(num_classes: int = 10) -> SmallNet:
    """BasicConv2d stem (3->32 s2), Inception (32 -> 56), Inception (56 -> 80)."""
    features = nn.Sequential(
        BasicConv2d(3, 32, kernel_size=3, stride=2, padding=1),
        InceptionBlock(32, 16, 16, 24, 8, 8, 8),
        InceptionBlock(56, 16, 16, 32, 8, 16, 16),
    )
    return SmallNet(features, nn.Linear(80, num_classes))
