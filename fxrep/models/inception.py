"""GoogLeNet Inception block (Szegedy et al., CVPR 2015), following torchvision's `googlenet.Inception`.

Four branches of BasicConv2d (bias-free conv, BatchNorm(eps=1e-3), in-place ReLU), concatenated
along channels:
- branch1: 1x1
- branch2: 1x1 -> 3x3
- branch3: 1x1 -> 3x3 (the paper's 5x5; torchvision uses 3x3, pytorch/vision#906, kept here)
- branch4: MaxPool(3, stride 1, padding 1, ceil_mode) -> 1x1

Nothing here is over-parameterized; the block is the target of HORIZONTAL fusion: the three 1x1
convs that read the block input (branch1, branch2[0], branch3[0]) have the same geometry, so
after BN folding they can run as one 1x1 conv with stacked output channels, split afterwards
(TVM's CombineParallelConv2D / TensorRT's horizontal fusion). The ReLU is `F.relu(inplace=True)`
as in torchvision, which torch.export records as `aten.relu_`.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["BasicConv2d", "InceptionBlock"]


class BasicConv2d(nn.Module):
    """Bias-free conv, BatchNorm(eps=0.001), in-place ReLU (torchvision)."""

    def __init__(self, in_ch: int, out_ch: int, **kwargs: Any) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, bias=False, **kwargs)
        self.bn = nn.BatchNorm2d(out_ch, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)), inplace=True)


class InceptionBlock(nn.Module):
    """GoogLeNet Inception block; output channels = ch1x1 + ch3x3 + ch5x5 + pool_proj."""

    def __init__(
        self, in_ch: int, ch1x1: int, ch3x3red: int, ch3x3: int, ch5x5red: int, ch5x5: int, pool_proj: int
    ) -> None:
        super().__init__()
        self.branch1 = BasicConv2d(in_ch, ch1x1, kernel_size=1)
        self.branch2 = nn.Sequential(
            BasicConv2d(in_ch, ch3x3red, kernel_size=1),
            BasicConv2d(ch3x3red, ch3x3, kernel_size=3, padding=1),
        )
        self.branch3 = nn.Sequential(
            BasicConv2d(in_ch, ch5x5red, kernel_size=1),
            BasicConv2d(ch5x5red, ch5x5, kernel_size=3, padding=1),
        )
        self.branch4 = nn.Sequential(
            nn.MaxPool2d(kernel_size=3, stride=1, padding=1, ceil_mode=True),
            BasicConv2d(in_ch, pool_proj, kernel_size=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outputs = [self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)]
        return torch.cat(outputs, 1)
