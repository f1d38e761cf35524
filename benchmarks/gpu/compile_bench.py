"""Section "compile": ``torch.compile(training form, backend="fxrep")`` vs Inductor on the hand conversion.

For each (network, dtype, batch) of the plan's compile configurations:

- (d) ``torch.compile(training form, backend="fxrep", dynamic=False)``: fxrep folds the weights on
  Dynamo's graph, optimizes and verifies it, and hands the plain graph to Inductor;
- (e) ``torch.compile(hand conversion, dynamic=False)``: Inductor (the default backend) on the
  official hand conversion;
- (c) the hand conversion, eager, for reference.

``torch.compiler.reset()`` runs before each configuration (the variants of one network share
their forward's code object, and Dynamo's caches would otherwise mix them). The first call of each
compiled variant is timed on the host as its compile time (under ``torch.inference_mode()``, the
mode every later call runs in, so no call recompiles; and without TF32 convs, so that fxrep's
float32 verification is meaningful, `networks.exact_convs`); then the three are timed like the
models section (`_timing.time_rounds`, the plan's timer) and compared by the paired ratio (d)/(e).
A configuration fails, rather than report a mislabelled row, when the fxrep backend did not fold
the graph (it warns and compiles it unfolded) or compiled it again while it was timed.

When fxrep is installed (``run.sh`` makes sure), "fxrep" is a registered Dynamo backend (its
``torch_dynamo_backends`` entry point); otherwise the backend callable itself is passed, and the
results say so.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import torch
from _timing import Stats, Timer, max_errors, paired_ratios, time_rounds
from networks import DTYPES, exact_convs, example_input, on_device, reference_pair
from plan import Budget, Plan

FXREP_COMPILED, INDUCTOR_HAND, HAND = ("(d) compile(training, backend=fxrep)", "(e) compile(hand) [Inductor]",
                                       "(c) hand conversion, eager")


@dataclass
class CompileResult:
    network: str
    dtype: str
    batch: int
    size: int
    backend: str
    compile_seconds: dict[str, float] = field(default_factory=dict)
    rel_errors: dict[str, float] = field(default_factory=dict)
    fxrep_convs: str = "-"
    stats: dict[str, Stats] = field(default_factory=dict)
    ratio: Stats | None = None


@dataclass
class SectionResult:
    results: list[CompileResult] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def fxrep_backend() -> tuple[Any, str]:
    """The backend to pass to torch.compile: the name "fxrep" when registered, else the callable."""
    if "fxrep" in torch.compiler.list_backends(exclude_tags=()):
        return "fxrep", '"fxrep" (registered entry point)'
    from fxrep.lower.dynamo_backend import fxrep_backend as backend

    return backend, "fxrep.lower.dynamo_backend.fxrep_backend (entry point not installed)"


def run(plan: Plan, timer: Timer, clock: str, budget: Budget, seed: int = 0) -> SectionResult:
    section = SectionResult()
    pairs: dict[str, tuple[torch.nn.Module, torch.nn.Module]] = {}
    for network, dtype, batch in plan.compile_configs:
        name = f"{network} {dtype} batch {batch}"
        if not budget.allows(plan.unit_seconds.get("compile", 0.0)):
            section.skipped.append(f"{name} (time budget)")
            continue
        if network not in pairs:
            pairs[network] = reference_pair(network, seed)
        try:
            result = measure(network, *pairs[network], plan, dtype, batch, timer, clock, seed)
        except Exception as error:  # e.g. no C compiler for Inductor: recorded, the run goes on
            section.errors.append(f"{name}: {type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}")
            print(f"compile: {name} FAILED: {section.errors[-1]}", flush=True)
        else:
            section.results.append(result)
            ratio = result.ratio
            low, high = ratio.median_ci()
            print(f"compile: {name}: compile {result.compile_seconds[FXREP_COMPILED]:.1f} s / "
                  f"{result.compile_seconds[INDUCTOR_HAND]:.1f} s; "
                  + "; ".join(f"{k.split(' ')[0]} {v.median * 1e3:.3f} ms" for k, v in result.stats.items())
                  + f"; (d)/(e) {ratio.median:.3f} [{low:.3f}-{high:.3f}]", flush=True)
        finally:
            torch.compiler.reset()
            if plan.device == "cuda":
                torch.cuda.empty_cache()
    return section


def measure(network: str, model: torch.nn.Module, hand: torch.nn.Module, plan: Plan, dtype_name: str, batch: int,
            timer: Timer, clock: str, seed: int) -> CompileResult:
    from fxrep.lower import dynamo_backend

    dtype = DTYPES[dtype_name]
    backend, backend_name = fxrep_backend()
    result = CompileResult(network, dtype_name, batch, plan.size, backend_name)
    torch.compiler.reset()
    training = on_device(model, plan.device, dtype)
    converted = on_device(hand, plan.device, dtype)
    x = example_input(batch, plan.size, plan.device, dtype, seed)
    compiled = {FXREP_COMPILED: torch.compile(training, backend=backend, dynamic=False),
                INDUCTOR_HAND: torch.compile(converted, dynamic=False)}
    variants = {**compiled, HAND: converted}
    dynamo_backend.last_report = None
    with torch.inference_mode(), exact_convs():  # fxrep verifies float32 without TF32 (see networks.py)
        reference = training(x)
        for name, fn in compiled.items():
            start = time.perf_counter()
            out = fn(x)
            if plan.device == "cuda":
                torch.cuda.synchronize()
            result.compile_seconds[name] = time.perf_counter() - start
            result.rel_errors[name] = max_errors(reference.float(), out.float())[1]
    report = dynamo_backend.last_report
    if report is None:
        raise RuntimeError("the fxrep backend did not fold the graph (it warned and compiled it unfolded: see the log)")
    result.fxrep_convs = f"{report.ops_before.get('conv', 0)} -> {report.ops_after.get('conv', 0)}"
    fns = {name: (lambda fn=fn: fn(x)) for name, fn in variants.items()}
    timing = plan.compile_timing
    stats = time_rounds(fns, rounds=timing.rounds, warmup=timing.warmup, min_sample_seconds=timing.min_sample_seconds,
                        timer=timer, calibration_clock=clock)
    if dynamo_backend.last_report is not report:
        raise RuntimeError("the fxrep-compiled variant was compiled again while it was timed (a Dynamo guard failed)")
    result.stats = {name: clocks[clock] for name, clocks in stats.items()}
    result.ratio = paired_ratios(result.stats[FXREP_COMPILED], result.stats[INDUCTOR_HAND])
    return result


def table_rows(section: SectionResult) -> tuple[list[str], list[list[str]]]:
    header = ["network", "dtype", "batch", "compile(training, fxrep) ms", "compile(hand) Inductor ms",
              "hand eager ms", "(d) / (e), paired median [95% CI]", "compile s (d) / (e)", "fxrep convs",
              "max rel err (d) / (e)", "rounds"]
    rows = []
    for r in section.results:
        low, high = r.ratio.median_ci()
        rows.append([r.network, r.dtype, str(r.batch),
                     *(f"{r.stats[name].median * 1e3:.3f}" for name in (FXREP_COMPILED, INDUCTOR_HAND, HAND)),
                     f"{r.ratio.median:.3f} [{low:.3f}-{high:.3f}]",
                     f"{r.compile_seconds[FXREP_COMPILED]:.1f} / {r.compile_seconds[INDUCTOR_HAND]:.1f}",
                     r.fxrep_convs,
                     f"{r.rel_errors[FXREP_COMPILED]:.2g} / {r.rel_errors[INDUCTOR_HAND]:.2g}",
                     str(r.ratio.n)])
    return header, rows


CSV_HEADER = ["kind", "network", "dtype", "batch", "size", "variant", "median_s", "q1_s", "q3_s", "min_s", "ci_low",
              "ci_high", "rounds", "clock", "compile_s", "max_rel_err_vs_training", "backend"]


def csv_rows(section: SectionResult, clock: str) -> list[list[object]]:
    rows: list[list[object]] = []
    for r in section.results:
        for name, st in r.stats.items():
            low, high = st.median_ci()
            rows.append(["latency", r.network, r.dtype, r.batch, r.size, name, st.median, st.q1, st.q3, st.min, low,
                         high, st.n, clock, r.compile_seconds.get(name, ""), r.rel_errors.get(name, ""), r.backend])
        low, high = r.ratio.median_ci()
        rows.append(["paired ratio", r.network, r.dtype, r.batch, r.size, "(d) / (e)", r.ratio.median, r.ratio.q1,
                     r.ratio.q3, r.ratio.min, low, high, r.ratio.n, clock, "", "", r.backend])
    return rows
