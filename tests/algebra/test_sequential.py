"""Sequential composition of convs, against running the two convs one after the other."""

import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from fxrep.algebra import NotExact, compose, conv_map, extend_padding, extension_is_constant, linear_map


def _rand(*shape):
    return torch.randn(*shape, dtype=torch.float64)


def test_expandnet_1x1_3x3_1x1_collapses_to_one_3x3():
    x = _rand(2, 3, 8, 8)
    w1, w2, w3, b3 = _rand(12, 3, 1, 1), _rand(12, 12, 3, 3), _rand(3, 12, 1, 1), _rand(3)
    m = compose(conv_map(w3, b3), compose(conv_map(w2, padding=1), conv_map(w1)))
    assert m.kernel_size == (3, 3) and m.out_channels == 3 and m.in_channels == 3
    expected = F.conv2d(F.conv2d(F.conv2d(x, w1), w2, padding=1), w3, b3)
    torch.testing.assert_close(m.apply(x), expected)


def test_two_3x3_with_padding_on_the_first_only_give_a_5x5():
    x = _rand(1, 2, 9, 9)
    w1, b1, w2, b2 = _rand(4, 2, 3, 3), _rand(4), _rand(3, 4, 3, 3), _rand(3)
    m = compose(conv_map(w2, b2), conv_map(w1, b1, padding=2))
    assert m.kernel_size == (5, 5) and m.padding == ((2, 2), (2, 2))
    torch.testing.assert_close(m.apply(x), F.conv2d(F.conv2d(x, w1, b1, padding=2), w2, b2))


def test_strides_compose():
    x = _rand(1, 2, 17, 16)
    w1, w2 = _rand(3, 2, 3, 3), _rand(4, 3, 3, 3)
    m = compose(conv_map(w2, stride=2), conv_map(w1, stride=2, padding=1))
    assert m.stride == (4, 4) and m.kernel_size == (7, 7)
    torch.testing.assert_close(m.apply(x), F.conv2d(F.conv2d(x, w1, stride=2, padding=1), w2, stride=2))


def test_padded_outer_after_biased_1x1_is_refused():
    with pytest.raises(NotExact, match="bias"):
        compose(conv_map(_rand(2, 3, 3, 3), padding=1), conv_map(_rand(3, 2, 1, 1), _rand(3) + 5))


def test_padded_outer_after_padded_3x3_is_refused():
    with pytest.raises(NotExact, match="depend on the input"):
        compose(conv_map(_rand(2, 3, 3, 3), padding=1), conv_map(_rand(3, 2, 3, 3), padding=1))


def test_padded_outer_after_bias_free_1x1_is_exact():
    x = _rand(2, 3, 6, 6)
    w1, w2 = _rand(5, 3, 1, 1), _rand(4, 5, 3, 3)
    m = compose(conv_map(w2, padding=1), conv_map(w1))
    torch.testing.assert_close(m.apply(x), F.conv2d(F.conv2d(x, w1), w2, padding=1))


def test_dbb_bn_and_pad_is_exact_via_extended_padding():
    # 1x1 conv with bias b, then pad with the value b, then 3x3 without padding:
    # equals the 1x1 with its grid grown by one (padding 1), composed with the 3x3.
    x = _rand(2, 3, 6, 6)
    w1, b1, w2 = _rand(4, 3, 1, 1), _rand(4), _rand(5, 4, 3, 3)
    inner = conv_map(w1, b1)
    assert extension_is_constant(inner, ((1, 1), (1, 1)))
    padded = F.conv2d(x, w1, b1)
    padded = F.pad(padded, (1, 1, 1, 1)) + F.pad(torch.zeros_like(padded), (1, 1, 1, 1), value=1.0) * b1[:, None, None]
    expected = F.conv2d(padded, w2)
    m = compose(conv_map(w2), extend_padding(inner, ((1, 1), (1, 1))))
    torch.testing.assert_close(m.apply(x), expected)


def test_grouped_composition_uses_gcd_groups():
    x = _rand(1, 8, 6, 6)
    w1, w2 = _rand(8, 2, 3, 3), _rand(8, 4, 1, 1)
    m = compose(conv_map(w2, groups=2), conv_map(w1, padding=1, groups=4))
    assert m.groups == 2
    torch.testing.assert_close(m.apply(x), F.conv2d(F.conv2d(x, w1, padding=1, groups=4), w2, groups=2))


def test_linear_after_linear():
    x = _rand(4, 6)
    w1, b1, w2, b2 = _rand(8, 6), _rand(8), _rand(3, 8), _rand(3)
    m = compose(linear_map(w2, b2), linear_map(w1, b1))
    torch.testing.assert_close(m.apply(x), F.linear(F.linear(x, w1, b1), w2, b2))


@st.composite
def conv_pairs(draw):
    nd = draw(st.integers(1, 3))
    c_in, c_mid, c_out = (draw(st.sampled_from([2, 4])) for _ in range(3))
    size = tuple(draw(st.integers(6, 10)) for _ in range(nd))

    def one(c_i, c_o, padded):
        kernel = tuple(draw(st.sampled_from([1, 2, 3])) for _ in range(nd))
        stride = tuple(draw(st.integers(1, 2)) for _ in range(nd))
        dilation = tuple(draw(st.integers(1, 2)) for _ in range(nd))
        padding = tuple((draw(st.integers(0, 2)), draw(st.integers(0, 2))) if padded else (0, 0) for _ in range(nd))
        groups = draw(st.sampled_from([g for g in (1, 2) if c_i % g == 0 and c_o % g == 0]))
        return conv_map(torch.randn(c_o, c_i // groups, *kernel, dtype=torch.float64),
                        torch.randn(c_o, dtype=torch.float64) if draw(st.booleans()) else None,
                        stride, padding, dilation, groups)

    inner = one(c_in, c_mid, padded=True)
    outer = one(c_mid, c_out, padded=draw(st.booleans()))
    return inner, outer, size


@settings(max_examples=80, deadline=None)
@given(conv_pairs())
def test_random_compositions_are_exact_or_refused_for_the_border(case):
    """Exact, or refused for the one reason that applies: the outer conv zero-pads a border where the inner
    conv reads inputs, or where it is its non-zero bias."""
    inner, outer, size = case
    assume(min(inner.output_size(size)) >= 1 and min(outer.output_size(inner.output_size(size))) >= 1)
    x = torch.randn(2, inner.in_channels, *size, dtype=torch.float64)
    reads_inputs = not extension_is_constant(inner, outer.padding, size)
    biased = inner.bias is not None and bool(inner.bias.ne(0).any())
    try:
        m = compose(outer, inner, in_size=size)
    except NotExact as refusal:
        assert outer.has_padding and (reads_inputs or biased)
        expected = "whose border outputs depend on the input" if reads_inputs else "whose border value is its bias"
        assert expected in str(refusal)
        return
    assert not (outer.has_padding and (reads_inputs or biased))
    torch.testing.assert_close(m.apply(x), outer.apply(inner.apply(x)))
