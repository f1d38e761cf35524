"""EvaluateConstantSubgraphs: parameter-only weights become constants; random ops never do."""

from __future__ import annotations

import pytest
import torch
from fxrep.passes import EvaluateConstantSubgraphs
from torch import nn
from torch.nn.utils import parametrizations

from fxrep.models import DiracConv2d, DOConv2d
from tests.helpers import LEVELS, assert_equivalent, captured, ops, randomized

X = torch.randn(2, 4, 8, 8)


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("make", [lambda: DiracConv2d(4, 4, 3, padding=1), lambda: DOConv2d(4, 4, 3, padding=1)],
                         ids=["diracnet", "doconv"])
def test_computed_weights_become_constants(level, make):
    model = randomized(make())
    gm = captured(model, X, level=level)
    result = EvaluateConstantSubgraphs()(gm)
    assert result.counts["evaluate_constants"] >= 1
    assert set(ops(gm)) == {"conv"}
    assert_equivalent(model, gm, X, tolerance=0.0)


class WeightStandardized(nn.Conv2d):
    def forward(self, x):
        w = self.weight
        w = (w - w.mean(dim=(1, 2, 3), keepdim=True)) / (w.std(dim=(1, 2, 3), keepdim=True) + 1e-5)
        return nn.functional.conv2d(x, w, self.bias, self.stride, self.padding)


@pytest.mark.parametrize("level", LEVELS)
def test_weight_standardization_and_parametrizations(level):
    model = nn.Sequential(WeightStandardized(4, 4, 3, padding=1),
                          parametrizations.weight_norm(nn.Conv2d(4, 4, 3, padding=1)),
                          parametrizations.orthogonal(nn.Linear(8, 8))).eval()
    gm = captured(model, X, level=level)
    result = EvaluateConstantSubgraphs()(gm)
    assert result.modified
    assert not any(type(m).__name__.startswith("Parametrized") for m in gm.modules())
    assert ops(gm)["conv"] == 2
    assert_equivalent(model, gm, X, tolerance=1e-6)


@pytest.mark.parametrize("level", LEVELS)
def test_random_ops_are_not_evaluated(level):
    class Noisy(nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = nn.Parameter(torch.randn(4, 4, 1, 1))

        def forward(self, x):
            return nn.functional.conv2d(x, self.weight + torch.randn_like(self.weight))

    gm = captured(Noisy().eval(), X, level=level)
    before = gm.code
    result = EvaluateConstantSubgraphs()(gm)
    assert "randn" in gm.code and not result.counts["evaluate_constants"]
    assert gm.code == before


def test_parametrized_modules_of_the_caller_keep_working():
    model = nn.Sequential(parametrizations.weight_norm(nn.Conv2d(4, 4, 3, padding=1))).eval()
    expected = model(X)
    gm = captured(model, X, level="symbolic_trace")
    EvaluateConstantSubgraphs()(gm)
    torch.testing.assert_close(model(X), expected)  # its class still computes the weight


@pytest.mark.parametrize("make", [lambda: parametrizations.weight_norm(nn.Conv2d(4, 4, 3, padding=1)),
                                  lambda: parametrizations.orthogonal(nn.Linear(8, 8))], ids=["conv", "linear"])
def test_a_parametrized_module_becomes_a_new_module_of_its_own_class(make):
    from torch.nn.utils import parametrize

    model = nn.Sequential(make()).eval()
    original_class = type(model[0])
    gm = captured(model, X, level="symbolic_trace")
    result = EvaluateConstantSubgraphs()(gm)
    plain = gm.get_submodule("0")
    assert result.counts["remove_parametrization"] == 1
    assert type(plain) is parametrize.type_before_parametrizations(model[0]) and not parametrize.is_parametrized(plain)
    assert type(model[0]) is original_class and parametrize.is_parametrized(model[0])  # the caller's is untouched
    assert not any(p.requires_grad for p in plain.parameters())
    assert_equivalent(model, gm, X, tolerance=1e-6)
