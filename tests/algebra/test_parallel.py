"""Sum and concatenation of branches that read the same input, against torch.nn.functional."""

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from fxrep.algebra import NotExact, avgpool_map, conv_map, identity_map, stack_maps, sum_maps


def _rand(*shape):
    return torch.randn(*shape, dtype=torch.float64)


def test_repvgg_3x3_1x1_identity_merge():
    x = _rand(2, 4, 8, 8)
    w3, b3, w1, b1 = _rand(4, 4, 3, 3), _rand(4), _rand(4, 4, 1, 1), _rand(4)
    merged = sum_maps([conv_map(w3, b3, padding=1), conv_map(w1, b1), identity_map(4, 2)])
    expected = F.conv2d(x, w3, b3, padding=1) + F.conv2d(x, w1, b1) + x
    assert merged.kernel_size == (3, 3) and merged.padding == ((1, 1), (1, 1)) and merged.groups == 1
    torch.testing.assert_close(merged.apply(x), expected)
    # the 1x1 and the identity land on the centre tap
    torch.testing.assert_close(merged.weight[:, :, 1, 1], w3[:, :, 1, 1] + w1[:, :, 0, 0] + torch.eye(4).double())


def test_acnet_square_horizontal_vertical_merge():
    x = _rand(1, 3, 7, 9)
    ws, wh, wv = _rand(5, 3, 3, 3), _rand(5, 3, 1, 3), _rand(5, 3, 3, 1)
    maps = [conv_map(ws, padding=1), conv_map(wh, padding=(0, 1)), conv_map(wv, padding=(1, 0))]
    expected = F.conv2d(x, ws, padding=1) + F.conv2d(x, wh, padding=(0, 1)) + F.conv2d(x, wv, padding=(1, 0))
    merged = sum_maps(maps)
    assert merged.kernel_size == (3, 3)
    torch.testing.assert_close(merged.apply(x), expected)


def test_depthwise_and_dense_merge_in_one_group():
    x = _rand(2, 4, 6, 6)
    wd, w = _rand(4, 1, 3, 3), _rand(4, 4, 1, 1)
    merged = sum_maps([conv_map(wd, padding=1, groups=4), conv_map(w)])
    assert merged.groups == 1
    torch.testing.assert_close(merged.apply(x), F.conv2d(x, wd, padding=1, groups=4) + F.conv2d(x, w))


def test_avgpool_branch_merges_as_depthwise_kernel():
    x = _rand(2, 3, 8, 8)
    w = _rand(3, 3, 3, 3)
    merged = sum_maps([conv_map(w, stride=2, padding=1), avgpool_map(3, (3, 3), (2, 2), (1, 1))])
    expected = F.conv2d(x, w, stride=2, padding=1) + F.avg_pool2d(x, 3, 2, 1, count_include_pad=True)
    torch.testing.assert_close(merged.apply(x), expected)


def test_stride_mismatch_is_refused():
    with pytest.raises(NotExact, match="stride"):
        sum_maps([conv_map(_rand(2, 2, 3, 3), stride=2, padding=1), conv_map(_rand(2, 2, 1, 1))])


def test_grids_that_coincide_only_for_some_sizes_need_a_static_size():
    # 2x2/stride 2 and 1x1/stride 2 have the same number of outputs for even sizes only
    maps = [conv_map(_rand(2, 2, 2, 2), stride=2), conv_map(_rand(2, 2, 1, 1), stride=2)]
    with pytest.raises(NotExact, match="not static"):
        sum_maps(maps)
    with pytest.raises(NotExact, match="differ"):
        sum_maps(maps, in_size=(7, 7))
    x = _rand(1, 2, 8, 8)
    merged = sum_maps(maps, in_size=(8, 8))
    torch.testing.assert_close(merged.apply(x), maps[0].apply(x) + maps[1].apply(x))


def test_stack_maps_equals_concatenation():
    x = _rand(2, 3, 6, 6)
    w1, w3, b3 = _rand(2, 3, 1, 1), _rand(4, 3, 3, 3), _rand(4)
    stacked = stack_maps([conv_map(w1), conv_map(w3, b3, padding=1)])
    expected = torch.cat([F.conv2d(x, w1), F.conv2d(x, w3, b3, padding=1)], 1)
    assert stacked.out_channels == 6
    torch.testing.assert_close(stacked.apply(x), expected)


@st.composite
def branch_sets(draw):
    nd = draw(st.integers(1, 3))
    channels = draw(st.sampled_from([2, 4]))
    stride = tuple(draw(st.integers(1, 2)) for _ in range(nd))
    size = tuple(draw(st.integers(5, 8)) for _ in range(nd))
    branches = []
    for _ in range(draw(st.integers(1, 4))):
        kernel = tuple(draw(st.sampled_from([1, 3])) for _ in range(nd))
        dilation = tuple(draw(st.integers(1, 2)) for _ in range(nd))
        groups = draw(st.sampled_from([1, channels]))
        # "same"-style padding keeps every branch on the same grid for every size
        padding = tuple(d * (k - 1) // 2 for k, d in zip(kernel, dilation, strict=True))
        weight = torch.randn(channels, channels // groups, *kernel, dtype=torch.float64)
        bias = torch.randn(channels, dtype=torch.float64) if draw(st.booleans()) else None
        branches.append(conv_map(weight, bias, stride, padding, dilation, groups))
    return branches, size


@settings(max_examples=60, deadline=None)
@given(branch_sets())
def test_sum_of_random_branches_equals_branch_sum(case):
    branches, size = case
    x = torch.randn(2, branches[0].in_channels, *size, dtype=torch.float64)
    merged = sum_maps(branches)
    expected = sum(b.apply(x) for b in branches)
    torch.testing.assert_close(merged.apply(x), expected)
    stacked = stack_maps(branches)
    torch.testing.assert_close(stacked.apply(x), torch.cat([b.apply(x) for b in branches], 1))
