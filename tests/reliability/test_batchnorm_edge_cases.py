"""BatchNorms that cannot fold stay, with the reason; non-finite parameters are rejected up front."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import fxrep
from tests.helpers import LEVELS, ops, randomized

X = torch.randn(2, 4, 6, 6)


def reasons(gm):
    return " | ".join(r.reason for r in gm.fxrep_report.refusals)


@pytest.mark.parametrize("level", LEVELS)
def test_no_running_statistics(level):
    model = nn.Sequential(nn.Conv2d(4, 4, 3), nn.BatchNorm2d(4, track_running_stats=False))
    gm = fxrep.optimize(model, X, capture_method=level)
    assert ops(gm)["batchnorm"] == 1 and "batch statistics" in reasons(gm)


def test_batchnorm_hard_wired_to_training_mode_keeps_its_batchnorm_and_the_caller_its_statistics():
    class TrainingNorm(nn.Module):
        """A user's norm that always normalises with batch statistics and updates its running stats."""

        def __init__(self):
            super().__init__()
            self.bn = nn.BatchNorm2d(4)

        def forward(self, x):
            return nn.functional.batch_norm(x, self.bn.running_mean, self.bn.running_var, self.bn.weight,
                                            self.bn.bias, True, 0.5, self.bn.eps)

    model = nn.Sequential(nn.Conv2d(4, 4, 3), TrainingNorm())
    statistics = model[1].bn.running_mean.clone()
    gm = fxrep.optimize(model, X, capture_method="symbolic_trace")
    assert ops(gm)["batchnorm"] == 1 and "batch statistics" in reasons(gm)
    torch.testing.assert_close(model[1].bn.running_mean, statistics)  # verification ran on a copy


def test_cumulative_momentum_in_training_mode_folds_with_inference_semantics():
    """momentum=None only changes how training updates the statistics; inference uses them as they are."""
    model = randomized(nn.Sequential(nn.Conv2d(4, 4, 3), nn.BatchNorm2d(4, momentum=None))).train()
    gm = fxrep.optimize(model, X)
    assert ops(gm)["batchnorm"] == 0 and model.training


@pytest.mark.parametrize("level", LEVELS)
def test_zero_eps_with_zero_variance_is_left_alone(level):
    model = randomized(nn.Sequential(nn.Conv2d(4, 4, 3), nn.BatchNorm2d(4, eps=0.0)))
    model[1].running_var[1] = 0.0
    gm = fxrep.optimize(model, X, capture_method=level)
    assert ops(gm)["batchnorm"] == 1 and "var + eps" in reasons(gm)


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_parameters_raise_before_any_rewrite(value):
    model = randomized(nn.Sequential(nn.Conv2d(4, 4, 3), nn.BatchNorm2d(4)))
    model[0].weight.data[0, 0, 0, 0] = value
    with pytest.raises(fxrep.InvalidModelError, match=r"0\.weight contains (NaN|Inf)"):
        fxrep.optimize(model, X)
