"""The timing cache: measured op times, kept in a JSON file, reused and shareable (`TimingCache`).

Like TensorRT's timing cache, it records how long each op took where it was timed, so the next
run (or a colleague with the same machine and torch) decides from the same numbers without timing
again. A key says everything the time depends on:

    (op signature without dtype/device, dtype, device, thread count, torch version)

``device`` names the hardware, not just the torch device type: ``"cpu:<model name> (<ISA>)"`` or
``"cuda:<GPU name>"`` (`device_key`), so a file shared between different machines misses instead
of answering for the wrong one. A key present in the cache is never re-timed: the same cache file
gives the same seconds, hence the same decisions.

File format (``version`` 1), entries sorted by key so the file's text is reproducible::

    {"format": "fxrep timing cache", "version": 1,
     "entries": [{"signature": {"op": "conv", "in_channels": 64, ...}, "dtype": "float32",
                  "device": "cpu:AMD EPYC 7B13 (AVX2)", "threads": 1, "torch": "2.14.1",
                  "seconds": 4.1e-05, "samples": [...], "calls_per_sample": 50, "clock": "process_time"}]}

``seconds`` is the median of ``samples`` (seconds per call, one per round). `TimingCache.load` of a
missing file gives an empty cache that `save` creates; a file that cannot be read, is not JSON,
is another format or another version raises `TimingCacheError` saying what to do. `save` writes
atomically and merges entries another process added to the file meanwhile.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import pathlib
import platform
import statistics
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ..errors import FxrepError
from .signatures import OpSignature, signature_fields, signature_from_fields

FORMAT = "fxrep timing cache"
VERSION = 1


class TimingCacheError(FxrepError, ValueError):
    """A timing cache file that cannot be used (the message names the file, the cause and the fix)."""


@dataclass(frozen=True, order=True)
class TimingKey:
    """What one measured time depends on (see the module docstring)."""

    signature: str  # canonical JSON of `signature_fields`
    dtype: str
    device: str
    threads: int
    torch: str

    @classmethod
    def of(cls, signature: OpSignature, *, dtype: str, device: str, threads: int,
           torch_version: str | None = None) -> TimingKey:
        """The key of ``signature`` timed in ``dtype`` on ``device`` (a `device_key`); torch defaults to this one."""
        version = str(torch.__version__) if torch_version is None else str(torch_version)
        return cls(json.dumps(signature_fields(signature), sort_keys=True, separators=(",", ":")), dtype, device,
                   int(threads), version)

    def op_signature(self) -> OpSignature:
        """The signature this key times (with its dtype; the device is a hardware name, not a torch device)."""
        return signature_from_fields(json.loads(self.signature), dtype=self.dtype)


@dataclass(frozen=True)
class TimingEntry:
    """Seconds per call of one op: the median of ``samples`` (one per round)."""

    seconds: float
    samples: tuple[float, ...] = ()
    calls_per_sample: int = 1
    clock: str = ""

    @classmethod
    def from_samples(cls, samples: Sequence[float], calls_per_sample: int = 1, clock: str = "") -> TimingEntry:
        if not samples:
            raise ValueError("a timing needs at least one sample")
        return cls(float(statistics.median(samples)), tuple(float(s) for s in samples), calls_per_sample, clock)


def device_key(device: torch.device | str) -> str:
    """The hardware ``device`` stands for: ``"cpu:<model> (<ISA>)"`` or ``"cuda:<GPU name>"``."""
    device = torch.device(device)
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return f"cuda:{torch.cuda.get_device_name(index)}"
    if device.type == "cpu":
        return f"cpu:{_cpu_model()} ({torch.backends.cpu.get_cpu_capability()})"
    return device.type


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine() or "unknown"


class TimingCache:
    """Measured seconds by `TimingKey`, optionally backed by a JSON file (see the module docstring)."""

    def __init__(self, path: str | os.PathLike[str] | None = None,
                 entries: Mapping[TimingKey, TimingEntry] | None = None) -> None:
        self.path = None if path is None else pathlib.Path(path)
        self._entries: dict[TimingKey, TimingEntry] = dict(entries or {})

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> TimingCache:
        """The cache in ``path``; empty (and created by `save`) when the file does not exist."""
        path = pathlib.Path(path)
        return cls(path, _read(path) if path.exists() else {})

    def get(self, key: TimingKey) -> TimingEntry | None:
        return self._entries.get(key)

    def put(self, key: TimingKey, entry: TimingEntry) -> None:
        self._entries[key] = entry

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[TimingKey]:
        return iter(sorted(self._entries))

    def items(self) -> list[tuple[TimingKey, TimingEntry]]:
        return [(key, self._entries[key]) for key in self]

    def save(self, path: str | os.PathLike[str] | None = None) -> pathlib.Path:
        """Write the cache to ``path`` (default: where it was loaded from), merged with the file's entries.

        Entries in this cache win over the file's for the same key; the file is replaced atomically.
        """
        target = pathlib.Path(path) if path is not None else self.path
        if target is None:
            raise TimingCacheError("this timing cache has no file: pass save(path) or create it with "
                                   "TimingCache.load(path)")
        merged = _read(target) if target.exists() else {}
        merged.update(self._entries)
        self._entries = merged
        document = {"format": FORMAT, "version": VERSION,
                    "entries": [_entry_json(key, merged[key]) for key in sorted(merged)]}
        text = json.dumps(document, indent=1) + "\n"
        target.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
        try:
            with os.fdopen(handle, "w") as stream:
                stream.write(text)
            os.replace(temporary, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
        return target


def _entry_json(key: TimingKey, entry: TimingEntry) -> dict[str, Any]:
    return {"signature": json.loads(key.signature), "dtype": key.dtype, "device": key.device,
            "threads": key.threads, "torch": key.torch, "seconds": entry.seconds, "samples": list(entry.samples),
            "calls_per_sample": entry.calls_per_sample, "clock": entry.clock}


def _read(path: pathlib.Path) -> dict[TimingKey, TimingEntry]:
    fix = "delete it (its ops are timed again) or pass another timing cache path"
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as error:
        raise TimingCacheError(f"cannot read the timing cache {path}: {error}; check the path and its "
                               "permissions, or pass another timing cache path") from error
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise TimingCacheError(f"the timing cache {path} is not valid JSON ({error}); {fix}") from error
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise TimingCacheError(f"{path} is not an fxrep timing cache (no \"format\": \"{FORMAT}\"); {fix}")
    if document.get("version") != VERSION:
        raise TimingCacheError(f"the timing cache {path} has version {document.get('version')!r}, this fxrep reads "
                               f"version {VERSION}; {fix}")
    entries = document.get("entries")
    if not isinstance(entries, list):
        raise TimingCacheError(f"the timing cache {path} has no list of \"entries\"; {fix}")
    result: dict[TimingKey, TimingEntry] = {}
    for index, item in enumerate(entries):
        try:
            signature = signature_from_fields(item["signature"])
            key = TimingKey.of(signature, dtype=str(item["dtype"]), device=str(item["device"]),
                               threads=int(item["threads"]), torch_version=str(item["torch"]))
            seconds = float(item["seconds"])
            if not (math.isfinite(seconds) and seconds >= 0):
                raise ValueError(f"seconds {seconds!r} is not a finite non-negative number")
            entry = TimingEntry(seconds, tuple(float(s) for s in item.get("samples", ())),
                                int(item.get("calls_per_sample", 1)), str(item.get("clock", "")))
        except (AttributeError, KeyError, TypeError, ValueError) as error:
            raise TimingCacheError(f"entry {index} of the timing cache {path} is malformed ({type(error).__name__}: "
                                   f"{error}); {fix}") from error
        result[key] = entry
    return result
