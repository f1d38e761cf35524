"""Property-based: random linear regions with shared intermediates and several exits plan and rewrite exactly.

Hypothesis builds a DAG of affine ops over one input (convs 1x1 / 3x3, dense or depthwise, with or without
bias; BatchNorm; per-channel scales; average pools; sums of any two earlier values), so values are read by
several ops, and sends several of its values out through different non-linearities. Properties:

- the optimized module equals the original (an independent check, not fxrep's verifier);
- for every region the planned cost never exceeds the cost of leaving the region as it is, and the plan's
  cost and op count are the sums over its emissions;
- collapsing again changes nothing (idempotence).
"""

from __future__ import annotations

import torch
from fxrep.passes import CollapseLinearRegions, default_pipeline
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

import fxrep
from fxrep.affine import GraphShapes, find_regions, plan_region
from fxrep.cost import CostModel
from fxrep.models import randomize_
from fxrep.pass_manager import PassManager
from tests.helpers import captured, relative_error

CHANNELS = 8
ACTIVATIONS = (torch.relu, torch.sigmoid, torch.tanh)


class RandomRegion(nn.Module):
    """Interprets ``steps``: ("conv", src, kernel, depthwise, bias), ("bn", src), ("scale", src),
    ("pool", src), ("add", a, b); value 0 is the input. ``exits`` are the values sent out."""

    def __init__(self, steps, exits):
        super().__init__()
        self.steps, self.exits = steps, exits
        self.layers = nn.ModuleList()
        for step in steps:
            kind = step[0]
            if kind == "conv":
                _, _, kernel, depthwise, bias = step
                layer = nn.Conv2d(CHANNELS, CHANNELS, kernel, padding=kernel // 2,
                                  groups=CHANNELS if depthwise else 1, bias=bias)
            elif kind == "bn":
                layer = nn.BatchNorm2d(CHANNELS)
            elif kind == "pool":
                layer = nn.AvgPool2d(3, 1, 1)
            else:
                layer = nn.Identity()
            self.layers.append(layer)
        self.scale = nn.Parameter(torch.linspace(0.5, 1.5, CHANNELS).reshape(CHANNELS, 1, 1), requires_grad=False)

    def forward(self, x):
        values = [x]
        for step, layer in zip(self.steps, self.layers, strict=True):
            kind = step[0]
            if kind == "add":
                values.append(values[step[1]] + values[step[2]])
            elif kind == "scale":
                values.append(values[step[1]] * self.scale)
            else:
                values.append(layer(values[step[1]]))
        return tuple(ACTIVATIONS[i % len(ACTIVATIONS)](values[v]) for i, v in enumerate(self.exits))


@st.composite
def regions(draw):
    steps = []
    for index in range(draw(st.integers(2, 9))):
        available = index + 1  # values 0..index exist
        source = draw(st.integers(0, available - 1))
        kind = draw(st.sampled_from(["conv", "conv", "bn", "scale", "pool", "add", "add"]))
        if kind == "conv":
            steps.append(("conv", source, draw(st.sampled_from([1, 3])), draw(st.booleans()), draw(st.booleans())))
        elif kind == "add":
            steps.append(("add", source, draw(st.integers(0, available - 1))))
        else:
            steps.append((kind, source))
    count = len(steps)
    extra = draw(st.lists(st.integers(1, count), max_size=3, unique=True))
    exits = sorted(set(extra) | {count})
    return RandomRegion(steps, exits), draw(st.integers(0, 2**16))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(regions())
def test_random_regions_plan_within_the_cost_of_the_graph_as_it_is_and_rewrite_exactly(case):
    module, seed = case
    model = randomize_(module, seed).eval()
    x = torch.randn(2, CHANNELS, 9, 10)
    gm = captured(model, x, level="export")
    shapes, cost = GraphShapes.of(gm), CostModel()
    for region in find_regions(gm).regions:
        choice = plan_region(region, cost, shapes)
        plan = choice.plan
        assert plan.seconds <= choice.as_is_seconds * (1 + 1e-9)
        assert plan.seconds == sum(e.seconds(cost) for e in plan.emissions)
        assert plan.op_count == sum(e.op_count for e in plan.emissions)
        assert set(region.exits) <= set(plan.materialized)

    optimized = fxrep.optimize(model, x, passes=default_pipeline())
    with torch.no_grad():
        for expected, actual in zip(model(x), optimized(x), strict=True):
            assert relative_error(expected, actual) <= 1e-4
    again = captured(model, x, level="export")
    assert PassManager(default_pipeline()).run(again).converged
    assert not CollapseLinearRegions()(again).modified  # at the fixed point a collapse finds nothing to do
