"""The region planner: whole-region optimum (vs pairwise choices and vs brute force), shared values, the
bounded fallback, infeasible sets, and the plan as the one source of what is emitted."""

from __future__ import annotations

import itertools

import pytest
import torch
from fxrep.passes import EvaluateConstantSubgraphs
from torch import nn

from fxrep.affine import (
    GraphShapes,
    InfeasiblePlan,
    RegionPlanner,
    emit_plan,
    evaluate_region,
    find_regions,
    materialize,
    plan_region,
)
from fxrep.cost import CostModel
from fxrep.models import DiverseBranchBlock, MobileOneBlock, RepVGGBlock
from fxrep.pass_base import module_path_of
from fxrep.report import count_ops
from fxrep.rewriter import Rewriter
from tests.affine.cost_models import CountingCost
from tests.helpers import assert_equivalent, captured, randomized


def only_region(gm):
    (region,) = [r for r in find_regions(gm).regions if len(r.nodes) > 1]
    return region


def node_at(region, module: str, kind: str):
    """The member of ``region`` from ``module`` whose op is ``kind`` (e.g. "ConvOp")."""
    (node,) = [n for n in region.nodes if module_path_of(n) == module and type(region.ops[n]).__name__ == kind]
    return node


def apply_value(value, tensors):
    """Evaluate an AffineValue on real tensors (independently of the emitter)."""
    total = sum(conv.apply(tensors[source.node]) for source, conv in value.terms)
    return total + value.bias.reshape(-1, *([1] * value.nd)).to(total.dtype)


class SharedConv(nn.Module):
    """One conv read by two BatchNorms that end in different non-linearities."""

    def __init__(self, channels: int = 8):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)
        self.bn1, self.bn2 = nn.BatchNorm2d(channels), nn.BatchNorm2d(channels)

    def forward(self, x):
        y = self.conv(x)
        return torch.relu(self.bn1(y)), torch.sigmoid(self.bn2(y))


def test_dbb_optimum_differs_from_the_pairwise_choice():
    """Composing DBB's avg branch (1x1 -> BN-and-pad -> avg pool -> BN) costs more than its two ops alone,
    which a pairwise decision would refuse; as a whole the composed branch merges into the kxk branch for free."""
    model = randomized(DiverseBranchBlock(64, 64, 3, padding=1))
    x = torch.randn(1, 64, 56, 56)
    gm = captured(model, x, level="export")
    EvaluateConstantSubgraphs()(gm)
    region = only_region(gm)
    shapes, cost = GraphShapes.of(gm), CostModel()

    avg_conv, avg_bn = node_at(region, "dbb_avg.conv", "ConvOp"), node_at(region, "dbb_avg.avgbn", "BatchNormOp")
    composed = evaluate_region(region, {avg_bn}, shapes).values[avg_bn]
    apart = evaluate_region(region, {avg_conv, avg_bn}, shapes).values
    pair_composed = materialize(avg_bn, composed, False, shapes).seconds(cost)
    pair_apart = (materialize(avg_conv, apart[avg_conv], True, shapes).seconds(cost)
                  + materialize(avg_bn, apart[avg_bn], False, shapes).seconds(cost))
    assert pair_composed > pair_apart  # the pairwise view: keep the 1x1 apart from the avg pool

    choice = plan_region(region, cost, shapes, max_states=1024)
    assert choice.exact
    assert choice.plan.materialized == region.exits and choice.plan.op_count == 1
    (emission,) = choice.plan.emissions
    assert [op.kind for op in emission.ops] == ["conv"] and emission.ops[0].conv.kernel_size == (3, 3)
    planner = RegionPlanner(region, cost, shapes)
    keeping_the_pair_apart, _ = planner.cost_of({avg_conv})
    assert choice.plan.seconds < keeping_the_pair_apart
    assert choice.runner_up is not None and choice.runner_up.seconds >= choice.plan.seconds


@pytest.mark.parametrize(("cost", "convs", "batchnorms"), [
    (CountingCost(per_op=1.0), 2, 0),                  # a second conv costs one op, two BatchNorms cost two
    (CountingCost(per_op=1.0, per_mac=1.0), 1, 2),     # multiplies dominate: compute the conv once
], ids=["recompute", "share"])
def test_a_value_read_twice_is_computed_once_or_in_each_reader_whichever_is_cheaper(cost, convs, batchnorms):
    model = randomized(SharedConv())
    x = torch.randn(2, 8, 12, 12)
    gm = captured(model, x, level="export")
    region = only_region(gm)
    assert len(region.exits) == 2  # both BatchNorms leave the region; the conv is shared inside it
    choice = plan_region(region, cost, GraphShapes.of(gm))
    rewriter = Rewriter(gm)
    emit_plan(rewriter, choice.plan)
    rewriter.finish()
    assert count_ops(gm)["conv"] == convs and count_ops(gm)["batchnorm"] == batchnorms
    with torch.no_grad():
        for expected, actual in zip(model(x), gm(x), strict=True):
            torch.testing.assert_close(actual, expected)


def _branchy_region():
    class Branchy(nn.Module):
        """A RepVGG block whose output is also read by a second, BN-scaled exit."""

        def __init__(self):
            super().__init__()
            self.block = RepVGGBlock(8, 8, 3, padding=1)
            self.bn = nn.BatchNorm2d(8)
            self.block.nonlinearity = nn.Identity()

        def forward(self, x):
            y = self.block(x)
            return torch.relu(y), torch.sigmoid(self.bn(y) + x)

    model = randomized(Branchy())
    x = torch.randn(1, 8, 10, 10)
    gm = captured(model, x, level="export")
    return model, x, gm, only_region(gm)


@pytest.mark.parametrize("cost", [CostModel(), CountingCost(), CountingCost(per_op=1.0, per_mac=1e-3)],
                         ids=["cpu", "ops", "macs"])
def test_the_dynamic_programme_finds_the_brute_force_optimum(cost):
    _, _, gm, region = _branchy_region()
    shapes = GraphShapes.of(gm)
    planner = RegionPlanner(region, cost, shapes)
    candidates = [n for n in region.nodes if n not in region.exits]
    best = None
    for size in range(len(candidates) + 1):
        for chosen in itertools.combinations(candidates, size):
            try:
                seconds, ops = planner.cost_of(chosen)
            except InfeasiblePlan:
                continue
            best = (seconds, ops) if best is None or (seconds, ops) < best else best
    choice = plan_region(region, cost, shapes)
    assert choice.exact
    assert choice.plan.seconds == pytest.approx(best[0], rel=1e-9)
    assert choice.plan.op_count == best[1]


def test_bounded_search_still_returns_an_exact_plan_no_worse_than_the_graph_as_it_is():
    model = randomized(MobileOneBlock(16, 16, 3, padding=1, num_conv_branches=4, use_act=False))
    x = torch.randn(1, 16, 14, 14)
    gm = captured(model, x, level="export")
    region = only_region(gm)
    shapes = GraphShapes.of(gm)
    exact = plan_region(region, CountingCost(), shapes, max_states=4096)
    bounded = plan_region(region, CountingCost(), shapes, max_states=2)
    assert exact.exact and not bounded.exact
    assert exact.plan.op_count == 1
    assert bounded.plan.seconds <= bounded.as_is_seconds
    rewriter = Rewriter(gm)
    emit_plan(rewriter, bounded.plan)
    rewriter.finish()
    assert_equivalent(model, gm, x)


def test_the_objective_decides_between_time_and_op_count():
    """A depthwise 3x3 + dense 1x1 pair at 256 channels: two convs are faster, one conv is fewer ops."""
    model = randomized(nn.Sequential())

    class Pair(nn.Module):
        def __init__(self):
            super().__init__()
            self.dw, self.pw = nn.Conv2d(256, 256, 3, padding=1, groups=256), nn.Conv2d(256, 256, 1)

        def forward(self, x):
            return self.dw(x) + self.pw(x)

    model = randomized(Pair())
    x = torch.randn(1, 256, 14, 14)
    gm = captured(model, x, level="export")
    region = only_region(gm)
    shapes = GraphShapes.of(gm)
    fast = plan_region(region, CostModel(), shapes)
    few = plan_region(region, CostModel(), shapes, objective="ops")
    assert few.plan.op_count == 1 < fast.plan.op_count
    assert fast.plan.seconds < few.plan.seconds


def test_evaluate_region_gives_the_exit_as_an_affine_function_of_the_entries():
    model = randomized(RepVGGBlock(8, 8, 3, padding=1))
    model.nonlinearity = nn.Identity()
    x = torch.randn(1, 8, 10, 10)
    gm = captured(model, x, level="export")
    region = only_region(gm)
    evaluation = evaluate_region(region, (), GraphShapes.of(gm))
    (exit_,) = region.exits
    value = evaluation.values[exit_]
    (entry,) = region.entries
    assert len(value.terms) == 1 and value.terms[0][0].node is entry
    with torch.no_grad():
        torch.testing.assert_close(apply_value(value, {entry: x.double()}).float(), model(x), rtol=1e-5, atol=1e-5)


def test_an_infeasible_materialisation_set_names_the_node_and_the_reason():
    model = randomized(DiverseBranchBlock(8, 8, 3, padding=1, pad_mode="zero", use_act=False))
    x = torch.randn(1, 8, 10, 10)
    gm = captured(model, x, level="export")
    EvaluateConstantSubgraphs()(gm)
    region = only_region(gm)
    with pytest.raises(InfeasiblePlan, match="only padding with the bias is exact") as raised:
        evaluate_region(region, (), GraphShapes.of(gm))
    assert module_path_of(raised.value.node) in ("dbb_avg.avg", "dbb_1x1_kxk.conv2")
    choice = plan_region(region, CostModel(), GraphShapes.of(gm))  # a feasible plan exists all the same
    assert any("only padding with the bias is exact" in reason for reason in choice.cuts.values())


def test_the_plan_is_what_the_graph_holds_after_emission():
    """Each emission's op list is what lands in the graph: same count, and the plan's cost is their sum."""
    model, x, gm, region = _branchy_region()
    outside = sum(count_ops(gm).values()) - len(region.nodes)
    choice = plan_region(region, CostModel(), GraphShapes.of(gm))
    plan = choice.plan
    assert plan.changes
    assert plan.seconds == pytest.approx(sum(e.seconds(CostModel()) for e in plan.emissions))
    assert plan.op_count == sum(len(e.ops) for e in plan.emissions)
    rewriter = Rewriter(gm)
    emit_plan(rewriter, plan)
    rewriter.finish()
    assert sum(count_ops(gm).values()) == outside + plan.op_count
    with torch.no_grad():
        for expected, actual in zip(model(x), gm(x), strict=True):
            torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-5)


def test_every_member_materialised_besides_the_exits_says_why():
    model = randomized(SharedConv(64))
    x = torch.randn(1, 64, 32, 32)
    gm = captured(model, x, level="export")
    region = only_region(gm)
    choice = plan_region(region, CountingCost(per_op=1.0, per_mac=1.0), GraphShapes.of(gm))
    (conv,) = [n for n in choice.plan.materialized if n not in region.exits]
    assert "folding it in would cost" in choice.cuts[conv]
