"""Every timm family with a hand-written reparameterization: fxrep against timm's own conversion, on the CPU.

For the smallest variant of each family in `timm_families.FAMILIES` (224x224, random weights,
randomized BatchNorm statistics), three forms: the training form, ``fxrep.optimize()``'s module, and
``timm.utils.model.reparameterize_model`` (timm's hand conversion). Per form:

- op counts on the form's ATen graph (``torch.export``): convs, BatchNorms, and *linear ops* (every op
  `fxrep.affine.affine_op` recognises as affine: convs, Linears, BatchNorms, adds, scales, pads,
  average pools, concatenations) — what is left to fold;
- max relative error against the training form on the example input (float32; some randomized
  models amplify float32 rounding so much that timm's own conversion is off by tens of percent,
  which is why this column is shown for the hand conversion too);
- latency at batch 1 and 8 with 1 and 2 threads: interleaved rounds with rotating order
  (``_timing.py``), process CPU time at 1 thread and wall time at 2 threads, and the paired per-round
  ratio fxrep / hand with the distribution-free 95% confidence interval of its median;
- ``fxrep.optimize()`` time split into capture / passes / verify (batch 1).

Target (issue 10): conv and BatchNorm counts <= timm's for every family. Writes
``benchmarks/results/timm.md`` and ``timm.csv``.

    python benchmarks/bench_timm.py [--quick] [--models fastvit_t8 ...] [--threads 1 2] [--batches 1 8]
"""

from __future__ import annotations

import argparse
import time
import warnings

import torch
from _timing import (
    RESULTS_DIR,
    machine_info,
    max_errors,
    md_info,
    md_table,
    paired_ratios,
    threads,
    time_interleaved,
    write_csv,
    write_text,
)
from timm_families import FAMILIES, build, example_input, hand_converted

import fxrep
from fxrep.affine import affine_op
from fxrep.errors import EquivalenceError
from fxrep.report import count_ops

FORMS = ("training", "fxrep", "hand")


def counts(module: torch.nn.Module, x: torch.Tensor) -> dict[str, int]:
    """Convs, BatchNorms and linear ops of ``module``'s ATen graph."""
    graph = torch.export.export(module, (x,), strict=False).module()
    ops = count_ops(graph)
    linear = sum(bool(affine_op(n)) for n in graph.graph.nodes)
    return {"conv": ops.get("conv", 0), "batchnorm": ops.get("batchnorm", 0), "linear_ops": linear}


def optimize(model: torch.nn.Module, x: torch.Tensor) -> tuple[torch.nn.Module, str]:
    """fxrep's module and a note; a float32 verification failure is noted, not fatal (see module docstring)."""
    try:
        return fxrep.optimize(model, x), ""
    except EquivalenceError as error:
        optimized = fxrep.optimize(model, x, verify=False)
        return optimized, f"verify: {str(error).split(';')[0]}"


def measure(name: str, args) -> tuple[list, list]:
    model = build(name)
    x1 = example_input(1)
    start = time.perf_counter()
    optimized, note = optimize(model, x1)
    optimize_seconds = time.perf_counter() - start
    report = optimized.fxrep_report
    hand = hand_converted(model)
    forms = {"training": model, "fxrep": optimized, "hand": hand}
    with torch.no_grad():
        reference = model(x1)
        errors = {form: max_errors(reference, module(x1))[1] for form, module in forms.items() if form != "training"}
    count = {form: counts(module, x1) for form, module in forms.items()}
    row = [name, *(count[f][k] for k in ("conv", "batchnorm", "linear_ops") for f in FORMS),
           f"{errors['fxrep']:.1e}", f"{errors['hand']:.1e}", f"{optimize_seconds:.1f}",
           " / ".join(f"{report.seconds.get(k, 0):.1f}" for k in ("capture", "passes", "verify")), note]
    latency_rows = []
    for batch in args.batches:
        x = example_input(batch)
        fns = {form: (lambda m=module, x=x: m(x)) for form, module in forms.items()}
        for n in args.threads:
            with threads(n), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                timing = time_interleaved(fns, rounds=args.rounds if batch == 1 else max(5, args.rounds // 2))
            clock = "cpu" if n == 1 else "wall"
            stats = {form: getattr(timing[form], clock) for form in FORMS}
            ratio = paired_ratios(stats["fxrep"], stats["hand"])
            low, high = ratio.median_ci()
            latency_rows.append([name, batch, n, clock, *(f"{stats[f].median * 1e3:.2f}" for f in FORMS),
                                 f"{ratio.median:.3f} [{low:.3f}-{high:.3f}]"])
    return [row], latency_rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="*", default=[f.model for f in FAMILIES])
    parser.add_argument("--threads", nargs="*", type=int, default=[1, 2])
    parser.add_argument("--batches", nargs="*", type=int, default=[1, 8])
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--quick", action="store_true", help="batch 1, 1 thread, 3 rounds")
    args = parser.parse_args()
    if args.quick:
        args.threads, args.batches, args.rounds = [1], [1], 3
    info = machine_info()
    count_rows, latency_rows = [], []
    for name in args.models:
        print(f"{name} ...", flush=True)
        rows, latency = measure(name, args)
        count_rows += rows
        latency_rows += latency
        print(md_table(COUNT_HEADER, rows), flush=True)
        print(md_table(LATENCY_HEADER, latency), flush=True)
    suffix = "_quick" if args.quick else ""
    write_csv(RESULTS_DIR / f"timm{suffix}.csv", COUNT_HEADER, count_rows)
    write_csv(RESULTS_DIR / f"timm_latency{suffix}.csv", LATENCY_HEADER, latency_rows)
    worse = [r[0] for r in count_rows if r[2] > r[3] or r[5] > r[6]]
    verdict = ("conv and BatchNorm counts <= timm's for every family" if not worse else
               f"conv or BatchNorm count above timm's for: {', '.join(worse)}")
    text = "\n\n".join([
        "# timm families: training form vs fxrep vs timm's reparameterize_model", md_info(info),
        "## Op counts, errors and optimize() time (batch 1)", md_table(COUNT_HEADER, count_rows),
        f"Target: {verdict}.",
        "## Latency (ms per forward; 1 thread: process CPU time, 2 threads: wall time)",
        md_table(LATENCY_HEADER, latency_rows),
    ])
    write_text(RESULTS_DIR / f"timm{suffix}.md", text)
    print(f"\n{verdict}")


COUNT_HEADER = ["model", *(f"{k} {f}" for k in ("convs", "BNs", "linear ops") for f in FORMS),
                "rel err fxrep", "rel err hand", "optimize s", "capture / passes / verify s", "note"]
LATENCY_HEADER = ["model", "batch", "threads", "clock", *(f"{f} ms" for f in FORMS), "fxrep / hand [95% CI]"]


if __name__ == "__main__":
    main()
