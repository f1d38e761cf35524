"""Progress lines on stderr for steps that can take a while (demo, CLI, ``optimize(progress=True)``).

A step prints ``<what>...`` when it starts and ``done in 1.2s`` when it ends, so a user watching a
long capture or engine build knows what is happening. Disabled steps print nothing.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator


@contextlib.contextmanager
def step(what: str, enabled: bool = True) -> Iterator[None]:
    """Announce ``what`` on stderr, run the body, then report how long it took."""
    if not enabled:
        yield
        return
    print(f"{what}...", end="", file=sys.stderr, flush=True)
    start = time.perf_counter()
    try:
        yield
    except BaseException:
        print(" failed", file=sys.stderr, flush=True)
        raise
    print(f" done in {time.perf_counter() - start:.1f}s", file=sys.stderr, flush=True)
