"""`fxrep.algebra.borders`: a conv's natural extension and its grown grid, against ``F.conv2d`` with the
grown padding (the extension at a ring position is constant exactly when that position reads no input)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from fxrep.algebra import conv_map, extend_padding, extension_is_constant

C_IN, C_OUT = 2, 3


def reference(weight, bias, x, stride, padding, dilation):
    """``F.conv2d`` with (low, high) padding per axis (zero-padded first, as a conv with that padding)."""
    flat = [p for lo, hi in reversed(padding) for p in (lo, hi)]
    return F.conv2d(F.pad(x, flat), weight, bias, stride, 0, dilation)


def ring_is_bias(grown_out, original_out, ring, bias) -> bool:
    """Whether every position of ``grown_out`` outside the original grid holds just the bias."""
    (lo0, _), (lo1, _) = ring
    h, w = original_out.shape[2:]
    outside = torch.ones(grown_out.shape[2:], dtype=torch.bool)
    outside[lo0:lo0 + h, lo1:lo1 + w] = False
    expected = bias.reshape(1, -1, 1).expand(grown_out.shape[0], -1, int(outside.sum()))
    return bool(torch.allclose(grown_out[..., outside], expected, rtol=0, atol=1e-12))


@st.composite
def cases(draw):
    kernel = tuple(draw(st.integers(1, 3)) for _ in range(2))
    stride = tuple(draw(st.integers(1, 2)) for _ in range(2))
    dilation = tuple(draw(st.integers(1, 2)) for _ in range(2))
    padding = tuple((draw(st.integers(0, 3)), draw(st.integers(0, 3))) for _ in range(2))
    ring = tuple((draw(st.integers(0, 2)), draw(st.integers(0, 2))) for _ in range(2))
    size = tuple(draw(st.integers(3, 7)) for _ in range(2))
    return kernel, stride, dilation, padding, ring, size


@settings(max_examples=150, deadline=None)
@given(cases())
def test_extended_padding_keeps_the_grid_and_the_ring_is_the_bias_iff_extension_is_constant(case):
    kernel, stride, dilation, padding, ring, size = case
    weight = torch.randn(C_OUT, C_IN, *kernel, dtype=torch.float64)
    bias = torch.randn(C_OUT, dtype=torch.float64)
    m = conv_map(weight, bias, stride, padding, dilation)
    assume(min(m.output_size(size)) >= 1)
    grown = extend_padding(m, ring)
    assert grown.padding == tuple((lo + s * wl, hi + s * wh)
                                  for (lo, hi), s, (wl, wh) in zip(padding, stride, ring, strict=True))
    x = torch.randn(2, C_IN, *size, dtype=torch.float64)
    original = reference(weight, bias, x, stride, padding, dilation)
    out = reference(weight, bias, x, stride, grown.padding, dilation)
    torch.testing.assert_close(grown.apply(x), out)
    # the grid grows by the ring's widths and keeps every old position
    assert out.shape[2:] == tuple(n + wl + wh for n, (wl, wh) in zip(original.shape[2:], ring, strict=True))
    (lo0, _), (lo1, _) = ring
    torch.testing.assert_close(out[..., lo0:lo0 + original.shape[2], lo1:lo1 + original.shape[3]], original)
    constant = ring_is_bias(out, original, ring, bias)
    if extension_is_constant(m, ring, size):
        assert constant, "extension_is_constant said the ring reads no input, but it does"
    elif dilation == (1, 1):  # contiguous taps: a window that reaches into the input reads it
        assert not constant, "the ring reads no input, but extension_is_constant refused it"
    if extension_is_constant(m, ring):  # without a size: constant at every input size
        for other in ((3, 3), (8, 5), (11, 12)):
            if min(m.output_size(other)) >= 1:
                x = torch.randn(1, C_IN, *other, dtype=torch.float64)
                original = reference(weight, bias, x, stride, padding, dilation)
                grown_out = reference(weight, bias, x, stride, grown.padding, dilation)
                assert ring_is_bias(grown_out, original, ring, bias), other


def test_a_1x1_conv_is_its_bias_on_any_ring():
    m = conv_map(torch.randn(C_OUT, C_IN, 1, 1, dtype=torch.float64), torch.randn(C_OUT, dtype=torch.float64))
    assert extension_is_constant(m, ((2, 1), (1, 2)))


@pytest.mark.parametrize(("padding", "ring", "constant"), [
    (((1, 1), (1, 1)), ((1, 0), (0, 0)), False),  # a padded 3x3 reads the input one step outside its grid
    (((0, 0), (0, 0)), ((1, 0), (0, 0)), False),  # an unpadded one too (its window reaches back in)
    (((0, 2), (0, 0)), ((0, 1), (0, 0)), True),  # high padding of the span: the next position reads only padding
    (((0, 0), (0, 0)), ((0, 0), (0, 0)), True),  # no ring at all
])
def test_a_3x3_conv(padding, ring, constant):
    m = conv_map(torch.randn(C_OUT, C_IN, 3, 3, dtype=torch.float64), None, 1, padding)
    assert extension_is_constant(m, ring) is constant


def test_the_high_side_with_a_size_sees_a_stride_that_skips_the_last_rows():
    """Stride 2 over 6 rows with a 3-tap kernel and high padding 1: the grid's next position starts at row 6,
    past the input, so it reads no input at that size, although it would for 7 rows."""
    m = conv_map(torch.randn(C_OUT, C_IN, 3, 3, dtype=torch.float64), None, 2, ((0, 1), (0, 1)))
    ring = ((0, 1), (0, 0))
    assert not extension_is_constant(m, ring)
    assert extension_is_constant(m, ring, (6, 6))
    assert not extension_is_constant(m, ring, (7, 6))
