"""`_timing.time_rounds` with a pluggable timer, and `time_interleaved` (the CPU benchmarks' entry) on top of it."""

from __future__ import annotations

import math

import pytest
import torch
from _timing import Timing, calibrate_inner, host_timer, time_interleaved, time_rounds
from cuda_timer import NoCudaError, select_timer


class FakeTimer:
    """A clock that charges ``cost[name]`` seconds per call and records what was timed, in order."""

    def __init__(self, cost: dict[str, float]) -> None:
        self.cost = cost
        self.timed: list[tuple[str, int]] = []

    def fns(self) -> dict[str, object]:
        return {name: (lambda name=name: name) for name in self.cost}

    def __call__(self, fn, count: int) -> dict[str, float]:
        name = fn()
        self.timed.append((name, count))
        return {"fake": self.cost[name] * count, "double": 2 * self.cost[name] * count}


def test_time_rounds_uses_the_timer_rotates_the_order_and_keeps_every_clock() -> None:
    timer = FakeTimer({"a": 2.0 ** -10, "b": 2.0 ** -8, "c": 2.0 ** -6})
    stats = time_rounds(timer.fns(), rounds=4, warmup=1, inner={"a": 3, "b": 1, "c": 2}, timer=timer)
    assert [name for name, _ in timer.timed] == list("abc" "bca" "cab" "abc")
    assert dict(timer.timed) == {"a": 3, "b": 1, "c": 2}
    for name, cost in timer.cost.items():
        assert set(stats[name]) == {"fake", "double"}
        assert stats[name]["fake"].samples == (cost,) * 4  # seconds per call, not per sample
        assert stats[name]["double"].median == 2 * cost


def test_calibration_goes_through_the_timer_and_its_clock() -> None:
    timer = FakeTimer({"op": 2.0 ** -14})
    inner = calibrate_inner(timer.fns()["op"], 2.0 ** -10, timer=timer, clock="fake")
    assert inner * 2.0 ** -14 > 2.0 ** -10 >= (inner - 1) * 2.0 ** -14  # the fewest calls lasting longer
    assert calibrate_inner(timer.fns()["op"], 2.0 ** -10, timer=timer, clock="double") == (inner + 1) // 2
    stats = time_rounds(timer.fns(), rounds=2, warmup=0, min_sample_seconds=2.0 ** -10, timer=timer,
                        calibration_clock="fake")
    assert timer.timed[-1] == ("op", inner) and stats["op"]["fake"].n == 2


def test_time_interleaved_is_time_rounds_with_the_host_clocks() -> None:
    x = torch.randn(64, 64)
    timings = time_interleaved({"mm": lambda: x @ x, "add": lambda: x + x}, rounds=3, warmup=1, inner=2)
    for timing in timings.values():
        assert isinstance(timing, Timing) and timing.wall.n == timing.cpu.n == 3
        assert all(s > 0 for s in timing.wall.samples)
    empty = time_interleaved({"add": lambda: x + x}, rounds=0, warmup=0, inner=1)["add"]
    assert empty.wall.n == empty.cpu.n == 0
    assert set(host_timer(lambda: None, 5)) == {"wall", "cpu"}


def test_the_host_clock_is_only_for_a_dry_run() -> None:
    assert select_timer("cpu", dry_run=True) == (host_timer, "wall")
    with pytest.raises(NoCudaError):
        select_timer("cpu", dry_run=False)
    if not torch.cuda.is_available():
        with pytest.raises(NoCudaError):
            select_timer("cuda", dry_run=True)


def test_median_ci_of_paired_ratios_brackets_the_median() -> None:
    from _timing import Stats, paired_ratios

    ratios = paired_ratios(Stats(tuple(1.0 + i / 100 for i in range(21))), Stats((1.0,) * 21))
    low, high = ratios.median_ci()
    assert low <= ratios.median <= high and math.isclose(ratios.median, 1.10)
