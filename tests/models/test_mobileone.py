from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import fxrep
from fxrep.models import (
    MobileOne,
    MobileOneBlock,
    mobileone,
    mobileone_s0,
    mobileone_small,
    mobileone_unit,
    reparameterize_model,
)
from fxrep.report import count_ops

from ._checks import (
    assert_close_scaled,
    assert_deterministic,
    assert_export_matches,
    assert_symbolic_trace_matches,
    count_modules,
    fold_bn,
    identity_kernel,
    randomized_eval,
)

CONFIGS = [  # in, out, kernel, stride, padding, groups
    (8, 8, 3, 1, 1, 8),  # depthwise, skip + scale + conv branches
    (8, 8, 3, 2, 1, 8),  # depthwise strided: no skip
    (8, 16, 1, 1, 0, 1),  # pointwise: no scale branch
    (16, 16, 1, 1, 0, 1),  # pointwise with skip
    (8, 16, 3, 1, 1, 2),  # grouped
]


def equivalent_conv(block: MobileOneBlock) -> tuple[torch.Tensor, torch.Tensor]:
    """Official `_get_kernel_bias`: conv branches + padded scale branch + BN identity."""
    k = block.kernel_size
    kernel = torch.zeros(block.out_ch, block.in_ch // block.groups, k, k)
    bias = torch.zeros(block.out_ch)
    for branch in block.rbr_conv or []:
        branch_kernel, branch_bias = fold_bn(branch.conv.weight, branch.bn)
        kernel, bias = kernel + branch_kernel, bias + branch_bias
    if block.rbr_scale is not None:
        scale_kernel, scale_bias = fold_bn(block.rbr_scale.conv.weight, block.rbr_scale.bn)
        kernel, bias = kernel + F.pad(scale_kernel, [k // 2] * 4), bias + scale_bias
    if block.rbr_skip is not None:
        skip_kernel, skip_bias = fold_bn(identity_kernel(block.in_ch, block.groups, k), block.rbr_skip)
        kernel, bias = kernel + skip_kernel, bias + skip_bias
    return kernel, bias


@pytest.mark.parametrize(("in_ch", "out_ch", "k", "stride", "padding", "groups"), CONFIGS)
def test_shape_and_branches(in_ch: int, out_ch: int, k: int, stride: int, padding: int, groups: int) -> None:
    block = MobileOneBlock(in_ch, out_ch, k, stride=stride, padding=padding, groups=groups).eval()
    out = block(torch.randn(2, in_ch, 9, 8))
    assert out.shape == (2, out_ch, (9 - 1) // stride + 1, (8 - 1) // stride + 1)
    assert (block.rbr_skip is not None) == (in_ch == out_ch and stride == 1)
    assert (block.rbr_scale is not None) == (k > 1)
    assert len(block.rbr_conv) == 4
    assert (out >= 0).all()


def test_depthwise_instance_and_conv_count() -> None:
    block = MobileOneBlock(16, 16, kernel_size=3, padding=1, groups=16)
    assert count_modules(block, nn.Conv2d) == 5  # 4 kxk branches + the 1x1 scale branch
    assert all(conv.groups == 16 for conv in block.modules() if isinstance(conv, nn.Conv2d))
    assert isinstance(block.rbr_skip, nn.BatchNorm2d)
    unit = mobileone_unit(16, 32, stride=2)
    assert count_modules(unit, nn.Conv2d) == 5 + 4
    assert count_modules(mobileone_small(), nn.Conv2d) == 2 + 2 * 9


def test_options() -> None:
    block = MobileOneBlock(8, 8, 3, padding=1, num_conv_branches=2, use_scale_branch=False, use_act=False)
    assert block.rbr_scale is None and len(block.rbr_conv) == 2 and isinstance(block.activation, nn.Identity)
    bn_only = MobileOneBlock(8, 8, 3, padding=1, num_conv_branches=0, use_scale_branch=False)
    assert bn_only.rbr_conv is None
    with pytest.raises(ValueError):
        MobileOneBlock(8, 16, 3, padding=1, num_conv_branches=0, use_scale_branch=False)


@pytest.mark.parametrize(("in_ch", "out_ch", "k", "stride", "padding", "groups"), CONFIGS)
def test_equals_one_conv(in_ch: int, out_ch: int, k: int, stride: int, padding: int, groups: int) -> None:
    block = randomized_eval(MobileOneBlock(in_ch, out_ch, k, stride=stride, padding=padding, groups=groups))
    x = torch.randn(2, in_ch, 9, 8)
    kernel, bias = equivalent_conv(block)
    with torch.no_grad():
        assert_close_scaled(
            block(x), F.relu(F.conv2d(x, kernel, bias, stride=stride, padding=padding, groups=groups))
        )


def test_determinism_trace_and_export() -> None:
    x = torch.randn(1, 8, 8, 8)
    assert_deterministic(lambda: mobileone_unit(8, 16), x)
    block = randomized_eval(MobileOneBlock(8, 8, 3, padding=1, groups=8))
    assert_symbolic_trace_matches(block, x)
    assert_export_matches(block, x)


def test_small_net() -> None:
    x = torch.randn(1, 3, 32, 32)
    model = randomized_eval(mobileone_small())
    assert model(x).shape == (1, 10)
    assert_symbolic_trace_matches(model, x)
    assert_export_matches(model, x)


@pytest.mark.parametrize(("in_ch", "out_ch", "k", "stride", "padding", "groups"), CONFIGS)
def test_reparameterize_is_the_equivalent_conv(in_ch: int, out_ch: int, k: int, stride: int, padding: int,
                                               groups: int) -> None:
    block = randomized_eval(MobileOneBlock(in_ch, out_ch, k, stride=stride, padding=padding, groups=groups))
    kernel, bias = equivalent_conv(block)
    x = torch.randn(2, in_ch, 9, 8)
    with torch.no_grad():
        expected = block(x)
        block.reparameterize()
        out = block(x)
    assert block.rbr_conv is None and block.rbr_scale is None and block.rbr_skip is None
    assert count_modules(block, nn.Conv2d) == 1 and count_modules(block, nn.BatchNorm2d) == 0
    conv = block.reparam_conv
    assert (conv.stride, conv.padding, conv.groups) == ((stride, stride), (padding, padding), groups)
    assert_close_scaled(conv.weight, kernel)
    assert_close_scaled(conv.bias, bias)
    assert_close_scaled(out, expected)


def test_inference_mode_block_has_only_the_deploy_conv() -> None:
    block = MobileOneBlock(8, 8, 3, padding=1, groups=8, inference_mode=True)
    assert list(dict(block.named_children())) == ["activation", "reparam_conv"]
    assert block.reparam_conv.bias is not None
    assert block(torch.randn(1, 8, 6, 6)).shape == (1, 8, 6, 6)


def stage_widths(model: MobileOne) -> list[int]:
    return [stage[-1].out_ch for stage in (model.stage1, model.stage2, model.stage3, model.stage4)]


def test_s0_follows_the_official_configuration() -> None:
    model = mobileone_s0()
    # widths (0.75, 1.0, 1.0, 2.0) of (64, 128, 256, 512); stem min(64, 48); (2, 8, 10, 1) units of 2 blocks
    assert model.stage0.out_ch == 48 and stage_widths(model) == [48, 128, 256, 1024]
    stages = (model.stage1, model.stage2, model.stage3, model.stage4)
    assert [len(stage) for stage in stages] == [4, 16, 20, 2]
    for stage in stages:
        assert [block.stride for block in stage] == [2] + [1] * (len(stage) - 1)
        assert [block.kernel_size for block in stage] == [3, 1] * (len(stage) // 2)
        assert all(block.groups == block.in_ch for block in stage[::2])  # depthwise, then pointwise
        assert all(len(block.rbr_conv) == 4 for block in stage)
    assert len(model.stage0.rbr_conv) == 1  # the stem keeps the block's official default
    assert model.linear.in_features == 1024
    # stem: 1 conv + 1 scale; per unit: depthwise 4 + scale, pointwise 4 (21 units)
    assert count_modules(model, nn.Conv2d) == 2 + 21 * 9
    assert count_modules(mobileone(variant="s1"), nn.Conv2d) == 2 + 21 * 3
    with pytest.raises(ValueError):
        mobileone(variant="s4")


def test_s0_hand_conversion_is_exact_and_matches_inference_mode_layout() -> None:
    model = randomized_eval(mobileone_s0())
    x = torch.randn(2, 3, 64, 64)
    converted = reparameterize_model(model)
    assert count_modules(model, nn.BatchNorm2d) > 0  # the input model is left as it was
    assert count_modules(converted, nn.BatchNorm2d) == 0
    assert count_modules(converted, nn.Conv2d) == 1 + 21 * 2
    with torch.no_grad():
        assert_close_scaled(converted(x), model(x))
    fresh = mobileone_s0(inference_mode=True).eval()
    fresh.load_state_dict(converted.state_dict())  # strict: same keys and shapes as the official deploy form
    with torch.no_grad():
        torch.testing.assert_close(fresh(x), converted(x), rtol=0, atol=0)


@pytest.mark.slow
def test_fxrep_reaches_the_hand_conversion_conv_count_on_s0() -> None:
    model = randomized_eval(mobileone_s0())
    x = torch.randn(1, 3, 64, 64)
    optimized = fxrep.optimize(model, (x,))
    hand = reparameterize_model(model)
    assert count_ops(optimized).get("conv", 0) == count_modules(hand, nn.Conv2d)
    with torch.no_grad():
        assert_close_scaled(optimized(x), model(x))
