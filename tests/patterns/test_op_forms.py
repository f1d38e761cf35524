"""One pattern matches the module, functional and ATen forms of an op, through the op views."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fxrep import patterns as P
from tests.helpers import LEVELS, captured

X = torch.randn(1, 4, 8, 8)


def result_node(gm):
    return next(n for n in gm.graph.nodes if n.op == "output").all_input_nodes[0]


def output_of(model, level, *inputs):
    """The node computing ``model``'s output, captured at ``level``."""
    return result_node(captured(model.eval(), *(inputs or (X,)), level=level))


def match_at_output(pattern, model, level, *inputs):
    return P.Pattern(pattern).match(output_of(model, level, *inputs))


class ConvModule(nn.Module):
    def __init__(self, **settings):
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3, **settings)

    def forward(self, x):
        return self.conv(x)


class FunctionalConv(nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(4, 4, 3, 3))

    def forward(self, x):
        return F.conv2d(x, self.weight, padding=1)


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("model", [ConvModule(padding=1), FunctionalConv()], ids=["module", "functional"])
def test_conv_pattern_matches_every_form_and_binds_the_weight(level, model):
    match = match_at_output(lambda x, w: F.conv2d(x, w), model, level)
    assert match, match.reason
    assert isinstance(match.value["w"], torch.Tensor) and match.value["w"].shape == (4, 4, 3, 3)
    assert match.value["x"].op == "placeholder"


@pytest.mark.parametrize("level", LEVELS)
def test_conv_settings_written_in_the_pattern_must_match(level):
    padded = output_of(ConvModule(padding=1), level)
    assert P.Pattern(lambda x, w: F.conv2d(x, w, padding=1)).match(padded)
    assert P.Pattern(lambda x, w: F.conv2d(x, w, padding="same")).match(padded)
    refused = P.Pattern(lambda x, w: F.conv2d(x, w, stride=2)).match(padded)
    assert not refused and "stride=(1, 1), the pattern (2, 2)" in refused.reason


@pytest.mark.parametrize("level", LEVELS)
def test_wrong_op_does_not_match(level):
    match = match_at_output(lambda x, w: F.conv2d(x, w), nn.Sequential(nn.Flatten(), nn.Linear(256, 3)), level)
    assert not match and "not a conv2d" in match.reason


class Clamps(nn.Module):
    """relu6 written five ways."""

    def __init__(self, variant):
        super().__init__()
        self.variant = variant
        self.act = nn.ReLU6() if variant == "module" else nn.Hardtanh(0.0, 6.0)

    def forward(self, x):
        y = x + 3
        if self.variant == "relu6":
            return F.relu6(y)
        if self.variant == "hardtanh":
            return F.hardtanh(y, 0.0, 6.0)
        if self.variant == "clamp":
            return torch.clamp(y, 0, 6)
        if self.variant == "method":
            return y.clamp(min=0, max=6)
        return self.act(y)


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("variant", ["relu6", "hardtanh", "clamp", "method", "module", "hardtanh-module"])
def test_clamp_family_is_one_op_with_bounds(level, variant):
    root = output_of(Clamps(variant), level)
    assert P.Pattern(lambda x: F.relu6(x + 3)).match(root)
    assert P.Pattern(lambda x: torch.clamp(x + 3, 0.0, 6.0)).match(root)
    wrong = P.Pattern(lambda x: F.hardtanh(x + 3, 0.0, 4.0)).match(root)
    assert not wrong and "max=" in wrong.reason


@pytest.mark.parametrize("level", LEVELS)
def test_activation_settings_are_compared(level):
    root = output_of(nn.Sequential(nn.GELU(approximate="tanh")), level)
    assert P.Pattern(lambda x: F.gelu(x, approximate="tanh")).match(root)
    assert not P.Pattern(lambda x: F.gelu(x)).match(root)


@pytest.mark.parametrize("level", LEVELS)
def test_linear_and_batchnorm_bind_their_parameters(level):
    model = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4))
    match = match_at_output(lambda x, w, b, m, v, g, beta: F.batch_norm(F.linear(x, w, b), m, v, g, beta),
                            model, level, torch.randn(2, 4))
    assert match, match.reason
    assert torch.equal(match.value["m"], model[1].running_mean)
    assert torch.equal(match.value["w"], model[0].weight.detach())


class DynamicKernel(nn.Module):
    def __init__(self):
        super().__init__()
        self.gamma = nn.Parameter(torch.rand(4, 1, 1))

    def forward(self, x, kernel):
        return F.conv2d(x, kernel, padding=1) * self.gamma


@pytest.mark.parametrize("level", LEVELS)
def test_weight_computed_at_run_time_does_not_match(level):
    match = match_at_output(lambda x, w, g: F.conv2d(x, w) * P.constant(g), DynamicKernel(), level,
                            X, torch.randn(4, 4, 3, 3))
    assert not match and "computed from a graph input at run time" in match.reason


@pytest.mark.parametrize("level", LEVELS)
def test_constant_marker_binds_parameters_but_not_computed_values(level):
    class Scaled(nn.Module):
        def __init__(self):
            super().__init__()
            self.gamma = nn.Parameter(torch.rand(4, 1, 1))

        def forward(self, x):
            return x * self.gamma, x * torch.sigmoid(x)

    gm = captured(Scaled().eval(), X, level=level)
    outputs = next(n for n in gm.graph.nodes if n.op == "output").all_input_nodes
    pattern = P.Pattern(lambda x, g: x * P.constant(g))
    scaled, gated = (pattern.match(node) for node in outputs)
    assert scaled and scaled.value["g"].shape == (4, 1, 1)
    assert not gated and "needs a constant g" in gated.reason


@pytest.mark.parametrize("level", LEVELS)
def test_named_binds_the_matched_node(level):
    match = match_at_output(lambda x, w: P.named("conv", F.conv2d(x, w)) + 1,
                            nn.Sequential(ConvModule(), _AddOne()), level)
    assert match, match.reason
    assert match.value["conv"] in match.value.nodes


class _AddOne(nn.Module):
    def forward(self, x):
        return x + 1
