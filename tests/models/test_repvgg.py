from __future__ import annotations

import pytest
import torch
from torch import nn

from fxrep.models import RepVGG, RepVGGBlock, repvgg_a0, repvgg_b0, repvgg_model_convert, repvgg_small

from ._checks import (
    assert_close_scaled,
    assert_deterministic,
    assert_export_matches,
    assert_symbolic_trace_matches,
    count_modules,
    randomized_eval,
)

BLOCK_CONFIGS = [  # in, out, stride, groups
    (8, 8, 1, 1),
    (8, 16, 2, 1),
    (16, 16, 1, 4),
    (16, 32, 2, 2),
]


@pytest.mark.parametrize(("in_ch", "out_ch", "stride", "groups"), BLOCK_CONFIGS)
def test_block_shape_and_branches(in_ch: int, out_ch: int, stride: int, groups: int) -> None:
    block = RepVGGBlock(in_ch, out_ch, stride=stride, groups=groups).eval()
    out = block(torch.randn(2, in_ch, 9, 10))
    assert out.shape == (2, out_ch, (9 - 1) // stride + 1, (10 - 1) // stride + 1)
    assert (block.rbr_identity is not None) == (in_ch == out_ch and stride == 1)
    assert block.rbr_dense.conv.groups == groups and block.rbr_1x1.conv.kernel_size == (1, 1)


def test_official_parameter_names() -> None:
    keys = set(RepVGGBlock(8, 8).state_dict())
    assert {
        "rbr_dense.conv.weight",
        "rbr_dense.bn.running_var",
        "rbr_1x1.conv.weight",
        "rbr_identity.weight",
    } <= keys
    assert set(RepVGGBlock(8, 8, deploy=True).state_dict()) == {"rbr_reparam.weight", "rbr_reparam.bias"}


def test_block_rejects_other_kernels() -> None:
    with pytest.raises(ValueError):
        RepVGGBlock(8, 8, kernel_size=5, padding=2)


@pytest.mark.parametrize(("in_ch", "out_ch", "stride", "groups"), BLOCK_CONFIGS)
def test_block_convert_equals_training_form(in_ch: int, out_ch: int, stride: int, groups: int) -> None:
    block = randomized_eval(RepVGGBlock(in_ch, out_ch, stride=stride, groups=groups))
    x = torch.randn(2, in_ch, 11, 11)
    deployed = repvgg_model_convert(block)
    assert deployed.rbr_dense is None and deployed.rbr_reparam is not None
    assert block.rbr_reparam is None  # the input is not modified
    with torch.no_grad():
        assert_close_scaled(deployed(x), block(x))


def test_block_determinism_trace_and_export() -> None:
    x = torch.randn(1, 16, 8, 8)
    assert_deterministic(lambda: RepVGGBlock(16, 16, groups=2), x)
    block = randomized_eval(RepVGGBlock(16, 16, groups=2))
    assert_symbolic_trace_matches(block, x)
    assert_export_matches(block, x)


def test_a0_conv_counts() -> None:
    train = repvgg_a0()
    assert count_modules(train, nn.Conv2d) == 44
    assert count_modules(train, nn.Linear) == 1
    assert count_modules(train, nn.BatchNorm2d) == 44 + 17  # 17 blocks have the BN identity
    deployed = repvgg_model_convert(train)
    assert count_modules(deployed, nn.Conv2d) == 22
    assert count_modules(deployed, nn.BatchNorm2d) == 0
    assert count_modules(deployed, nn.Linear) == 1
    assert count_modules(repvgg_a0(deploy=True), nn.Conv2d) == 22


def test_a0_widths_and_logits() -> None:
    model = repvgg_a0(num_classes=7).eval()
    widths = [model.stage0.rbr_dense.conv.out_channels] + [
        getattr(model, f"stage{i}")[-1].rbr_dense.conv.out_channels for i in range(1, 5)
    ]
    assert widths == [48, 48, 96, 192, 1280]
    assert [len(getattr(model, f"stage{i}")) for i in range(1, 5)] == [2, 4, 14, 1]
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 7)


def test_b0_widths() -> None:
    model = repvgg_b0()
    assert [len(getattr(model, f"stage{i}")) for i in range(1, 5)] == [4, 6, 16, 1]
    assert model.stage3[0].rbr_dense.conv.out_channels == 256 and model.linear.in_features == 1280
    assert count_modules(model, nn.Conv2d) == 2 * 28


def test_group_maps_follow_the_official_layer_indices() -> None:
    model = repvgg_a0(groups=4)
    blocks = [model.stage0, *model.stage1, *model.stage2, *model.stage3, *model.stage4]
    assert [block.rbr_dense.conv.groups for block in blocks] == [
        4 if i in range(2, 27, 2) else 1 for i in range(22)
    ]
    with pytest.raises(ValueError):
        repvgg_a0(groups=3)


@pytest.mark.parametrize("groups", [1, 4])
def test_a0_convert_equals_training_form(groups: int) -> None:
    model = randomized_eval(repvgg_a0(groups=groups))
    x = torch.randn(2, 3, 32, 32)
    deployed = repvgg_model_convert(model)
    with torch.no_grad():
        assert_close_scaled(deployed(x), model(x))
    # The converted weights load into a model built with deploy=True (official checkpoint layout).
    fresh = repvgg_a0(groups=groups, deploy=True).eval()
    fresh.load_state_dict(deployed.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(fresh(x), deployed(x), rtol=0, atol=0)


@pytest.mark.slow
def test_b0_convert_equals_training_form() -> None:
    model = randomized_eval(repvgg_b0())
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert_close_scaled(repvgg_model_convert(model)(x), model(x))


def test_convert_finds_blocks_inside_other_models() -> None:
    model = randomized_eval(nn.Sequential(nn.Conv2d(3, 8, 1), RepVGGBlock(8, 8), nn.ReLU()))
    deployed = repvgg_model_convert(model)
    assert count_modules(deployed, nn.BatchNorm2d) == 0
    x = torch.randn(1, 3, 8, 8)
    with torch.no_grad():
        assert_close_scaled(deployed(x), model(x))


def test_small_net_trace_and_export() -> None:
    model = randomized_eval(repvgg_small())
    x = torch.randn(1, 3, 32, 32)
    assert model(x).shape == (1, 10)
    assert_symbolic_trace_matches(model, x)
    assert_export_matches(model, x)
    assert_export_matches(repvgg_model_convert(model), x)


@pytest.mark.slow
def test_a0_trace_and_export() -> None:
    model = randomized_eval(repvgg_a0())
    x = torch.randn(1, 3, 64, 64)
    assert_symbolic_trace_matches(model, x)
    assert_export_matches(model, x)


def test_rejects_grouped_stem() -> None:
    with pytest.raises(ValueError):
        RepVGG([1, 1, 1, 1], width_multiplier=[1, 1, 1, 1], override_groups_map={0: 2})
