"""What each mode of the GPU benchmark plans to measure, and the budget that keeps a run inside its slot."""

from __future__ import annotations

import time

import op_set
import pytest
from plan import Budget, make_plan


def test_full_plan_measures_what_the_issue_asks() -> None:
    plan = make_plan("full", "cuda")
    assert plan.size == 224 and plan.suffix == ""
    assert set(plan.model_configs) == {(network, dtype, batch) for network in ("RepVGG-A0", "MobileOne-S0")
                                       for dtype in ("fp32", "fp16") for batch in (1, 32)}
    assert {(network, batch) for network, _, batch in plan.compile_configs} == {
        (network, batch) for network in ("RepVGG-A0", "MobileOne-S0") for batch in (1, 32)}
    assert plan.op_scale == "full" and set(plan.op_dtypes) == {"fp16", "fp32"}
    assert plan.budget_seconds < 300  # the whole run under 5 minutes, start-up included
    assert plan.model_timing.rounds >= 20 and plan.model_timing.warmup >= 1


def test_quick_and_dry_run_plans_are_smaller_versions_of_the_same_sections() -> None:
    full, quick, dry = make_plan("full", "cuda"), make_plan("quick", "cuda"), make_plan("dry-run", "cpu")
    assert 0 < quick.budget_seconds < 60 and quick.suffix == "_quick"
    for smaller in (quick, dry):
        assert smaller.model_configs and smaller.compile_configs and smaller.op_dtypes
        assert {n for n, _, _ in smaller.model_configs} == {"RepVGG-A0", "MobileOne-S0"}
        assert len(op_set.op_specs(smaller.op_scale)) < len(op_set.op_specs(full.op_scale))
    assert dry.suffix == "_dry_run" and dry.size < full.size and dry.model_timing.rounds < full.model_timing.rounds
    assert {dtype for _, dtype, _ in dry.model_configs} == {"fp32", "fp16"}  # both dtype paths run on the CPU
    assert make_plan("full", "cuda", budget_seconds=12.0).budget_seconds == 12.0
    with pytest.raises(ValueError):
        make_plan("long", "cuda")


def test_budget_counts_down() -> None:
    budget = Budget(0.05)
    assert budget.allows(0.01) and not budget.allows(1.0)
    time.sleep(0.06)
    assert budget.left() < 0 and not budget.allows(0.0) and budget.elapsed() >= 0.05
