"""Dtypes, channels_last, 1-D and 3-D convs, transposed convs and padding modes."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import fxrep
from tests.helpers import LEVELS, assert_equivalent, ops, randomized


class Block(nn.Module):
    """A RepVGG-style block in any dimensionality."""

    def __init__(self, nd: int, channels: int = 4):
        super().__init__()
        conv, bn = {1: (nn.Conv1d, nn.BatchNorm1d), 2: (nn.Conv2d, nn.BatchNorm2d), 3: (nn.Conv3d, nn.BatchNorm3d)}[nd]
        self.dense, self.dense_bn = conv(channels, channels, 3, padding=1, bias=False), bn(channels)
        self.point, self.point_bn = conv(channels, channels, 1, bias=False), bn(channels)
        self.identity = bn(channels)

    def forward(self, x):
        return torch.relu(self.dense_bn(self.dense(x)) + self.point_bn(self.point(x)) + self.identity(x))


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("nd", [1, 3])
def test_1d_and_3d_blocks_get_the_same_rewrites(level, nd):
    model = randomized(Block(nd))
    x = torch.randn(2, 4, *([6] * nd))
    gm = fxrep.optimize(model, x, capture_method=level)
    assert ops(gm)["conv"] == 1 and ops(gm)["batchnorm"] == 0 and ops(gm)["add"] == 0
    assert_equivalent(model, gm, x)


def test_float64_model_is_checked_tightly():
    model = randomized(Block(2)).double()
    x = torch.randn(2, 4, 6, 6, dtype=torch.float64)
    gm = fxrep.optimize(model, x)
    assert gm.fxrep_report.verification.tolerance == 1e-9
    assert gm.fxrep_report.verification.passed


def test_channels_last_inputs():
    model = randomized(Block(2)).to(memory_format=torch.channels_last)
    x = torch.randn(2, 4, 6, 6).contiguous(memory_format=torch.channels_last)
    gm = fxrep.optimize(model, x)
    assert ops(gm)["conv"] == 1
    assert_equivalent(model, gm, x)


@pytest.mark.parametrize("level", LEVELS)
def test_transposed_convs_fold_their_batchnorm_but_never_merge(level):
    class Up(nn.Module):
        def __init__(self):
            super().__init__()
            self.up = nn.ConvTranspose2d(4, 4, 2, stride=2)
            self.bn = nn.BatchNorm2d(4)
            self.skip = nn.ConvTranspose2d(4, 4, 2, stride=2)

        def forward(self, x):
            return self.bn(self.up(x)) + self.skip(x)

    model = randomized(Up())
    x = torch.randn(2, 4, 5, 5)
    gm = fxrep.optimize(model, x, capture_method=level)
    assert ops(gm)["conv_transpose"] == 2 and ops(gm)["batchnorm"] == 0 and ops(gm)["add"] == 1
    assert_equivalent(model, gm, x)


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
def test_padding_modes_fold_batchnorm_but_do_not_merge_with_zero_padding(level, mode):
    class Mixed(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Conv2d(4, 4, 3, padding=1, padding_mode=mode)
            self.bn = nn.BatchNorm2d(4)
            self.b = nn.Conv2d(4, 4, 3, padding=1)

        def forward(self, x):
            return self.bn(self.a(x)) + self.b(x)

    model = randomized(Mixed())
    x = torch.randn(2, 4, 6, 6)
    gm = fxrep.optimize(model, x, capture_method=level)
    assert ops(gm)["batchnorm"] == 0 and ops(gm)["conv"] == 2
    assert_equivalent(model, gm, x)
