"""Shared structure is never folded in a way that changes another use."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import fxrep
from tests.helpers import LEVELS, assert_equivalent, ops, randomized

X = torch.randn(2, 8, 10, 10)


@pytest.mark.parametrize("level", LEVELS)
def test_module_called_twice(level):
    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.bn = nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8)

        def forward(self, x):
            y = torch.relu(self.bn(self.conv(x)))
            return self.bn(self.conv(y)) + y  # the same modules again, on another tensor

    model = randomized(Twice())
    gm = fxrep.optimize(model, X, capture_method=level)
    assert ops(gm)["batchnorm"] == 0
    assert_equivalent(model, gm, X)


@pytest.mark.parametrize("level", LEVELS)
def test_weight_tied_between_two_convs(level):
    class Tied(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Conv2d(8, 8, 3, padding=1), nn.Conv2d(8, 8, 3, padding=1)
            self.b.weight = self.a.weight
            self.bn = nn.BatchNorm2d(8)

        def forward(self, x):
            return self.bn(self.a(x)), self.b(torch.relu(x))

    model = randomized(Tied())
    model.b.weight = model.a.weight  # randomize_ may have re-drawn it; tie again
    gm = fxrep.optimize(model, X, capture_method=level)
    with torch.no_grad():
        for expected, actual in zip(model(X), gm(X), strict=True):
            torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-5)
    assert ops(gm)["batchnorm"] == 0


@pytest.mark.parametrize("level", LEVELS)
def test_conv_output_used_by_a_branch_sum_and_elsewhere(level):
    class Escaping(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv3, self.conv1 = nn.Conv2d(8, 8, 3, padding=1), nn.Conv2d(8, 8, 1)

        def forward(self, x):
            y = self.conv3(x)
            return y + self.conv1(x), torch.sigmoid(y)

    model = randomized(Escaping())
    gm = fxrep.optimize(model, X, capture_method=level)
    with torch.no_grad():
        for expected, actual in zip(model(X), gm(X), strict=True):
            torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-5)
    assert ops(gm)["conv"] >= 2  # conv3's output must still exist for the sigmoid
