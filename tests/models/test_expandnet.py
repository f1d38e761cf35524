from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fxrep.models import ExpandCK, ExpandCL, ExpandFC, expandnet_small

from ._checks import (
    assert_close_scaled,
    assert_deterministic,
    assert_export_matches,
    assert_symbolic_trace_matches,
    max_abs_diff,
    randomized_eval,
)


def compose(first: tuple[torch.Tensor, torch.Tensor], second: tuple[torch.Tensor, torch.Tensor]):
    """conv2(conv1(x)) for stride-1 convs, conv2 unpadded: full correlation of the kernels, bias pushed through."""
    (k1, b1), (k2, b2) = first, second
    size = k1.shape[-1] + k2.shape[-1] - 1
    kernel = torch.zeros(k2.shape[0], k1.shape[1], size, size, dtype=k1.dtype)
    for a in range(k2.shape[-2]):
        for b in range(k2.shape[-1]):
            kernel[:, :, a : a + k1.shape[-2], b : b + k1.shape[-1]] += torch.einsum(
                "om,mihw->oihw", k2[:, :, a, b], k1
            )
    return kernel, b2 + torch.einsum("omhw,m->o", k2, b1)


def collapse(chain: nn.Sequential) -> tuple[torch.Tensor, torch.Tensor]:
    kernel, bias = chain[0].weight, chain[0].bias
    for conv in list(chain)[1:]:
        kernel, bias = compose((kernel, bias), (conv.weight, conv.bias))
    return kernel, bias


@pytest.mark.parametrize(("in_ch", "out_ch", "k", "stride"), [(3, 8, 3, 1), (4, 6, 3, 2), (5, 4, 5, 1)])
def test_expand_cl_equals_one_conv(in_ch: int, out_ch: int, k: int, stride: int) -> None:
    block = randomized_eval(ExpandCL(in_ch, out_ch, k, stride=stride, padding=k // 2, expansion=3))
    assert [conv.padding for conv in block] == [(k // 2, k // 2), (0, 0), (0, 0)]
    assert [conv.out_channels for conv in block] == [3 * in_ch, 3 * out_ch, out_ch]
    assert all(conv.bias is not None for conv in block)
    x = torch.randn(2, in_ch, 11, 10)
    kernel, bias = collapse(block)  # the stride only subsamples the last step, so compose at stride 1
    assert kernel.shape == (out_ch, in_ch, k, k)
    with torch.no_grad():
        assert_close_scaled(block(x), F.conv2d(x, kernel, bias, stride=stride, padding=k // 2))


def test_expand_cl_padding_on_the_kxk_conv_is_not_exact() -> None:
    block = randomized_eval(ExpandCL(4, 6, 3, padding=1))
    x = torch.randn(1, 4, 8, 8)
    with torch.no_grad():
        moved = F.conv2d(
            F.conv2d(x, block[0].weight, block[0].bias), block[1].weight, block[1].bias, padding=1
        )
        moved = block[2](moved)
        kernel, bias = collapse(block)
        expected = F.conv2d(x, kernel, bias, padding=1)
    assert max_abs_diff(moved, expected) > 1e-2 * expected.abs().max().item()


@pytest.mark.parametrize(("k", "num_convs", "hidden"), [(5, 2, [12]), (7, 3, [12, 20])])
def test_expand_ck_equals_one_conv(k: int, num_convs: int, hidden: list[int]) -> None:
    block = randomized_eval(ExpandCK(3, 5, kernel_size=k, expansion=4))
    assert len(block) == num_convs
    assert [conv.out_channels for conv in block][:-1] == hidden
    assert [conv.padding[0] for conv in block] == [k // 2] + [0] * (num_convs - 1)
    assert all(conv.kernel_size == (3, 3) for conv in block)
    x = torch.randn(2, 3, 12, 9)
    kernel, bias = collapse(block)
    assert kernel.shape == (5, 3, k, k)
    with torch.no_grad():
        out = block(x)
        assert out.shape == (2, 5, 12, 9)
        assert_close_scaled(out, F.conv2d(x, kernel, bias, padding=k // 2))


def test_expand_ck_padding_spread_over_the_chain_is_not_exact() -> None:
    block = randomized_eval(ExpandCK(3, 5, kernel_size=5))
    x = torch.randn(1, 3, 10, 10)
    with torch.no_grad():
        spread = F.conv2d(
            F.conv2d(x, block[0].weight, block[0].bias, padding=1), block[1].weight, block[1].bias, padding=1
        )
        kernel, bias = collapse(block)
        expected = F.conv2d(x, kernel, bias, padding=2)
    assert spread.shape == expected.shape
    assert max_abs_diff(spread, expected) > 1e-2 * expected.abs().max().item()


def test_expand_ck_rejects_even_kernels() -> None:
    with pytest.raises(ValueError):
        ExpandCK(3, 5, kernel_size=4)


def test_expand_fc_equals_one_linear() -> None:
    block = randomized_eval(ExpandFC(6, 5, expansion=4))
    assert [layer.out_features for layer in block] == [24, 20, 5]
    x = torch.randn(3, 6)
    weight = block[2].weight @ block[1].weight @ block[0].weight
    bias = block[2].weight @ (block[1].weight @ block[0].bias + block[1].bias) + block[2].bias
    with torch.no_grad():
        assert_close_scaled(block(x), F.linear(x, weight, bias))


@pytest.mark.parametrize(
    ("build", "shape"),
    [
        (lambda: ExpandCL(4, 6, 3, stride=2), (1, 4, 9, 9)),
        (lambda: ExpandCK(4, 6, 7), (1, 4, 9, 9)),
        (lambda: ExpandFC(6, 5), (2, 6)),
    ],
    ids=["cl", "ck", "fc"],
)
def test_determinism_trace_and_export(build, shape: tuple[int, ...]) -> None:
    x = torch.randn(shape)
    assert_deterministic(build, x)
    block = randomized_eval(build())
    assert_symbolic_trace_matches(block, x)
    assert_export_matches(block, x)


def test_small_net() -> None:
    x = torch.randn(1, 3, 32, 32)
    model = randomized_eval(expandnet_small())
    assert model(x).shape == (1, 10)
    assert_symbolic_trace_matches(model, x)
    assert_export_matches(model, x)
