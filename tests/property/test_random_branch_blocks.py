"""Property-based: random blocks of summed branches (any add-tree shape) collapse exactly.

Hypothesis builds blocks whose branches read one input and are summed in a random association:
convs of kernel 1x1, 3x3, 5x5, 1x3, 3x1 with "same" padding, with or without bias and BatchNorm,
grouped / depthwise / dense, identities, BN-only identities, scalar- and per-channel-scaled convs,
all with one stride. Properties: the optimized module equals the original (fxrep's verifier and an
independent check), and the number of convs never grows.
"""

from __future__ import annotations

import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

import fxrep
from fxrep.models import randomize_
from tests.helpers import ops, relative_error

CHANNELS = 8
KERNELS = [(1, 1), (3, 3), (5, 5), (1, 3), (3, 1)]


class Branch(nn.Module):
    def __init__(self, kind: str, kernel=(3, 3), stride=1, groups=1, bias=False, batchnorm=False, scale=None):
        super().__init__()
        self.kind = kind
        if kind == "conv":
            padding = (kernel[0] // 2, kernel[1] // 2)
            self.conv = nn.Conv2d(CHANNELS, CHANNELS, kernel, stride, padding, groups=groups, bias=bias)
        self.bn = nn.BatchNorm2d(CHANNELS) if batchnorm or kind == "bn" else None
        self.scale = nn.Parameter(scale, requires_grad=False) if isinstance(scale, torch.Tensor) else scale

    def forward(self, x):
        y = self.conv(x) if self.kind == "conv" else x
        if self.bn is not None:
            y = self.bn(y)
        if self.scale is not None:
            y = y * self.scale
        return y


class Block(nn.Module):
    def __init__(self, branches, tree, activation):
        super().__init__()
        self.branches = nn.ModuleList(branches)
        self.tree = tree
        self.activation = activation

    def forward(self, x):
        outputs = [branch(x) for branch in self.branches]

        def combine(tree):
            if isinstance(tree, int):
                return outputs[tree]
            return combine(tree[0]) + combine(tree[1])

        y = combine(self.tree)
        return torch.relu(y) if self.activation else y


def _trees(indices):
    if len(indices) == 1:
        return st.just(indices[0])
    return st.integers(1, len(indices) - 1).flatmap(
        lambda cut: st.tuples(_trees(indices[:cut]), _trees(indices[cut:])))


@st.composite
def blocks(draw):
    stride = draw(st.sampled_from([1, 1, 2]))
    branches = []
    for _ in range(draw(st.integers(1, 5))):
        kinds = ["conv", "conv", "conv"] + (["identity", "bn"] if stride == 1 else [])
        kind = draw(st.sampled_from(kinds))
        scale = draw(st.sampled_from([None, None, 0.5, "per_channel"]))
        if scale == "per_channel":
            scale = torch.linspace(0.5, 1.5, CHANNELS).reshape(CHANNELS, 1, 1)
        branches.append(Branch(
            kind,
            kernel=draw(st.sampled_from(KERNELS)),
            stride=stride,
            groups=draw(st.sampled_from([1, 2, CHANNELS])),
            bias=draw(st.booleans()),
            batchnorm=draw(st.booleans()),
            scale=scale,
        ))
    order = draw(st.permutations(list(range(len(branches)))))
    tree = draw(_trees(order))
    return Block(branches, tree, draw(st.booleans())), draw(st.integers(0, 2**16))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(blocks())
def test_random_branch_blocks_collapse_exactly_and_never_add_convs(case):
    block, seed = case
    model = randomize_(block, seed).eval()
    x = torch.randn(2, CHANNELS, 9, 10)
    gm = fxrep.optimize(model, x, capture_method="symbolic_trace")
    report = gm.fxrep_report
    assert report.verification.passed
    with torch.no_grad():
        assert relative_error(model(x), gm(x)) <= 1e-5
    assert ops(gm)["conv"] <= report.ops_before["conv"]
    if any(branch.kind == "conv" for branch in block.branches):
        assert ops(gm)["batchnorm"] == 0  # a lone BatchNorm has no conv to fold into


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(blocks())
def test_random_branch_blocks_collapse_exactly_at_aten_level(case):
    block, seed = case
    model = randomize_(block, seed).eval()
    x = torch.randn(2, CHANNELS, 9, 10)
    gm = fxrep.optimize(model, x, capture_method="export")
    with torch.no_grad():
        assert relative_error(model(x), gm(x)) <= 1e-5
    assert ops(gm)["conv"] <= gm.fxrep_report.ops_before["conv"]
