"""The GPU constants fit: recovers known constants from exact timings, and reports unusable fits."""

from __future__ import annotations

import csv
import math
import pathlib

import pytest

pytest.importorskip("scipy")  # bench_cost_model's least squares

import fit_constants  # noqa: E402
import op_set  # noqa: E402

from fxrep.cost import Target  # noqa: E402

KNOWN = {
    "fp16": Target("gpu", macs_per_second=3.0e13, grouped_macs_per_second=2.0e12, bytes_per_second=3.0e12,
                   seconds_per_op=5e-6, winograd_speedup=2.0),
    "fp32": Target("gpu", macs_per_second=8.0e12, grouped_macs_per_second=6.0e11, bytes_per_second=2.0e12,
                   seconds_per_op=7e-6, winograd_speedup=1.5),
}


def write_ops_csv(path: pathlib.Path, targets: dict[str, Target]) -> None:
    """A single-op CSV whose times are exactly the cost model's estimate under ``targets``."""
    columns = ["dtype", "op", "category", *op_set.FEATURES, "median_s"]
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for dtype, target in targets.items():
            itemsize = 2 if dtype == "fp16" else 4
            for spec in op_set.op_specs("quick"):
                values = op_set.features(spec, itemsize)
                writer.writerow([dtype, spec.label, spec.category, *(values[n] for n in op_set.FEATURES),
                                 op_set.linear_estimate(values, target)])


def test_fit_recovers_the_constants_that_generated_the_timings(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "ops.csv"
    write_ops_csv(path, KNOWN)
    fits = {f.dtype: f for f in fit_constants.fit(path)}
    assert set(fits) == set(KNOWN)
    for dtype, known in KNOWN.items():
        fitted = fits[dtype].unrounded
        for name in ("macs_per_second", "grouped_macs_per_second", "bytes_per_second", "seconds_per_op",
                     "winograd_speedup"):
            assert math.isclose(getattr(fitted, name), getattr(known, name), rel_tol=0.02), (dtype, name)
        assert fit_constants.is_usable(fits[dtype].target)
        assert fits[dtype].ops == len(op_set.op_specs("quick"))


def test_cli_writes_the_constants_and_fails_on_an_unusable_fit(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "ops.csv"
    write_ops_csv(path, {"fp16": KNOWN["fp16"]})
    printed: list[str] = []
    assert fit_constants.main([str(path), "--md", str(tmp_path / "fit.md"), "--csv", str(tmp_path / "fit.csv")],
                              out=printed.append) == 0
    assert "fit fp16 (log LS, rounded)" in printed[0] and "macs_per_second=3e+13" in printed[0]
    with (tmp_path / "fit.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [r["constants"] for r in rows][1:] == ["fit fp16 (log LS, rounded)", "fit fp16 (log LS, unrounded)"]
    assert float(rows[1]["macs_per_second"]) == pytest.approx(3e13, rel=0.05)
    assert not fit_constants.is_usable(Target("gpu", math.inf, 1.0, 1.0, 1.0, 1.0))
    assert not fit_constants.is_usable(Target("gpu", 1.0, 1.0, 1.0, 0.0, 1.0))
