"""Persist a classic TensorRT builder's timing cache across builds.

The builder times candidate kernels ("tactics") for each layer; the timing cache stores those
timings so the next build of a similar network skips the measurements. TensorRT-RTX has no use for
it (its timing-cache API is a deprecated no-op there), so ``build_engine`` only calls this for
classic TensorRT.
"""

from __future__ import annotations

import logging
import pathlib
from typing import Any

from fxrep.lower.errors import LoweringError

__all__ = ["load_timing_cache", "save_timing_cache"]

logger = logging.getLogger(__name__)


def load_timing_cache(config: Any, path: pathlib.Path) -> None:
    """Attach a timing cache to a builder config, seeded from ``path`` when that file exists."""
    data = path.read_bytes() if path.exists() else b""
    cache = config.create_timing_cache(data)
    if cache is None or not config.set_timing_cache(cache, ignore_mismatch=False):
        raise LoweringError(f"the timing cache {path} could not be used; delete it to start a new one")
    logger.debug("timing cache %s: %s bytes loaded", path, len(data))


def save_timing_cache(config: Any, path: pathlib.Path) -> None:
    """Write the builder config's timing cache (with this build's timings) to ``path``."""
    data = memoryview(config.get_timing_cache().serialize()).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(data)
    partial.replace(path)  # atomic: a concurrent build never reads half a cache
    logger.debug("timing cache %s: %s bytes saved", path, len(data))
