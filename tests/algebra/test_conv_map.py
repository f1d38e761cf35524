"""ConvMap basics: construction, output size and the reference `apply` against torch.nn.functional."""

import pytest
import torch
import torch.nn.functional as F

from fxrep.algebra import ConvMap, avgpool_map, conv_map, diagonal_map, identity_map, linear_map


def test_conv_map_apply_matches_functional_conv():
    torch.manual_seed(0)
    x = torch.randn(2, 6, 9, 11, dtype=torch.float64)
    w, b = torch.randn(4, 3, 3, 2, dtype=torch.float64), torch.randn(4, dtype=torch.float64)
    m = conv_map(w, b, stride=(2, 1), padding=(1, 0), dilation=(1, 2), groups=2)
    expected = F.conv2d(x, w, b, (2, 1), (1, 0), (1, 2), 2)
    torch.testing.assert_close(m.apply(x), expected)
    assert m.output_size((9, 11)) == tuple(expected.shape[2:])


def test_asymmetric_padding_is_represented_exactly():
    x = torch.randn(1, 2, 5, 5, dtype=torch.float64)
    w = torch.randn(3, 2, 2, 2, dtype=torch.float64)
    m = conv_map(w, padding=((0, 1), (1, 0)))
    expected = F.conv2d(F.pad(x, (1, 0, 0, 1)), w)
    torch.testing.assert_close(m.apply(x), expected)
    assert m.symmetric_padding is None


def test_identity_and_diagonal_maps():
    x = torch.randn(2, 3, 4, dtype=torch.float64)
    torch.testing.assert_close(identity_map(3, 1).apply(x), x)
    scale, shift = torch.tensor([1.0, 2.0, 3.0]), torch.tensor([0.5, 0.0, -1.0])
    expected = x * scale.double()[:, None] + shift.double()[:, None]
    torch.testing.assert_close(diagonal_map(scale, shift, 1).apply(x), expected)


def test_avgpool_map_equals_avgpool_with_count_include_pad():
    x = torch.randn(2, 3, 7, 8, dtype=torch.float64)
    m = avgpool_map(3, (3, 3), (2, 2), (1, 1))
    expected = F.avg_pool2d(x, 3, 2, 1, count_include_pad=True)
    torch.testing.assert_close(m.apply(x), expected)


def test_linear_map_is_zero_dimensional():
    x = torch.randn(5, 4, dtype=torch.float64)
    w, b = torch.randn(3, 4, dtype=torch.float64), torch.randn(3, dtype=torch.float64)
    m = linear_map(w, b)
    assert m.nd == 0 and m.output_size(()) == ()
    torch.testing.assert_close(m.apply(x), F.linear(x, w, b))


def test_invalid_maps_are_rejected():
    with pytest.raises(ValueError, match="groups"):
        conv_map(torch.randn(5, 1, 3, 3), groups=2)
    with pytest.raises(ValueError, match="stride"):
        ConvMap(torch.randn(2, 2, 3), None, (1, 1), ((0, 0),), (1,), 1)
