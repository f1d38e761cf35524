"""The clock of the GPU benchmark: CUDA events on a GPU, the host's wall clock only in a dry run.

A `_timing.Timer` runs ``fn`` ``count`` times and returns the seconds per clock. On a GPU the calls
only *enqueue* kernels, so the host clock would measure launch time, not what the device did:
`cuda_event_timer` records a CUDA event before and after the calls on the current stream, waits for
the second one, and returns the time between the two events as measured by the GPU ("cuda"), and
the host's wall time of the same sample, synchronization included ("wall"). The first sample of a
round starts on an idle queue, because the previous sample ended by synchronizing.

`select_timer` picks the timer for a device: CUDA events on "cuda"; on "cpu" the host timer's
wall clock, which only a dry run may use (a CPU figure must never pass for a GPU one).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch
from _timing import Timer, host_timer


class NoCudaError(RuntimeError):
    """A GPU measurement was asked for where CUDA is not available."""


def cuda_event_timer(fn: Callable[[], Any], count: int) -> dict[str, float]:
    """GPU seconds between two CUDA events around ``count`` calls ("cuda"), and host wall seconds ("wall")."""
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    host_start = time.perf_counter()
    start.record()
    for _ in range(count):
        fn()
    end.record()
    end.synchronize()
    host = time.perf_counter() - host_start
    return {"cuda": start.elapsed_time(end) / 1e3, "wall": host}


def select_timer(device: str, dry_run: bool) -> tuple[Timer, str]:
    """(timer, the clock the benchmark reports) for ``device``; the host clock only in a dry run."""
    if device == "cuda":
        if not torch.cuda.is_available():
            raise NoCudaError("CUDA is not available")
        return cuda_event_timer, "cuda"
    if device == "cpu" and dry_run:
        return host_timer, "wall"
    raise NoCudaError(f"device {device!r}: GPU figures need CUDA; only --dry-run may time on the CPU")


def synchronize(device: str) -> None:
    """Wait for queued work on ``device`` (a no-op on the CPU)."""
    if device == "cuda":
        torch.cuda.synchronize()
