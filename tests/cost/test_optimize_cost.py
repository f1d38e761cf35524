"""``fxrep.optimize(cost=..., timing_cache=...)``: measured mode decides, and the same cache decides the same."""

from __future__ import annotations

import pytest
import torch
from fxrep.passes import CollapseLinearRegions, FuseHorizontalConvs, default_pipeline
from torch import nn

import fxrep
from fxrep.cost import GPU, CostModel, MeasuredCostModel, TimingCache, TimingCacheError
from fxrep.errors import InvalidModelError
from fxrep.models import ACBlock, RepVGGBlock, randomize_
from fxrep.report import count_ops


def small_net() -> nn.Module:
    """RepVGG and ACNet blocks on tiny tensors (fast to capture, verify and time)."""
    return randomize_(nn.Sequential(RepVGGBlock(4, 8, stride=2), RepVGGBlock(8, 8), ACBlock(8, 8)), 0).eval()


X = torch.randn(1, 4, 12, 12)


def decisions(gm: torch.fx.GraphModule) -> list[tuple[str, bool, float, float]]:
    """Every cost decision: the node, whether it was applied, and the two estimates it compared."""
    return [(d.node, d.applied, d.before, d.after) for summary in gm.fxrep_report.passes for d in summary.decisions]


class NoTiming:
    """A timer that must not be called: every op should come from the cache."""

    def __call__(self, run, device):
        raise AssertionError("an op was re-timed although the timing cache has it")


def test_measured_mode_with_a_cache_file_makes_identical_decisions_on_a_second_run(tmp_path):
    path = tmp_path / "timings.json"
    first = fxrep.optimize(small_net(), X, cost="measure", timing_cache=path)
    entries = dict(TimingCache.load(path).items())
    assert entries, "the first run timed the ops its decisions compared and wrote them"
    assert any("measured cost" in note for note in first.fxrep_report.notes)

    again = MeasuredCostModel(path, timer=NoTiming(), device="cpu", dtype=torch.float32)
    second = fxrep.optimize(small_net(), X, passes=default_pipeline(cost_model=again))
    assert decisions(second) == decisions(first) and decisions(first)
    assert count_ops(second) == count_ops(first)
    assert again.timed == [] and again.reused
    assert dict(TimingCache.load(path).items()) == entries, "a run that timed nothing leaves the cache as it was"

    third = fxrep.optimize(small_net(), X, cost="measure", timing_cache=path)
    assert decisions(third) == decisions(first)


def test_cost_accepts_analytic_and_any_cost_model():
    analytic = fxrep.optimize(small_net(), X, cost="analytic")
    default = fxrep.optimize(small_net(), X)
    assert decisions(analytic) == decisions(default)
    asked = []

    class Recording(CostModel):
        def seconds(self, signature):
            asked.append(signature)
            return super().seconds(signature)

    gpu = fxrep.optimize(small_net(), X, cost=Recording(GPU))
    assert asked and gpu.fxrep_report.verification.passed


def test_the_default_pipeline_gives_both_cost_driven_passes_the_cost_model():
    model = MeasuredCostModel()
    passes = default_pipeline(cost_model=model)
    costed = [p for p in passes if isinstance(p, CollapseLinearRegions | FuseHorizontalConvs)]
    assert len(costed) == 2 and all(p.cost_model is model for p in costed)
    defaults = [p for p in default_pipeline() if isinstance(p, CollapseLinearRegions | FuseHorizontalConvs)]
    assert len(defaults) == 2 and all(p.cost_model == CostModel() for p in defaults)


@pytest.mark.parametrize(("options", "message"), [
    (dict(cost="measure", passes=[]), "cannot be combined with passes="),
    (dict(timing_cache="t.json", passes=[]), "cannot be combined with passes="),
    (dict(cost="fastest"), "unknown cost 'fastest'"),
    (dict(cost="analytic", timing_cache="t.json"), "only used with cost='measure'"),
    (dict(cost=42), "cost must be"),
])
def test_bad_cost_options_are_clear_errors(options, message):
    with pytest.raises(InvalidModelError, match=message):
        fxrep.optimize(small_net(), X, **options)


def test_an_unusable_timing_cache_is_reported_before_anything_runs(tmp_path):
    path = tmp_path / "timings.json"
    path.write_text("[1, 2]")
    with pytest.raises(TimingCacheError, match="not an fxrep timing cache"):
        fxrep.optimize(small_net(), X, cost="measure", timing_cache=path)
