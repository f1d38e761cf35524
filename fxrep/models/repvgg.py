"""RepVGG (Ding et al., CVPR 2021), following DingXiaoH/RepVGG `repvgg.py`.

Training form of a block: `ReLU(BN(conv3x3(x)) + BN(conv1x1(x)) + BN(x))`, the identity branch
only when in == out channels and stride 1. At inference the three branches collapse into one
3x3 conv with bias (`rbr_reparam`). Module and attribute names follow the official code
(`rbr_dense.conv`, `rbr_dense.bn`, `rbr_1x1`, `rbr_identity`, `rbr_reparam`, `stage0`..`stage4`,
`gap`, `linear`), so official checkpoints load into these classes.

`repvgg_model_convert` is the official HAND-WRITTEN deploy conversion (`get_equivalent_kernel_bias`,
`_fuse_bn_tensor`, `_pad_1x1_to_3x3_tensor`), kept as the baseline fxrep's generic compiler is
measured against. Differences from the official file, none of which changes the numbers: no
print in `__init__`, no `id_tensor` cached on the module, and the identity branch is added only
when it exists instead of adding a literal `0` (the official `+ id_out` with `id_out = 0` leaves an
`add(x, 0)` node in traced graphs).
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from .layers import conv_bn

__all__ = ["RepVGG", "RepVGGBlock", "conv_bn", "repvgg_a0", "repvgg_b0", "repvgg_model_convert"]


class RepVGGBlock(nn.Module):
    """One RepVGG block: 3x3 conv+BN, 1x1 conv+BN and (when shapes allow) a BN identity, summed, ReLU."""

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        kernel_size: int = 3,
        stride: int = 1,
        padding: int = 1,
        groups: int = 1,
        deploy: bool = False,
    ) -> None:
        super().__init__()
        if kernel_size != 3 or padding != 1:
            raise ValueError("RepVGGBlock is defined for kernel_size=3, padding=1 (as the official code)")
        self.deploy = deploy
        self.groups = groups
        self.in_ch = in_ch
        self.nonlinearity = nn.ReLU()
        padding_11 = padding - kernel_size // 2

        self.rbr_reparam: nn.Conv2d | None = None
        self.rbr_identity: nn.BatchNorm2d | None = None
        self.rbr_dense: nn.Sequential | None = None
        self.rbr_1x1: nn.Sequential | None = None
        if deploy:
            self.rbr_reparam = nn.Conv2d(
                in_ch, out_ch, kernel_size, stride=stride, padding=padding, groups=groups, bias=True
            )
        else:
            if out_ch == in_ch and stride == 1:
                self.rbr_identity = nn.BatchNorm2d(in_ch)
            self.rbr_dense = conv_bn(in_ch, out_ch, kernel_size, stride, padding, groups)
            self.rbr_1x1 = conv_bn(in_ch, out_ch, 1, stride, padding_11, groups)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        if self.rbr_reparam is not None:
            return self.nonlinearity(self.rbr_reparam(inputs))
        out = self.rbr_dense(inputs) + self.rbr_1x1(inputs)
        if self.rbr_identity is not None:
            out = out + self.rbr_identity(inputs)
        return self.nonlinearity(out)

    def get_equivalent_kernel_bias(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Kernel and bias of the single 3x3 conv equal (in eval) to the three branches."""
        kernel3x3, bias3x3 = self._fuse_bn_tensor(self.rbr_dense)
        kernel1x1, bias1x1 = self._fuse_bn_tensor(self.rbr_1x1)
        kernelid, biasid = self._fuse_bn_tensor(self.rbr_identity)
        return kernel3x3 + self._pad_1x1_to_3x3_tensor(kernel1x1) + kernelid, bias3x3 + bias1x1 + biasid

    @staticmethod
    def _pad_1x1_to_3x3_tensor(kernel1x1: torch.Tensor | int) -> torch.Tensor | int:
        if isinstance(kernel1x1, int):
            return 0
        return nn.functional.pad(kernel1x1, [1, 1, 1, 1])

    def _fuse_bn_tensor(self, branch: nn.Module | None) -> tuple[torch.Tensor | int, torch.Tensor | int]:
        """(W * gamma / std, beta - mean * gamma / std) of a conv+BN branch or of the BN identity."""
        if branch is None:
            return 0, 0
        if isinstance(branch, nn.Sequential):
            kernel = branch.conv.weight
            bn = branch.bn
        else:
            assert isinstance(branch, nn.BatchNorm2d)
            input_dim = self.in_ch // self.groups
            kernel = torch.zeros(
                (self.in_ch, input_dim, 3, 3), dtype=branch.weight.dtype, device=branch.weight.device
            )
            for i in range(self.in_ch):
                kernel[i, i % input_dim, 1, 1] = 1
            bn = branch
        std = (bn.running_var + bn.eps).sqrt()
        t = (bn.weight / std).reshape(-1, 1, 1, 1)
        return kernel * t, bn.bias - bn.running_mean * bn.weight / std

    def switch_to_deploy(self) -> None:
        """Replace the branches by `rbr_reparam` in place (official `switch_to_deploy`)."""
        if self.rbr_reparam is not None:
            return
        with torch.no_grad():
            kernel, bias = self.get_equivalent_kernel_bias()
        dense = self.rbr_dense.conv
        self.rbr_reparam = nn.Conv2d(
            dense.in_channels,
            dense.out_channels,
            dense.kernel_size,
            stride=dense.stride,
            padding=dense.padding,
            dilation=dense.dilation,
            groups=dense.groups,
            bias=True,
        ).to(device=kernel.device, dtype=kernel.dtype)
        self.rbr_reparam.weight.data = kernel.detach()
        self.rbr_reparam.bias.data = bias.detach()
        self.rbr_dense = None
        self.rbr_1x1 = None
        self.rbr_identity = None
        self.deploy = True


class RepVGG(nn.Module):
    """RepVGG network: five stages of RepVGG blocks (the first block of each stage has stride 2), GAP, Linear."""

    def __init__(
        self,
        num_blocks: list[int],
        num_classes: int = 1000,
        width_multiplier: list[float] | None = None,
        override_groups_map: dict[int, int] | None = None,
        deploy: bool = False,
    ) -> None:
        super().__init__()
        if width_multiplier is None or len(width_multiplier) != 4 or len(num_blocks) != 4:
            raise ValueError("num_blocks and width_multiplier need four entries")
        self.deploy = deploy
        self.override_groups_map = dict(override_groups_map or {})
        if 0 in self.override_groups_map:
            raise ValueError("the stem (layer 0) reads RGB and cannot be grouped")

        self.in_planes = min(64, int(64 * width_multiplier[0]))
        self.stage0 = RepVGGBlock(3, self.in_planes, kernel_size=3, stride=2, padding=1, deploy=deploy)
        self.cur_layer_idx = 1
        self.stage1 = self._make_stage(int(64 * width_multiplier[0]), num_blocks[0], stride=2)
        self.stage2 = self._make_stage(int(128 * width_multiplier[1]), num_blocks[1], stride=2)
        self.stage3 = self._make_stage(int(256 * width_multiplier[2]), num_blocks[2], stride=2)
        self.stage4 = self._make_stage(int(512 * width_multiplier[3]), num_blocks[3], stride=2)
        self.gap = nn.AdaptiveAvgPool2d(output_size=1)
        self.linear = nn.Linear(int(512 * width_multiplier[3]), num_classes)

    def _make_stage(self, planes: int, num_blocks: int, stride: int) -> nn.Sequential:
        blocks = []
        for block_stride in [stride] + [1] * (num_blocks - 1):
            groups = self.override_groups_map.get(self.cur_layer_idx, 1)
            blocks.append(
                RepVGGBlock(
                    self.in_planes,
                    planes,
                    kernel_size=3,
                    stride=block_stride,
                    padding=1,
                    groups=groups,
                    deploy=self.deploy,
                )
            )
            self.in_planes = planes
            self.cur_layer_idx += 1
        return nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.stage0(x)
        out = self.stage1(out)
        out = self.stage2(out)
        out = self.stage3(out)
        out = self.stage4(out)
        out = self.gap(out)
        out = out.view(out.size(0), -1)
        return self.linear(out)


# Official group maps: layer indices count blocks from the stem (index 0); g2/g4 group every
# second block of the stages (indices 2, 4, ..., 26).
OPTIONAL_GROUPWISE_LAYERS = tuple(range(2, 27, 2))


def _groups_map(groups: int) -> dict[int, int] | None:
    if groups == 1:
        return None
    if groups not in (2, 4):
        raise ValueError(f"official RepVGG group maps are g2 and g4, got groups={groups}")
    return {layer: groups for layer in OPTIONAL_GROUPWISE_LAYERS}


def repvgg_a0(num_classes: int = 1000, *, groups: int = 1, deploy: bool = False) -> RepVGG:
    """RepVGG-A0: blocks [2, 4, 14, 1], widths [0.75, 0.75, 0.75, 2.5]; groups 2/4 = official g2/g4 map."""
    return RepVGG(
        num_blocks=[2, 4, 14, 1],
        num_classes=num_classes,
        width_multiplier=[0.75, 0.75, 0.75, 2.5],
        override_groups_map=_groups_map(groups),
        deploy=deploy,
    )


def repvgg_b0(num_classes: int = 1000, *, groups: int = 1, deploy: bool = False) -> RepVGG:
    """RepVGG-B0: blocks [4, 6, 16, 1], widths [1, 1, 1, 2.5]; groups 2/4 = official g2/g4 map."""
    return RepVGG(
        num_blocks=[4, 6, 16, 1],
        num_classes=num_classes,
        width_multiplier=[1, 1, 1, 2.5],
        override_groups_map=_groups_map(groups),
        deploy=deploy,
    )


def repvgg_model_convert(model: nn.Module) -> nn.Module:
    """Deep copy of `model` with every RepVGG block switched to its single-conv deploy form.

    The official hand-written conversion (repvgg.py `repvgg_model_convert`): each block's branches
    are folded with `get_equivalent_kernel_bias` into `rbr_reparam`. Works on any model that
    contains RepVGGBlocks (e.g. a RepVGG backbone inside a detector). The input is not modified.
    """
    converted = copy.deepcopy(model)
    for module in converted.modules():
        if isinstance(module, RepVGGBlock):
            module.switch_to_deploy()
    return converted
