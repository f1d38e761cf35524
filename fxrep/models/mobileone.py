"""MobileOne (Vasu et al., CVPR 2023), following apple/ml-mobileone `mobileone.py` and the copy of
its block in apple/ml-fastvit `models/modules/mobileone.py` (which adds `use_act` / `use_scale_branch`).

Training form: the sum of
- `rbr_scale`: a 1x1 conv+BN (padding 0, same stride and groups), when kernel_size > 1 and use_scale_branch,
- `rbr_skip`: a BN identity, when in == out channels and stride 1,
- `rbr_conv`: `num_conv_branches` parallel kxk conv+BN branches,
followed by ReLU when use_act. At inference all branches collapse into one kxk conv with bias
(`reparam_conv` in the official code). MobileOne stacks a depthwise kxk block
(groups = in = out) and a pointwise 1x1 block; `mobileone_unit` builds that pair.

The network `MobileOne` (stem block, four stages of units, global average pool, Linear) and its
variants `mobileone` / `mobileone_s0` follow the official `MobileOne`, `PARAMS` and `mobileone`:
S0 has width multipliers (0.75, 1.0, 1.0, 2.0), 4 conv branches per block and (2, 8, 10, 1) units per
stage (the first of each stage with stride 2); the stem keeps the block's official default of one
conv branch. `reparameterize_model` is the official HAND-WRITTEN deploy conversion (each block's
`reparameterize`: `_get_kernel_bias`, `_fuse_bn_tensor`), kept as the baseline fxrep is measured
against; its result has the state-dict layout of a model built with ``inference_mode=True``.

Differences from the official file, none of which changes the numbers: the official forward starts
from `0` and accumulates with `+=`; here the branch outputs are summed out of place in the same
order (scale, skip, conv branches), giving a graph without in-place adds or `add(x, 0)` nodes. No
`id_tensor` is cached on the block, and the geometry of `reparam_conv` comes from the block's own
arguments (so a block without conv branches converts too). No SE blocks: variant "s4", the only one
that uses them, is not provided.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from .layers import conv_bn

__all__ = ["MobileOne", "MobileOneBlock", "mobileone", "mobileone_s0", "mobileone_unit", "reparameterize_model"]


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
        inference_mode: bool = False,
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
        self.inference_mode = inference_mode
        self.reparam_conv: nn.Conv2d | None = None
        self.rbr_skip: nn.BatchNorm2d | None = None
        self.rbr_conv: nn.ModuleList | None = None
        self.rbr_scale: nn.Sequential | None = None
        if inference_mode:
            self.reparam_conv = self._deploy_conv()
            return

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

    def _deploy_conv(self) -> nn.Conv2d:
        return nn.Conv2d(self.in_ch, self.out_ch, self.kernel_size, stride=self.stride, padding=self.padding,
                         groups=self.groups, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.reparam_conv is not None:
            return self.activation(self.reparam_conv(x))
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

    def reparameterize(self) -> None:
        """Replace the branches by one ``reparam_conv`` in place (official `reparameterize`)."""
        if self.reparam_conv is not None:
            return
        with torch.no_grad():
            kernel, bias = self._get_kernel_bias()
        conv = self._deploy_conv().to(device=kernel.device, dtype=kernel.dtype)
        conv.weight.data = kernel.detach()
        conv.bias.data = bias.detach()
        self.reparam_conv = conv
        self.rbr_conv = None
        self.rbr_scale = None
        self.rbr_skip = None
        self.inference_mode = True

    def _get_kernel_bias(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Kernel and bias of the single conv equal (in eval) to all branches: conv + scale + identity."""
        kernel_scale: torch.Tensor | int = 0
        bias_scale: torch.Tensor | int = 0
        if self.rbr_scale is not None:
            kernel_scale, bias_scale = self._fuse_bn_tensor(self.rbr_scale)
            pad = self.kernel_size // 2  # pad the 1x1 scale kernel to the conv branches' size
            kernel_scale = F.pad(kernel_scale, [pad, pad, pad, pad])
        kernel_identity: torch.Tensor | int = 0
        bias_identity: torch.Tensor | int = 0
        if self.rbr_skip is not None:
            kernel_identity, bias_identity = self._fuse_bn_tensor(self.rbr_skip)
        kernel_conv: torch.Tensor | int = 0
        bias_conv: torch.Tensor | int = 0
        for branch in self.rbr_conv or []:
            branch_kernel, branch_bias = self._fuse_bn_tensor(branch)
            kernel_conv = kernel_conv + branch_kernel
            bias_conv = bias_conv + branch_bias
        kernel = kernel_conv + kernel_scale + kernel_identity
        bias = bias_conv + bias_scale + bias_identity
        assert isinstance(kernel, torch.Tensor) and isinstance(bias, torch.Tensor)  # at least one branch exists
        return kernel, bias

    def _fuse_bn_tensor(self, branch: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
        """(W * gamma / std, beta - mean * gamma / std) of a conv+BN branch or of the BN identity."""
        if isinstance(branch, nn.Sequential):
            kernel = branch.conv.weight
            bn = branch.bn
        else:
            assert isinstance(branch, nn.BatchNorm2d)
            input_dim = self.in_ch // self.groups
            kernel = torch.zeros((self.in_ch, input_dim, self.kernel_size, self.kernel_size),
                                 dtype=branch.weight.dtype, device=branch.weight.device)
            for i in range(self.in_ch):
                kernel[i, i % input_dim, self.kernel_size // 2, self.kernel_size // 2] = 1
            bn = branch
        std = (bn.running_var + bn.eps).sqrt()
        t = (bn.weight / std).reshape(-1, 1, 1, 1)
        return kernel * t, bn.bias - bn.running_mean * bn.weight / std


def _unit_blocks(in_ch: int, out_ch: int, stride: int, num_conv_branches: int,
                 inference_mode: bool = False) -> list[MobileOneBlock]:
    return [
        MobileOneBlock(in_ch, in_ch, kernel_size=3, stride=stride, padding=1, groups=in_ch,
                       num_conv_branches=num_conv_branches, inference_mode=inference_mode),
        MobileOneBlock(in_ch, out_ch, kernel_size=1, stride=1, padding=0, num_conv_branches=num_conv_branches,
                       inference_mode=inference_mode),
    ]


def mobileone_unit(in_ch: int, out_ch: int, stride: int = 1, num_conv_branches: int = 4) -> nn.Sequential:
    """MobileOne's basic unit: depthwise 3x3 MobileOneBlock, then pointwise 1x1 MobileOneBlock."""
    return nn.Sequential(*_unit_blocks(in_ch, out_ch, stride, num_conv_branches))


class MobileOne(nn.Module):
    """MobileOne network: stem block, four stages of depthwise + pointwise units, global average pool, Linear.

    Module names follow the official code (`stage0`..`stage4` as flat `Sequential`s of blocks, `gap`,
    `linear`), so official checkpoints load into these classes.
    """

    def __init__(
        self,
        num_blocks_per_stage: tuple[int, int, int, int] = (2, 8, 10, 1),
        num_classes: int = 1000,
        width_multipliers: tuple[float, float, float, float] = (0.75, 1.0, 1.0, 2.0),
        inference_mode: bool = False,
        num_conv_branches: int = 1,
    ) -> None:
        super().__init__()
        if len(width_multipliers) != 4 or len(num_blocks_per_stage) != 4:
            raise ValueError("num_blocks_per_stage and width_multipliers need four entries")
        self.inference_mode = inference_mode
        self.num_conv_branches = num_conv_branches
        self.in_planes = min(64, int(64 * width_multipliers[0]))
        self.stage0 = MobileOneBlock(3, self.in_planes, kernel_size=3, stride=2, padding=1, num_conv_branches=1,
                                     inference_mode=inference_mode)
        self.stage1 = self._make_stage(int(64 * width_multipliers[0]), num_blocks_per_stage[0])
        self.stage2 = self._make_stage(int(128 * width_multipliers[1]), num_blocks_per_stage[1])
        self.stage3 = self._make_stage(int(256 * width_multipliers[2]), num_blocks_per_stage[2])
        self.stage4 = self._make_stage(int(512 * width_multipliers[3]), num_blocks_per_stage[3])
        self.gap = nn.AdaptiveAvgPool2d(output_size=1)
        self.linear = nn.Linear(int(512 * width_multipliers[3]), num_classes)

    def _make_stage(self, planes: int, num_blocks: int) -> nn.Sequential:
        blocks: list[MobileOneBlock] = []
        for stride in [2] + [1] * (num_blocks - 1):
            blocks += _unit_blocks(self.in_planes, planes, stride, self.num_conv_branches, self.inference_mode)
            self.in_planes = planes
        return nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stage0(x)
        x = self.stage1(x)
        x = self.stage2(x)
        x = self.stage3(x)
        x = self.stage4(x)
        x = self.gap(x)
        x = x.view(x.size(0), -1)
        return self.linear(x)


PARAMS: dict[str, dict[str, tuple[float, float, float, float] | int]] = {
    "s0": {"width_multipliers": (0.75, 1.0, 1.0, 2.0), "num_conv_branches": 4},
    "s1": {"width_multipliers": (1.5, 1.5, 2.0, 2.5)},
    "s2": {"width_multipliers": (1.5, 2.0, 2.5, 4.0)},
    "s3": {"width_multipliers": (2.0, 2.5, 3.0, 4.0)},
}
"""The official variants (``s4`` uses SE blocks, which are not provided here)."""


def mobileone(num_classes: int = 1000, inference_mode: bool = False, variant: str = "s0") -> MobileOne:
    """A MobileOne variant ("s0".."s3") with the official configuration."""
    if variant not in PARAMS:
        raise ValueError(f"MobileOne variant must be one of {', '.join(PARAMS)} (s4 needs SE blocks), got {variant!r}")
    return MobileOne(num_classes=num_classes, inference_mode=inference_mode, **PARAMS[variant])  # type: ignore[arg-type]


def mobileone_s0(num_classes: int = 1000, *, inference_mode: bool = False) -> MobileOne:
    """MobileOne-S0: widths (0.75, 1.0, 1.0, 2.0), 4 conv branches, (2, 8, 10, 1) units per stage."""
    return mobileone(num_classes, inference_mode, "s0")


def reparameterize_model(model: nn.Module) -> nn.Module:
    """Deep copy of `model` with every MobileOneBlock re-parameterized into its single conv.

    The official hand-written conversion (`reparameterize_model`); works on any model containing
    MobileOneBlocks. The input is not modified.
    """
    converted = copy.deepcopy(model)
    for module in converted.modules():
        if isinstance(module, MobileOneBlock):
            module.reparameterize()
    return converted
