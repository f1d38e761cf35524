"""The measured cost model: time each op on the device once, keep the time in a timing cache.

`MeasuredCostModel.seconds(signature)` answers the same question as the analytic `CostModel`, by
measurement: the op is rebuilt from its signature (`fxrep.cost.op_builder.runnable`: random data
of the right shapes, in the signature's dtype, on its device) and timed; the time is stored in a
`TimingCache` under (signature, dtype, device, threads, torch version) and every later question
with that key - in this run or any run given the same cache file - is answered from the cache,
never re-timed. Same cache, same answers, same decisions. ``estimate(signature)`` gives the
analytic estimate of the same op, so a report can print both.

Timing rule (`TimingRule`, `time_op`), per op:

1. warm-up: at least ``warmup_calls`` calls and ``warmup_seconds`` of wall time (caches, oneDNN
   primitive creation, CUDA kernel selection); the last warm-up calls give the time of one call;
2. ``calls`` per sample so that one sample lasts at least ``sample_seconds`` (a clock tick is then
   negligible): ``calls = ceil(sample_seconds / one call)``;
3. rounds of ``calls`` calls, one sample (seconds per call) each, at least ``min_rounds``; after
   that it stops as soon as the distribution-free 95% confidence interval of the median (order
   statistics) lies within ``precision`` (3%) of the median, or at ``max_rounds`` / ``max_seconds``.
   Two alternatives whose medians differ by more than about twice ``precision`` are then ordered
   correctly; closer ones are near-ties, where either choice costs little;
4. the op's time is the median of the samples.

Clocks: on a CPU with ONE thread, process CPU time (``time.process_time``), which excludes the time
other processes hold the core (the contention-robust measure the benchmarks use); with several
threads, wall time (``time.perf_counter``; CPU time would sum the threads); on CUDA, CUDA events
around the calls on the current stream, after a synchronize.

Ops a signature cannot rebuild (``cat``, ``identity``, unknown kinds; `NotRunnable`) are answered
with the analytic estimate and not cached.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.fx import Node

from ..errors import FxrepError
from .estimator import CostEstimator, SignatureCosts
from .model import CostModel
from .op_builder import NotRunnable, resolve_dtype, runnable
from .signatures import OpSignature
from .timing_cache import TimingCache, TimingEntry, TimingKey, device_key

Timer = Callable[[Callable[[], object], torch.device], TimingEntry]
"""Times a zero-argument op on a device: returns seconds per call (`time_op` is the real one)."""


class CostMeasurementError(FxrepError, RuntimeError):
    """An op cannot be timed where it was asked to be (the message says why and what to do)."""


@dataclass(frozen=True)
class TimingRule:
    """How `time_op` times one op (see the module docstring)."""

    warmup_calls: int = 3
    warmup_seconds: float = 0.01
    sample_seconds: float = 0.002
    max_calls_per_sample: int = 10_000
    min_rounds: int = 7
    max_rounds: int = 25
    precision: float = 0.03
    max_seconds: float = 1.0


def median_interval(samples: Sequence[float], z: float = 1.96) -> tuple[float, float]:
    """Distribution-free ~95% confidence interval of the median (order statistics, normal approximation)."""
    ordered = sorted(samples)
    n = len(ordered)
    half = z * math.sqrt(n) / 2
    low = max(0, math.floor(n / 2 - half))
    high = min(n - 1, math.ceil(n / 2 + half) - 1)
    return ordered[low], ordered[high]


def time_op(run: Callable[[], object], device: torch.device, rule: TimingRule = TimingRule()) -> TimingEntry:
    """Seconds per call of ``run`` on ``device`` by `TimingRule` (see the module docstring)."""
    device = torch.device(device)
    cuda = device.type == "cuda"
    clock_name = "cuda events" if cuda else ("process_time" if torch.get_num_threads() == 1 else "perf_counter")
    clock = time.process_time if clock_name == "process_time" else time.perf_counter

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize(device)

    def sample(calls: int) -> float:
        if cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            sync()
            start.record()
            for _ in range(calls):
                run()
            end.record()
            end.synchronize()
            return start.elapsed_time(end) / 1e3 / calls
        begin = clock()
        for _ in range(calls):
            run()
        return (clock() - begin) / calls

    with torch.inference_mode(), _gc_paused():
        began = time.perf_counter()
        warm, one = 0, math.inf
        while warm < rule.warmup_calls or time.perf_counter() - began < rule.warmup_seconds:
            sync()
            start = time.perf_counter()
            run()
            sync()
            one = time.perf_counter() - start
            warm += 1
        calls = max(1, min(rule.max_calls_per_sample, math.ceil(rule.sample_seconds / max(one, 1e-9))))
        began = time.perf_counter()
        samples: list[float] = []
        while len(samples) < rule.max_rounds:
            samples.append(sample(calls))
            if len(samples) >= rule.min_rounds:
                median = sorted(samples)[len(samples) // 2]
                low, high = median_interval(samples)
                if max(median - low, high - median) <= rule.precision * median:
                    break
                if time.perf_counter() - began > rule.max_seconds:
                    break
    return TimingEntry.from_samples(samples, calls, clock_name)


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    import gc

    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@contextlib.contextmanager
def _threads(n: int) -> Iterator[None]:
    previous = torch.get_num_threads()
    if n != previous:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if torch.get_num_threads() != previous:
            torch.set_num_threads(previous)


class MeasuredCostModel(SignatureCosts):
    """Seconds of op signatures by timing them on the device, cached (see the module docstring).

    Args:
        timing_cache: a `TimingCache`, a path to a cache file (read if it exists, written after
            every new timing), or None for a cache that lives only as long as this model.
        analytic: the model ``estimate`` reports (and that answers ops that cannot be timed);
            default ``CostModel()``.
        device, dtype: where and in what to time signatures that do not say (default: CPU, the
            float of the signature's itemsize).
        threads: CPU threads to time with (default: ``torch.get_num_threads()`` when asked).
        timer: replaces `time_op` (tests inject a fake one).
        rule: the `TimingRule` of the default timer.
    """

    def __init__(self, timing_cache: TimingCache | str | Path | None = None, *,
                 analytic: CostEstimator | None = None, device: torch.device | str | None = None,
                 dtype: torch.dtype | None = None, threads: int | None = None, timer: Timer | None = None,
                 rule: TimingRule | None = None) -> None:
        if isinstance(timing_cache, TimingCache):
            self.cache = timing_cache
        else:
            self.cache = TimingCache() if timing_cache is None else TimingCache.load(timing_cache)
        self.analytic = analytic if analytic is not None else CostModel()
        self.device = torch.device("cpu" if device is None else device)
        self.dtype = dtype
        if threads is not None and threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        self.threads = threads
        self.rule = rule or TimingRule()
        self.timer: Timer = timer or (lambda run, device: time_op(run, device, self.rule))
        self.timed: list[TimingKey] = []  # keys this model timed (cache misses), in order
        self.reused: set[TimingKey] = set()  # keys answered from a cache entry this model did not time

    def seconds(self, signature: OpSignature) -> float:
        """Measured seconds of one call of the op (from the cache when it has the key)."""
        return self.timing(signature).seconds

    def estimate(self, signature: OpSignature) -> float:
        """The analytic estimate of the same op (for reports: estimated vs measured)."""
        return self.analytic.seconds(signature)

    def key(self, signature: OpSignature) -> TimingKey:
        """The cache key ``signature`` is timed under here (``NotRunnable`` if it cannot be timed)."""
        dtype = resolve_dtype(signature, self.dtype)
        device = self._device(signature)
        return TimingKey.of(signature, dtype=str(dtype).removeprefix("torch."), device=device_key(device),
                            threads=self._thread_count())

    def timing(self, signature: OpSignature) -> TimingEntry:
        """The cached or freshly measured `TimingEntry` of the op (the analytic estimate if it cannot be timed)."""
        try:
            key = self.key(signature)
        except NotRunnable:
            return TimingEntry(self.estimate(signature), clock="analytic (not timeable)")
        entry = self.cache.get(key)
        if entry is not None:
            if key not in self.timed:
                self.reused.add(key)
            return entry
        device = self._device(signature)
        try:
            run = runnable(signature, dtype=resolve_dtype(signature, self.dtype), device=device)
        except NotRunnable:
            return TimingEntry(self.estimate(signature), clock="analytic (not timeable)")
        with _threads(key.threads):
            entry = self.timer(run, device)
        self.cache.put(key, entry)
        self.timed.append(key)
        if self.cache.path is not None:
            self.cache.save()
        return entry

    def describe(self) -> str:
        """One line for reports: where the timings came from."""
        where = f"timing cache {self.cache.path}" if self.cache.path is not None else "an in-memory timing cache"
        return f"measured cost ({where}): {len(self.timed)} ops timed, {len(self.reused)} reused"

    def _device(self, signature: OpSignature) -> torch.device:
        device = torch.device(signature.device) if signature.device is not None else self.device
        if device.type == "meta":
            device = self.device
        if device.type == "cuda" and not torch.cuda.is_available():
            raise CostMeasurementError(f"cannot time {signature.describe()} on {device}: CUDA is not available "
                                       "here; measure on the machine with the GPU, or use the analytic model "
                                       "(e.g. CostModel(GPU))")
        return device

    def _thread_count(self) -> int:
        return self.threads if self.threads is not None else torch.get_num_threads()


class _Delegate(SignatureCosts):
    """A user's `CostEstimator` with the `SignatureCosts` conveniences (every question still asks it)."""

    def __init__(self, estimator: CostEstimator) -> None:
        self.estimator = estimator

    def seconds(self, signature: OpSignature) -> float:
        return float(self.estimator.seconds(signature))

    def node_seconds(self, node: Node) -> float:
        return float(self.estimator.node_seconds(node))


COST_CHOICES = ("analytic", "measure")


def cost_model_for(cost: str | CostEstimator | None, timing_cache: TimingCache | str | Path | None = None, *,
                   device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> SignatureCosts:
    """The cost model ``optimize(cost=..., timing_cache=...)`` asks for.

    ``cost`` is "analytic" (None: the default `CostModel()`), "measure" (a `MeasuredCostModel` on
    ``device`` / ``dtype`` with ``timing_cache``) or any `CostEstimator`; ``timing_cache`` only goes
    with "measure".
    """
    if timing_cache is not None and cost != "measure":
        raise ValueError(f"timing_cache={str(timing_cache)!r} is only used with cost='measure' (got cost={cost!r}); "
                         "pass cost='measure', or give your MeasuredCostModel its own timing cache")
    if cost is None or cost == "analytic":
        return CostModel()
    if cost == "measure":
        return MeasuredCostModel(timing_cache, device=device, dtype=dtype)
    if isinstance(cost, str):
        raise ValueError(f"unknown cost {cost!r}: use one of {', '.join(map(repr, COST_CHOICES))} or a cost model "
                         "object with seconds(signature) and node_seconds(node)")
    if isinstance(cost, SignatureCosts):
        return cost
    if isinstance(cost, CostEstimator):
        return _Delegate(cost)
    raise ValueError(f"cost must be {' or '.join(map(repr, COST_CHOICES))} or an object with seconds(signature) "
                     f"and node_seconds(node), got {type(cost).__name__}")


