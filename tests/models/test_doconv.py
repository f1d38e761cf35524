from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from fxrep.models import DOConv2d, doconv_small

from ._checks import (
    assert_close_scaled,
    assert_deterministic,
    assert_export_matches,
    assert_symbolic_trace_matches,
    randomized_eval,
)

CONFIGS = [  # in, out, kernel, D_mul, stride, padding, groups
    (4, 6, 3, None, 1, 1, 1),
    (4, 6, 3, 16, 2, 1, 1),
    (8, 8, 3, None, 1, 1, 8),  # DO-DConv (depthwise)
    (4, 8, 3, 12, 1, 0, 2),  # DO-GConv
    (4, 6, 1, None, 1, 0, 1),  # 1x1: no D
]


@pytest.mark.parametrize(("in_ch", "out_ch", "k", "d_mul", "stride", "padding", "groups"), CONFIGS)
def test_shape(
    in_ch: int, out_ch: int, k: int, d_mul: int | None, stride: int, padding: int, groups: int
) -> None:
    conv = DOConv2d(in_ch, out_ch, k, D_mul=d_mul, stride=stride, padding=padding, groups=groups)
    out = conv(torch.randn(2, in_ch, 9, 8))
    assert out.shape == (2, out_ch, (9 + 2 * padding - k) // stride + 1, (8 + 2 * padding - k) // stride + 1)
    assert conv.composed_weight().shape == (out_ch, in_ch // groups, k, k)
    assert conv.W.shape == (out_ch, in_ch // groups, conv.D_mul)
    if k > 1:
        assert conv.D.shape == conv.d_diag.shape == (in_ch, k * k, conv.D_mul)
        assert not conv.d_diag.requires_grad


def test_starts_as_a_plain_conv_with_kernel_w() -> None:
    conv = DOConv2d(4, 6, 3, padding=1)
    assert torch.all(conv.D == 0)
    x = torch.randn(1, 4, 7, 7)
    torch.testing.assert_close(conv(x), F.conv2d(x, conv.W.reshape(6, 4, 3, 3), conv.bias, padding=1))


@pytest.mark.parametrize(("in_ch", "out_ch", "k", "d_mul", "stride", "padding", "groups"), CONFIGS)
def test_kernel_is_the_einsum_of_d_and_w(
    in_ch: int, out_ch: int, k: int, d_mul: int | None, stride: int, padding: int, groups: int
) -> None:
    conv = randomized_eval(
        DOConv2d(in_ch, out_ch, k, D_mul=d_mul, stride=stride, padding=padding, groups=groups)
    )
    if k > 1:
        d = conv.D + conv.d_diag
        w = conv.W.reshape(out_ch // groups, in_ch, conv.D_mul)
        kernel = torch.einsum("ims,ois->oim", d, w).reshape(out_ch, in_ch // groups, k, k)
    else:
        kernel = conv.W.reshape(out_ch, in_ch // groups, 1, 1)
    x = torch.randn(2, in_ch, 9, 8)
    with torch.no_grad():
        assert_close_scaled(
            conv(x), F.conv2d(x, kernel, conv.bias, stride=stride, padding=padding, groups=groups)
        )


def test_rejects_small_depth_multiplier() -> None:
    with pytest.raises(ValueError):
        DOConv2d(4, 4, 3, D_mul=4)


@pytest.mark.parametrize("groups", [1, 4])
def test_determinism_trace_and_export(groups: int) -> None:
    x = torch.randn(1, 4, 8, 8)
    assert_deterministic(lambda: DOConv2d(4, 8, 3, padding=1, groups=groups), x)
    conv = randomized_eval(DOConv2d(4, 8, 3, padding=1, groups=groups))
    assert_symbolic_trace_matches(conv, x)
    assert_export_matches(conv, x)


def test_small_net() -> None:
    x = torch.randn(1, 3, 32, 32)
    model = randomized_eval(doconv_small())
    assert model(x).shape == (1, 10)
    assert_symbolic_trace_matches(model, x)
    assert_export_matches(model, x)
