"""Affine regions on the data-flow DAG: connected, any number of exits, constants and side effects left out."""

from __future__ import annotations

import torch
from torch import nn

from fxrep.affine import constant_nodes, find_regions
from fxrep.models import RepVGGBlock
from tests.helpers import captured, randomized

X = torch.randn(1, 8, 8, 8)


def names(nodes):
    return [n.name for n in nodes]


def test_repvgg_block_is_one_region_ending_at_the_last_add():
    gm = captured(randomized(RepVGGBlock(8, 8, 3, padding=1)), X, level="symbolic_trace")
    analysis = find_regions(gm)
    (region,) = [r for r in analysis.regions if len(r.nodes) > 1]
    assert names(region.exits) == ["add_1"]
    assert len(region.nodes) == 7  # 2 convs, 3 BNs, 2 adds
    assert names(region.entries) == ["inputs"]  # the block's forward argument


class Shared(nn.Module):
    """A conv read by two BatchNorms that end in different non-linearities."""

    def __init__(self):
        super().__init__()
        self.conv, self.bn1, self.bn2 = nn.Conv2d(8, 8, 1), nn.BatchNorm2d(8), nn.BatchNorm2d(8)

    def forward(self, x):
        y = self.conv(x)
        return torch.relu(self.bn1(y)), torch.relu(self.bn2(y))


def test_a_tensor_read_by_two_ops_of_the_region_is_a_member_not_an_exit():
    gm = captured(randomized(Shared()), X, level="symbolic_trace")
    (region,) = find_regions(gm).regions
    assert names(region.nodes) == ["conv", "bn1", "bn2"]
    assert names(region.exits) == ["bn1", "bn2"]
    assert region.member_inputs(region.nodes[1]) == (region.nodes[0],)


def test_a_value_read_by_a_non_linearity_and_an_affine_op_is_an_exit():
    class Both(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.bn = nn.Conv2d(8, 8, 1), nn.BatchNorm2d(8)

        def forward(self, x):
            y = self.conv(x)
            return torch.relu(y) + self.bn(y)

    gm = captured(randomized(Both()), X, level="symbolic_trace")
    (region,) = find_regions(gm).regions
    assert names(region.nodes) == ["conv", "bn", "add"]
    assert names(region.exits) == ["conv", "add"]  # relu reads the conv, the output reads the add
    assert names(region.entries) == ["x", "relu"]


def test_parameter_only_nodes_are_constants_not_region_members():
    from fxrep.models import DiracConv2d

    gm = captured(DiracConv2d(8, 8, 3, padding=1).eval(), X, level="export")
    constants = constant_nodes(gm)
    assert constants and all(node.op != "placeholder" for node in constants)
    members = {n for r in find_regions(gm).regions for n in r.nodes}
    assert not members & constants


def test_non_linear_ops_split_regions_and_unfoldable_ops_say_why():
    model = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 1),
                          nn.BatchNorm2d(8, track_running_stats=False)).eval()
    gm = captured(model, X, level="symbolic_trace")
    analysis = find_regions(gm)
    assert sorted(names(r.nodes) for r in analysis.regions) == [["_0"], ["_2"]]
    (reason,) = analysis.not_affine.values()
    assert "batch statistics" in reason


def test_allow_filter_restricts_members():
    gm = captured(randomized(RepVGGBlock(8, 8, 3, padding=1)), X, level="symbolic_trace")
    analysis = find_regions(gm, allow=lambda op: op.rule != "merge_branches")
    assert all(len(r.nodes) <= 2 for r in analysis.regions)
