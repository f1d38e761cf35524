"""The CPU cost models against measured time: single-op calibration, then >= 300 collapse decisions.

Part 1 - calibration. The single-op set of ``benchmarks/op_set.py`` (dense 1x1 / 3x3 / 3x3 stride 2 /
5x5 / 7x7, depthwise 3x3 / 3x3 stride 2 / 7x7, grouped 3x3 below and above 16 channels per group,
1x1 expansions and reductions, avg-pool 3x3, add, per-channel mul and addcmul, ReLU, inference batch
norm; C in 8..512, H in 7..112, batch 1 and 8; ops above ``--max-gmacs`` left out), run as NCHW
contiguous float32 ATen calls (what fxrep's CPU graphs run), every op of one thread count interleaved
in every round (``_timing.py``). The constants of `fxrep.cost.Target` are fitted by least squares in
log space - minimise sum(log(estimate / measured)^2), relative errors, over- and under-estimates
alike - where the estimate is `fxrep.cost.CostModel.seconds` itself (the fit builds a `Target` from
its parameters and asks the model, so the fitted formula is exactly the shipped one; positive
constants, fitted as logarithms, started from the shipped ones). Two forms are fitted:

- "per-kind": every constant of `Target` (MAC rate per conv kind, fixed cost per op kind, the
  narrow-channel penalty, a grouped conv's per-output cost, the pool rate, fresh-page and addcmul
  terms; see ``fxrep/cost/targets.py``);
- "one fixed cost": the original five (one MAC rate, grouped rate, bandwidth, ONE fixed cost per op,
  Winograd factor), to show what the per-kind form buys.

Fit quality is median / 90th percentile / max of |estimate / measured - 1| per category, for the
constants before this refit (``BEFORE``), the constants shipped in ``fxrep/cost/targets.py`` and the
fits of this run.

Part 2 - decisions. A decision compares two explicit alternatives of one block, each built directly
as a short program of torch.nn.functional ops on the block's input (`Program`), each op also described
by its `OpSignature` (what a cost model is asked; an alternative's estimate is the sum over its ops):

- parallel sums merged into one kxk conv: RepVGG 3x3 + 1x1 + BN identity, RepVGG stride 2 (3x3 + 1x1),
  ACNet 3x3 + 1x3 + 3x1, depthwise 3x3 + dense 1x1, DBB 3x3 + 1x1 + (1x1 -> avg-pool -> BN) +
  (1x1 -> 3x3), 3x3 + avg-pool + identity, MobileOne 3 x 3x3 + 1x1 + BN identity, five branches
  3x3 + 1x1 + 1x3 + 3x1 + avg-pool, and depthwise RepVGG (depthwise 3x3 + depthwise 1x1 + BN identity,
  merged into one depthwise 3x3);
- sequential chains composed into one conv: low-rank 3x3 C->C/4 (padded) -> 3x3 C/4->C (unpadded) as
  a 5x5, ExpandNet-CL 1x1 C->4C -> 3x3 -> 1x1 4C->C as a 3x3, 1x1 -> 3x3, 3x3 -> 1x1, depthwise 3x3 ->
  1x1 (a separable conv) as a dense 3x3, 1x1 C->2C -> 1x1 2C->C as a 1x1, 3x3 -> 3x3 as a 5x5;

over C in 8..512, H in 7..112 and batch 1 and 8 (blocks whose slowest alternative exceeds
``--max-gmacs`` are left out). Both alternatives are timed together in paired interleaved rounds;
the truth is the median of the per-round ratios merged / split, a tie when within ``--tie`` of 1 or
when its 95% confidence interval (order statistics) contains 1. Each cost model picks the
alternative with the smaller estimate: the analytic models (before / shipped / fitted) and the
measured mode - `fxrep.cost.MeasuredCostModel`, which times each op signature alone on the CPU
(``fxrep.cost.op_builder``) with its own rule and sums them, through a timing cache file
(``--timing-cache``; kept between runs, so a re-run re-uses the op timings). Reported per model:
right / wrong / tie, the fraction right among the decided, and the loss where wrong
(``measured time of the chosen / of the faster - 1``), worst and median.

Clocks and threads: at ONE thread every time is process CPU time (``time.process_time``), which
excludes the time other processes hold the core; with 2 threads only wall time is meaningful, and on
a shared, loaded 2-core machine it measures mostly the wait for a descheduled thread - the load
average is recorded at the start and end of each part. ``--threads`` sets the thread counts of the
single ops (each fitted and reported), ``--decision-threads`` those of the decisions (default: the
first of ``--threads``: on a loaded 2-core machine the 2-thread decisions spin for hours and measure
the waits). The fitted constants shipped in fxrep come from ONE thread.

Writes ``benchmarks/results/cost_model{_quick}.md``, ``cost_model_ops{_quick}.csv`` and
``cost_model_decisions{_quick}.csv``.

    python benchmarks/bench_cost_model.py [--quick] [--threads 1 2] [--decision-threads 1] [--max-gmacs 1.0]
                                          [--timing-cache PATH]
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import pathlib
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields

import numpy as np
import op_set
import torch
import torch.nn.functional as F
from _timing import (
    RESULTS_DIR,
    Stats,
    machine_info,
    md_info,
    md_table,
    paired_ratios,
    threads,
    time_interleaved,
    write_csv,
    write_text,
)
from scipy.optimize import least_squares, nnls

from fxrep.cost import (
    CPU,
    ConvSignature,
    CostModel,
    ElementwiseSignature,
    MeasuredCostModel,
    OpSignature,
    PoolSignature,
    Target,
    TimingCache,
)

BEFORE = Target("cpu (before #11)", macs_per_second=2.5e10, grouped_macs_per_second=4.7e9, bytes_per_second=2.7e10,
                seconds_per_op=1.2e-5, winograd_speedup=1.0)
"""The CPU constants fxrep shipped before this refit (issue #11): one fixed cost per op, fitted on ~170 ops."""

PER_KIND_FIELDS = ("macs_per_second", "grouped_macs_per_second", "bytes_per_second", "seconds_per_op",
                   "pointwise_macs_per_second", "seconds_per_conv", "seconds_per_pointwise_conv",
                   "narrow_out_channels", "native_macs_per_second", "native_pointwise_macs_per_second",
                   "native_seconds_per_conv", "native_seconds_per_pointwise_conv", "im2col_bytes_per_second",
                   "grouped_seconds_per_output", "seconds_per_grouped_conv", "pool_macs_per_second",
                   "seconds_per_pool", "elementwise_bytes_per_second", "addcmul_slowdown", "fresh_bytes_per_second")
"""The constants the per-kind fit adjusts (``winograd_speedup`` stays 1: oneDNN runs CPU convs directly;
``threads``, ``aten_cpu_backends`` and ``fresh_bytes_threshold`` are facts, not fitted)."""
ONE_FIXED_FIELDS = ("macs_per_second", "grouped_macs_per_second", "bytes_per_second", "seconds_per_op",
                    "winograd_speedup")


def load() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"


# ====================================================================== part 1: single ops
def time_ops(specs: Sequence[op_set.OpSpec], n_threads: int, rounds: int) -> dict[str, Stats]:
    """Seconds per call of each op: process CPU time at 1 thread, wall time otherwise."""
    fns = {s.label: op_set.build(s, "cpu", torch.float32, memory_format=torch.contiguous_format) for s in specs}
    with threads(n_threads):
        timings = time_interleaved(fns, rounds=rounds, warmup=2, min_sample_seconds=0.002)
    return {label: (t.cpu if n_threads == 1 else t.wall) for label, t in timings.items()}


def fit_constants(signatures: Sequence[OpSignature], seconds: Sequence[float], start: Target,
               names: Sequence[str], label: str) -> tuple[Target, list[str]]:
    """Log-space least squares of the constants ``names`` of ``start`` (see the module docstring).

    Returns the fitted target and the constants no op of the set depends on (left at ``start``).
    """
    measured = np.log(np.asarray(seconds))

    def target(values: dict[str, float]) -> Target:
        return dataclasses.replace(start, name=label, **values)

    def residuals_of(values: dict[str, float]) -> np.ndarray:
        model = CostModel(target(values))
        return np.log([model.seconds(s) for s in signatures]) - measured

    initial = {}
    for name in names:
        value = getattr(start, name)
        if value is None or not math.isfinite(value) or value <= 0:
            raise ValueError(f"cannot start the fit of {name} from {value!r}")
        initial[name] = float(value)
    base = residuals_of(initial)
    free = [n for n in names if np.any(residuals_of({**initial, n: initial[n] * 2}) != base)]
    unused = [n for n in names if n not in free]

    def values_of(p: np.ndarray) -> dict[str, float]:
        return {**initial, **{n: float(math.exp(v)) for n, v in zip(free, p, strict=True)}}

    fitted = least_squares(lambda p: residuals_of(values_of(p)), np.log([initial[n] for n in free]), method="trf")
    return target(values_of(fitted.x)), unused


def rounded(target: Target) -> Target:
    """Every fitted constant to two significant digits (``winograd_speedup`` to two decimals)."""
    values: dict[str, float] = {}
    for f in fields(target):
        value = getattr(target, f.name)
        if (isinstance(value, float) and math.isfinite(value) and value > 0
                and f.name not in ("fresh_bytes_threshold", "winograd_speedup")):
            values[f.name] = float(f"{value:.2g}")
    return dataclasses.replace(target, **values, winograd_speedup=round(target.winograd_speedup, 2))


# ---------------------------------------------------------------------- the simple form on precomputed features
FEATURES = ("dense_macs", "wino_macs", "grouped_macs", "bytes", "ops")
"""The simple (five-constant) model's terms, as ``op_set.features`` computes them for the GPU fit."""


def fit_target(cases: Sequence, measured: dict[str, Stats], space: str = "log") -> Target:
    """Least-squares fit of the simple model's five constants from precomputed features (GPU fit).

    ``cases`` have ``label`` and ``features`` (`FEATURES` order); the estimate is linear in
    (1/macs_per_second, 1/(macs_per_second*winograd_speedup), 1/grouped_macs_per_second,
    1/bytes_per_second, seconds_per_op). ``space="log"`` minimises sum(log(estimate / measured)^2),
    started from ``space="relative"``: non-negative least squares on (estimate - measured) / measured.
    ``benchmarks/gpu/fit_constants.py`` uses it; the CPU fit (`fit_constants`) asks `CostModel` itself.
    """
    a = np.stack([c.features for c in cases])
    t = np.array([measured[c.label].median for c in cases])
    present = a.any(axis=0)
    scale = np.where(present, a.max(axis=0), 1.0)
    normalized = (a / scale)[:, present]
    coef_scaled, _ = nnls(normalized / t[:, None], np.ones(len(cases)))
    if space == "log":
        start = np.log(np.maximum(coef_scaled, 1e-6 * max(coef_scaled.max(), 1e-30)))
        fitted = least_squares(lambda p: np.log(normalized @ np.exp(p)) - np.log(t), start, method="trf")
        coef_scaled = np.exp(fitted.x)
    elif space != "relative":
        raise ValueError(space)
    coef = np.zeros(a.shape[1])
    coef[present] = coef_scaled / scale[present]
    dense, wino, grouped, per_byte, per_op = coef
    return Target("cpu", macs_per_second=1.0 / dense if dense > 0 else math.inf,
                  grouped_macs_per_second=1.0 / grouped if grouped > 0 else math.inf,
                  bytes_per_second=1.0 / per_byte if per_byte > 0 else math.inf, seconds_per_op=per_op,
                  winograd_speedup=(dense / wino) if wino > 0 else math.inf)


def fit_quality(cases: Sequence, measured: dict[str, Stats], models: dict[str, CostModel]) -> list[list[str]]:
    """Fit quality rows per category of ``cases`` (with ``label``, ``category``, ``estimate(model)``)."""
    rows = []
    categories = sorted({c.category for c in cases}) + ["all"]
    for name, model in models.items():
        for category in categories:
            chosen = [c for c in cases if category in ("all", c.category)]
            ratios = np.array([c.estimate(model) / measured[c.label].median for c in chosen])
            errors = np.abs(ratios - 1.0)
            rows.append([name, category, len(chosen), f"{np.median(errors):.0%}", f"{np.quantile(errors, 0.9):.0%}",
                         f"{np.max(errors):.0%}", f"{math.exp(np.mean(np.log(ratios))):.2f}"])
    return rows


def target_source(target: Target, names: Sequence[str]) -> str:
    return "\n".join(f"    {n}={getattr(target, n):.2g}," for n in names)


def quality_rows(specs: Sequence[op_set.OpSpec], measured: dict[str, Stats],
                 models: dict[str, CostModel]) -> tuple[list[list], dict[str, float]]:
    rows, medians = [], {}
    categories = sorted({s.category for s in specs}) + ["all"]
    for name, model in models.items():
        for category in categories:
            chosen = [s for s in specs if category in ("all", s.category)]
            ratios = np.array([model.seconds(op_set.signature(s, 4)) / measured[s.label].median for s in chosen])
            errors = np.abs(ratios - 1)
            if category == "all":
                medians[name] = float(np.median(errors))
            rows.append([name, category, len(chosen), f"{np.median(errors):.0%}", f"{np.quantile(errors, 0.9):.0%}",
                         f"{errors.max():.0%}", f"{math.exp(np.mean(np.log(ratios))):.2f}"])
    return rows, medians


# ====================================================================== part 2: decisions
@dataclass
class Program:
    """A short program of ops on one input ``x`` (batch, C, H, H): its ops' signatures and a runner.

    Each op returns a value index; ``run()`` recomputes every op in order from ``x``.
    """

    x: torch.Tensor
    signatures: list[OpSignature] = field(default_factory=list)
    steps: list[tuple[Callable[..., torch.Tensor], tuple[int, ...]]] = field(default_factory=list)
    shapes: list[tuple[int, ...]] = field(default_factory=list)
    generator: torch.Generator = field(default_factory=lambda: torch.Generator().manual_seed(0))

    def __post_init__(self) -> None:
        self.shapes.append(tuple(self.x.shape))

    def _push(self, fn: Callable[..., torch.Tensor], args: tuple[int, ...], shape: tuple[int, ...],
              signature: OpSignature) -> int:
        self.steps.append((fn, args))
        self.shapes.append(shape)
        self.signatures.append(signature)
        return len(self.shapes) - 1

    def _randn(self, *shape: int, scale: float = 1.0) -> torch.Tensor:
        return torch.randn(*shape, generator=self.generator) * scale

    def conv(self, source: int, out_channels: int, kernel: int | tuple[int, int], *, stride: int = 1,
             padding: int | tuple[int, int] | None = None, groups: int = 1) -> int:
        n, c, h, w = self.shapes[source]
        kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
        ph, pw = ((kh // 2, kw // 2) if padding is None else (padding, padding) if isinstance(padding, int)
                  else padding)
        weight = self._randn(out_channels, c // groups, kh, kw, scale=0.1)
        bias = self._randn(out_channels)
        out = (n, out_channels, (h + 2 * ph - kh) // stride + 1, (w + 2 * pw - kw) // stride + 1)
        signature = ConvSignature(c, out_channels, (kh, kw), (stride, stride), ((ph, ph), (pw, pw)), (1, 1), groups,
                                  (h, w), n, 4)
        return self._push(lambda x: F.conv2d(x, weight, bias, stride, (ph, pw), 1, groups), (source,), out,
                          signature)

    def avg_pool(self, source: int, kernel: int = 3, stride: int = 1) -> int:
        n, c, h, w = self.shapes[source]
        p = kernel // 2
        out = (n, c, (h + 2 * p - kernel) // stride + 1, (w + 2 * p - kernel) // stride + 1)
        signature = PoolSignature(c, (kernel, kernel), (stride, stride), (p, p), (h, w), n, 4)
        return self._push(lambda x: F.avg_pool2d(x, kernel, stride, p, False, True), (source,), out, signature)

    def batch_norm(self, source: int) -> int:
        """An inference BatchNorm (a BN-only branch, or one after a pool, which nothing folds into)."""
        shape = self.shapes[source]
        c = shape[1]
        mean, weight, bias = self._randn(c), self._randn(c), self._randn(c)
        var = self._randn(c).abs() + 0.5
        signature = ElementwiseSignature("batchnorm", math.prod(shape), 1, 4, c)
        return self._push(lambda x: F.batch_norm(x, mean, var, weight, bias, False, 0.1, 1e-5), (source,), shape,
                          signature)

    def add(self, a: int, b: int) -> int:
        shape = self.shapes[a]
        return self._push(torch.add, (a, b), shape, ElementwiseSignature("add", math.prod(shape), 2, 4, shape[1]))

    def sum(self, values: Sequence[int]) -> int:
        total = values[0]
        for value in values[1:]:
            total = self.add(total, value)
        return total

    def run(self) -> torch.Tensor:
        values = [self.x]
        for fn, args in self.steps:
            values.append(fn(*(values[i] for i in args)))
        return values[-1]


@dataclass
class Decision:
    block: str
    family: str  # "parallel" or "sequential"
    channels: int
    size: int
    batch: int
    merged: Program
    split: Program
    timing: dict[int, Stats] = field(default_factory=dict)  # threads -> paired ratios merged / split
    merged_time: dict[int, Stats] = field(default_factory=dict)
    split_time: dict[int, Stats] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"{self.block} C={self.channels} H={self.size} b{self.batch}"


Build = Callable[[Program, int], object]


def blocks() -> dict[str, tuple[str, Build, Build]]:
    """name -> (family, build merged, build split): the decision blocks (see the module docstring), on input 0."""
    return {
        "repvgg 3x3+1x1+bn": ("parallel",
                              lambda p, c: p.conv(0, c, 3),
                              lambda p, c: p.sum([p.conv(0, c, 3), p.conv(0, c, 1), p.batch_norm(0)])),
        "repvgg s2 3x3+1x1": ("parallel",
                              lambda p, c: p.conv(0, c, 3, stride=2),
                              lambda p, c: p.sum([p.conv(0, c, 3, stride=2), p.conv(0, c, 1, stride=2, padding=0)])),
        "acnet 3x3+1x3+3x1": ("parallel",
                              lambda p, c: p.conv(0, c, 3),
                              lambda p, c: p.sum([p.conv(0, c, 3), p.conv(0, c, (1, 3)), p.conv(0, c, (3, 1))])),
        "dw3x3+1x1": ("parallel",
                      lambda p, c: p.conv(0, c, 3),
                      lambda p, c: p.sum([p.conv(0, c, 3, groups=c), p.conv(0, c, 1)])),
        "dbb 4 branches": ("parallel",
                           lambda p, c: p.conv(0, c, 3),
                           lambda p, c: p.sum([p.conv(0, c, 3), p.conv(0, c, 1),
                                               p.batch_norm(p.avg_pool(p.conv(0, c, 1))),
                                               p.conv(p.conv(0, c, 1), c, 3)])),
        "3x3+avgpool+id": ("parallel",
                           lambda p, c: p.conv(0, c, 3),
                           lambda p, c: p.sum([p.conv(0, c, 3), p.avg_pool(0), 0])),
        "mobileone 3x(3x3)+1x1+bn": ("parallel",
                                     lambda p, c: p.conv(0, c, 3),
                                     lambda p, c: p.sum([p.conv(0, c, 3), p.conv(0, c, 3), p.conv(0, c, 3),
                                                         p.conv(0, c, 1), p.batch_norm(0)])),
        "5 branches 3x3+1x1+1x3+3x1+avgpool": ("parallel",
                                               lambda p, c: p.conv(0, c, 3),
                                               lambda p, c: p.sum([p.conv(0, c, 3), p.conv(0, c, 1),
                                                                   p.conv(0, c, (1, 3)), p.conv(0, c, (3, 1)),
                                                                   p.avg_pool(0)])),
        "depthwise repvgg dw3x3+dw1x1+bn": ("parallel",
                                            lambda p, c: p.conv(0, c, 3, groups=c),
                                            lambda p, c: p.sum([p.conv(0, c, 3, groups=c),
                                                                p.conv(0, c, 1, groups=c), p.batch_norm(0)])),
        "low-rank 3x3 C->C/4->C": ("sequential",
                                   lambda p, c: p.conv(0, c, 5, padding=1),
                                   lambda p, c: p.conv(p.conv(0, max(1, c // 4), 3), c, 3, padding=0)),
        "expandnet-CL 1x1->3x3->1x1 (4C)": ("sequential",
                                            lambda p, c: p.conv(0, c, 3),
                                            lambda p, c: p.conv(p.conv(p.conv(0, 4 * c, 1), 4 * c, 3), c, 1)),
        "1x1->3x3": ("sequential", lambda p, c: p.conv(0, c, 3), lambda p, c: p.conv(p.conv(0, c, 1), c, 3)),
        "3x3->1x1": ("sequential", lambda p, c: p.conv(0, c, 3), lambda p, c: p.conv(p.conv(0, c, 3), c, 1)),
        "separable dw3x3->1x1": ("sequential", lambda p, c: p.conv(0, c, 3),
                                 lambda p, c: p.conv(p.conv(0, c, 3, groups=c), c, 1)),
        "1x1 C->2C->C": ("sequential", lambda p, c: p.conv(0, c, 1), lambda p, c: p.conv(p.conv(0, 2 * c, 1), c, 1)),
        "3x3->3x3": ("sequential", lambda p, c: p.conv(0, c, 5), lambda p, c: p.conv(p.conv(0, c, 3), c, 3)),
    }


def macs(program: Program) -> int:
    return sum(s.macs for s in program.signatures if isinstance(s, ConvSignature))


def build_decisions(quick: bool, max_macs: float) -> tuple[list[Decision], int]:
    widths = (16, 64) if quick else (8, 16, 32, 64, 128, 256, 512)
    sizes = (14, 28) if quick else (7, 14, 28, 56, 112)
    batches = (1,) if quick else (1, 8)
    decisions, skipped = [], 0
    for name, (family, merged, split) in blocks().items():
        for batch in batches:
            for c in widths:
                for h in sizes:
                    x = torch.randn(batch, c, h, h, generator=torch.Generator().manual_seed(c * 1000 + h))
                    a, b = Program(x), Program(x)
                    merged(a, c)
                    split(b, c)
                    if max(macs(a), macs(b)) > max_macs:
                        skipped += 1
                        continue
                    decisions.append(Decision(name, family, c, h, batch, a, b))
    return decisions, skipped


def time_decisions(decisions: Sequence[Decision], n_threads: int, rounds: int) -> None:
    with threads(n_threads):
        for index, d in enumerate(decisions):
            timings = time_interleaved({"merged": d.merged.run, "split": d.split.run}, rounds=rounds, warmup=2,
                                       min_sample_seconds=0.002)
            clock = {k: (t.cpu if n_threads == 1 else t.wall) for k, t in timings.items()}
            d.merged_time[n_threads], d.split_time[n_threads] = clock["merged"], clock["split"]
            d.timing[n_threads] = paired_ratios(clock["merged"], clock["split"])
            if index % 50 == 0:
                print(f"  {n_threads}t {index}/{len(decisions)} {d.name}: merged/split "
                      f"{d.timing[n_threads].median:.3f} (load {load()})", flush=True)


@dataclass
class Verdict:
    choice: str  # "merged" or "split"
    truth: str  # "merged", "split" or "tie"
    loss: float  # measured time of the chosen / of the faster - 1 (0 when right)

    @property
    def kind(self) -> str:
        return "tie" if self.truth == "tie" else ("right" if self.choice == self.truth else "WRONG")


def judge(choice: str, ratio: Stats, tie: float) -> Verdict:
    r = ratio.median
    low, high = ratio.median_ci()
    truth = "tie" if abs(r - 1) <= tie or low <= 1.0 <= high else ("merged" if r < 1 else "split")
    chosen_over_best = (r / min(r, 1.0)) if choice == "merged" else (1.0 / min(r, 1.0))
    return Verdict(choice, truth, chosen_over_best - 1.0)


def choose(model: Callable[[OpSignature], float], d: Decision) -> tuple[str, float, float]:
    merged = sum(model(s) for s in d.merged.signatures)
    split = sum(model(s) for s in d.split.signatures)
    return ("merged" if merged <= split else "split"), merged, split


def summary_row(name: str, n_threads: int, verdicts: list[Verdict]) -> list:
    kinds = [v.kind for v in verdicts]
    right, wrong, ties = kinds.count("right"), kinds.count("WRONG"), kinds.count("tie")
    losses = [v.loss for v in verdicts if v.kind == "WRONG"]
    tie_losses = [v.loss for v in verdicts if v.kind == "tie"]
    decided = right + wrong
    return [name, n_threads, len(verdicts), right, wrong, ties, f"{right / decided:.1%}" if decided else "-",
            f"{(right + ties) / len(verdicts):.1%}" if verdicts else "-",
            f"{max(losses):.1%}" if losses else "-", f"{statistics.median(losses):.1%}" if losses else "-",
            f"{max(tie_losses):.1%}" if tie_losses else "-"]


# ====================================================================== main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: op set 'quick', 32 decisions (~2 minutes)")
    parser.add_argument("--threads", type=int, nargs="+", default=[1], help="thread counts of the single ops (default 1)")
    parser.add_argument("--decision-threads", type=int, nargs="+", default=None,
                        help="thread counts of the decisions (default: the first of --threads; see the docstring)")
    parser.add_argument("--op-rounds", type=int, default=15)
    parser.add_argument("--decision-rounds", type=int, default=15)
    parser.add_argument("--max-gmacs", type=float, default=1.0, help="leave out ops / blocks above this many GMACs")
    parser.add_argument("--tie", type=float, default=0.02, help="|measured ratio - 1| counted as a tie")
    parser.add_argument("--timing-cache", type=pathlib.Path, default=None,
                        help="measured mode's timing cache (default: a fresh temporary file)")
    parser.add_argument("--out", type=pathlib.Path, default=RESULTS_DIR)
    args = parser.parse_args()
    info = machine_info()
    decision_threads = args.decision_threads or args.threads[:1]
    info["threads measured"] = (f"single ops {' '.join(map(str, args.threads))}; decisions "
                                f"{' '.join(map(str, decision_threads))}")
    print("\n".join(f"{k}: {v}" for k, v in info.items()), flush=True)
    suffix = "_quick" if args.quick else ""
    fit_threads = args.threads[0]
    loads: list[str] = []

    # ------------------------------------------------------------ part 1
    specs = op_set.op_specs("quick" if args.quick else "full", args.max_gmacs * 1e9)
    signatures = [op_set.signature(s, 4) for s in specs]
    measured: dict[int, dict[str, Stats]] = {}
    fits: dict[int, dict[str, Target]] = {}
    unused: dict[int, list[str]] = {}
    for n in args.threads:
        start = time.perf_counter()
        loads.append(f"ops at {n} thread(s): load {load()} at start")
        measured[n] = time_ops(specs, n, 5 if args.quick else args.op_rounds)
        loads[-1] += f", {load()} at end"
        seconds = [measured[n][s.label].median for s in specs]
        per_kind, unused[n] = fit_constants(signatures, seconds, CPU, PER_KIND_FIELDS, f"fit {n}t per-kind")
        one, _ = fit_constants(signatures, seconds, BEFORE, ONE_FIXED_FIELDS, f"fit {n}t one fixed cost")
        fits[n] = {"per-kind": per_kind, "one fixed cost": one}
        print(f"{len(specs)} ops timed and fitted at {n} thread(s) in {time.perf_counter() - start:.0f}s", flush=True)
    fitted = rounded(fits[fit_threads]["per-kind"])
    fitted = dataclasses.replace(fitted, name=f"fit {fit_threads}t per-kind (rounded)")
    models = {"before #11": CostModel(BEFORE), "shipped (targets.py)": CostModel(CPU),
              fitted.name: CostModel(fitted),
              f"fit {fit_threads}t one fixed cost": CostModel(rounded(fits[fit_threads]["one fixed cost"]))}
    quality, medians = [], {}
    for n in args.threads:
        extra = {} if n == fit_threads else {f"fit {n}t per-kind": CostModel(fits[n]["per-kind"])}
        rows, med = quality_rows(specs, measured[n], {**models, **extra})
        quality += [[n, *row] for row in rows]
        medians.update({f"{name} @ {n}t": v for name, v in med.items()})
    for row in quality:
        if row[2] == "all":
            print(f"  {row[0]}t {row[1]}: median |err| {row[4]}", flush=True)
    proposed = "CPU = Target(\n    \"cpu\",\n" + target_source(fitted, PER_KIND_FIELDS) + "\n)"
    not_fitted = (f"Not fitted at {fit_threads} thread(s) (no op of the set depends on them; left as shipped): "
                  + (", ".join(unused[fit_threads]) or "none") + ".")
    print(not_fitted)
    print("proposed constants:\n" + proposed, flush=True)

    # ------------------------------------------------------------ part 2
    decisions, skipped = build_decisions(args.quick, args.max_gmacs * 1e9)
    print(f"{len(decisions)} decisions ({skipped} blocks over --max-gmacs left out)", flush=True)
    op_rows = [[n, s.label, s.category, measured[n][s.label].median, measured[n][s.label].q1,
                measured[n][s.label].q3, *(m.seconds(op_set.signature(s, 4)) for m in models.values())]
               for n in args.threads for s in specs]
    op_header = ["threads", "op", "category", "median_s", "q1_s", "q3_s", *(f"est_{k}" for k in models)]
    write_csv(args.out / f"cost_model_ops{suffix}.csv", op_header, op_rows)  # part 1 is kept if part 2 is cut short
    cache_path = args.timing_cache or pathlib.Path(tempfile.mkdtemp()) / "timing_cache.json"
    measured_models: dict[int, MeasuredCostModel] = {}
    for n in decision_threads:
        loads.append(f"decisions at {n} thread(s): load {load()} at start")
        start = time.perf_counter()
        time_decisions(decisions, n, 5 if args.quick else args.decision_rounds)
        measured_models[n] = MeasuredCostModel(TimingCache.load(cache_path), threads=n)
        for d in decisions:  # measured mode: time every op signature of both alternatives (cached)
            choose(measured_models[n].seconds, d)
        measured_models[n].cache.save(cache_path)
        loads[-1] += f", {load()} at end ({time.perf_counter() - start:.0f}s)"
        print(f"decisions timed at {n} thread(s); measured mode timed {len(measured_models[n].timed)} ops, reused "
              f"{len(measured_models[n].reused)}", flush=True)

    deciders: dict[str, Callable[[int], Callable[[OpSignature], float]]] = {
        name: (lambda n, m=model: m.seconds) for name, model in models.items()}
    deciders["measured mode"] = lambda n: measured_models[n].seconds
    summary, decision_csv, table = [], [], []
    for n in decision_threads:
        for name, decider in deciders.items():
            verdicts = []
            for d in decisions:
                choice, merged, split = choose(decider(n), d)
                verdict = judge(choice, d.timing[n], args.tie)
                verdicts.append(verdict)
                ratio = d.timing[n]
                decision_csv.append([name, n, d.block, d.family, d.channels, d.size, d.batch, merged, split,
                                     d.merged_time[n].median, d.split_time[n].median, ratio.median,
                                     *ratio.median_ci(), choice, verdict.truth, verdict.kind, verdict.loss])
                if name == fitted.name and n == decision_threads[0]:
                    table.append([d.name, f"{merged * 1e6:.1f}", f"{split * 1e6:.1f}",
                                  f"{sum(measured_models[n].seconds(s) for s in d.merged.signatures) * 1e6:.1f}",
                                  f"{sum(measured_models[n].seconds(s) for s in d.split.signatures) * 1e6:.1f}",
                                  d.merged_time[n].us(), d.split_time[n].us(), f"{ratio.median:.3f}",
                                  verdict.truth, choice, verdict.kind])
            summary.append(summary_row(name, n, verdicts))
            by_family = {}
            for d, v in zip(decisions, verdicts, strict=True):
                by_family.setdefault(d.family, []).append(v)
            for family, vs in sorted(by_family.items()):
                summary.append(summary_row(f"  {name}: {family}", n, vs))
    summary_header = ["cost model", "threads", "decisions", "right", "wrong", f"ties (within {args.tie:.0%} or CI)",
                      "right / (right + wrong)", "(right + ties) / all", "worst loss when wrong",
                      "median loss when wrong", "worst loss in a tie"]
    print(md_table(summary_header, summary), flush=True)

    per_block = []
    for block in blocks():
        ds = [d for d in decisions if d.block == block]
        if not ds:
            continue
        ratios = [d.timing[decision_threads[0]].median for d in ds]
        per_block.append([block, len(ds), sum(r < 1 for r in ratios), f"{min(ratios):.2f}", f"{max(ratios):.2f}"])

    const_header = ["constant", *(m.target.name for m in models.values())]
    const_rows = [[f.name, *(_fmt(getattr(m.target, f.name)) for m in models.values())]
                  for f in fields(Target) if f.name not in ("name", "source")]
    quality_header = ["threads", "constants", "category", "ops", "median |est/meas - 1|", "p90", "max",
                      "geomean est/meas"]
    decision_header = ["decision", "est. merged us (fit)", "est. split us (fit)", "measured-mode merged us",
                       "measured-mode split us", "merged us [IQR]", "split us [IQR]", "merged/split",
                       "faster (truth)", "fit picks", "verdict"]
    sections = [
        "# Cost models vs measured CPU time",
        md_info(info) + "\n" + "\n".join(f"- load average (1/5/15 min), {line}" for line in loads),
        "## Decisions: summary\n\n" + md_table(summary_header, summary)
        + "\n\nLoss = measured time of the chosen alternative / of the faster one - 1. Measured mode sums "
          "`MeasuredCostModel.seconds` of each alternative's ops (each op timed alone by fxrep's timing rule, "
          "through the timing cache).",
        "## Decisions per block (merged / split measured, fit threads)\n\n"
        + md_table(["block", "decisions", "merged faster", "min merged/split", "max merged/split"], per_block),
        f"## Calibration: constants\n\n{len(specs)} single ops; the per-kind fit of {fit_threads} thread(s), "
        f"rounded, is the one proposed for `fxrep/cost/targets.py`:\n\n```python\n{proposed}\n```\n\n"
        + not_fitted + "\n\n" + md_table(const_header, const_rows),
        "## Calibration: fit quality per category\n\n" + md_table(quality_header, quality),
        f"## Every decision ({fitted.name}, {decision_threads[0]} thread(s))\n\n" + md_table(decision_header, table),
    ]
    write_text(args.out / f"cost_model{suffix}.md", "\n\n".join(sections))
    write_csv(args.out / f"cost_model_decisions{suffix}.csv",
              ["cost_model", "threads", "block", "family", "channels", "size", "batch", "est_merged_s", "est_split_s",
               "meas_merged_s", "meas_split_s", "ratio_median", "ratio_ci_low", "ratio_ci_high", "choice", "truth",
               "verdict", "loss"], decision_csv)
    print(f"wrote {args.out / f'cost_model{suffix}.md'} and the CSVs; timing cache {cache_path}")


def _fmt(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


if __name__ == "__main__":
    main()
