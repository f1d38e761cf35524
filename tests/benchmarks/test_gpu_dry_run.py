"""The GPU benchmark end to end: its CPU dry run writes every table, and without CUDA a real run refuses clearly.

The dry run goes through ``benchmarks/gpu/run.sh`` exactly as on the device machine (``$OUT`` set,
the same sections, the same files), on the CPU with tiny sizes; what is checked is the shape of
the results - files, rows, columns, finite values, conv counts - never a timing.
"""

from __future__ import annotations

import csv
import os
import pathlib
import subprocess
import sys

import pytest
import torch

from .conftest import REPO_ROOT

RUN_SH = REPO_ROOT / "benchmarks" / "gpu" / "run.sh"
MODEL_CONFIGS = [("RepVGG-A0", "fp16"), ("MobileOne-S0", "fp32")]  # batch 1, the dry-run plan
CONVS = {"RepVGG-A0": (44, 22, 22), "MobileOne-S0": (191, 43, 43)}  # training form, fxrep, hand conversion
VARIANTS = ["(a) training form", "(b) fxrep.optimize", "(c) hand conversion", "(c2) copy of (c), A/A control"]


def run_sh(*args: str, out: pathlib.Path, timeout: float) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHON": sys.executable, "OUT": str(out)}
    return subprocess.run(["bash", str(RUN_SH), *args], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)


def rows(path: pathlib.Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    pytest.importorskip("scipy")  # the constants fit
    out = tmp_path_factory.mktemp("gpu_dry_run")
    done = run_sh("--dry-run", out=out, timeout=600)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    return out


@pytest.mark.slow
def test_dry_run_writes_every_file_within_the_device_limits(dry_run: pathlib.Path) -> None:
    names = sorted(p.name for p in dry_run.iterdir())
    assert names == sorted(f"{stem}_dry_run.{ext}" for stem, ext in [
        ("gpu_bench", "md"), ("gpu_bench", "log"), ("gpu_models", "csv"), ("gpu_compile", "csv"),
        ("gpu_ops", "csv"), ("gpu_fit", "md"), ("gpu_fit", "csv")])
    assert len(names) <= 8  # what the device tool brings back from $OUT
    log = (dry_run / "gpu_bench_dry_run.log").read_text()
    assert "INCOMPLETE" not in log and "(complete)" in log


@pytest.mark.slow
def test_dry_run_models_rows(dry_run: pathlib.Path) -> None:
    table = rows(dry_run / "gpu_models_dry_run.csv")
    assert {"kind", "network", "dtype", "batch", "variant", "convs", "median_s", "q1_s", "q3_s", "ci_low",
            "ci_high", "rounds", "clock", "max_rel_err_vs_training", "optimize_s"} <= set(table[0])
    for network, dtype in MODEL_CONFIGS:
        mine = [r for r in table if r["network"] == network and r["dtype"] == dtype and r["batch"] == "1"]
        latency = {r["variant"]: r for r in mine if r["kind"] == "latency"}
        assert list(latency) == VARIANTS
        assert tuple(int(latency[v]["convs"]) for v in VARIANTS[:3]) == CONVS[network]
        for r in latency.values():
            assert float(r["ci_low"]) <= float(r["median_s"]) <= float(r["ci_high"]) and float(r["median_s"]) > 0
            assert r["clock"] == "wall" and int(r["rounds"]) == 3
        tolerance = 1e-4 if dtype == "fp32" else 1e-2
        for variant in VARIANTS[1:]:
            assert 0 <= float(latency[variant]["max_rel_err_vs_training"]) < tolerance, (network, variant)
        assert float(latency["(b) fxrep.optimize"]["optimize_s"]) > 0
        ratios = {r["variant"] for r in mine if r["kind"] == "paired ratio"}
        assert ratios == {"fxrep / hand", "A/A (c2) / (c)", "training / fxrep"}


@pytest.mark.slow
def test_dry_run_compile_rows(dry_run: pathlib.Path) -> None:
    table = rows(dry_run / "gpu_compile_dry_run.csv")
    latency = {r["variant"]: r for r in table if r["kind"] == "latency"}
    assert list(latency) == ["(d) compile(training, backend=fxrep)", "(e) compile(hand) [Inductor]",
                             "(c) hand conversion, eager"]
    for variant in list(latency)[:2]:
        assert float(latency[variant]["compile_s"]) > 0
        assert 0 <= float(latency[variant]["max_rel_err_vs_training"]) < 1e-4
    assert [r["variant"] for r in table if r["kind"] == "paired ratio"] == ["(d) / (e)"]
    assert all(r["network"] == "RepVGG-A0" and r["dtype"] == "fp32" for r in table)


@pytest.mark.slow
def test_dry_run_single_op_rows(dry_run: pathlib.Path) -> None:
    import op_set

    table = rows(dry_run / "gpu_ops_dry_run.csv")
    specs = op_set.op_specs("tiny")
    for dtype, itemsize in (("fp32", 4), ("fp16", 2)):
        mine = [r for r in table if r["dtype"] == dtype]
        assert [r["op"] for r in mine] == [s.label for s in specs]
        for row, spec in zip(mine, specs, strict=True):
            assert row["category"] == spec.category and float(row["median_s"]) > 0
            assert {n: float(row[n]) for n in op_set.FEATURES} == op_set.features(spec, itemsize)


@pytest.mark.slow
def test_dry_run_report_and_fit(dry_run: pathlib.Path) -> None:
    import fit_constants

    report = (dry_run / "gpu_bench_dry_run.md").read_text()
    assert "DRY RUN on the CPU" in report
    for heading in ("## Eager: training form vs fxrep.optimize vs hand conversion", "## Single ops",
                    "## GPU cost constants fitted to", "## torch.compile", "## Completeness"):
        assert heading in report
    for network, dtype in MODEL_CONFIGS:
        assert f"| {network} | {dtype} | 1 |" in report
    assert "Every planned configuration was measured." in report
    fits = fit_constants.fit(dry_run / "gpu_ops_dry_run.csv")
    assert sorted(f.dtype for f in fits) == ["fp16", "fp32"]
    assert all(fit_constants.is_usable(f.target) for f in fits)
    written = rows(dry_run / "gpu_fit_dry_run.csv")
    assert all(r["all finite and positive"] == "True" for r in written)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal where CUDA is absent")
@pytest.mark.parametrize("mode", [[], ["--quick"]])
def test_without_cuda_a_real_run_fails_with_one_clear_line(mode: list[str], tmp_path: pathlib.Path) -> None:
    done = run_sh(*mode, out=tmp_path, timeout=300)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gpu_bench: cannot run: CUDA is not available"), done.stderr
    assert "--dry-run" in lines[0]
    assert list(tmp_path.iterdir()) == []  # nothing measured, nothing written
