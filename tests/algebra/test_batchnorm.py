"""BatchNorm as a per-channel affine map, checked against F.batch_norm in eval mode."""

import pytest
import torch
import torch.nn.functional as F

from fxrep.algebra import NotExact, batchnorm_affine, compose, conv_map, diagonal_map


def _stats(channels):
    g = torch.Generator().manual_seed(0)
    return (
        torch.randn(channels, generator=g),
        torch.rand(channels, generator=g) + 0.5,
        torch.rand(channels, generator=g) + 0.5,
        torch.randn(channels, generator=g),
    )


def test_affine_equals_batch_norm():
    mean, var, weight, bias = _stats(5)
    x = torch.randn(3, 5, 4, 4, dtype=torch.float64)
    a, c = batchnorm_affine(mean, var, weight, bias, 1e-5)
    expected = F.batch_norm(x, mean.double(), var.double(), weight.double(), bias.double(), False, 0.0, 1e-5)
    torch.testing.assert_close(x * a[:, None, None] + c[:, None, None], expected)


def test_affine_without_weight_and_bias():
    mean, var, _, _ = _stats(4)
    x = torch.randn(2, 4, dtype=torch.float64)
    a, c = batchnorm_affine(mean, var, None, None, 1e-3)
    expected = F.batch_norm(x, mean.double(), var.double(), None, None, False, 0.0, 1e-3)
    torch.testing.assert_close(x * a + c, expected)


def test_conv_then_batchnorm_fold():
    mean, var, weight, bias = _stats(6)
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64)
    w, b = torch.randn(6, 3, 3, 3, dtype=torch.float64), torch.randn(6, dtype=torch.float64)
    a, c = batchnorm_affine(mean, var, weight, bias, 1e-5)
    folded = compose(diagonal_map(a, c, 2), conv_map(w, b, padding=1))
    expected = F.batch_norm(F.conv2d(x, w, b, padding=1), mean.double(), var.double(), weight.double(),
                            bias.double(), False, 0.0, 1e-5)
    torch.testing.assert_close(folded.apply(x), expected)
    assert folded.kernel_size == (3, 3) and folded.padding == ((1, 1), (1, 1))


def test_batchnorm_then_unpadded_conv_folds_exactly():
    mean, var, weight, bias = _stats(3)
    x = torch.randn(2, 3, 7, 7, dtype=torch.float64)
    w = torch.randn(4, 3, 3, 3, dtype=torch.float64)
    a, c = batchnorm_affine(mean, var, weight, bias, 1e-5)
    folded = compose(conv_map(w), diagonal_map(a, c, 2))
    bn = F.batch_norm(x, mean.double(), var.double(), weight.double(), bias.double(), False, 0.0, 1e-5)
    torch.testing.assert_close(folded.apply(x), F.conv2d(bn, w))


def test_batchnorm_then_padded_conv_is_refused_unless_shift_is_zero():
    mean, var, weight, bias = _stats(3)
    a, c = batchnorm_affine(mean, var, weight, bias, 1e-5)
    with pytest.raises(NotExact, match="border value is its bias"):
        compose(conv_map(torch.randn(4, 3, 3, 3), padding=1), diagonal_map(a, c, 2))
    folded = compose(conv_map(torch.randn(4, 3, 3, 3), padding=1), diagonal_map(a, torch.zeros(3), 2))
    assert folded.padding == ((1, 1), (1, 1))


def test_nonpositive_variance_is_refused():
    with pytest.raises(NotExact, match="var"):
        batchnorm_affine(torch.zeros(2), torch.zeros(2), None, None, 0.0)
