"""Regrouping a grouped conv into fewer groups keeps the map (block-diagonal expansion)."""

import pytest
import torch
import torch.nn.functional as F

from fxrep.algebra import conv_map, regroup


@pytest.mark.parametrize(("groups", "target"), [(4, 2), (4, 1), (6, 3), (8, 1), (2, 2)])
def test_regroup_preserves_the_map(groups, target):
    torch.manual_seed(groups * 10 + target)
    channels = 24
    w = torch.randn(channels, channels // groups, 3, 3, dtype=torch.float64)
    x = torch.randn(2, channels, 6, 6, dtype=torch.float64)
    m = regroup(conv_map(w, padding=1, groups=groups), target)
    assert m.groups == target
    torch.testing.assert_close(m.apply(x), F.conv2d(x, w, padding=1, groups=groups))


def test_regroup_depthwise_into_dense_gives_block_diagonal_dirac():
    m = regroup(conv_map(torch.ones(3, 1, 1, 1), groups=3), 1)
    torch.testing.assert_close(m.weight[:, :, 0, 0], torch.eye(3, dtype=torch.float64))


def test_regroup_rejects_non_divisors():
    with pytest.raises(ValueError, match="regroup"):
        regroup(conv_map(torch.randn(6, 2, 1, 1), groups=3), 2)
