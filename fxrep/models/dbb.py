"""Diverse Branch Block (Ding et al., CVPR 2021), following DingXiaoH/DiverseBranchBlock
`diversebranchblock.py` (the inference algebra is in the official `dbb_transforms.py`).

Training form, four branches summed, then the non-linearity:
- `dbb_origin`: kxk conv + BN.
- `dbb_1x1`: 1x1 conv + BN with the block's stride (only when groups < out_ch).
- `dbb_avg`: 1x1 conv -> BNAndPadLayer(pad = padding) -> AvgPool(k, stride, padding 0) -> BN when
  groups < out_ch; for depthwise blocks just AvgPool(k, stride, padding) -> BN.
- `dbb_1x1_kxk`: 1x1 conv (an `IdentityBasedConv1x1`, i.e. identity + trainable weight, when the
  internal width equals in_ch) -> BNAndPadLayer(pad = padding) -> kxk conv, padding 0 -> BN.

At inference the block is one kxk conv with bias. The 1x1 -> kxk compositions are exact only
because `BNAndPadLayer` pads the BN output with the BN's own bias `beta - mean * gamma / sqrt(var + eps)`,
which is exactly what the folded 1x1 conv would produce on a zero-padded input.

`BNAndPadLayer` is kept exactly as official: it writes the border slices of the padded tensor in
place (`out[:, :, 0:p, :] = pad_values`, ...). `torch.fx.symbolic_trace` cannot trace that (a Proxy
does not support item assignment), so a DBB with `pad_mode="bn"` needs `torch.export`; there the
writes appear as `aten.slice` + `aten.copy_` on the `aten.pad` output (functionalized to
`aten.slice_scatter` by `run_decompositions`).

`pad_mode="zero"` is a deliberately NON-equivalent variant for tests: the BN output is padded with
plain zeros (`F.pad`), so the 1x1 -> kxk composition is inexact whenever the BN bias is nonzero and a
compiler must refuse to compose it. It traces with symbolic_trace.

Differences from the official file that do not change the numbers: no deploy mode, branch outputs
summed out of place (`out = out + ...`, official `out += ...`), the activation is a flag (`use_act`,
ReLU; the official class defaults to identity and its nets pass `nonlinear=nn.ReLU()`), and the
identity tensor of IdentityBasedConv1x1 is built with torch instead of numpy.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from .layers import conv_bn

__all__ = ["BNAndPadLayer", "BNAndZeroPadLayer", "DiverseBranchBlock", "IdentityBasedConv1x1", "conv_bn"]


class IdentityBasedConv1x1(nn.Conv2d):
    """1x1 conv (channels -> channels) whose kernel is `weight + identity`; weight starts at zero.

    As official, the identity is a plain tensor attribute (not a buffer, not in the state dict),
    moved to the weight's device on each forward.
    """

    def __init__(self, channels: int, groups: int = 1) -> None:
        super().__init__(channels, channels, kernel_size=1, stride=1, padding=0, groups=groups, bias=False)
        if channels % groups != 0:
            raise ValueError("channels must be divisible by groups")
        input_dim = channels // groups
        id_value = torch.zeros(channels, input_dim, 1, 1)
        for i in range(channels):
            id_value[i, i % input_dim, 0, 0] = 1
        self.id_tensor = id_value.type_as(self.weight)
        nn.init.zeros_(self.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kernel = self.weight + self.id_tensor.to(self.weight.device)
        return F.conv2d(x, kernel, None, stride=1, padding=0, dilation=self.dilation, groups=self.groups)

    def get_actual_kernel(self) -> torch.Tensor:
        return self.weight + self.id_tensor.to(self.weight.device)


class BNAndPadLayer(nn.Module):
    """BatchNorm, then pad `pad_pixels` on each side with the BN's per-channel bias (official code)."""

    def __init__(
        self,
        pad_pixels: int,
        num_features: int,
        eps: float = 1e-5,
        momentum: float = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
    ) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(num_features, eps, momentum, affine, track_running_stats)
        self.pad_pixels = pad_pixels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        output = self.bn(x)
        if self.pad_pixels > 0:
            if self.bn.affine:
                pad_values = (
                    self.bn.bias.detach()
                    - self.bn.running_mean
                    * self.bn.weight.detach()
                    / torch.sqrt(self.bn.running_var + self.bn.eps)
                )
            else:
                pad_values = -self.bn.running_mean / torch.sqrt(self.bn.running_var + self.bn.eps)
            output = F.pad(output, [self.pad_pixels] * 4)
            pad_values = pad_values.view(1, -1, 1, 1)
            output[:, :, 0 : self.pad_pixels, :] = pad_values
            output[:, :, -self.pad_pixels :, :] = pad_values
            output[:, :, :, 0 : self.pad_pixels] = pad_values
            output[:, :, :, -self.pad_pixels :] = pad_values
        return output

    @property
    def weight(self) -> torch.Tensor:
        return self.bn.weight

    @property
    def bias(self) -> torch.Tensor:
        return self.bn.bias

    @property
    def running_mean(self) -> torch.Tensor:
        return self.bn.running_mean

    @property
    def running_var(self) -> torch.Tensor:
        return self.bn.running_var

    @property
    def eps(self) -> float:
        return self.bn.eps


class BNAndZeroPadLayer(BNAndPadLayer):
    """NON-equivalent test variant of BNAndPadLayer: BatchNorm, then plain zero padding."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        output = self.bn(x)
        if self.pad_pixels > 0:
            output = F.pad(output, [self.pad_pixels] * 4)
        return output


class DiverseBranchBlock(nn.Module):
    """kxk conv+BN, 1x1 conv+BN, 1x1 -> avg pool, 1x1 -> kxk branches, summed, then ReLU (optional)."""

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        kernel_size: int = 3,
        stride: int = 1,
        padding: int = 1,
        groups: int = 1,
        internal_channels_1x1_3x3: int | None = None,
        pad_mode: Literal["bn", "zero"] = "bn",
        use_act: bool = True,
    ) -> None:
        super().__init__()
        if padding != kernel_size // 2:
            raise ValueError("DiverseBranchBlock needs padding == kernel_size // 2 (as the official code)")
        if pad_mode not in ("bn", "zero"):
            raise ValueError(f"pad_mode must be 'bn' or 'zero', got {pad_mode!r}")
        pad_layer = BNAndPadLayer if pad_mode == "bn" else BNAndZeroPadLayer
        self.nonlinear = nn.ReLU() if use_act else nn.Identity()
        self.kernel_size = kernel_size
        self.out_channels = out_ch
        self.groups = groups
        self.pad_mode = pad_mode

        self.dbb_origin = conv_bn(in_ch, out_ch, kernel_size, stride=stride, padding=padding, groups=groups)

        self.dbb_avg = nn.Sequential()
        self.dbb_1x1: nn.Sequential | None = None
        if groups < out_ch:
            self.dbb_avg.add_module(
                "conv",
                nn.Conv2d(in_ch, out_ch, kernel_size=1, stride=1, padding=0, groups=groups, bias=False),
            )
            self.dbb_avg.add_module("bn", pad_layer(pad_pixels=padding, num_features=out_ch))
            self.dbb_avg.add_module("avg", nn.AvgPool2d(kernel_size=kernel_size, stride=stride, padding=0))
            self.dbb_1x1 = conv_bn(in_ch, out_ch, kernel_size=1, stride=stride, padding=0, groups=groups)
        else:
            self.dbb_avg.add_module(
                "avg", nn.AvgPool2d(kernel_size=kernel_size, stride=stride, padding=padding)
            )
        self.dbb_avg.add_module("avgbn", nn.BatchNorm2d(out_ch))

        if internal_channels_1x1_3x3 is None:
            # Official choice: 2x internal channels for depthwise (MobileNet-style) blocks.
            internal_channels_1x1_3x3 = in_ch if groups < out_ch else 2 * in_ch
        self.dbb_1x1_kxk = nn.Sequential()
        if internal_channels_1x1_3x3 == in_ch:
            self.dbb_1x1_kxk.add_module("idconv1", IdentityBasedConv1x1(channels=in_ch, groups=groups))
        else:
            self.dbb_1x1_kxk.add_module(
                "conv1",
                nn.Conv2d(
                    in_ch,
                    internal_channels_1x1_3x3,
                    kernel_size=1,
                    stride=1,
                    padding=0,
                    groups=groups,
                    bias=False,
                ),
            )
        self.dbb_1x1_kxk.add_module(
            "bn1", pad_layer(pad_pixels=padding, num_features=internal_channels_1x1_3x3)
        )
        self.dbb_1x1_kxk.add_module(
            "conv2",
            nn.Conv2d(
                internal_channels_1x1_3x3,
                out_ch,
                kernel_size=kernel_size,
                stride=stride,
                padding=0,
                groups=groups,
                bias=False,
            ),
        )
        self.dbb_1x1_kxk.add_module("bn2", nn.BatchNorm2d(out_ch))

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        out = self.dbb_origin(inputs)
        if self.dbb_1x1 is not None:
            out = out + self.dbb_1x1(inputs)
        out = out + self.dbb_avg(inputs)
        out = out + self.dbb_1x1_kxk(inputs)
        return self.nonlinear(out)
