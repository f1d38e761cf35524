"""MobileOne block (Vasu et al., CVPR 2023), following apple/ml-mobileone `mobileone.py` and the
copy in apple/ml-fastvit `models/modules/mobileone.py` (which adds `use_act` / `use_scale_branch`).

Training form: the sum of
- `rbr_scale`: a 1x1 conv+BN (padding 0, same stride and groups), when kernel_size > 1 and use_scale_branch,
- `rbr_skip`: a BN identity, when in == out channels and stride 1,
- `rbr_conv`: `num_conv_branches` parallel kxk conv+BN branches,
followed by ReLU when use_act. At inference all branches collapse into one kxk conv with bias
(`reparam_conv` in the official code). MobileOne stacks a depthwise kxk block
(groups = in = out) and a pointwise 1x1 block; `mobileone_unit` builds that pair.

The official forward starts from `0` and accumulates with `+=`; here the branch outputs are
summed out of place in the same order (scale, skip, conv branches), which gives the same numbers
and a graph without in-place adds or `add(x, 0)` nodes. No SE variant.
"""

from __future__ import annotations

import torch
from torch import nn

from .layers import conv_bn

__all__ = ["MobileOneBlock", "mobileone_unit"]


class MobileOneBlock(nn.Module):
    """Over-parameterized MobileOne block: scale branch + BN skip + `num_conv_branches` kxk conv+BN."""

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        groups: int = 1,
        num_conv_branches: int = 4,
        use_scale_branch: bool = True,
        use_act: bool = True,
    ) -> None:
        super().__init__()
        self.in_ch = in_ch
        self.out_ch = out_ch
        self.kernel_size = kernel_size
        self.stride = stride
        self.padding = padding
        self.groups = groups
        self.num_conv_branches = num_conv_branches
        self.activation = nn.ReLU() if use_act else nn.Identity()

        self.rbr_skip = nn.BatchNorm2d(in_ch) if out_ch == in_ch and stride == 1 else None
        self.rbr_conv = (
            nn.ModuleList(self._conv_bn(kernel_size, padding) for _ in range(num_conv_branches))
            if num_conv_branches > 0
            else None
        )
        self.rbr_scale = self._conv_bn(1, 0) if kernel_size > 1 and use_scale_branch else None
        if self.rbr_skip is None and self.rbr_conv is None and self.rbr_scale is None:
            raise ValueError("MobileOneBlock needs at least one branch")

    def _conv_bn(self, kernel_size: int, padding: int) -> nn.Sequential:
        return conv_bn(self.in_ch, self.out_ch, kernel_size, self.stride, padding, self.groups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branch_outputs = []
        if self.rbr_scale is not None:
            branch_outputs.append(self.rbr_scale(x))
        if self.rbr_skip is not None:
            branch_outputs.append(self.rbr_skip(x))
        if self.rbr_conv is not None:
            for branch in self.rbr_conv:
                branch_outputs.append(branch(x))
        out = branch_outputs[0]
        for branch_output in branch_outputs[1:]:
            out = out + branch_output
        return self.activation(out)


def mobileone_unit(in_ch: int, out_ch: int, stride: int = 1, num_conv_branches: int = 4) -> nn.Sequential:
    """MobileOne's basic unit: depthwise 3x3 MobileOneBlock, then pointwise 1x1 MobileOneBlock."""
    return nn.Sequential(
        MobileOneBlock(
            in_ch,
            in_ch,
            kernel_size=3,
            stride=stride,
            padding=1,
            groups=in_ch,
            num_conv_branches=num_conv_branches,
        ),
        MobileOneBlock(
            in_ch, out_ch, kernel_size=1, stride=1, padding=0, num_conv_branches=num_conv_branches
        ),
    )
