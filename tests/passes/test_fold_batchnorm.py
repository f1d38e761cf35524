"""FoldBatchNorm: conv / transposed conv / Linear with BN on either side; negative cases; idempotence."""

from __future__ import annotations

import pytest
import torch
from fxrep.passes import FoldBatchNorm
from torch import nn

from tests.helpers import LEVELS, assert_equivalent, captured, ops, randomized

X = torch.randn(2, 4, 10, 10)


def fold(model, x, level):
    gm = captured(model, x, level=level)
    return gm, FoldBatchNorm()(gm)


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("conv", [
    nn.Conv2d(4, 6, 3, padding=1, bias=False),
    nn.Conv2d(4, 6, 3, stride=2, padding=1, groups=2),
    nn.Conv2d(4, 6, 3, padding=1, padding_mode="reflect"),
    nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1, groups=2),
], ids=["plain", "strided-grouped", "reflect", "transposed"])
def test_conv_then_batchnorm(level, conv):
    model = randomized(nn.Sequential(conv, nn.BatchNorm2d(6)))
    gm, result = fold(model, X, level)
    kinds = ops(gm)
    assert kinds["batchnorm"] == 0 and result.counts["fold_batchnorm"] == 1
    assert_equivalent(model, gm, X)


@pytest.mark.parametrize("level", LEVELS)
def test_batchnorm_then_unpadded_conv_folds_forward(level):
    model = randomized(nn.Sequential(nn.ReLU(), nn.BatchNorm2d(4), nn.Conv2d(4, 6, 3)))
    gm, result = fold(model, X, level)
    assert ops(gm)["batchnorm"] == 0
    assert_equivalent(model, gm, X)


@pytest.mark.parametrize("level", LEVELS)
def test_batchnorm_then_padded_conv_is_refused(level):
    model = randomized(nn.Sequential(nn.ReLU(), nn.BatchNorm2d(4), nn.Conv2d(4, 6, 3, padding=1)))
    gm, result = fold(model, X, level)
    assert ops(gm)["batchnorm"] == 1 and not result.modified
    assert "border value is its bias" in result.refusals[0].reason


@pytest.mark.parametrize("level", LEVELS)
def test_linear_and_batchnorm1d_fold_both_ways(level):
    model = randomized(nn.Sequential(nn.Linear(5, 7), nn.BatchNorm1d(7), nn.ReLU(), nn.BatchNorm1d(7),
                                     nn.Linear(7, 3)))
    x = torch.randn(6, 5)
    gm, result = fold(model, x, level)
    assert ops(gm) == {"linear": 2, "relu": 1} and result.counts["fold_batchnorm"] == 2
    assert_equivalent(model, gm, x)


@pytest.mark.parametrize("level", LEVELS)
def test_shared_producer_is_refused(level):
    class Shared(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.bn = nn.Conv2d(4, 4, 3, padding=1), nn.BatchNorm2d(4)

        def forward(self, x):
            y = self.conv(x)
            return self.bn(y) + torch.relu(y)

    model = randomized(Shared())
    gm, result = fold(model, X, level)
    assert ops(gm)["batchnorm"] == 1
    assert "feeds 2 users" in result.refusals[0].reason
    assert_equivalent(model, gm, X)


@pytest.mark.parametrize("level", LEVELS)
def test_batch_statistics_are_refused(level):
    model = nn.Sequential(nn.Conv2d(4, 4, 3), nn.BatchNorm2d(4, track_running_stats=False)).eval()
    gm, result = fold(model, X, level)
    assert ops(gm)["batchnorm"] == 1 and not result.modified
    assert "batch statistics" in result.refusals[0].reason


def test_fold_is_idempotent():
    model = randomized(nn.Sequential(nn.Conv2d(4, 4, 3), nn.BatchNorm2d(4)))
    gm, first = fold(model, X, "export")
    assert first.modified and not FoldBatchNorm()(gm).modified
