"""Fitted GPU constants for `fxrep.cost.Target` from the single-op CSV of the GPU benchmark.

    python benchmarks/gpu/fit_constants.py OUT/gpu_ops.csv [--md OUT/gpu_fit.md] [--csv OUT/gpu_fit.csv]

Per dtype in the CSV, the five constants (macs_per_second, grouped_macs_per_second,
bytes_per_second, seconds_per_op, winograd_speedup) are fitted by the CPU calibration's own code,
imported from ``benchmarks/bench_cost_model.py``: `fit_target` (least squares in log space,
started from non-negative least squares on relative errors), `rounded` (two significant digits)
and `fit_quality` (median / p90 / max |estimate / measured - 1| per op category). Each CSV row
already holds the op's features as `fxrep.cost.CostModel` computes them (``op_set.features``), so
the estimate of any constants is rebuilt from them (``op_set.linear_estimate``).

fxrep's model has one set of GPU constants while fp16 and fp32 run at very different rates
(tensor cores; fp32 convs as TF32 by default): the fp16 fit is the one to compare with the
deployment path (TensorRT engines are fp16). This script only reports; the constants in
``fxrep/cost`` change only by hand, with the figures that justify them.
"""

from __future__ import annotations

import argparse
import csv
import math
import pathlib
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

BENCHMARKS = pathlib.Path(__file__).resolve().parents[1]
if str(BENCHMARKS) not in sys.path:
    sys.path.insert(0, str(BENCHMARKS))

import numpy as np  # noqa: E402
import op_set  # noqa: E402
from _timing import Stats, md_table, write_csv, write_text  # noqa: E402
from bench_cost_model import FEATURES, fit_quality, fit_target, rounded  # noqa: E402

from fxrep.cost import GPU, CostModel, Target  # noqa: E402


@dataclass(frozen=True)
class MeasuredOp:
    """One CSV row in the shape `bench_cost_model.fit_target` / `fit_quality` read (label, features, category)."""

    label: str
    category: str
    features: np.ndarray
    named: dict[str, float]

    def estimate(self, model: CostModel) -> float:
        return op_set.linear_estimate(self.named, model.target)


@dataclass(frozen=True)
class Fit:
    dtype: str
    ops: int
    target: Target
    unrounded: Target
    quality: list[list[str]]


def load(path: pathlib.Path) -> dict[str, tuple[list[MeasuredOp], dict[str, Stats]]]:
    """Rows of the single-op CSV by dtype: the ops and their measured medians (as one-sample `Stats`)."""
    by_dtype: dict[str, tuple[list[MeasuredOp], dict[str, Stats]]] = {}
    with path.open(newline="") as handle:
        for row in csv.DictReader(handle):
            named = {name: float(row[name]) for name in op_set.FEATURES}
            op = MeasuredOp(row["op"], row["category"], np.array([named[name] for name in FEATURES]), named)
            ops, measured = by_dtype.setdefault(row["dtype"], ([], {}))
            ops.append(op)
            measured[op.label] = Stats((float(row["median_s"]),))
    return by_dtype


def fit(path: pathlib.Path) -> list[Fit]:
    """The log-space fit per dtype of the CSV at ``path``, with its fit quality next to the GPU constants now."""
    fits = []
    for dtype, (ops, measured) in load(path).items():
        unrounded = replace(fit_target(ops, measured, "log"), name=f"gpu fit ({dtype})")
        target = rounded(unrounded)
        quality = fit_quality(ops, measured, {"fxrep/cost GPU now": CostModel(GPU),
                                              f"fit ({dtype}, rounded)": CostModel(target)})
        fits.append(Fit(dtype, len(ops), target, unrounded, quality))
    return fits


def is_usable(target: Target) -> bool:
    """All five constants finite and positive."""
    values = (target.macs_per_second, target.grouped_macs_per_second, target.bytes_per_second, target.seconds_per_op,
              target.winograd_speedup)
    return all(math.isfinite(v) and v > 0 for v in values)


CONSTANTS_HEADER = ["constants", "ops", "macs_per_second", "grouped_macs_per_second", "bytes_per_second",
                    "seconds_per_op", "winograd_speedup", "all finite and positive"]


def constants_rows(fits: Sequence[Fit]) -> list[list[object]]:
    def row(name: str, ops: object, t: Target) -> list[object]:
        return [name, ops, f"{t.macs_per_second:.3g}", f"{t.grouped_macs_per_second:.3g}",
                f"{t.bytes_per_second:.3g}", f"{t.seconds_per_op:.3g}", f"{t.winograd_speedup:.3g}", is_usable(t)]

    rows = [row("fxrep/cost GPU now (published H100 figures)", "-", GPU)]
    for f in fits:
        rows += [row(f"fit {f.dtype} (log LS, rounded)", f.ops, f.target),
                 row(f"fit {f.dtype} (log LS, unrounded)", f.ops, f.unrounded)]
    return rows


def proposed(fit_: Fit) -> str:
    t = fit_.target
    return (f"GPU = Target(\"gpu\", macs_per_second={t.macs_per_second:.2g}, grouped_macs_per_second="
            f"{t.grouped_macs_per_second:.2g}, bytes_per_second={t.bytes_per_second:.2g},\n"
            f"             seconds_per_op={t.seconds_per_op:.2g}, winograd_speedup={t.winograd_speedup})"
            f"  # from the {fit_.dtype} single ops")


def markdown(fits: Sequence[Fit], source: str) -> str:
    quality_header = ["dtype", "constants", "category", "ops", "median abs rel err", "p90", "max", "geomean est/meas"]
    quality = [[f.dtype, *row] for f in fits for row in f.quality]
    lines = [f"## GPU cost constants fitted to `{source}`",
             "Least squares in log space (`bench_cost_model.fit_target`), one fit per dtype; fxrep/cost is NOT "
             "changed by this script.", md_table(CONSTANTS_HEADER, constants_rows(fits)),
             "Fit quality (|estimate / measured - 1| over the single ops, `bench_cost_model.fit_quality`):",
             md_table(quality_header, quality)]
    lines += ["Proposed (for review, not applied):\n\n```python\n" + "\n".join(proposed(f) for f in fits) + "\n```"]
    return "\n\n".join(lines)


def write(fits: Sequence[Fit], source: str, md_path: pathlib.Path | None, csv_path: pathlib.Path | None) -> str:
    text = markdown(fits, source)
    if md_path is not None:
        write_text(md_path, text)
    if csv_path is not None:
        write_csv(csv_path, CONSTANTS_HEADER, constants_rows(fits))
    return text


def main(argv: Sequence[str] | None = None, out: Callable[[str], None] = print) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ops_csv", type=pathlib.Path)
    parser.add_argument("--md", type=pathlib.Path, default=None)
    parser.add_argument("--csv", type=pathlib.Path, default=None)
    args = parser.parse_args(argv)
    fits = fit(args.ops_csv)
    out(write(fits, args.ops_csv.name, args.md, args.csv))
    return 0 if fits and all(is_usable(f.target) for f in fits) else 1


if __name__ == "__main__":
    sys.exit(main())
