"""Property-based fuzzing: random DAG models never yield a wrong optimized model.

Hypothesis draws random programs (`tests.fuzz.random_dags`): convs of every geometry fxrep knows,
BatchNorm, per-channel / scalar / spatial constants, multi-branch sums in random association,
residuals, concatenations, average pools, pads, conv chains, non-linearities, shared values and
second outputs, in 1-D / 2-D / 3-D. For every example (`check_program`):

- `fxrep.optimize` either returns a module whose outputs equal the original's within the dtype
  tolerance on the example input and on fresh random inputs (checked here, independently of fxrep's
  verifier), or raises a documented `FxrepError` that is not a defect (`CaptureError`,
  `InvalidModelError`; a `PassError` is a pass crashing and an `EquivalenceError` is a wrong rewrite
  caught by the verifier, both bugs; in half precision an `EquivalenceError` whose rewrite float64
  shows exact is rounding and accepted);
- it is idempotent: optimizing the returned GraphModule again fires no rule and changes no op count;
- no applied cost decision has ``after > before`` (1e-9 relative slack);
- the conv count does not grow, for programs without concatenations, average pools, pads and
  channel slices (each of those may legitimately become a conv).

The deterministic tests at the end pin the bugs the sweep found.

A failure prints the program (``Program.describe()``) and its JSON; `benchmarks/fuzz_sweep.py
--replay` re-runs a saved one.
"""

from __future__ import annotations

import random

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

import fxrep
from fxrep.models import randomize_
from tests.fuzz.random_dags import (
    DrawChooser,
    Outcome,
    Program,
    RandomChooser,
    check_program,
    relative_error,
    sample_program,
)

FAST = [("float32", 4), ("float64", 1)]
ALL = [("float32", 8), ("float64", 2), ("bfloat16", 1), ("float16", 1)]


# A known bug can be left out of the random programs (so that these tests stay green and catch new bugs)
# while a strict xfail test pins it: INPLACE = False leaves out in-place ops, SKIP names unusual ops
# (`_Builder.odd` kinds, e.g. "linear_last"). benchmarks/fuzz_sweep.py always samples everything.
INPLACE = True
SKIP: tuple[str, ...] = ()


@st.composite
def programs(draw, dtypes=tuple(FAST), max_steps: int = 5) -> tuple[Program, int]:
    program = sample_program(DrawChooser(draw), max_steps=max_steps, dtypes=list(dtypes), inplace=INPLACE,
                             skip=SKIP)
    return program, draw(st.integers(0, 2**16))


def assert_no_bug(program: Program, seed: int, outcome: Outcome) -> None:
    assert outcome.status in ("exact", "documented", "equivalence") and not outcome.is_bug, (
        f"{outcome.status}: {outcome.error}: {outcome.reason}\n\nprogram (seed {seed}):\n{program.describe()}\n\n"
        f"json: {program.to_json()}\n\n{outcome.detail}"
    )


def fuzz(max_examples: int) -> settings:
    return settings(max_examples=max_examples, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@fuzz(60)
@given(programs())
def test_random_dags_at_module_level(case):
    program, seed = case
    assert_no_bug(program, seed, check_program(program, seed, "symbolic_trace"))


@fuzz(8)
@given(programs(max_steps=4))
def test_random_dags_at_aten_level(case):
    program, seed = case
    assert_no_bug(program, seed, check_program(program, seed, "export"))


@pytest.mark.parametrize("seed", range(24))
def test_sampled_dags(seed):
    """Plain seeded sampling, as the sweep does: more varied programs than hypothesis' (which shrink better)."""
    program = sample_program(RandomChooser(random.Random(10_000 + seed)), inplace=INPLACE, skip=SKIP)
    assert_no_bug(program, seed, check_program(program, seed, "export" if seed % 6 == 0 else "symbolic_trace"))


@pytest.mark.slow
@fuzz(80)
@given(programs(dtypes=tuple(ALL), max_steps=8), st.sampled_from(["symbolic_trace", "symbolic_trace", "export"]))
def test_random_dags_deep_all_dtypes_both_levels(case, capture_method):
    program, seed = case
    assert_no_bug(program, seed, check_program(program, seed, capture_method))


class _InPlaceAfterLinearRegion(nn.Module):
    """``y = a(x) + c(x); y.mul_(2); return b(y)``: b reads the mutated y."""

    def __init__(self, inplace_relu: bool = False):
        super().__init__()
        self.a, self.c, self.b = nn.Conv2d(4, 4, 3, padding=1), nn.Conv2d(4, 4, 1), nn.Conv2d(4, 4, 1)
        self.bn = nn.BatchNorm2d(4)
        self.relu = nn.ReLU(inplace=True) if inplace_relu else None

    def forward(self, x):
        y = self.a(x) + self.c(x)
        if self.relu is not None:
            self.relu(y)  # mutates y; the returned alias is not used
        else:
            y.mul_(2.0)
        return self.bn(self.b(y))


@pytest.mark.parametrize("inplace_relu", [False, True])
def test_inplace_mutation_survives_at_module_level(inplace_relu):
    """Found by the sweep (seeds 397, 1333, 1348, 1451): the Rewriter's dead-code elimination dropped an in-place
    op whose result was unused (torch.fx counts call_method / modules as pure), then folded the mutated tensor."""
    model = randomize_(_InPlaceAfterLinearRegion(inplace_relu), 0).eval()
    x = torch.randn(1, 4, 8, 8)
    gm = fxrep.optimize(model, x, capture_method="symbolic_trace", verify=False)
    with torch.no_grad():
        assert relative_error(model(x), gm(x)) <= 1e-5


@pytest.mark.parametrize("second", ["linear", "scale", "layer_scale"])
def test_linear_on_tokens_followed_by_a_linear_op(second):
    """Found by the sweep (seed 445): the cost estimate read an (N, L, C) tensor's size as shape[2:] for a Linear
    (0-d) map, and ConvMap.output_size raised inside collapse_linear_regions (PassError)."""
    class Tokens(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(8, 8), nn.Linear(8, 8)
            self.gamma = nn.Parameter(torch.rand(8) + 0.5)

        def forward(self, x):  # x: (N, L, C) tokens
            y = self.a(x)
            if second == "linear":
                return self.b(y)
            return y * 0.125 if second == "scale" else y * self.gamma  # attention's q scale, LayerScale

    model = randomize_(Tokens(), 0).eval()
    x = torch.randn(2, 5, 8)
    gm = fxrep.optimize(model, x)
    with torch.no_grad():
        assert relative_error(model(x), gm(x)) <= 1e-5


def test_region_reading_a_replaced_exit_does_not_duplicate_it():
    """Found by the sweep (seed 1974, export): a region rewritten in the same pass as the region whose exit it reads
    emitted its conv on the stale exit node, keeping the old conv + add alive next to their folded copy (3 -> 4)."""

    class Shared(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Conv2d(2, 2, 3, padding=1, groups=2)
            self.c = nn.Conv2d(2, 8, (1, 3), padding=(0, 1), groups=2)
            self.s = nn.Parameter(torch.rand(8, 1, 1) + 0.5)
            self.d = nn.Conv2d(8, 16, (3, 1), padding=(1, 0), groups=2, bias=False)

        def forward(self, x):
            y = x + self.a(x)  # one conv, read by both branches below
            return self.d(self.c(y) * self.s), (x + y) * 2.0

    model = randomize_(Shared(), 0).eval().double()
    x = torch.randn(1, 2, 9, 7, dtype=torch.float64)
    gm = fxrep.optimize(model, x)
    report = gm.fxrep_report
    assert report.verification.passed
    assert report.ops_after["conv"] <= report.ops_before["conv"], str(report)


@pytest.mark.parametrize("level", ["symbolic_trace", "export"])
def test_batchnorm_after_a_linear_on_the_last_dim_is_not_merged_into_it(level):
    """Found by the sweep (seed 2220, export): a Linear on the last dim of an (N, C, L) tensor followed by a
    BatchNorm1d on C: the BN's per-channel scale (C values) was applied to the Linear's L features (PassError)."""

    class LinearThenBatchNorm(nn.Module):
        def __init__(self):
            super().__init__()
            self.linear, self.bn, self.conv = nn.Linear(5, 5), nn.BatchNorm1d(2), nn.Conv1d(2, 2, 1)

        def forward(self, x):  # x: (N, 2, 5)
            y = self.linear(x)
            return self.bn(y) + self.conv(y)

    model = randomize_(LinearThenBatchNorm(), 0).eval()
    x = torch.randn(2, 2, 5)
    gm = fxrep.optimize(model, x, capture_method=level)
    with torch.no_grad():
        assert relative_error(model(x), gm(x)) <= 1e-5
