"""BatchNorm as a per-channel affine map, checked against F.batch_norm in eval mode."""

import pytest
import torch
import torch.nn.functional as F

from fxrep.algebra import (
    NotExact,
    batchnorm_affine,
    compose,
    conv_map,
    diagonal_map,
    fold_into_inputs,
    fold_into_outputs,
    input_response,
)


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


# ---------------------------------------------------------------------------- folding (fold_into_*)
def _bn(x, channels):
    mean, var, weight, bias = _stats(channels)
    a, c = batchnorm_affine(mean, var, weight, bias, 1e-5)
    expected = F.batch_norm(x, mean.double(), var.double(), weight.double(), bias.double(), False, 0.0, 1e-5)
    return a, c, expected


@pytest.mark.parametrize("with_bias", [True, False])
def test_fold_into_outputs_of_a_conv(with_bias):
    x = torch.randn(2, 4, 7, 7, dtype=torch.float64)
    w = torch.randn(6, 2, 3, 3, dtype=torch.float64)
    b = torch.randn(6, dtype=torch.float64) if with_bias else None
    a, c, expected = _bn(F.conv2d(x, w, b, padding=1, groups=2), 6)
    folded_w, folded_b = fold_into_outputs(w, b, a, c)
    torch.testing.assert_close(F.conv2d(x, folded_w, folded_b, padding=1, groups=2), expected)


def test_fold_into_outputs_of_a_grouped_transposed_conv_uses_axis_1():
    x = torch.randn(2, 4, 5, 5, dtype=torch.float64)
    w = torch.randn(4, 3, 3, 3, dtype=torch.float64)  # (I, O / g, k, k): 6 outputs in 2 groups
    b = torch.randn(6, dtype=torch.float64)
    conv = dict(stride=2, padding=1, output_padding=1, groups=2)
    a, c, expected = _bn(F.conv_transpose2d(x, w, b, **conv), 6)
    folded_w, folded_b = fold_into_outputs(w, b, a, c, axis=1, groups=2)
    torch.testing.assert_close(F.conv_transpose2d(x, folded_w, folded_b, **conv), expected)
    torch.testing.assert_close(folded_w[2:], w[2:] * a[3:].reshape(1, 3, 1, 1))  # group 2 reads a[3:]


def test_fold_into_outputs_of_a_linear_and_without_shift():
    x = torch.randn(5, 3, dtype=torch.float64)
    w, b = torch.randn(4, 3, dtype=torch.float64), torch.randn(4, dtype=torch.float64)
    a = torch.rand(4, dtype=torch.float64) + 0.5
    folded_w, folded_b = fold_into_outputs(w, b, a, None)
    torch.testing.assert_close(F.linear(x, folded_w, folded_b), a * F.linear(x, w, b))
    assert fold_into_outputs(w, None, a, None)[1] is None


def test_fold_into_outputs_refuses_other_axes_and_keeps_shape_only_weights():
    a = torch.ones(4, dtype=torch.float64)
    with pytest.raises(ValueError, match="axis 0 or 1"):
        fold_into_outputs(torch.randn(4, 3, 3, 3), None, a, None, axis=2)
    meta = torch.empty(4, 3, 3, 3, dtype=torch.float64, device="meta")
    assert fold_into_outputs(meta, None, a, None)[0] is meta


@pytest.mark.parametrize("groups", [1, 2])
def test_fold_into_inputs_of_an_unpadded_conv(groups):
    x = torch.randn(2, 4, 7, 7, dtype=torch.float64)
    w, b = torch.randn(6, 4 // groups, 3, 3, dtype=torch.float64), torch.randn(6, dtype=torch.float64)
    a, c, normalized = _bn(x, 4)
    folded_w, folded_b = fold_into_inputs(w, b, a, c, groups=groups)
    torch.testing.assert_close(F.conv2d(x, folded_w, folded_b, groups=groups),
                               F.conv2d(normalized, w, b, groups=groups))


def test_fold_into_inputs_of_a_linear_and_input_response():
    x = torch.randn(5, 3, dtype=torch.float64)
    w = torch.randn(4, 3, dtype=torch.float64)
    a, c, normalized = _bn(x, 3)
    folded_w, folded_b = fold_into_inputs(w, None, a, c)
    torch.testing.assert_close(F.linear(x, folded_w, folded_b), F.linear(normalized, w))
    torch.testing.assert_close(input_response(w, c), w @ c)
    assert fold_into_inputs(w, None, a, None)[1] is None


def test_compose_with_a_diagonal_map_is_the_same_fold_bit_for_bit():
    """FoldBatchNorm (compose) and a linear region (AffineValue.scale) share fold_into_outputs / _inputs."""
    mean, var, weight, bias = _stats(6)
    a, c = batchnorm_affine(mean, var, weight, bias, 1e-5)
    w, b = torch.randn(6, 4, 3, 3, dtype=torch.float64), torch.randn(6, dtype=torch.float64)
    after = compose(diagonal_map(a, c, 2), conv_map(w, b, padding=1))
    folded_w, folded_b = fold_into_outputs(w, b, a, c)
    assert torch.equal(after.weight, folded_w) and torch.equal(after.bias, folded_b)
    a4, c4 = a[:4], c[:4]
    before = compose(conv_map(w, b), diagonal_map(a4, c4, 2))
    folded_w, folded_b = fold_into_inputs(w, b, a4, c4)
    assert torch.equal(before.weight, folded_w) and torch.equal(before.bias, folded_b)
