"""The cost model on single graph nodes: a conv costs its multiply-accumulates whatever form its weight takes."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fxrep.capture import capture
from fxrep.cost import CostModel


class ConstantWeight(nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(16, 32, 3, 3))

    def forward(self, x):
        return F.conv2d(x, self.weight, padding=1)


class ComputedWeight(ConstantWeight):
    """DiracNet / weight standardization: the weight is computed from parameters in forward."""

    def forward(self, x):
        return F.conv2d(x, self.weight / self.weight.norm(), padding=1)


def conv_cost(model: nn.Module, method: str) -> float:
    gm = capture(model, (torch.randn(8, 32, 64, 64),), method=method).graph_module
    convs = [n for n in gm.graph.nodes if "conv" in str(n.target)]
    assert len(convs) == 1, gm.graph
    return CostModel().node_seconds(convs[0])


@pytest.mark.parametrize("method", ["export", "symbolic_trace"])
def test_a_conv_with_a_computed_weight_costs_as_much_as_one_with_a_constant_weight(method):
    constant, computed = conv_cost(ConstantWeight(), method), conv_cost(ComputedWeight(), method)
    assert computed == pytest.approx(constant, rel=1e-9)
    macs = 8 * 16 * 64 * 64 * 32 * 9
    assert computed > macs / CostModel().target.macs_per_second  # the MACs are counted, not just the bytes
