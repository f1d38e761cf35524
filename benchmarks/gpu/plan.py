"""What one GPU benchmark run measures, per mode, and the time budget that keeps it inside its slot.

Three modes share every line of code and differ only in this plan:

- ``full`` (the default; under 5 minutes on an H200): RepVGG-A0 and MobileOne-S0 at 224x224, fp32
  and fp16, batch 1 and 32; the compile comparison in fp16 at batch 32 and 1; the single-op set
  ``op_set.op_specs("full")`` in fp16 and fp32.
- ``quick`` (under 1 minute): both networks in fp16 at batch 32, the compile comparison for
  RepVGG-A0 only, the "quick" op set in fp16, fewer rounds.
- ``dry-run``: the same sections on the CPU with tiny sizes (32x32 images, batch 1: RepVGG-A0 in
  fp16 and MobileOne-S0 in fp32, the compile comparison for RepVGG-A0 in fp32, the "tiny" op set in
  both dtypes) and a few rounds, timed with the host's wall clock: it checks the script, not the
  device.

`Budget` is the run's deadline: before each unit of work (one network configuration, one compile
configuration, one dtype of the op set) a section asks whether enough time is left for it and
otherwise records it as skipped, so a slow device costs figures, never the whole run. The budgets
(250 s full, 40 s quick) leave room for start-up (torch import, preflight: ~10-15 s) and for the
last unit started to run past the deadline (a compile configuration needs 60 s / 30 s left).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Timed:
    """How one section times: rounds per variant, warm-up calls, and the least duration of one sample."""

    rounds: int
    warmup: int
    min_sample_seconds: float


@dataclass(frozen=True)
class Plan:
    mode: str
    device: str
    size: int
    model_configs: tuple[tuple[str, str, int], ...]
    """(network, dtype, batch) of the eager comparison."""
    model_timing: Timed
    compile_configs: tuple[tuple[str, str, int], ...]
    compile_timing: Timed
    op_scale: str
    op_dtypes: tuple[str, ...]
    op_timing: Timed
    budget_seconds: float
    unit_seconds: dict[str, float] = field(default_factory=dict)
    """Seconds that must be left to start one unit of a section ("models", "compile", "ops")."""

    @property
    def suffix(self) -> str:
        """File-name suffix of this mode's results ("" for a full run)."""
        return {"full": "", "quick": "_quick", "dry-run": "_dry_run"}[self.mode]


NETWORKS = ("RepVGG-A0", "MobileOne-S0")


def grid(networks: tuple[str, ...], dtypes: tuple[str, ...],
         batches: tuple[int, ...]) -> tuple[tuple[str, str, int], ...]:
    """Every (network, dtype, batch), network by network."""
    return tuple((network, dtype, batch) for network in networks for dtype in dtypes for batch in batches)


def make_plan(mode: str, device: str, budget_seconds: float | None = None) -> Plan:
    """The plan of ``mode`` ("full", "quick" or "dry-run") on ``device``; ``budget_seconds`` replaces its budget."""
    if mode == "full":
        plan = Plan(mode, device, 224, grid(NETWORKS, ("fp32", "fp16"), (1, 32)), Timed(30, 5, 0.01),
                    (("RepVGG-A0", "fp16", 32), ("MobileOne-S0", "fp16", 32), ("RepVGG-A0", "fp16", 1),
                     ("MobileOne-S0", "fp16", 1)), Timed(30, 5, 0.01),
                    "full", ("fp16", "fp32"), Timed(9, 2, 0.001), 250.0,
                    {"models": 15.0, "compile": 60.0, "ops": 20.0})
    elif mode == "quick":
        plan = Plan(mode, device, 224, grid(NETWORKS, ("fp16",), (32,)), Timed(10, 3, 0.005),
                    (("RepVGG-A0", "fp16", 32),), Timed(10, 3, 0.005),
                    "quick", ("fp16",), Timed(5, 2, 0.0005), 40.0,
                    {"models": 5.0, "compile": 30.0, "ops": 5.0})
    elif mode == "dry-run":
        plan = Plan(mode, device, 32, (("RepVGG-A0", "fp16", 1), ("MobileOne-S0", "fp32", 1)),
                    Timed(3, 1, 0.0), (("RepVGG-A0", "fp32", 1),), Timed(3, 1, 0.0),
                    "tiny", ("fp32", "fp16"), Timed(3, 1, 0.0002), math.inf, {})
    else:
        raise ValueError(f"mode must be full, quick or dry-run, got {mode!r}")
    if budget_seconds is not None:
        plan = Plan(**{**plan.__dict__, "budget_seconds": budget_seconds})
    return plan


class Budget:
    """The run's deadline, counted from construction."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.start = time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def left(self) -> float:
        return self.seconds - self.elapsed()

    def allows(self, seconds: float) -> bool:
        """Whether ``seconds`` of work still fit before the deadline."""
        return self.left() >= seconds
