"""ACNet's Asymmetric Convolution Block (Ding et al., ICCV 2019), following DingXiaoH/ACNet `acnet/acb.py`.

Training form: `BN(conv_kxk(x)) + BN(conv_kx1(x)) + BN(conv_1xk(x))`, three bias-free convs with
their own BatchNorm, no non-linearity (the surrounding net applies it). The 1xk and kx1 convs are
padded asymmetrically so their sliding windows line up with the kxk window's middle row / column
(Fig. 2 of the paper): with padding p, the 1xk conv pads (p - k//2, p) and the kx1 conv (p, p - k//2).
When p < k//2 the official code crops the input of the asymmetric convs instead (a negative
padding); that case is kept too. At inference the block collapses to one kxk conv with bias: each
BN folds into its conv and the 1xk / kx1 kernels are added into the middle row / column.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["ACBlock"]


class ACBlock(nn.Module):
    """Square kxk + vertical kx1 + horizontal 1xk conv, each followed by BN, summed."""

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        kernel_size: int = 3,
        stride: int = 1,
        padding: int = 1,
        groups: int = 1,
    ) -> None:
        super().__init__()
        self.square_conv = nn.Conv2d(
            in_ch,
            out_ch,
            (kernel_size, kernel_size),
            stride=stride,
            padding=padding,
            groups=groups,
            bias=False,
        )
        self.square_bn = nn.BatchNorm2d(out_ch)

        if padding - kernel_size // 2 >= 0:
            self.crop = 0
            hor_padding = (padding - kernel_size // 2, padding)
            ver_padding = (padding, padding - kernel_size // 2)
        else:
            self.crop = kernel_size // 2 - padding
            hor_padding = (0, padding)
            ver_padding = (padding, 0)

        self.ver_conv = nn.Conv2d(
            in_ch, out_ch, (kernel_size, 1), stride=stride, padding=ver_padding, groups=groups, bias=False
        )
        self.hor_conv = nn.Conv2d(
            in_ch, out_ch, (1, kernel_size), stride=stride, padding=hor_padding, groups=groups, bias=False
        )
        self.ver_bn = nn.BatchNorm2d(out_ch)
        self.hor_bn = nn.BatchNorm2d(out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        square_outputs = self.square_bn(self.square_conv(x))
        if self.crop > 0:
            ver_input = x[:, :, :, self.crop : -self.crop]
            hor_input = x[:, :, self.crop : -self.crop, :]
        else:
            ver_input = x
            hor_input = x
        vertical_outputs = self.ver_bn(self.ver_conv(ver_input))
        horizontal_outputs = self.hor_bn(self.hor_conv(hor_input))
        return square_outputs + vertical_outputs + horizontal_outputs
