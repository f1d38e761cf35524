"""What TensorRT tells us during a build: its log messages and its progress through the phases.

TensorRT keeps the first ``ILogger`` handed to any Builder, Runtime or Refitter for the rest of
the process and ignores later ones (it logs "The logger passed into createInferBuilder differs
from one already registered"). A logger per build would therefore miss every builder message
after the first build. So there is one logger per TensorRT module, created on first use, that
forwards messages to Python logging and copies them into whichever captures are active; a build
opens a capture to quote the builder's errors when it fails.

The progress printer shows each optimizer phase and its steps on a stream (stderr); TensorRT calls
it from its own threads, so it takes a lock.

The logic lives in plain classes (``LogCollector``, ``BuildProgress``); the TensorRT interface
classes they are plugged into are thin adapters made on demand, since the base classes only exist
once tensorrt / tensorrt_rtx is imported.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import logging
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any, TextIO

__all__ = [
    "LogRecord",
    "LogCollector",
    "BuildProgress",
    "tensorrt_logger",
    "progress_monitor",
    "engine_kernel_summary",
]

logger = logging.getLogger(__name__)

_PYTHON_LEVELS = {
    "INTERNAL_ERROR": logging.ERROR,
    "ERROR": logging.ERROR,
    "WARNING": logging.WARNING,
    "INFO": logging.DEBUG,  # TensorRT's INFO is build chatter
    "VERBOSE": logging.DEBUG,
}


@dataclass(frozen=True)
class LogRecord:
    """One TensorRT log message; ``severity`` is the ILogger.Severity member name ("ERROR", ...)."""

    severity: str
    message: str

    @property
    def is_error(self) -> bool:
        return self.severity in ("INTERNAL_ERROR", "ERROR")


class LogCollector:
    """Forwards TensorRT messages to Python logging and records them for active captures."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._captures: list[list[LogRecord]] = []

    def log(self, severity: str, message: str) -> None:
        record = LogRecord(severity, message)
        with self._lock:
            for records in self._captures:
                records.append(record)
            captured = bool(self._captures)
        # While captured, the capturing code reports problems (in its exception, or by replay());
        # logging them here as well would print every parser error twice.
        level = logging.DEBUG if captured else _PYTHON_LEVELS.get(severity, logging.DEBUG)
        if logger.isEnabledFor(level):
            logger.log(level, "TensorRT %s: %s", severity, message)

    @staticmethod
    def replay(records: Iterable[LogRecord]) -> None:
        """Log the warnings and errors among captured ``records`` (for an operation that went on to succeed)."""
        for record in records:
            if record.severity in ("INTERNAL_ERROR", "ERROR", "WARNING"):
                logger.warning("TensorRT %s: %s", record.severity, record.message)

    @contextlib.contextmanager
    def capture(self) -> Iterator[list[LogRecord]]:
        """Collect every message logged inside the block into the yielded list.

        Messages logged during a capture go to Python logging at DEBUG only: the capturing code
        raises them in its error or passes them to ``replay``.
        """
        records: list[LogRecord] = []
        with self._lock:
            self._captures.append(records)
        try:
            yield records
        finally:
            with self._lock:
                self._captures.remove(records)


@functools.cache
def tensorrt_logger(runtime_name: str) -> Any:
    """The process-wide ``ILogger`` for the TensorRT module ``runtime_name``; ``.collector`` is its LogCollector."""
    trt = importlib.import_module(runtime_name)

    class _Logger(trt.ILogger):
        def __init__(self) -> None:
            trt.ILogger.__init__(self)
            self.collector = LogCollector()

        def log(self, severity: Any, msg: str) -> None:
            self.collector.log(getattr(severity, "name", str(severity)), msg)

    return _Logger()


class BuildProgress:
    """Prints the builder's phases and steps, indented by nesting depth, with the elapsed time.

    Phases nested deeper than ``max_depth`` are not printed (TensorRT reports dozens of them).
    """

    def __init__(
        self, stream: TextIO, *, max_depth: int = 2, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._stream = stream
        self._max_depth = max_depth
        self._clock = clock
        self._start = clock()
        self._lock = threading.Lock()
        self._phases: dict[str, tuple[int, int]] = {}  # name -> (depth, number of steps)

    def phase_start(self, phase_name: str, parent_phase: str | None, num_steps: int) -> None:
        with self._lock:
            depth = self._phases[parent_phase][0] + 1 if parent_phase in self._phases else 0
            self._phases[phase_name] = (depth, num_steps)
            self._write(depth, f"{phase_name}: started, {num_steps} steps")

    def step_complete(self, phase_name: str, step: int) -> bool:
        with self._lock:
            depth, num_steps = self._phases.get(phase_name, (0, 0))
            self._write(depth, f"{phase_name}: step {step + 1}/{num_steps}")
        return True  # False would cancel the build

    def phase_finish(self, phase_name: str) -> None:
        with self._lock:
            depth, _ = self._phases.pop(phase_name, (0, 0))
            self._write(depth, f"{phase_name}: done")

    def finish(self, summary: str) -> None:
        with self._lock:
            self._write(0, summary)

    def _write(self, depth: int, text: str) -> None:
        if depth >= self._max_depth:
            return
        elapsed = self._clock() - self._start
        self._stream.write(f"[fxrep {elapsed:7.2f}s] {'  ' * depth}{text}\n")
        self._stream.flush()


def progress_monitor(trt: ModuleType, progress: BuildProgress) -> Any:
    """Wrap ``progress`` in a ``trt.IProgressMonitor`` for ``IBuilderConfig.progress_monitor``."""
    return _progress_monitor_class(trt.__name__)(progress)


@functools.cache
def _progress_monitor_class(runtime_name: str) -> type:
    trt = importlib.import_module(runtime_name)

    class _ProgressMonitor(trt.IProgressMonitor):
        def __init__(self, progress: BuildProgress) -> None:
            trt.IProgressMonitor.__init__(self)
            self.progress = progress

        def phase_start(self, phase_name: str, parent_phase: str | None, num_steps: int) -> None:
            self.progress.phase_start(phase_name, parent_phase, num_steps)

        def step_complete(self, phase_name: str, step: int) -> bool:
            return self.progress.step_complete(phase_name, step)

        def phase_finish(self, phase_name: str) -> None:
            self.progress.phase_finish(phase_name)

    return _ProgressMonitor


# TensorRT-RTX, at VERBOSE severity with ProfilingVerbosity.DETAILED, ends a build with a
# "Layers:" message listing the compiled kernels, one "Name: ..., LayerType: <kind>, ..." line each.
# Classic TensorRT prints "Engine Layer Information:" with "Layer(<kind>): ..." lines.
_KERNEL_LINE = re.compile(
    r"^(?:Name: .*?, LayerType: (?P<rtx>[\w.]+)|Layer\((?P<trt>[\w.]+)\):)", re.MULTILINE
)


def engine_kernel_summary(records: Iterable[LogRecord]) -> dict[str, int]:
    """Count the engine's compiled layers (after fusion) by kind, from the builder's verbose log.

    Empty when the log has no layer listing (another TensorRT version, or the logger was not ours).
    """
    counts: Counter[str] = Counter()
    for record in records:
        if record.message.startswith(("Layers:", "Engine Layer Information:")):
            for match in _KERNEL_LINE.finditer(record.message):
                counts[match.group("rtx") or match.group("trt")] += 1
    return dict(sorted(counts.items()))
