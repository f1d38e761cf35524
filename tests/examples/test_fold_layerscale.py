"""examples/fold_layerscale.py: the pass folds gamma into the conv, refuses shared convs, is exact."""

from __future__ import annotations

import pytest
import torch
from fxrep.passes import FoldBatchNorm

import fxrep
from tests.examples.conftest import load_example
from tests.helpers import LEVELS, captured, ops

example = load_example("fold_layerscale")
X = torch.randn(2, 8, 12, 12)


@pytest.mark.parametrize("level", LEVELS)
def test_gamma_folds_into_the_conv(level):
    model = example.build_model(blocks=2)
    gm = captured(model, X, level=level)
    FoldBatchNorm()(gm)
    result = example.FoldLayerScale()(gm)
    assert result.counts == {"fold_layerscale": 2} and not result.refusals
    assert ops(gm)["mul"] == 0 and ops(gm)["conv"] == 6
    torch.testing.assert_close(gm(X), model(X))
    assert not example.FoldLayerScale()(gm), "a second run finds nothing left to fold"


@pytest.mark.parametrize("level", LEVELS)
def test_conv_used_elsewhere_is_refused(level):
    model = fxrep.models.randomize_(example.TappedBlock(8), seed=1).eval()
    gm = captured(model, X, level=level)
    result = example.FoldLayerScale()(gm)
    assert not result.modified and ops(gm)["mul"] == 1
    (refusal,) = result.refusals
    assert "feeds 2 users" in refusal.reason and "outside the match" in refusal.reason


def test_non_channel_gamma_is_refused():
    assert example.per_channel_scale(torch.ones(8, 1, 1), 8) is not None
    assert example.per_channel_scale(torch.ones(1, 8, 1, 1), 8) is not None
    assert example.per_channel_scale(2.0, 8).shape == (8,)
    assert example.per_channel_scale(torch.ones(1, 1, 12), 8) is None
    assert example.per_channel_scale(torch.ones(8, 12, 12), 8) is None


def test_in_optimize_with_a_builtin_pass():
    model = example.build_model(blocks=1)
    gm = fxrep.optimize(model, (X,), passes=[FoldBatchNorm(), example.FoldLayerScale()])
    report = fxrep.report_of(gm)
    assert report.fired("fold_layerscale") == {"fold_layerscale": 1}
    assert report.ops_after["mul"] == 0 and report.ops_after["batchnorm"] == 0
    torch.testing.assert_close(gm(X), model(X))
