from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fxrep.models import ACBlock, acnet_small

from ._checks import (
    assert_close_scaled,
    assert_deterministic,
    assert_export_matches,
    assert_symbolic_trace_matches,
    count_modules,
    fold_bn,
    randomized_eval,
)

CONFIGS = [  # in, out, kernel, stride, padding, groups
    (4, 8, 3, 1, 1, 1),
    (4, 8, 3, 2, 1, 2),
    (8, 8, 3, 1, 1, 8),  # depthwise
    (4, 6, 5, 1, 2, 1),
    (4, 6, 3, 1, 0, 1),  # padding < k // 2: the official code crops the asymmetric branches' input
]


def equivalent_conv(block: ACBlock) -> tuple[torch.Tensor, torch.Tensor]:
    """Official get_equivalent_kernel_bias: the 1xk / kx1 kernels added into the middle row / column."""
    kernel, bias = fold_bn(block.square_conv.weight, block.square_bn)
    hor_k, hor_b = fold_bn(block.hor_conv.weight, block.hor_bn)
    ver_k, ver_b = fold_bn(block.ver_conv.weight, block.ver_bn)
    kernel = kernel.clone()
    center = kernel.shape[-1] // 2
    kernel[:, :, center : center + 1, :] += hor_k
    kernel[:, :, :, center : center + 1] += ver_k
    return kernel, bias + hor_b + ver_b


@pytest.mark.parametrize(("in_ch", "out_ch", "k", "stride", "padding", "groups"), CONFIGS)
def test_shape_and_padding(in_ch: int, out_ch: int, k: int, stride: int, padding: int, groups: int) -> None:
    block = ACBlock(in_ch, out_ch, k, stride=stride, padding=padding, groups=groups).eval()
    out = block(torch.randn(2, in_ch, 11, 10))
    assert out.shape == (
        2,
        out_ch,
        (11 + 2 * padding - k) // stride + 1,
        (10 + 2 * padding - k) // stride + 1,
    )
    assert block.hor_conv.kernel_size == (1, k) and block.ver_conv.kernel_size == (k, 1)
    if padding >= k // 2:
        assert block.hor_conv.padding == (padding - k // 2, padding)
        assert block.ver_conv.padding == (padding, padding - k // 2)


@pytest.mark.parametrize(("in_ch", "out_ch", "k", "stride", "padding", "groups"), CONFIGS)
def test_equals_one_square_conv(
    in_ch: int, out_ch: int, k: int, stride: int, padding: int, groups: int
) -> None:
    block = randomized_eval(ACBlock(in_ch, out_ch, k, stride=stride, padding=padding, groups=groups))
    x = torch.randn(2, in_ch, 11, 10)
    kernel, bias = equivalent_conv(block)
    with torch.no_grad():
        assert_close_scaled(
            block(x), F.conv2d(x, kernel, bias, stride=stride, padding=padding, groups=groups)
        )


def test_conv_count() -> None:
    assert count_modules(ACBlock(4, 8), nn.Conv2d) == 3
    assert count_modules(acnet_small(), nn.Conv2d) == 12


@pytest.mark.parametrize("padding", [1, 0])
def test_determinism_trace_and_export(padding: int) -> None:
    x = torch.randn(1, 4, 9, 9)
    assert_deterministic(lambda: ACBlock(4, 8, stride=2, padding=padding, groups=2), x)
    block = randomized_eval(ACBlock(4, 8, stride=2, padding=padding, groups=2))
    assert_symbolic_trace_matches(block, x)
    assert_export_matches(block, x)


def test_small_net() -> None:
    x = torch.randn(1, 3, 32, 32)
    model = randomized_eval(acnet_small())
    assert model(x).shape == (1, 10)
    assert_symbolic_trace_matches(model, x)
    assert_export_matches(model, x)
