"""CollapseLinearRegions: per rule, structurally (which ops remain, how often a rule fired, refusals)
and numerically, at both capture levels; negative cases and idempotence."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from fxrep.passes import CollapseLinearRegions
from torch import nn

from fxrep.cost import GPU, CostModel
from fxrep.models import (
    ACBlock,
    DiverseBranchBlock,
    ExpandCK,
    ExpandCL,
    MobileOneBlock,
    RepMixer,
    RepVGGBlock,
)
from fxrep.ops import Conv
from tests.affine.cost_models import CountingCost
from tests.helpers import LEVELS, assert_equivalent, captured, ops, randomized

X = torch.randn(2, 8, 12, 12)


def collapse(model, *inputs, level, **options):
    gm = captured(model, *inputs, level=level)
    result = CollapseLinearRegions(**options)(gm)
    return gm, result


def reasons(result):
    return " | ".join(r.reason for r in result.refusals)


class ConvBN(nn.Module):
    def __init__(self, c_in=8, c_out=8, k=3, stride=1, padding=1, groups=1):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, k, stride, padding, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(c_out)

    def forward(self, x):
        return self.bn(self.conv(x))


@pytest.mark.parametrize("level", LEVELS)
def test_conv_then_batchnorm_folds(level):
    model = randomized(ConvBN())
    gm, result = collapse(model, X, level=level)
    assert ops(gm) == {"conv": 1}
    assert result.counts["fold_batchnorm"] == 1
    assert_equivalent(model, gm, X)


@pytest.mark.parametrize("level", LEVELS)
def test_repvgg_block_becomes_one_3x3_conv(level):
    model = randomized(RepVGGBlock(8, 8, 3, padding=1))
    gm, result = collapse(model, X, level=level)
    assert ops(gm)["conv"] == 1 and ops(gm)["batchnorm"] == 0 and ops(gm)["add"] == 0
    assert result.counts["merge_branches"] == 2 and result.counts["regions"] == 1
    assert_equivalent(model, gm, X)


@pytest.mark.parametrize("level", LEVELS)
def test_acnet_square_horizontal_vertical_become_one_3x3(level):
    model = randomized(ACBlock(8, 8))
    gm, _ = collapse(model, X, level=level)
    assert ops(gm) == {"conv": 1}
    assert [c.kernel_size for c in map(Conv.from_node, gm.graph.nodes) if c is not None] == [(3, 3)]
    assert_equivalent(model, gm, X)


@pytest.mark.parametrize("level", LEVELS)
def test_mobileone_depthwise_branches_become_one_depthwise_conv(level):
    model = randomized(MobileOneBlock(8, 8, 3, padding=1, groups=8, num_conv_branches=4, use_act=False))
    gm, _ = collapse(model, X, level=level)
    assert ops(gm) == {"conv": 1}
    weights = [p for name, p in gm.named_parameters() if name.endswith("weight")]
    assert [tuple(w.shape) for w in weights] == [(8, 1, 3, 3)]  # still depthwise
    assert_equivalent(model, gm, X)


class Residual(nn.Module):
    def __init__(self, scale=None):
        super().__init__()
        self.conv = nn.Conv2d(8, 8, 3, padding=1)
        self.scale = scale

    def forward(self, x):
        branch = self.conv(x)
        if self.scale is not None:
            branch = branch * self.scale
        return x + branch


@pytest.mark.parametrize("level", LEVELS)
def test_residual_folds_into_the_conv(level):
    model = randomized(Residual())
    gm, result = collapse(model, X, level=level)
    assert ops(gm) == {"conv": 1}
    assert result.counts["fold_residual"] == 1
    assert_equivalent(model, gm, X)


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("scale", [0.5, "per_channel"])
def test_scaled_branches_fold(level, scale):
    model = Residual(torch.linspace(0.5, 2.0, 8).reshape(8, 1, 1) if scale == "per_channel" else scale)
    model = randomized(model)
    gm, _ = collapse(model, X, level=level)
    assert ops(gm) == {"conv": 1}
    assert_equivalent(model, gm, X)


class Branches(nn.Module):
    """Summed branches of one input with configurable geometry."""

    def __init__(self, *convs: nn.Module, identity: bool = False):
        super().__init__()
        self.convs = nn.ModuleList(convs)
        self.identity = identity

    def forward(self, x):
        out = x if self.identity else 0
        for conv in self.convs:
            out = out + conv(x)
        return out


@pytest.mark.parametrize("level", LEVELS)
def test_grouped_and_dilated_branches_merge(level):
    model = randomized(Branches(nn.Conv2d(8, 8, 3, padding=1, groups=4), nn.Conv2d(8, 8, 3, padding=2, dilation=2,
                                                                                  groups=2),
                                nn.Conv2d(8, 8, 1, groups=8), identity=True))
    gm, _ = collapse(model, X, level=level, policy="always")
    assert ops(gm) == {"conv": 1}
    assert_equivalent(model, gm, X)


@pytest.mark.parametrize("level", LEVELS)
def test_depthwise_plus_dense_1x1_is_kept_by_default_and_merged_when_forced(level):
    model = randomized(Branches(nn.Conv2d(64, 64, 3, padding=1, groups=64), nn.Conv2d(64, 64, 1)))
    x = torch.randn(1, 64, 16, 16)
    gm, result = collapse(model, x, level=level)
    assert ops(gm)["conv"] == 2 and ops(gm)["add"] == 1  # only the `0 + ...` of the loop is gone
    assert "merge_branches" not in result.counts
    assert "cost" in reasons(result)
    forced, _ = collapse(model, x, level=level, force=frozenset({"*"}))
    assert ops(forced) == {"conv": 1}
    assert_equivalent(model, forced, x)


@pytest.mark.parametrize("level", LEVELS)
def test_stride_mismatch_is_refused_with_reason(level):
    class Mixed(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Conv2d(8, 8, 3, stride=2, padding=1)
            self.b = nn.Conv2d(8, 8, 1, stride=1)
            self.pool = nn.MaxPool2d(2)

        def forward(self, x):
            return self.a(x) + self.pool(self.b(x))

    model = randomized(Mixed())
    gm, result = collapse(model, X, level=level)
    assert ops(gm)["conv"] == 2
    assert_equivalent(model, gm, X)


@pytest.mark.parametrize("level", LEVELS)
def test_sequential_expandnets_collapse_to_one_conv(level):
    for block in (ExpandCL(8, 8, 3, padding=1), ExpandCK(8, 8, 5)):
        model = randomized(block)
        gm, result = collapse(model, X, level=level)
        assert ops(gm) == {"conv": 1}, type(block).__name__
        assert result.counts["compose_convs"] >= 1
        assert_equivalent(model, gm, X)


@pytest.mark.parametrize("level", LEVELS)
def test_low_rank_bottleneck_is_kept_as_two_convs(level):
    # exact to compose (only the first conv pads) but a 5x5 64 -> 64 costs far more than the two 3x3s
    model = randomized(nn.Sequential(ConvBN(64, 16), ConvBN(16, 64, padding=0)))
    x = torch.randn(1, 64, 16, 16)
    gm, result = collapse(model, x, level=level)
    assert ops(gm) == {"conv": 2}  # BatchNorms folded, 3x3 -> 3x3 not composed into a 5x5
    assert result.counts["fold_batchnorm"] == 2 and "compose_convs" not in result.counts
    assert "cost" in reasons(result)
    assert_equivalent(model, gm, x)


def _issue_examples(c):
    return [
        ("repvgg", lambda: RepVGGBlock(c, c, 3, padding=1), 1),
        ("low-rank", lambda: nn.Sequential(ConvBN(c, c // 4), ConvBN(c // 4, c, padding=0)), 2),
        ("expandnet", lambda: ExpandCL(c, c, 3, padding=1), 1),
        ("depthwise+1x1", lambda: Branches(nn.Conv2d(c, c, 3, padding=1, groups=c), nn.Conv2d(c, c, 1)), 2),
    ]


@pytest.mark.parametrize(("target", "channels", "size"), [(CostModel(), 64, 14), (CostModel(GPU), 128, 56)],
                         ids=["cpu", "gpu"])
def test_cost_model_decisions_for_the_issue_examples(target, channels, size):
    """RepVGG merges, low-rank stays, ExpandNet collapses, depthwise + dense stays (on the GPU see below).

    On a GPU tiny tensors are launch-bound (composing even a low-rank pair pays at 64x14x14), so the
    GPU case uses a realistic 128x56x56 feature map."""
    x = torch.randn(1, channels, size, size)
    for name, make, convs in _issue_examples(channels):
        if target.target.name == "gpu" and name == "depthwise+1x1":
            continue
        gm, result = collapse(randomized(make()), x, level="export", cost_model=target)
        assert ops(gm)["conv"] == convs, (target.target.name, name)
        assert result.decisions, "every decision is recorded with its estimates"


def test_gpu_cost_model_keeps_depthwise_and_dense_apart_once_multiplies_dominate():
    """On a GPU a depthwise conv is memory-bound and a dense 3x3 runs as Winograd, so merging a
    depthwise + 1x1 pair pays up to a few hundred channels at 14x14; at 1024 channels the dense
    3x3's extra multiplies dominate and the pair is kept."""
    for channels, convs in ((128, 1), (1024, 2)):
        x = torch.randn(1, channels, 14, 14)
        make = _issue_examples(channels)[3][1]
        gm, _ = collapse(randomized(make()), x, level="export", cost_model=CostModel(GPU))
        assert ops(gm)["conv"] == convs, channels


@pytest.mark.parametrize("level", ["export"])
def test_dbb_collapses_to_one_conv_and_zero_padding_variant_is_refused(level):
    model = randomized(DiverseBranchBlock(8, 8, 3, padding=1, use_act=False))
    gm = captured(model, X, level=level)
    from fxrep.passes import EvaluateConstantSubgraphs

    EvaluateConstantSubgraphs()(gm)
    CollapseLinearRegions()(gm)
    assert ops(gm) == {"conv": 1}
    assert_equivalent(model, gm, X)

    zero = randomized(DiverseBranchBlock(8, 8, 3, padding=1, pad_mode="zero", use_act=False))
    gm = captured(zero, X, level=level)
    EvaluateConstantSubgraphs()(gm)
    result = CollapseLinearRegions()(gm)
    assert ops(gm)["conv"] > 1
    assert "only padding with the bias is exact" in reasons(result)
    assert_equivalent(zero, gm, X)


@pytest.mark.parametrize("level", LEVELS)
def test_repmixer_residual_becomes_one_depthwise_conv(level):
    model = randomized(RepMixer(8))
    gm, _ = collapse(model, X, level=level)
    assert ops(gm) == {"conv": 1}
    assert_equivalent(model, gm, X)


@pytest.mark.parametrize("level", LEVELS)
def test_pad_and_avgpool_fold_into_conv_padding_and_kernel(level):
    class PadPool(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(8, 8, 1, bias=False)
            self.conv3 = nn.Conv2d(8, 8, 3)
            self.pool = nn.AvgPool2d(3, 1, 1)

        def forward(self, x):
            return self.conv3(F.pad(self.conv(x), (1, 1, 1, 1))) + self.pool(x)

    model = randomized(PadPool())
    gm, result = collapse(model, X, level=level)
    assert ops(gm) == {"conv": 1}  # no pad, no pool, no add left
    assert result.counts["fold_pad"] == 1 and result.counts["merge_branches"] == 1
    assert_equivalent(model, gm, X)


@pytest.mark.parametrize("level", LEVELS)
def test_concatenated_convs_of_one_input_become_one_conv(level):
    class Cat(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Conv2d(8, 4, 1), nn.Conv2d(8, 6, 3, padding=1)

        def forward(self, x):
            return torch.cat([self.a(x), self.b(x)], dim=1)

    model = randomized(Cat())
    gm, result = collapse(model, X, level=level)
    assert ops(gm) == {"conv": 1}
    assert result.counts["fold_concat"] == 1
    assert_equivalent(model, gm, X)


class SharedConv(nn.Module):
    """One conv read by two BatchNorms that end in different non-linearities."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)
        self.bn1, self.bn2 = nn.BatchNorm2d(channels), nn.BatchNorm2d(channels)

    def forward(self, x):
        y = self.conv(x)
        return torch.relu(self.bn1(y)), torch.sigmoid(self.bn2(y))


@pytest.mark.parametrize("level", LEVELS)
def test_a_shared_cheap_conv_is_recomputed_in_each_reader(level):
    """Where every op costs the same, a second conv (one op) beats two BatchNorms (two ops)."""
    model = randomized(SharedConv(8))
    gm, result = collapse(model, X, level=level, cost_model=CountingCost(per_op=1.0))
    assert ops(gm) == {"conv": 2, "relu": 1, "sigmoid": 1}
    assert result.counts["fold_batchnorm"] == 2
    assert "feeds 2 users" not in reasons(result)
    with torch.no_grad():
        for expected, actual in zip(model(X), gm(X), strict=True):
            torch.testing.assert_close(actual, expected)


@pytest.mark.parametrize("level", LEVELS)
def test_a_shared_expensive_conv_is_computed_once_with_the_reason(level):
    """Where multiply-accumulates dominate, recomputing the conv costs far more than two BatchNorms."""
    model = randomized(SharedConv(64))
    x = torch.randn(1, 64, 32, 32)
    gm, result = collapse(model, x, level=level, cost_model=CountingCost(per_op=1.0, per_mac=1.0))
    assert ops(gm)["conv"] == 1 and ops(gm)["batchnorm"] == 2
    assert "folding it in would cost" in reasons(result)
    with torch.no_grad():
        for expected, actual in zip(model(x), gm(x), strict=True):
            torch.testing.assert_close(actual, expected)


@pytest.mark.parametrize("level", LEVELS)
def test_batchnorm_with_batch_statistics_is_left_alone(level):
    model = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8, track_running_stats=False)).eval()
    gm, result = collapse(model, X, level=level)
    assert ops(gm)["batchnorm"] == 1
    assert "batch statistics" in reasons(result)
    assert_equivalent(model, gm, X)


@pytest.mark.parametrize("level", LEVELS)
def test_batchnorm_before_padded_conv_is_refused_when_shift_is_nonzero(level):
    model = randomized(nn.Sequential(nn.BatchNorm2d(8), nn.Conv2d(8, 8, 3, padding=1)))
    model = nn.Sequential(nn.ReLU(), model)
    gm, result = collapse(model, X, level=level)
    assert ops(gm)["batchnorm"] == 1
    assert "border value is its bias" in reasons(result)
    unpadded = nn.Sequential(nn.ReLU(), randomized(nn.Sequential(nn.BatchNorm2d(8), nn.Conv2d(8, 8, 3))))
    gm, _ = collapse(unpadded, X, level=level)
    assert ops(gm)["batchnorm"] == 0
    assert_equivalent(unpadded, gm, X)


@pytest.mark.parametrize("level", LEVELS)
def test_forbid_keeps_matching_modules(level):
    model = randomized(RepVGGBlock(8, 8, 3, padding=1))
    gm, result = collapse(model, X, level=level, forbid=frozenset({"rbr_1x1*"}))
    assert ops(gm)["conv"] == 2
    assert_equivalent(model, gm, X)


@pytest.mark.parametrize("level", LEVELS)
def test_collapse_is_idempotent(level):
    model = randomized(RepVGGBlock(8, 8, 3, padding=1))
    gm, first = collapse(model, X, level=level)
    code = gm.code
    second = CollapseLinearRegions()(gm)
    assert first.modified and not second.modified
    assert gm.code == code


@pytest.mark.parametrize("level", LEVELS)
def test_linear_bn1d_and_residual_collapse_to_one_linear(level):
    from fxrep.models import ResidualLinearBlock

    model = randomized(ResidualLinearBlock(16, 32))
    x = torch.randn(4, 16)
    gm, _ = collapse(model, x, level=level)
    assert ops(gm) == {"linear": 1}
    assert_equivalent(model, gm, x)
