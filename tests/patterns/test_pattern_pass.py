"""PatternPass: firing counts, refusals with reasons, idempotence, replacements in the graph's own form."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import fxrep
from fxrep import pass_api as api
from fxrep import patterns as P
from tests.helpers import LEVELS, assert_equivalent, captured, ops, randomized

X = torch.randn(2, 4, 8, 8)
aten = torch.ops.aten


class HandWrittenHardswish(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3, padding=1)

    def forward(self, x):
        y = self.conv(x)
        y = y * F.relu6(y + 3) / 6
        return torch.clamp(3 + y, 0, 6) * (y / 6)


FUSE_HARDSWISH = P.PatternPass(name="fuse_hardswish", pattern=lambda x: x * F.relu6(x + 3) / 6,
                               replacement=lambda x: F.hardswish(x))


@pytest.mark.parametrize("level", LEVELS)
def test_replacement_is_inlined_in_the_graphs_form_and_counted(level):
    model = randomized(HandWrittenHardswish())
    gm = captured(model, X, level=level)
    result = FUSE_HARDSWISH(gm)
    assert result.modified and result.counts == {"fuse_hardswish": 2}
    assert ops(gm)["hardswish"] == 2 and ops(gm)["mul"] == 0 and ops(gm)["div"] == 0
    targets = {n.target for n in gm.graph.nodes if n.op == "call_function"}
    assert (aten.hardswish.default in targets) == (level == "export")
    assert (F.hardswish in targets) == (level == "symbolic_trace")
    assert_equivalent(model, gm, X)


def test_replacement_keeps_a_dynamic_batch():
    model = randomized(HandWrittenHardswish())
    gm = fxrep.optimize(model, (X,), passes=[FUSE_HARDSWISH], dynamic_batch=True)
    assert fxrep.report_of(gm).fired("fuse_hardswish") == {"fuse_hardswish": 2}
    bigger = torch.randn(5, 4, 8, 8)
    torch.testing.assert_close(gm(bigger), model(bigger))


@pytest.mark.parametrize("level", LEVELS)
def test_second_run_changes_nothing(level):
    gm = captured(randomized(HandWrittenHardswish()), X, level=level)
    FUSE_HARDSWISH(gm)
    code = gm.code
    again = FUSE_HARDSWISH(gm)
    assert not again and not again.counts and not again.refusals
    assert gm.code == code


class Affine(nn.Module):
    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.rand(4, 1, 1))
        self.shift = nn.Parameter(torch.rand(4, 1, 1))

    def forward(self, x):
        return self.shift + torch.relu(x) * self.scale


@pytest.mark.parametrize("level", LEVELS)
def test_replacement_receives_constants_as_frozen_parameters(level):
    fuse = P.PatternPass(name="addcmul", pattern=lambda x, a, b: x * P.constant(a) + P.constant(b),
                         replacement=lambda x, a, b: torch.addcmul(b, x, a))
    model = Affine().eval()
    gm = captured(model, X, level=level)
    assert fuse(gm).counts == {"addcmul": 1}
    assert ops(gm)["mul"] == 0 and ops(gm)["add"] == 0
    assert all(not p.requires_grad for p in gm.parameters())
    assert_equivalent(model, gm, X)


def fold_scale(match, rewriter):
    conv = api.Conv.from_node(match["conv"])
    gamma = torch.as_tensor(match["gamma"], dtype=torch.float64)
    if gamma.numel() not in (1, conv.out_channels):
        return api.Match.fail(f"gamma has {gamma.numel()} values")
    scale = gamma.reshape(-1).expand(conv.out_channels)
    folded = api.compose(api.diagonal_map(scale, None, conv.nd), conv.conv_map())
    return rewriter.conv(conv.input, folded, like=match.root, path=api.module_path_of(conv.node),
                         dtype=conv.weight.dtype, device=conv.weight.device)


FOLD_SCALE = P.PatternPass(name="fold_scale", pattern=lambda x, w, gamma: P.named("conv", F.conv2d(x, w))
                           * P.constant(gamma), rewrite=fold_scale)


class ScaledConvs(nn.Module):
    """Four scaled convs: one folds, one feeds a second user, one has a run-time kernel, one is not a conv."""

    def __init__(self):
        super().__init__()
        self.fold = nn.Conv2d(4, 4, 3, padding=1)
        self.shared = nn.Conv2d(4, 4, 1)
        self.gamma = nn.Parameter(torch.rand(4, 1, 1))

    def forward(self, x, kernel):
        folds = self.gamma * self.fold(x)
        shared = self.shared(x)
        dynamic = F.conv2d(x, kernel) * self.gamma
        not_conv = torch.relu(x) * self.gamma
        return folds, shared * self.gamma + shared, dynamic, not_conv


@pytest.mark.parametrize("level", LEVELS)
def test_rewrite_callback_fires_and_near_misses_are_refused_with_reasons(level):
    model = ScaledConvs().eval()
    inputs = (X, torch.randn(4, 4, 1, 1))
    gm = captured(model, *inputs, level=level)
    result = FOLD_SCALE(gm)
    assert result.counts == {"fold_scale": 1}
    reasons = [refusal.reason for refusal in result.refusals]
    assert len(reasons) == 2, reasons
    assert any("computed from a graph input at run time" in reason for reason in reasons)
    assert any("feeds 2 users" in reason and "outside the match" in reason for reason in reasons)
    assert ops(gm)["mul"] == 3
    with torch.no_grad():
        torch.testing.assert_close(gm(*inputs), model(*inputs))


@pytest.mark.parametrize("level", LEVELS)
def test_rewrite_and_check_can_refuse(level):
    original = captured(ScaledConvs().eval(), X, torch.randn(4, 4, 1, 1), level=level)

    def refuse(match, rewriter):
        return api.Match.fail("not today")

    def not_exact(match, rewriter):
        raise api.NotExact("the algebra says no")

    for name, options, reason in [
        ("rewrite-fails", {"rewrite": refuse}, "not today"),
        ("rewrite-not-exact", {"rewrite": not_exact}, "the algebra says no"),
        ("check-false", {"rewrite": fold_scale, "check": lambda match: False}, "check refused"),
        ("check-fails", {"rewrite": fold_scale, "check": lambda match: api.Match.fail("too small")}, "too small"),
    ]:
        gm = copy.deepcopy(original)
        result = P.PatternPass(name=name, pattern=FOLD_SCALE.pattern, **options)(gm)
        assert not result.modified, name
        assert any(reason in r.reason for r in result.refusals), (name, result.refusals)


@pytest.mark.parametrize("level", LEVELS)
def test_rewrite_must_return_a_node(level):
    gm = captured(ScaledConvs().eval(), X, torch.randn(4, 4, 1, 1), level=level)
    with pytest.raises(TypeError, match="must return the node"):
        P.PatternPass(name="bad", pattern=FOLD_SCALE.pattern, rewrite=lambda match, rewriter: 3)(gm)


class RepBlock(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv3 = nn.Conv2d(4, 4, 3, padding=1)
        self.conv1 = nn.Conv2d(4, 4, 1)

    def forward(self, x):
        return torch.relu((x + self.conv1(x)) + self.conv3(x))


def merge_branches(match, rewriter):
    convs = [api.Conv.from_node(branch.node) for branch in match["branches"]]
    merged = api.sum_maps([conv.conv_map() for conv in convs] + [api.identity_map(convs[0].out_channels, 2)])
    return rewriter.conv(match["x"], merged, like=match.root, path=rewriter.module_path(match.nodes),
                         dtype=convs[0].weight.dtype, device=convs[0].weight.device)


@pytest.mark.parametrize("level", LEVELS)
def test_largest_match_wins(level):
    model = randomized(RepBlock())
    gm = captured(model, X, level=level)
    merge = P.PatternPass(name="merge", pattern=lambda x: x + P.sum_of(lambda x, w: F.conv2d(x, w), x),
                          rewrite=merge_branches)
    assert merge(gm).counts == {"merge": 1}
    assert ops(gm)["conv"] == 1 and ops(gm)["add"] == 0
    assert_equivalent(model, gm, X)


class Erf(torch.nn.Module):
    def forward(self, x):
        return torch.erf(x / 2) + torch.exp(x / 2)


@pytest.mark.parametrize("level", LEVELS)
def test_a_torch_function_in_a_pattern_matches_its_aten_form_and_nothing_else(level):
    """``torch.erf`` in the pattern matches ``aten.erf.default`` in an export graph; ``torch.exp`` does not."""
    halve_erf = P.PatternPass(name="erf_half", pattern=lambda x: torch.erf(x / 2),
                              replacement=lambda x: torch.erf(x * 0.5))
    model = Erf()
    gm = captured(model, X, level=level)
    result = halve_erf(gm)
    assert result.counts == {"erf_half": 1}
    assert ops(gm)["div"] == 1 and ops(gm)["mul"] == 1  # only the erf branch was rewritten
    assert_equivalent(model, gm, X)
