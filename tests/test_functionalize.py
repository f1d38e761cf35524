"""In-place ops in module-level graphs become out-of-place ops read by every later reader."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import fxrep
from fxrep.functionalize import UnsafeMutation, functionalize_inplace
from tests.helpers import ops, randomized

X = torch.randn(2, 4, 6, 6)


class ReadsAfterInPlace(nn.Module):
    """``relu_`` changes ``y``; the BatchNorm reads ``y`` afterwards and must see the ReLU."""

    def __init__(self, spelling: str):
        super().__init__()
        self.conv, self.bn, self.relu = nn.Conv2d(4, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(inplace=True)
        self.spelling = spelling

    def forward(self, x):
        y = self.conv(x)
        if self.spelling == "module":
            self.relu(y)
        elif self.spelling == "functional":
            F.relu(y, inplace=True)
        else:
            y.relu_()
        return self.bn(y)


@pytest.mark.parametrize("spelling", ["module", "functional", "method"])
def test_readers_after_an_in_place_op_see_its_result(spelling):
    model = randomized(ReadsAfterInPlace(spelling))
    gm = fxrep.optimize(model, X, capture_method="symbolic_trace")
    assert gm.fxrep_report.capture == "torch.fx.symbolic_trace"
    with torch.no_grad():
        torch.testing.assert_close(gm(X), model(X), rtol=1e-5, atol=1e-5)
    assert ops(gm)["relu"] == 1  # the "dead" in-place ReLU survived dead-code elimination
    assert model.relu.inplace  # the caller's module keeps its flag


def test_mutating_a_graph_input_falls_back_to_export():
    class MutatesInput(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(4, 4, 1)

        def forward(self, x):
            x.relu_()
            return self.conv(x)

    gm = fxrep.optimize(MutatesInput().eval(), X.clone(), capture_method="symbolic_trace")
    assert any("graph input" in note for note in gm.fxrep_report.notes)


def test_views_of_mutated_tensors_are_refused():
    class ViewMutation(nn.Module):
        def forward(self, x):
            y = x * 2
            v = y.view(-1)
            y.relu_()
            return v.sum()

    gm = torch.fx.symbolic_trace(ViewMutation())
    with pytest.raises(UnsafeMutation, match="view"):
        functionalize_inplace(gm)
