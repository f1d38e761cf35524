"""Section "models": training form vs fxrep.optimize vs the official hand conversion, eager, on the device.

For each (network, dtype, batch) of the plan, four variants (`networks.py` says how each is made
and put on the device, all channels_last):

- (a) the training form;
- (b) ``fxrep.optimize`` of (a), with that batch's example input (verification on); the weights of
  the convs it emits come back NCHW-contiguous whatever the layout of (a)'s, so (b) is converted to
  channels_last like the other variants (the structure table shows both layouts; the compile
  section, where the backend folds the weights itself, cannot convert them);
- (c) the official hand conversion;
- (c2) a deep copy of (c) timed as if it were another variant: an A/A control whose ratio to (c)
  shows the noise floor of the method;

verified and compared without TF32 (`networks.exact_convs`), then timed under
``torch.inference_mode()`` with `_timing.time_rounds` and the plan's timer (CUDA events on a GPU):
warm-up, then interleaved rounds with rotating order, ``inner`` back-to-back calls per sample
calibrated to last at least ``min_sample_seconds``. Comparisons are the per-round paired
ratios (b)/(c), (c2)/(c) and (a)/(b), with the distribution-free 95% CI of their median.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field

import torch
from _timing import Stats, Timer, conv_count, max_errors, paired_ratios, time_rounds
from networks import DTYPES, conv_weights_channels_last, exact_convs, example_input, on_device, reference_pair
from plan import Budget, Plan

import fxrep

TRAINING, FXREP, HAND, CONTROL = ("(a) training form", "(b) fxrep.optimize", "(c) hand conversion",
                                  "(c2) copy of (c), A/A control")
RATIOS = {"fxrep / hand": (FXREP, HAND), "A/A (c2) / (c)": (CONTROL, HAND), "training / fxrep": (TRAINING, FXREP)}


@dataclass
class ModelResult:
    """One network at one dtype and batch: structure, numerics and timings of its variants."""

    network: str
    dtype: str
    batch: int
    size: int
    convs: dict[str, int] = field(default_factory=dict)
    rel_errors: dict[str, float] = field(default_factory=dict)
    channels_last: dict[str, str] = field(default_factory=dict)
    optimize_seconds: float = 0.0
    stats: dict[str, Stats] = field(default_factory=dict)
    ratios: dict[str, Stats] = field(default_factory=dict)


@dataclass
class SectionResult:
    results: list[ModelResult] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def run(plan: Plan, timer: Timer, clock: str, budget: Budget, seed: int = 0) -> SectionResult:
    """Every (network, dtype, batch) of ``plan`` that fits the budget; failures are recorded, not raised."""
    section = SectionResult()
    pairs: dict[str, tuple[torch.nn.Module, torch.nn.Module]] = {}
    for network, dtype, batch in plan.model_configs:
        name = f"{network} {dtype} batch {batch}"
        if not budget.allows(plan.unit_seconds.get("models", 0.0)):
            section.skipped.append(f"{name} (time budget)")
            continue
        if network not in pairs:
            pairs[network] = reference_pair(network, seed)
        try:
            result = measure(network, *pairs[network], plan, dtype, batch, timer, clock, seed)
        except Exception as error:  # one configuration failing must not lose the others
            section.errors.append(f"{name}: {type(error).__name__}: {error}")
            print(f"models: {name} FAILED: {type(error).__name__}: {error}", flush=True)
        else:
            section.results.append(result)
            print(f"models: {summary_line(result, clock)}", flush=True)
        finally:
            _release(plan.device)
    return section


def measure(network: str, model: torch.nn.Module, hand: torch.nn.Module, plan: Plan, dtype_name: str,
            batch: int, timer: Timer, clock: str, seed: int) -> ModelResult:
    dtype = DTYPES[dtype_name]
    result = ModelResult(network, dtype_name, batch, plan.size)
    training = on_device(model, plan.device, dtype)
    converted = on_device(hand, plan.device, dtype)
    x = example_input(batch, plan.size, plan.device, dtype, seed)
    with exact_convs():  # verification compares float32 without TF32 (see networks.py)
        start = time.perf_counter()
        optimized = fxrep.optimize(training, (x,))
        result.optimize_seconds = time.perf_counter() - start
    returned = "{}/{}".format(*conv_weights_channels_last(optimized))
    optimized = optimized.to(memory_format=torch.channels_last)  # as every other variant (see above)
    variants = {TRAINING: training, FXREP: optimized, HAND: converted, CONTROL: copy.deepcopy(converted)}
    with torch.inference_mode(), exact_convs():
        reference = training(x)
        for name, module in variants.items():
            result.convs[name] = conv_count(module)
            last, total = conv_weights_channels_last(module)
            result.channels_last[name] = f"{last}/{total}" + (f" (returned: {returned})" if name == FXREP else "")
            if name != TRAINING:
                result.rel_errors[name] = max_errors(reference.float(), module(x).float())[1]
    fns = {name: (lambda module=module: module(x)) for name, module in variants.items()}
    timing = plan.model_timing
    stats = time_rounds(fns, rounds=timing.rounds, warmup=timing.warmup, min_sample_seconds=timing.min_sample_seconds,
                        timer=timer, calibration_clock=clock)
    result.stats = {name: clocks[clock] for name, clocks in stats.items()}
    result.ratios = {label: paired_ratios(result.stats[a], result.stats[b]) for label, (a, b) in RATIOS.items()}
    return result


def summary_line(result: ModelResult, clock: str) -> str:
    ratio = result.ratios["fxrep / hand"]
    low, high = ratio.median_ci()
    times = "; ".join(f"{name.split(' ')[0]} {st.median * 1e3:.3f} ms" for name, st in result.stats.items())
    return (f"{result.network} {result.dtype} b{result.batch}: {times} ({clock}); fxrep/hand {ratio.median:.3f} "
            f"[{low:.3f}-{high:.3f}]; optimize {result.optimize_seconds:.1f} s")


def table_rows(section: SectionResult) -> tuple[list[str], list[list[str]]]:
    """The markdown latency table: one row per network, dtype and batch."""
    header = ["network", "dtype", "batch", "training form ms", "fxrep ms", "hand-converted ms",
              "fxrep / hand, paired median [95% CI]", "A/A control [95% CI]", "training / fxrep", "convs a/b/c",
              "rounds"]
    rows = []
    for r in section.results:
        cells = [r.network, r.dtype, str(r.batch)]
        cells += [f"{r.stats[name].median * 1e3:.3f}" for name in (TRAINING, FXREP, HAND)]
        for label in ("fxrep / hand", "A/A (c2) / (c)"):
            low, high = r.ratios[label].median_ci()
            cells.append(f"{r.ratios[label].median:.3f} [{low:.3f}-{high:.3f}]")
        cells.append(f"{r.ratios['training / fxrep'].median:.2f}x")
        cells.append("/".join(str(r.convs[name]) for name in (TRAINING, FXREP, HAND)))
        cells.append(str(r.stats[FXREP].n))
        rows.append(cells)
    return header, rows


def structure_rows(section: SectionResult) -> tuple[list[str], list[list[str]]]:
    header = ["network", "dtype", "batch", "variant", "convs", "max rel err vs (a)", "4-d weights channels_last",
              "optimize() s"]
    rows = []
    for r in section.results:
        for name in (TRAINING, FXREP, HAND):
            error = f"{r.rel_errors[name]:.2g}" if name in r.rel_errors else "-"
            seconds = f"{r.optimize_seconds:.2f}" if name == FXREP else "-"
            rows.append([r.network, r.dtype, str(r.batch), name, str(r.convs[name]), error, r.channels_last[name],
                         seconds])
    return header, rows


CSV_HEADER = ["kind", "network", "dtype", "batch", "size", "variant", "convs", "median_s", "q1_s", "q3_s", "min_s",
              "ci_low", "ci_high", "rounds", "clock", "max_rel_err_vs_training", "optimize_s"]


def csv_rows(section: SectionResult, clock: str) -> list[list[object]]:
    rows: list[list[object]] = []
    for r in section.results:
        for name, st in r.stats.items():
            low, high = st.median_ci()
            rows.append(["latency", r.network, r.dtype, r.batch, r.size, name, r.convs[name], st.median, st.q1, st.q3,
                         st.min, low, high, st.n, clock, r.rel_errors.get(name, ""),
                         r.optimize_seconds if name == FXREP else ""])
        for label, st in r.ratios.items():
            low, high = st.median_ci()
            rows.append(["paired ratio", r.network, r.dtype, r.batch, r.size, label, "", st.median, st.q1, st.q3,
                         st.min, low, high, st.n, clock, "", ""])
    return rows


def _release(device: str) -> None:
    if device == "cuda":
        torch.cuda.empty_cache()
