from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fxrep.models import DiracConv2d, DiracNetBlock, NCReLU, dirac_delta, diracnet_small

from ._checks import (
    assert_close_scaled,
    assert_deterministic,
    assert_export_matches,
    assert_symbolic_trace_matches,
    count_modules,
    fold_bn,
    randomized_eval,
)


@pytest.mark.parametrize("kernel_size", [1, 3, 5])
def test_dirac_delta_is_the_identity(kernel_size: int) -> None:
    x = torch.randn(2, 6, 7, 7)
    delta = dirac_delta(6, 6, kernel_size)
    torch.testing.assert_close(F.conv2d(x, delta, padding=kernel_size // 2), x)


def test_dirac_delta_repeats_for_unequal_channels() -> None:
    x = torch.randn(1, 4, 5, 5)
    torch.testing.assert_close(F.conv2d(x, dirac_delta(4, 8, 3), padding=1), torch.cat([x, x], dim=1))
    torch.testing.assert_close(F.conv2d(torch.cat([x, x], 1), dirac_delta(8, 4, 3), padding=1), 2 * x)
    with pytest.raises(ValueError):
        dirac_delta(4, 6, 3)


def test_kernel_formula() -> None:
    conv = randomized_eval(DiracConv2d(4, 8, bias=True))
    w = conv.weight
    normalized = w / w.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
    expected = conv.alpha.view(-1, 1, 1, 1) * dirac_delta(4, 8, 3) + conv.beta.view(-1, 1, 1, 1) * normalized
    torch.testing.assert_close(conv.dirac_weight(), expected)
    x = torch.randn(2, 4, 8, 7)
    with torch.no_grad():
        assert_close_scaled(conv(x), F.conv2d(x, expected, conv.bias, padding=1))


def test_alpha_only_is_a_scaled_identity() -> None:
    conv = DiracConv2d(5, 5, bias=False)
    with torch.no_grad():
        conv.beta.zero_()
        conv.alpha.copy_(torch.arange(1.0, 6.0))
    x = torch.randn(1, 5, 6, 6)
    torch.testing.assert_close(conv(x), x * torch.arange(1.0, 6.0).view(1, -1, 1, 1))


def test_per_channel_parameters() -> None:
    conv = DiracConv2d(4, 8)
    assert conv.alpha.shape == (8,) and conv.beta.shape == (8,)
    assert torch.all(conv.alpha == 5.0) and torch.all(conv.beta == 1e-3)
    assert conv.delta.shape == conv.weight.shape == (8, 4, 3, 3)
    assert isinstance(conv, nn.Conv2d)  # like the official DiracConv2d; NOT a plain conv, see dirac_weight


def test_block() -> None:
    block = randomized_eval(DiracNetBlock(4, 8))
    assert block.conv.in_channels == 8 and block.conv.bias is None
    x = torch.randn(2, 4, 6, 6)
    ncrelu = torch.cat([x.clamp(min=0), x.clamp(max=0)], 1)
    kernel, bias = fold_bn(block.conv.dirac_weight(), block.bn)
    with torch.no_grad():
        assert_close_scaled(block(x), F.conv2d(ncrelu, kernel, bias, padding=1))
    torch.testing.assert_close(NCReLU()(x), ncrelu)


def test_determinism_trace_and_export() -> None:
    x = torch.randn(1, 4, 8, 8)
    assert_deterministic(lambda: DiracNetBlock(4, 8), x)
    block = randomized_eval(DiracNetBlock(4, 8))
    assert_symbolic_trace_matches(block, x)
    assert_export_matches(block, x)


def test_small_net() -> None:
    x = torch.randn(1, 3, 32, 32)
    model = randomized_eval(diracnet_small())
    assert count_modules(model, DiracConv2d) == 4
    assert model(x).shape == (1, 10)
    assert_symbolic_trace_matches(model, x)
    assert_export_matches(model, x)
