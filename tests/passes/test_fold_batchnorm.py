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


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("layer", [nn.Conv2d(4, 6, 3, padding=1, groups=2), nn.Linear(10, 6)], ids=["conv", "linear"])
def test_the_pass_and_a_linear_region_fold_the_same_numbers(level, layer):
    """One BatchNorm algebra (fxrep.algebra.batchnorm): both fire ``fold_batchnorm``, bit for bit."""
    from fxrep.passes import CollapseLinearRegions

    bn = nn.BatchNorm2d(6) if isinstance(layer, nn.Conv2d) else nn.BatchNorm1d(6)
    model = randomized(nn.Sequential(layer, bn))
    x = X if isinstance(layer, nn.Conv2d) else torch.randn(3, 10)
    by_pass, by_region = captured(model, x, level=level), captured(model, x, level=level)
    assert FoldBatchNorm()(by_pass).counts["fold_batchnorm"] == 1
    assert CollapseLinearRegions()(by_region).counts["fold_batchnorm"] == 1
    folded = [list(gm.state_dict().values()) for gm in (by_pass, by_region)]
    assert len(folded[0]) == len(folded[1]) == 2
    assert all(torch.equal(a, b) for a, b in zip(*folded, strict=True))


def test_folds_in_a_module_graph_without_recorded_shapes():
    """No example inputs: the new ops take their dtype and device from the modules they replace."""
    from fxrep.capture import capture

    model = randomized(nn.Sequential(nn.Conv2d(4, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(),
                                     nn.BatchNorm2d(6), nn.Conv2d(6, 4, 1))).double()
    gm = capture(model, None, method="symbolic_trace").graph_module
    result = FoldBatchNorm()(gm)
    assert result.counts["fold_batchnorm"] == 2 and ops(gm)["batchnorm"] == 0
    assert {p.dtype for p in gm.parameters()} == {torch.float64}
    assert_equivalent(model, gm, X.double())
