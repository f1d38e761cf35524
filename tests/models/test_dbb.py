from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fxrep.models import BNAndPadLayer, DiverseBranchBlock, IdentityBasedConv1x1, dbb_small, randomize_

from ._checks import (
    assert_close_scaled,
    assert_deterministic,
    assert_export_matches,
    assert_symbolic_trace_matches,
    count_modules,
    fold_bn,
    max_abs_diff,
    randomized_eval,
)

CONFIGS = [  # in, out, kernel, stride, groups, internal channels
    (8, 8, 3, 1, 1, None),  # IdentityBasedConv1x1 first
    (8, 16, 3, 2, 2, None),  # grouped, strided
    (8, 8, 3, 2, 8, None),  # depthwise: no dbb_1x1, plain avg pool, 2x internal channels
    (6, 12, 5, 1, 1, 10),  # 5x5, custom internal width
]


def compose_1x1_kxk(
    k1: torch.Tensor, b1: torch.Tensor, k2: torch.Tensor, b2: torch.Tensor, groups: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Kernel and bias of conv_k2(conv_k1(x) + b1) + b2 for a 1x1 k1, both with `groups` groups."""
    mid, out = k1.shape[0], k2.shape[0]
    k1_groups = k1[:, :, 0, 0].reshape(groups, mid // groups, -1)  # (g, mid/g, in/g)
    k2_groups = k2.reshape(groups, out // groups, mid // groups, *k2.shape[2:])  # (g, out/g, mid/g, k, k)
    kernel = torch.einsum("gomhw,gmi->goihw", k2_groups, k1_groups).reshape(out, -1, *k2.shape[2:])
    bias = torch.einsum("gomhw,gm->go", k2_groups, b1.reshape(groups, -1)).reshape(out) + b2
    return kernel, bias


def avg_kernel(channels: int, kernel_size: int, groups: int) -> torch.Tensor:
    """AvgPool as a grouped conv kernel (official transV_avg)."""
    input_dim = channels // groups
    kernel = torch.zeros(channels, input_dim, kernel_size, kernel_size)
    kernel[torch.arange(channels), torch.arange(channels) % input_dim] = 1.0 / kernel_size**2
    return kernel


def kxk_branch(block: DiverseBranchBlock) -> tuple[torch.Tensor, torch.Tensor]:
    seq = block.dbb_1x1_kxk
    first = seq.idconv1.get_actual_kernel() if hasattr(seq, "idconv1") else seq.conv1.weight
    k1, b1 = fold_bn(first, seq.bn1.bn)
    k2, b2 = fold_bn(seq.conv2.weight, seq.bn2)
    return compose_1x1_kxk(k1, b1, k2, b2, block.groups)


def avg_branch(block: DiverseBranchBlock) -> tuple[torch.Tensor, torch.Tensor]:
    seq = block.dbb_avg
    k2, b2 = fold_bn(avg_kernel(block.out_channels, block.kernel_size, block.groups), seq.avgbn)
    if not hasattr(seq, "conv"):
        return k2, b2
    k1, b1 = fold_bn(seq.conv.weight, seq.bn.bn)
    return compose_1x1_kxk(k1, b1, k2, b2, block.groups)


def equivalent_conv(block: DiverseBranchBlock) -> tuple[torch.Tensor, torch.Tensor]:
    """The whole block as one kxk conv (the official get_equivalent_kernel_bias, written out)."""
    kernel, bias = fold_bn(block.dbb_origin.conv.weight, block.dbb_origin.bn)
    parts = [kxk_branch(block), avg_branch(block)]
    if block.dbb_1x1 is not None:
        k_1x1, b_1x1 = fold_bn(block.dbb_1x1.conv.weight, block.dbb_1x1.bn)
        pad = block.kernel_size // 2
        parts.append((F.pad(k_1x1, [pad] * 4), b_1x1))
    for k, b in parts:
        kernel, bias = kernel + k, bias + b
    return kernel, bias


def build(
    in_ch: int, out_ch: int, k: int, stride: int, groups: int, internal: int | None, **kwargs
) -> DiverseBranchBlock:
    return DiverseBranchBlock(
        in_ch,
        out_ch,
        k,
        stride=stride,
        padding=k // 2,
        groups=groups,
        internal_channels_1x1_3x3=internal,
        **kwargs,
    )


@pytest.mark.parametrize(("in_ch", "out_ch", "k", "stride", "groups", "internal"), CONFIGS)
def test_shape_and_branches(
    in_ch: int, out_ch: int, k: int, stride: int, groups: int, internal: int | None
) -> None:
    block = build(in_ch, out_ch, k, stride, groups, internal).eval()
    out = block(torch.randn(2, in_ch, 9, 12))
    assert out.shape == (2, out_ch, (9 - 1) // stride + 1, (12 - 1) // stride + 1)
    assert (block.dbb_1x1 is None) == (groups >= out_ch)
    assert hasattr(block.dbb_avg, "conv") == (groups < out_ch)
    uses_identity_conv = (internal or (in_ch if groups < out_ch else 2 * in_ch)) == in_ch
    assert isinstance(getattr(block.dbb_1x1_kxk, "idconv1", None), IdentityBasedConv1x1) == uses_identity_conv
    assert (out >= 0).all()  # ReLU


def test_train_form_conv_count() -> None:
    assert count_modules(DiverseBranchBlock(8, 8), nn.Conv2d) == 5  # origin, 1x1, avg 1x1, idconv1, kxk
    assert count_modules(DiverseBranchBlock(8, 8, groups=8), nn.Conv2d) == 3  # origin, conv1, kxk


def test_activation_is_optional() -> None:
    block = DiverseBranchBlock(4, 4, use_act=False).eval()
    assert isinstance(block.nonlinear, nn.Identity)
    assert (block(torch.randn(1, 4, 6, 6)) < 0).any()


def test_bn_and_pad_layer_pads_with_the_bn_bias() -> None:
    layer = randomized_eval(BNAndPadLayer(pad_pixels=2, num_features=3))
    x = torch.randn(1, 3, 5, 6)
    out = layer(x)
    bn = layer.bn
    pad_values = bn.bias - bn.running_mean * bn.weight / torch.sqrt(bn.running_var + bn.eps)
    assert out.shape == (1, 3, 9, 10)
    torch.testing.assert_close(out[:, :, 2:-2, 2:-2], bn(x))
    border = torch.ones(9, 10, dtype=torch.bool)
    border[2:-2, 2:-2] = False
    torch.testing.assert_close(out[0][:, border], pad_values[:, None].expand(3, int(border.sum())))


def test_identity_based_conv_starts_as_identity() -> None:
    conv = IdentityBasedConv1x1(6, groups=2)
    x = torch.randn(1, 6, 4, 4)
    torch.testing.assert_close(conv(x), x)
    assert "id_tensor" not in conv.state_dict()


@pytest.mark.parametrize(("in_ch", "out_ch", "k", "stride", "groups", "internal"), CONFIGS)
def test_1x1_bnpad_kxk_equals_one_padded_conv(
    in_ch: int, out_ch: int, k: int, stride: int, groups: int, internal: int | None
) -> None:
    block = randomized_eval(build(in_ch, out_ch, k, stride, groups, internal))
    x = torch.randn(2, in_ch, 10, 9)
    kernel, bias = kxk_branch(block)
    expected = F.conv2d(x, kernel, bias, stride=stride, padding=k // 2, groups=groups)
    with torch.no_grad():
        assert_close_scaled(block.dbb_1x1_kxk(x), expected)
        kernel, bias = avg_branch(block)
        expected = F.conv2d(x, kernel, bias, stride=stride, padding=k // 2, groups=groups)
        assert_close_scaled(block.dbb_avg(x), expected)


@pytest.mark.parametrize(("in_ch", "out_ch", "k", "stride", "groups", "internal"), CONFIGS)
def test_block_equals_one_conv(
    in_ch: int, out_ch: int, k: int, stride: int, groups: int, internal: int | None
) -> None:
    block = randomized_eval(build(in_ch, out_ch, k, stride, groups, internal))
    x = torch.randn(2, in_ch, 10, 9)
    kernel, bias = equivalent_conv(block)
    with torch.no_grad():
        assert_close_scaled(
            block(x), F.relu(F.conv2d(x, kernel, bias, stride=stride, padding=k // 2, groups=groups))
        )


@pytest.mark.parametrize(("in_ch", "out_ch", "k", "stride", "groups", "internal"), CONFIGS)
def test_zero_padding_variant_is_not_equivalent(
    in_ch: int, out_ch: int, k: int, stride: int, groups: int, internal: int | None
) -> None:
    block = randomized_eval(build(in_ch, out_ch, k, stride, groups, internal, pad_mode="zero"))
    x = torch.randn(2, in_ch, 10, 9)
    kernel, bias = kxk_branch(block)
    expected = F.conv2d(x, kernel, bias, stride=stride, padding=k // 2, groups=groups)
    with torch.no_grad():
        actual = block.dbb_1x1_kxk(x)
    assert max_abs_diff(actual, expected) > 1e-2 * expected.abs().max().item()
    # Only the border differs: the interior windows never read padding.
    lo, hi = (k // 2 + stride - 1) // stride, -((k // 2 + stride - 1) // stride)
    assert_close_scaled(actual[..., lo:hi, lo:hi], expected[..., lo:hi, lo:hi])


def test_determinism() -> None:
    assert_deterministic(lambda: DiverseBranchBlock(8, 16, stride=2, groups=2), torch.randn(1, 8, 8, 8))


def test_bn_padding_cannot_be_symbolically_traced() -> None:
    # BNAndPadLayer assigns border slices in place, exactly like the official code; an fx Proxy does
    # not support item assignment, so this block is only capturable with torch.export.
    with pytest.raises(TypeError, match="item assignment"):
        torch.fx.symbolic_trace(DiverseBranchBlock(8, 8))


def test_zero_padding_variant_traces() -> None:
    block = randomized_eval(DiverseBranchBlock(8, 8, pad_mode="zero"))
    assert_symbolic_trace_matches(block, torch.randn(1, 8, 7, 7))


@pytest.mark.parametrize(("in_ch", "out_ch", "k", "stride", "groups", "internal"), CONFIGS[:3])
def test_export_matches(
    in_ch: int, out_ch: int, k: int, stride: int, groups: int, internal: int | None
) -> None:
    block = randomized_eval(build(in_ch, out_ch, k, stride, groups, internal))
    program = assert_export_matches(block, torch.randn(1, in_ch, 8, 8))
    aten = torch.ops.aten
    pads = [n for n in program.graph.nodes if n.target == aten.pad.default]
    border_writes = [
        n for n in program.graph.nodes if n.target in (aten.copy_.default, aten.slice_scatter.default)
    ]
    num_pad_layers = 2 if groups < out_ch else 1
    assert len(pads) == num_pad_layers
    assert len(border_writes) == 4 * num_pad_layers


def test_small_net_exports() -> None:
    x = torch.randn(1, 3, 32, 32)
    model = randomized_eval(dbb_small())
    assert model(x).shape == (1, 10)
    assert_export_matches(model, x)


def test_small_net_with_zero_padding_traces() -> None:
    x = torch.randn(1, 3, 32, 32)
    assert_symbolic_trace_matches(randomize_(dbb_small(pad_mode="zero"), 0).eval(), x)
