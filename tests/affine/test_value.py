"""AffineValue algebra evaluated by hand: sums, composition, pads and border fills (DBB)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.fx import Graph

from fxrep.affine.value import AffineValue
from fxrep.algebra import NotExact, conv_map


@pytest.fixture
def sources():
    graph = Graph()
    return graph.placeholder("x"), graph.placeholder("y")


def evaluate(value: AffineValue, tensors: dict) -> torch.Tensor:
    total = sum(conv.apply(tensors[source.node]) for source, conv in value.terms)
    return total + value.bias.reshape(-1, *([1] * value.nd))


def no_size(source):
    return None


def test_sum_of_two_sources_keeps_two_terms_and_merges_equal_ones(sources):
    x_node, y_node = sources
    x, y = torch.randn(1, 3, 6, 6, dtype=torch.float64), torch.randn(1, 3, 6, 6, dtype=torch.float64)
    w = torch.randn(3, 3, 3, 3, dtype=torch.float64)
    a = AffineValue.of_source(x_node, 3, 2).then(conv_map(w, padding=1), no_size)
    b = AffineValue.of_source(x_node, 3, 2)
    c = AffineValue.of_source(y_node, 3, 2).scale(torch.tensor(2.0)).shift(torch.tensor(1.0))
    total = a.add(b, no_size).add(c, no_size, alpha=-1.0)
    assert len(total.terms) == 2
    expected = F.conv2d(x, w, padding=1) + x - (2 * y + 1)
    torch.testing.assert_close(evaluate(total, {x_node: x, y_node: y}), expected)


def test_padded_conv_after_a_shift_is_refused(sources):
    x_node, _ = sources
    shifted = AffineValue.of_source(x_node, 3, 2).shift(torch.ones(3))
    with pytest.raises(NotExact, match="border value is its bias"):
        shifted.then(conv_map(torch.randn(3, 3, 3, 3), padding=1), no_size)


def test_pad_then_fill_with_the_bias_becomes_conv_padding(sources):
    """DBB's BN-and-pad: pad with zeros, overwrite every side with the bias, then a 3x3 conv."""
    x_node, _ = sources
    x = torch.randn(1, 3, 5, 5, dtype=torch.float64)
    w1, b1 = torch.randn(4, 3, 1, 1, dtype=torch.float64), torch.randn(4, dtype=torch.float64)
    w2 = torch.randn(2, 4, 3, 3, dtype=torch.float64)
    value = AffineValue.of_source(x_node, 3, 2).then(conv_map(w1, b1), no_size)
    value = value.pad(((1, 1), (1, 1)), 0.0, no_size)
    assert value.ring is not None  # zeros differ from the bias: not yet a conv
    with pytest.raises(NotExact, match="only padding with the bias is exact"):
        value.then(conv_map(w2), no_size)
    for axis in (0, 1):
        value = value.fill(axis, 0, 1, 7, b1, no_size)
        value = value.fill(axis, 6, 7, 7, b1, no_size)
    assert value.ring is None
    out = value.then(conv_map(w2), no_size)
    inner = F.conv2d(x, w1, b1)
    padded = F.pad(inner - b1[:, None, None], (1, 1, 1, 1)) + b1[:, None, None]
    torch.testing.assert_close(evaluate(out, {x_node: x}), F.conv2d(padded, w2))


def test_fill_of_an_interior_slice_is_refused(sources):
    x_node, _ = sources
    value = AffineValue.of_source(x_node, 3, 2).pad(((1, 1), (1, 1)), 5.0, no_size)
    with pytest.raises(NotExact, match="not a padded border"):
        value.fill(0, 2, 3, 7, torch.zeros(3), no_size)


def test_concatenation_stacks_maps_of_the_same_source(sources):
    x_node, _ = sources
    x = torch.randn(1, 3, 6, 6, dtype=torch.float64)
    w1, w3 = torch.randn(2, 3, 1, 1, dtype=torch.float64), torch.randn(4, 3, 3, 3, dtype=torch.float64)
    a = AffineValue.of_source(x_node, 3, 2).then(conv_map(w1), no_size)
    b = AffineValue.of_source(x_node, 3, 2).then(conv_map(w3, padding=1), no_size)
    cat = AffineValue.concatenate([a, b], no_size)
    assert len(cat.terms) == 1 and cat.channels == 6
    expected = torch.cat([F.conv2d(x, w1), F.conv2d(x, w3, padding=1)], 1)
    torch.testing.assert_close(evaluate(cat, {x_node: x}), expected)
