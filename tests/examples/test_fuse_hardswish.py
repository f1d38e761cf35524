"""examples/fuse_hardswish.py: one declarative pattern fuses every spelling at both capture levels."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from fxrep.passes import default_pipeline
from torch import nn

import fxrep
from tests.examples.conftest import load_example
from tests.helpers import LEVELS, captured, ops

example = load_example("fuse_hardswish")
X = torch.randn(2, 3, 12, 12)


@pytest.mark.parametrize("level", LEVELS)
def test_every_spelling_is_fused(level):
    model = example.build_model()
    gm = captured(model, X, level=level)
    result = example.FuseHardswish()(gm)
    assert result.counts == {"fuse_hardswish": 3}
    kinds = ops(gm)
    assert kinds["hardswish"] == 3
    assert not any(kinds[k] for k in ("mul", "div", "add", "relu6", "hardtanh", "clamp"))
    torch.testing.assert_close(gm(X), model(X))


class NotHardswish(nn.Module):
    """Near misses: the wrong offset, the wrong bound, and a product whose factors read different tensors."""

    def forward(self, x):
        a = x * F.relu6(x + 2) / 6
        b = x * torch.clamp(x + 3, 0, 5) / 6
        c = torch.sigmoid(x) * F.relu6(x + 3) / 6
        return a + b + c


@pytest.mark.parametrize("level", LEVELS)
def test_near_misses_are_left_alone_with_a_reason(level):
    model = NotHardswish()
    gm = captured(model, X, level=level)
    result = example.FuseHardswish()(gm)
    assert not result.modified and ops(gm)["hardswish"] == 0
    reasons = " | ".join(refusal.reason for refusal in result.refusals)
    assert "found 2" in reasons and "max=5" in reasons and "x would stand for both" in reasons


def test_runs_before_the_default_pipeline_in_optimize():
    model = example.build_model()
    gm = fxrep.optimize(model, (X,), passes=[example.FuseHardswish(), *default_pipeline()])
    report = fxrep.report_of(gm)
    assert report.fired("fuse_hardswish") == {"fuse_hardswish": 3}
    assert dict(report.ops_after) == {"conv": 3, "hardswish": 3}
    torch.testing.assert_close(gm(X), model(X))
