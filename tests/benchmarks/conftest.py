"""Makes the benchmark scripts importable in tests: ``benchmarks/`` and ``benchmarks/gpu/`` go on sys.path.

The scripts import their siblings by plain name (``from _timing import ...``), as they do when run
as ``python benchmarks/...``; these tests import them the same way.
"""

from __future__ import annotations

import pathlib
import sys

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
for folder in (REPO_ROOT / "benchmarks", REPO_ROOT / "benchmarks" / "gpu"):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
