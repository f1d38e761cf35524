"""Section "ops": single-op timings on the device, the data a GPU `fxrep.cost.Target` is fitted on.

The op set is ``benchmarks/op_set.py`` at the plan's scale, built in each of the plan's dtypes,
channels_last. All ops of one dtype are interleaved in every round (`_timing.time_rounds` with the
plan's timer, CUDA events on a GPU), as the CPU calibration does. Each CSV row carries the op's
shape, the cost model's features for it (`op_set.features`, at that dtype's item size), the
measured median / quartiles and the estimate of the GPU constants now in ``fxrep/cost``;
``fit_constants.py`` fits new constants to these rows.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

import op_set
import torch
from _timing import Stats, Timer, time_rounds
from networks import DTYPES
from plan import Budget, Plan

from fxrep.cost import GPU, CostModel

CSV_HEADER = ["dtype", "op", "category", "kind", "channels", "out_channels", "kernel", "stride", "groups", "size",
              "batch", *op_set.FEATURES, "median_s", "q1_s", "q3_s", "min_s", "rounds", "clock", "est_gpu_now_s"]


@dataclass
class SectionResult:
    rows: list[list[object]] = field(default_factory=list)
    per_dtype: dict[str, int] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def run(plan: Plan, timer: Timer, clock: str, budget: Budget) -> SectionResult:
    section = SectionResult()
    specs = op_set.op_specs(plan.op_scale)
    for dtype_name in plan.op_dtypes:
        if not budget.allows(plan.unit_seconds.get("ops", 0.0)):
            section.skipped.append(f"{dtype_name} op set (time budget)")
            continue
        try:
            stats = measure(specs, plan, dtype_name, timer, clock)
        except Exception as error:  # e.g. out of memory: recorded, the run goes on
            section.errors.append(f"{dtype_name}: {type(error).__name__}: {error}")
            print(f"ops: {dtype_name} FAILED: {section.errors[-1]}", flush=True)
            continue
        finally:
            if plan.device == "cuda":
                torch.cuda.empty_cache()
        itemsize = torch.empty((), dtype=DTYPES[dtype_name]).element_size()
        now = CostModel(GPU)
        for spec in specs:
            st = stats[spec.label]
            values = op_set.features(spec, itemsize)
            section.rows.append([dtype_name, spec.label, spec.category, spec.kind, spec.channels, spec.out_channels,
                                 spec.kernel, spec.stride, spec.groups, spec.size, spec.batch,
                                 *(values[name] for name in op_set.FEATURES), st.median, st.q1, st.q3, st.min, st.n,
                                 clock, op_set.estimate(spec, now, itemsize)])
        section.per_dtype[dtype_name] = len(specs)
        print(f"ops: {len(specs)} ops timed in {dtype_name}", flush=True)
    return section


def measure(specs: list[op_set.OpSpec], plan: Plan, dtype_name: str, timer: Timer, clock: str) -> dict[str, Stats]:
    generator = torch.Generator(device=plan.device).manual_seed(0)
    fns = {spec.label: op_set.build(spec, plan.device, DTYPES[dtype_name], torch.channels_last, generator)
           for spec in specs}
    timing = plan.op_timing
    stats = time_rounds(fns, rounds=timing.rounds, warmup=timing.warmup, min_sample_seconds=timing.min_sample_seconds,
                        timer=timer, calibration_clock=clock)
    return {label: clocks[clock] for label, clocks in stats.items()}


def category_rows(section: SectionResult) -> tuple[list[str], list[list[str]]]:
    """Ops per dtype and category with the median measured time and the current GPU estimate's error."""
    header = ["dtype", "category", "ops", "median measured us", "median |est now / measured - 1|"]
    groups: dict[tuple[str, str], list[list[object]]] = {}
    for row in section.rows:
        groups.setdefault((str(row[0]), str(row[2])), []).append(row)
    median_at = CSV_HEADER.index("median_s")
    estimate_at = CSV_HEADER.index("est_gpu_now_s")
    rows = []
    for (dtype, category), members in sorted(groups.items()):
        measured = statistics.median(float(r[median_at]) for r in members)
        error = statistics.median(abs(float(r[estimate_at]) / float(r[median_at]) - 1) for r in members)
        rows.append([dtype, category, str(len(members)), f"{measured * 1e6:.1f}", f"{error:.0%}"])
    return header, rows
