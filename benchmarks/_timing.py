"""Shared helpers of the fxrep benchmarks: interleaved timing, robust statistics, machine info, output.

Timing method (used by every ``bench_*.py`` here):

- ``torch.set_num_threads(n)`` is set explicitly before each measurement (`threads`), and the
  thread count is part of every result row.
- Variants are interleaved, A B C A B C ..., and the order is rotated every round, so a burst of
  load from another process hits all variants alike instead of biasing the one that ran then.
- Each round times ``inner`` back-to-back calls of one variant and records their mean (``inner`` is
  chosen by `calibrate_inner` so that one sample lasts at least a few milliseconds); the statistics
  are over rounds: median, quartiles / IQR, minimum.
- Comparisons between two variants use `paired_ratios`: the ratio of the two samples of the SAME
  round (measured seconds apart), whose median is far less sensitive to slow drifts in machine load
  than the ratio of two medians.
- Every sample records two clocks: wall time (``time.perf_counter``, the latency a caller sees)
  and the process's CPU time (``time.process_time``). On a shared machine another process can
  take the core away in the middle of a sample; wall time then includes the wait, CPU time does not.
  With ONE thread, CPU time is therefore the contention-robust measure of how long an op computes
  (the cost model is fitted on it); with several threads it sums the threads (spin-waits included)
  and only wall time is meaningful.
- The clocks are read by a *timer* (`host_timer` for every CPU benchmark); `time_rounds` takes
  another one, e.g. the CUDA-event timer of ``benchmarks/gpu/``, with the same rounds, rotation and
  statistics. `time_interleaved` is `time_rounds` with `host_timer`.
- The garbage collector is disabled while timing, and everything runs under
  ``torch.inference_mode()``.

Nothing here asserts on timings: the benchmarks report numbers, they are not tests.
"""

from __future__ import annotations

import contextlib
import csv
import datetime
import gc
import math
import os
import pathlib
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

RESULTS_DIR = pathlib.Path(__file__).resolve().parent / "results"


@dataclass(frozen=True)
class Stats:
    """Samples (seconds per call, one per round) and their robust summaries."""

    samples: tuple[float, ...]

    @property
    def n(self) -> int:
        return len(self.samples)

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def q1(self) -> float:
        return _quantile(self.samples, 0.25)

    @property
    def q3(self) -> float:
        return _quantile(self.samples, 0.75)

    @property
    def iqr(self) -> float:
        return self.q3 - self.q1

    @property
    def min(self) -> float:
        return min(self.samples)

    @property
    def rel_iqr(self) -> float:
        """IQR / median: the spread as a fraction of the typical value."""
        return self.iqr / self.median if self.median else float("nan")

    def median_ci(self, z: float = 1.96) -> tuple[float, float]:
        """Distribution-free ~95% confidence interval of the median (order statistics, binomial normal approx.)."""
        ordered = sorted(self.samples)
        n = len(ordered)
        half = z * math.sqrt(n) / 2
        low = max(0, math.floor(n / 2 - half))
        high = min(n - 1, math.ceil(n / 2 + half) - 1)
        return ordered[low], ordered[high]

    def ms(self) -> str:
        """``median [q1-q3]`` in milliseconds."""
        return f"{self.median * 1e3:.3f} [{self.q1 * 1e3:.3f}-{self.q3 * 1e3:.3f}]"

    def us(self) -> str:
        """``median [q1-q3]`` in microseconds."""
        return f"{self.median * 1e6:.1f} [{self.q1 * 1e6:.1f}-{self.q3 * 1e6:.1f}]"


def _quantile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    position = q * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@contextlib.contextmanager
def threads(n: int) -> Iterator[None]:
    """Run the block with ``torch.set_num_threads(n)`` (restored afterwards)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@contextlib.contextmanager
def quiet_gc() -> Iterator[None]:
    enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


Timer = Callable[[Callable[[], Any], int], Mapping[str, float]]
"""Calls ``fn`` ``count`` times back to back and returns the seconds all calls took, per clock name.

`host_timer` (clocks "wall" and "cpu") is what every CPU benchmark uses; a GPU benchmark passes a
timer that reads CUDA events (``benchmarks/gpu/cuda_timer.py``). A timer must return only once the
calls it timed have finished (a CUDA timer synchronizes)."""


def host_timer(fn: Callable[[], Any], count: int) -> dict[str, float]:
    """Wall-clock (``time.perf_counter``) and process-CPU (``time.process_time``) seconds of ``count`` calls."""
    start_cpu = time.process_time()
    start = time.perf_counter()
    for _ in range(count):
        fn()
    end = time.perf_counter()
    end_cpu = time.process_time()
    return {"wall": end - start, "cpu": end_cpu - start_cpu}


def calibrate_inner(fn: Callable[[], Any], min_sample_seconds: float = 0.005, max_inner: int = 1000, *,
                    timer: Timer = host_timer, clock: str = "wall") -> int:
    """Calls per sample so that one sample lasts at least ``min_sample_seconds`` on ``clock`` (fn is warm)."""
    with torch.inference_mode():
        once = timer(fn, 1)[clock]
        if once < min_sample_seconds:  # re-time small ops over several calls
            count = max(1, int(min_sample_seconds / max(once, 1e-7)))
            once = timer(fn, count)[clock] / count
    return max(1, min(max_inner, int(min_sample_seconds / max(once, 1e-9)) + 1))


@dataclass(frozen=True)
class Timing:
    """Wall-clock and process-CPU seconds per call of one variant (same samples, two clocks)."""

    wall: Stats
    cpu: Stats


def time_rounds(fns: Mapping[str, Callable[[], Any]], *, rounds: int, warmup: int = 3,
                inner: int | Mapping[str, int] | None = None, min_sample_seconds: float = 0.005,
                timer: Timer = host_timer, calibration_clock: str = "wall") -> dict[str, dict[str, Stats]]:
    """Time each callable ``rounds`` times with ``timer``, interleaved with rotating order (module docstring).

    ``inner`` calls per sample: an int for all, a mapping per name, or None to calibrate each
    variant after its warm-up (on ``calibration_clock``). Returns, per name, `Stats` of seconds per
    call for every clock the timer reports.
    """
    names = list(fns)
    samples: dict[str, dict[str, list[float]]] = {name: {} for name in names}
    with torch.inference_mode(), quiet_gc():
        for _ in range(warmup):
            for name in names:
                fns[name]()
        if inner is None:
            counts = {name: calibrate_inner(fns[name], min_sample_seconds, timer=timer, clock=calibration_clock)
                      for name in names}
        elif isinstance(inner, int):
            counts = dict.fromkeys(names, inner)
        else:
            counts = dict(inner)
        for round_index in range(rounds):
            shift = round_index % len(names)
            for name in names[shift:] + names[:shift]:
                count = counts[name]
                for clock, seconds in timer(fns[name], count).items():
                    samples[name].setdefault(clock, []).append(seconds / count)
    return {name: {clock: Stats(tuple(values)) for clock, values in samples[name].items()} for name in names}


def time_interleaved(fns: Mapping[str, Callable[[], Any]], *, rounds: int, warmup: int = 3,
                     inner: int | Mapping[str, int] | None = None,
                     min_sample_seconds: float = 0.005) -> dict[str, Timing]:
    """Time each callable ``rounds`` times, interleaved with rotating order (see the module docstring).

    ``inner`` calls per sample: an int for all, a mapping per name, or None to calibrate each
    variant after its warm-up. Returns wall and CPU seconds per call as `Timing` per name
    (`time_rounds` with `host_timer`).
    """
    stats = time_rounds(fns, rounds=rounds, warmup=warmup, inner=inner, min_sample_seconds=min_sample_seconds)
    empty = Stats(())
    return {name: Timing(clocks.get("wall", empty), clocks.get("cpu", empty)) for name, clocks in stats.items()}


def paired_ratios(numerator: Stats, denominator: Stats) -> Stats:
    """Per-round ratios numerator / denominator (the two samples of one round were taken together)."""
    return Stats(tuple(a / b for a, b in zip(numerator.samples, denominator.samples, strict=True)))


def machine_info() -> dict[str, str]:
    """CPU model, core count, load, library versions, threads, date and the command line."""
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    flags = ""
    with contextlib.suppress(OSError):
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                have = set(line.split(":", 1)[1].split())
                flags = " ".join(f for f in ("avx2", "fma", "avx512f", "avx512_vnni", "amx_tile") if f in have)
                break
    load = " ".join(f"{v:.2f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    return {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": " ".join([pathlib.Path(sys.executable).name, *sys.argv]),
        "cpu": f"{model} ({flags})" if flags else model,
        "logical cpus": str(os.cpu_count()),
        "load average (1/5/15 min, at start)": load,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch cpu capability": torch.backends.cpu.get_cpu_capability(),
        "mkldnn (oneDNN) enabled": str(torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled),
        "torch default threads": str(torch.get_num_threads()),
    }


def md_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(map(str, header)) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def md_info(info: Mapping[str, str]) -> str:
    return "\n".join(f"- {key}: `{value}`" if key == "command" else f"- {key}: {value}" for key, value in info.items())


def write_csv(path: pathlib.Path, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


def write_text(path: pathlib.Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text if text.endswith("\n") else text + "\n")


def conv_count(module: torch.nn.Module) -> int:
    """Convolutions a module runs: conv nodes of a GraphModule, else ``nn.Conv*`` submodules."""
    if isinstance(module, torch.fx.GraphModule):
        from fxrep.report import count_ops

        return count_ops(module).get("conv", 0)
    return sum(isinstance(m, torch.nn.modules.conv._ConvNd) for m in module.modules())


def max_errors(reference: torch.Tensor, value: torch.Tensor) -> tuple[float, float]:
    """(max |value - reference|, that / max |reference|), as in `fxrep.verify`."""
    diff = (value.double() - reference.double()).abs().max().item()
    scale = reference.double().abs().max().item()
    return diff, diff / scale if scale else float("inf")
