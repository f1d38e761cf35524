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

`dbb_model_convert` is the official HAND-WRITTEN deploy conversion (`get_equivalent_kernel_bias` with
the `dbb_transforms.py` rules `transI_fusebn` .. `transVI_multiscale`, then `switch_to_deploy`), kept as
the baseline fxrep is measured against: every block becomes `dbb_reparam`, one kxk conv with bias.

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

import copy
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from .layers import conv_bn

__all__ = ["BNAndPadLayer", "BNAndZeroPadLayer", "DiverseBranchBlock", "IdentityBasedConv1x1", "conv_bn",
           "dbb_model_convert"]


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
        if hasattr(self, "dbb_reparam"):
            return self.nonlinear(self.dbb_reparam(inputs))
        out = self.dbb_origin(inputs)
        if self.dbb_1x1 is not None:
            out = out + self.dbb_1x1(inputs)
        out = out + self.dbb_avg(inputs)
        out = out + self.dbb_1x1_kxk(inputs)
        return self.nonlinear(out)


# ---------------------------------------------------------------------------------------------------
# The official hand-written conversion (DiverseBranchBlock `dbb_transforms.py` and
# `get_equivalent_kernel_bias` / `switch_to_deploy`).


def _trans_i_fusebn(kernel: torch.Tensor, bn: nn.BatchNorm2d | BNAndPadLayer) -> tuple[torch.Tensor, torch.Tensor]:
    gamma = bn.weight
    std = (bn.running_var + bn.eps).sqrt()
    return kernel * ((gamma / std).reshape(-1, 1, 1, 1)), bn.bias - bn.running_mean * gamma / std


def _trans_iii_1x1_kxk(k1: torch.Tensor, b1: torch.Tensor, k2: torch.Tensor, b2: torch.Tensor,
                       groups: int) -> tuple[torch.Tensor, torch.Tensor]:
    if groups == 1:
        k = F.conv2d(k2, k1.permute(1, 0, 2, 3))
        b_hat = (k2 * b1.reshape(1, -1, 1, 1)).sum((1, 2, 3))
    else:
        k_slices, b_slices = [], []
        k1_t = k1.permute(1, 0, 2, 3)
        k1_group_width = k1.size(0) // groups
        k2_group_width = k2.size(0) // groups
        for g in range(groups):
            k1_t_slice = k1_t[:, g * k1_group_width:(g + 1) * k1_group_width, :, :]
            k2_slice = k2[g * k2_group_width:(g + 1) * k2_group_width, :, :, :]
            k_slices.append(F.conv2d(k2_slice, k1_t_slice))
            b_slices.append((k2_slice * b1[g * k1_group_width:(g + 1) * k1_group_width].reshape(1, -1, 1, 1))
                            .sum((1, 2, 3)))
        k, b_hat = torch.cat(k_slices, dim=0), torch.cat(b_slices)
    return k, b_hat + b2


def _trans_v_avg(channels: int, kernel_size: int, groups: int) -> torch.Tensor:
    input_dim = channels // groups
    k = torch.zeros((channels, input_dim, kernel_size, kernel_size))
    k[torch.arange(channels), torch.arange(input_dim).repeat(groups), :, :] = 1.0 / kernel_size ** 2
    return k


def _trans_vi_multiscale(kernel: torch.Tensor, target_kernel_size: int) -> torch.Tensor:
    h_pad = (target_kernel_size - kernel.size(2)) // 2
    w_pad = (target_kernel_size - kernel.size(3)) // 2
    return F.pad(kernel, [h_pad, h_pad, w_pad, w_pad])


def _equivalent_kernel_bias(block: DiverseBranchBlock) -> tuple[torch.Tensor, torch.Tensor]:
    """The official `get_equivalent_kernel_bias`: one kxk kernel and bias for the four branches."""
    k_origin, b_origin = _trans_i_fusebn(block.dbb_origin.conv.weight, block.dbb_origin.bn)
    if block.dbb_1x1 is not None:
        k_1x1, b_1x1 = _trans_i_fusebn(block.dbb_1x1.conv.weight, block.dbb_1x1.bn)
        k_1x1 = _trans_vi_multiscale(k_1x1, block.kernel_size)
    else:
        k_1x1, b_1x1 = 0, 0
    if hasattr(block.dbb_1x1_kxk, "idconv1"):
        k_first = block.dbb_1x1_kxk.idconv1.get_actual_kernel()
    else:
        k_first = block.dbb_1x1_kxk.conv1.weight
    k_first, b_first = _trans_i_fusebn(k_first, block.dbb_1x1_kxk.bn1)
    k_second, b_second = _trans_i_fusebn(block.dbb_1x1_kxk.conv2.weight, block.dbb_1x1_kxk.bn2)
    k_1x1_kxk, b_1x1_kxk = _trans_iii_1x1_kxk(k_first, b_first, k_second, b_second, groups=block.groups)

    k_avg = _trans_v_avg(block.out_channels, block.kernel_size, block.groups).to(block.dbb_avg.avgbn.weight)
    k_avg_second, b_avg_second = _trans_i_fusebn(k_avg, block.dbb_avg.avgbn)
    if hasattr(block.dbb_avg, "conv"):
        k_avg_first, b_avg_first = _trans_i_fusebn(block.dbb_avg.conv.weight, block.dbb_avg.bn)
        k_avg, b_avg = _trans_iii_1x1_kxk(k_avg_first, b_avg_first, k_avg_second, b_avg_second, groups=block.groups)
    else:
        k_avg, b_avg = k_avg_second, b_avg_second
    kernel = k_origin + k_1x1 + k_1x1_kxk + k_avg
    bias = b_origin + b_1x1 + b_1x1_kxk + b_avg
    return kernel, bias


def _switch_to_deploy(block: DiverseBranchBlock) -> None:
    with torch.no_grad():
        kernel, bias = _equivalent_kernel_bias(block)
    origin = block.dbb_origin.conv
    reparam = nn.Conv2d(origin.in_channels, origin.out_channels, origin.kernel_size, origin.stride, origin.padding,
                        origin.dilation, origin.groups, bias=True).to(kernel)
    reparam.weight.data = kernel.detach()
    reparam.bias.data = bias.detach()
    block.dbb_reparam = reparam
    for name in ("dbb_origin", "dbb_avg", "dbb_1x1", "dbb_1x1_kxk"):
        if getattr(block, name, None) is not None:
            delattr(block, name)


def dbb_model_convert(model: nn.Module) -> nn.Module:
    """Deep copy of ``model`` with every DiverseBranchBlock switched to its one-conv deploy form (official)."""
    converted = copy.deepcopy(model)
    for module in list(converted.modules()):
        if isinstance(module, DiverseBranchBlock):
            _switch_to_deploy(module)
    return converted
