"""Per-channel affines through layout ops: `AffineValue.relayout` against torch, and the pass on token layouts
(LeViT's LinearNorm, NextViT's pre-norm before a token Linear), the negative cases, summed Linear heads."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from fxrep.passes import CollapseLinearRegions, default_pipeline
from torch import nn

from fxrep.affine.value import AffineValue
from fxrep.algebra import NotExact, linear_map
from fxrep.models import LinearNorm, NormLinear, randomize_
from fxrep.ops import Layout
from fxrep.pass_manager import PassManager
from tests.helpers import LEVELS, assert_equivalent, captured, ops, randomized


def _apply(value: AffineValue, tensors: dict) -> torch.Tensor:
    """An AffineValue on real tensors: each source through its layout steps, its map along the channel axis."""
    total = 0
    for source, conv in value.terms:
        x = tensors[source.node]
        for step in source.layout:
            x = x.permute(step.permutation) if step.kind == "permute" else x.reshape(step.dims)
        channel = 1 if value.channel_dim == 1 else x.dim() - 1
        moved = x.movedim(channel, -1)
        y = F.linear(moved, conv.weight.reshape(conv.out_channels, -1).to(x.dtype)) if not conv.is_diagonal else \
            moved * conv.weight.reshape(-1).to(x.dtype)
        total = total + y.movedim(-1, channel)
    shape = [1] * total.dim()
    shape[1 if value.channel_dim == 1 else -1] = -1
    return total + value.bias.to(total.dtype).reshape(shape)


class _Reshapes(nn.Module):
    def forward(self, x):
        y = x.flatten(0, 1)
        return y.reshape(x.shape[0], x.shape[1], -1).transpose(1, 2), x.view(x.shape[0], x.shape[1], 2, -1)


def _layout_views():
    x = torch.randn(2, 5, 6, dtype=torch.float64)
    gm = torch.fx.symbolic_trace(_Reshapes())
    from fxrep.shapes import propagate_shapes

    propagate_shapes(gm, (x,))
    views = {n.name: Layout.from_node(n) for n in gm.graph.nodes if Layout.from_node(n) is not None}
    return gm, x, views


def test_relayout_moves_a_linear_onto_its_source_and_matches_torch():
    gm, x, views = _layout_views()
    placeholder = next(n for n in gm.graph.nodes if n.op == "placeholder")
    w, b = torch.randn(6, 6, dtype=torch.float64), torch.randn(6, dtype=torch.float64)
    value = AffineValue.of_source(placeholder, 6, 0, -1).then(linear_map(w, b), lambda s: None)
    flat = value.relayout(views["flatten"])
    assert flat.channel_dim == 1 and flat.terms[0][0].layout  # (B*N, C): channels on axis 1
    torch.testing.assert_close(_apply(flat, {placeholder: x}), F.linear(x, w, b).flatten(0, 1))
    back = flat.relayout(views["reshape"])
    assert back.terms[0][0].layout == ()  # flatten then reshape back: the source itself
    torch.testing.assert_close(_apply(back, {placeholder: x}), F.linear(x, w, b))
    swapped = back.relayout(views["transpose"])
    assert swapped.channel_dim == 1 and swapped.nd == 1
    torch.testing.assert_close(_apply(swapped, {placeholder: x}), F.linear(x, w, b).transpose(1, 2))


def test_relayout_refuses_to_split_the_channel_axis():
    gm, _, views = _layout_views()
    placeholder = next(n for n in gm.graph.nodes if n.op == "placeholder")
    value = AffineValue.of_source(placeholder, 6, 0, -1).scale(torch.linspace(1, 2, 6))
    with pytest.raises(NotExact, match="splits the channel axis"):
        value.relayout(views["view"])


@pytest.mark.parametrize("level", LEVELS)
def test_linear_norm_becomes_one_linear(level):
    """LeViT: Linear -> flatten(0, 1) -> BatchNorm1d -> reshape_as: the BN folds into the Linear."""
    model = randomized(nn.Sequential(LinearNorm(16, 32), nn.Hardswish(), LinearNorm(32, 8)))
    x = torch.randn(2, 7, 16)
    gm = captured(model, x, level=level)
    PassManager(default_pipeline()).run(gm)
    assert ops(gm)["linear"] == 2 and ops(gm)["batchnorm"] == 0
    assert ops(gm).get("flatten", 0) == 0 and ops(gm).get("reshape_as", 0) == 0
    assert_equivalent(model, gm, x)


@pytest.mark.parametrize("level", LEVELS)
def test_a_batchnorm_before_a_linear_folds_into_it(level):
    """NormLinear: BatchNorm1d -> Dropout -> Linear on (N, C): W' = W diag(a), b' = b + W c."""
    model = randomized(nn.Sequential(nn.Linear(12, 12), nn.ReLU(), NormLinear(12, 5)))
    x = torch.randn(4, 12)
    gm = captured(model, x, level=level)
    PassManager(default_pipeline()).run(gm)
    assert ops(gm)["linear"] == 2 and ops(gm)["batchnorm"] == 0 and ops(gm).get("identity", 0) == 0
    assert_equivalent(model, gm, x)


class PreNormTokens(nn.Module):
    """NextViT's NTB: BatchNorm2d, then `b c h w -> b (h w) c`, then a Linear on the tokens."""

    def __init__(self, channels=8):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)
        self.norm = nn.BatchNorm2d(channels)
        self.q = nn.Linear(channels, 16)

    def forward(self, x):
        y = torch.relu(self.conv(x))
        tokens = self.norm(y).flatten(2).transpose(1, 2)
        return torch.relu(self.q(tokens))


@pytest.mark.parametrize("level", LEVELS)
def test_a_batchnorm_folds_through_flatten_and_transpose_into_a_token_linear(level):
    model = randomized(PreNormTokens())
    x = torch.randn(2, 8, 6, 6)
    gm = captured(model, x, level=level)
    result = CollapseLinearRegions()(gm)
    assert ops(gm)["batchnorm"] == 0 and ops(gm)["linear"] == 1
    assert result.counts["see_through_layout"] >= 2
    assert_equivalent(model, gm, x)


class WrongAxis(nn.Module):
    """A reshape that splits the channel axis, then a BatchNorm over what is no longer the channel axis."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(8, 8)
        self.bn = nn.BatchNorm1d(4)

    def forward(self, x):
        y = self.linear(x)  # (N, L, 8)
        z = y.view(y.shape[0], y.shape[1], 4, 2).flatten(0, 1)  # (N * L, 4, 2): the 8 channels split
        return torch.relu(self.bn(z))


@pytest.mark.parametrize("level", LEVELS)
def test_a_reshape_that_splits_the_channel_axis_is_refused_with_the_reason(level):
    model = randomized(WrongAxis())
    x = torch.randn(2, 3, 8)
    gm = captured(model, x, level=level)
    result = CollapseLinearRegions()(gm)
    assert ops(gm)["batchnorm"] == 1
    assert any("splits the channel axis" in r.reason for r in result.refusals)
    assert_equivalent(model, gm, x)


class TwoHeads(nn.Module):
    """LeViT's distillation pair at inference: (head(x) + head_dist(x)) / 2."""

    def __init__(self):
        super().__init__()
        self.head, self.head_dist = NormLinear(16, 10), NormLinear(16, 10)

    def forward(self, x):
        x = torch.relu(x)
        return (self.head(x) + self.head_dist(x)) / 2


@pytest.mark.parametrize("level", LEVELS)
def test_summed_linear_heads_of_one_input_become_one_linear(level):
    model = randomize_(TwoHeads(), 0).eval()
    x = torch.randn(4, 16)
    gm = captured(model, x, level=level)
    PassManager(default_pipeline()).run(gm)
    assert ops(gm)["linear"] == 1 and ops(gm)["batchnorm"] == 0 and ops(gm).get("add", 0) == 0
    assert_equivalent(model, gm, x)


class PooledHead(nn.Module):
    """A BatchNorm before global pooling and an adaptive pool to 2x2, then Linear heads."""

    def __init__(self):
        super().__init__()
        self.bn = nn.BatchNorm2d(8)
        self.pool = nn.AdaptiveAvgPool2d(2)
        self.fc = nn.Linear(8, 5)

    def forward(self, x):
        y = self.bn(torch.relu(x))
        return self.fc(y.mean((2, 3))), torch.relu(self.pool(y))


@pytest.mark.parametrize("level", LEVELS)
def test_a_batchnorm_folds_through_global_pooling_into_the_head(level):
    model = randomized(PooledHead())
    x = torch.randn(2, 8, 8, 8)
    gm = captured(model, x, level=level)
    PassManager(default_pipeline()).run(gm)
    with torch.no_grad():
        for expected, actual in zip(model(x), gm(x), strict=True):
            torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-5)
    # the head's Linear absorbed the BatchNorm through the mean; the 2x2 branch keeps its own
    assert ops(gm)["linear"] == 1 and ops(gm).get("batchnorm", 0) <= 1


def test_an_adaptive_pool_to_a_divisible_size_is_an_average_pool_only_where_sizes_are_guarded():
    from fxrep.affine import GraphShapes, evaluate_region, find_regions

    model = randomized(nn.Sequential(nn.Conv2d(4, 4, 1), nn.AdaptiveAvgPool2d(2)))
    x = torch.randn(1, 4, 8, 8)
    for level, folds in (("export", True), ("symbolic_trace", False)):
        gm = captured(model, x, level=level)
        (region,) = find_regions(gm).regions
        if folds:
            value = evaluate_region(region, (), GraphShapes.of(gm)).values[region.exit]
            assert value.terms[0][1].kernel_size == (4, 4) and value.terms[0][1].stride == (4, 4)
        else:
            with pytest.raises(NotExact, match="not a static multiple"):
                evaluate_region(region, (), GraphShapes.of(gm))


class TokenScale(nn.Module):
    """LeViT's residual scale: (batch, tokens, C) tokens times a (C,) vector, the channels on the last dim."""

    def __init__(self, channels: int = 8):
        super().__init__()
        self.linear = nn.Linear(channels, channels)
        self.scale = nn.Parameter(torch.randn(channels))

    def forward(self, x):
        return torch.relu(self.linear(torch.relu(x)) * self.scale)


@pytest.mark.parametrize("level", LEVELS)
def test_a_token_tensor_scaled_along_its_last_dim_folds_into_its_linear(level):
    """The (C,) constant is one number per channel of the last dim, not of dim 1 (5 tokens != 8 channels)."""
    model = TokenScale().eval()
    x = torch.randn(2, 5, 8)
    gm = captured(model, x, level=level)
    PassManager(default_pipeline()).run(gm)
    assert ops(gm)["linear"] == 1 and ops(gm).get("mul", 0) == 0, ops(gm)
    assert_equivalent(model, gm, x)
    code = gm.code
    PassManager(default_pipeline()).run(gm)
    assert gm.code == code  # idempotent: the second run finds nothing to do


class OpaqueTokensScaled(nn.Module):
    """An opaque (batch, 5, 8) token tensor (a matmul) times a (8,) vector, and a (1, 8, 1) one on (b, 8, 5)."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.randn(8))
        self.column = nn.Parameter(torch.randn(1, 8, 1))

    def forward(self, x):
        tokens = x @ x.transpose(1, 2) @ x
        return tokens * self.scale, tokens.transpose(1, 2) * self.column


@pytest.mark.parametrize("level", LEVELS)
def test_a_pointwise_constant_says_which_axis_holds_the_channels(level):
    """LeViT: a scale of shape (C,) on (batch, N, C) reads channels on the last dim (N != C); a (1, C, 1)
    scale on (batch, C, N) reads them on dim 1, as the recorded layout says."""
    from fxrep.affine import affine_op

    gm = captured(OpaqueTokensScaled(), torch.randn(2, 5, 8), level=level)
    by_scale, by_column = (n for n in gm.graph.nodes if n.op == "call_function" and "mul" in str(n.target)
                           and any(arg.op == "get_attr" for arg in n.all_input_nodes))
    assert affine_op(by_scale).value.input_layout(0) == (8, 0, -1)
    assert affine_op(by_column).value.input_layout(0) == (8, 1, 1)
