"""Every reference small net, before and after fxrep.optimize(): structure, cost estimate, CPU latency.

For each net of `fxrep.models` (``repvgg_small``, ``acnet_small``, ``dbb_small``, ``mobileone_small``,
``diracnet_small``, ``doconv_small``, ``expandnet_small``, ``repmixer_small``, ``inception_small``),
with weights and BatchNorm statistics redrawn by ``randomize_(net, seed)`` and in eval mode, at
``--size`` x ``--size`` inputs (default 64) and batch 1 and 8 (one static-shape optimize per batch):

- convolutions and parameters + buffers before / after (from the `fxrep.Report`: the captured graph
  vs the optimized graph);
- the estimated time before / after: the sum of ``CostModel().node_seconds(node)`` over the nodes of
  the captured graph vs of the optimized graph (with the constants in ``fxrep/cost.py``); a node
  returning a tuple that only ``getitem`` nodes read (ATen batch norm) is counted once, through its
  getitem, and the ``_guards_fn`` input check is not counted;
- the measured CPU latency of the eager model (what the user had), of the captured graph before
  any pass (to separate graph-call overhead from the rewrite), and of fxrep's output, under
  ``torch.inference_mode()`` with ``torch.set_num_threads`` 1 and 2: interleaved rounds, median and
  IQR of wall time, process CPU time (meaningful at 1 thread), and the paired per-round ratio
  fxrep / eager.

Writes ``benchmarks/results/blocks.md`` and ``blocks.csv``.

    python benchmarks/bench_blocks.py [--quick] [--size 64] [--threads 1 2] [--rounds 30]
"""

from __future__ import annotations

import argparse
import operator
import os
import pathlib
import time

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

import fxrep
from fxrep import models
from fxrep.capture import capture
from fxrep.cost import CostModel

NETS = ("repvgg_small", "acnet_small", "dbb_small", "mobileone_small", "diracnet_small", "doconv_small",
        "expandnet_small", "repmixer_small", "inception_small")


def graph_seconds(gm: torch.fx.GraphModule, cost: CostModel) -> float:
    total = 0.0
    for node in gm.graph.nodes:
        if node.op == "call_module" and str(node.target) == "_guards_fn":
            continue
        users = list(node.users)
        if users and all(u.op == "call_function" and u.target is operator.getitem for u in users):
            continue  # counted through its getitem
        total += cost.node_seconds(node)
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run (~1 minute): 3 nets, batch 1, 1 thread")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--threads", type=int, nargs="+", default=None, help="thread counts (default 1 2)")
    parser.add_argument("--rounds", type=int, default=30, help="timing rounds at 1 thread (half at more threads)")
    parser.add_argument("--nets", nargs="+", default=None, choices=NETS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=pathlib.Path, default=RESULTS_DIR)
    args = parser.parse_args()
    thread_counts = args.threads or ([1] if args.quick else [1, 2])
    batches = (1,) if args.quick else (1, 8)
    nets = args.nets or (NETS[:3] if args.quick else NETS)
    info = machine_info()
    info["threads measured"] = " ".join(map(str, thread_counts))
    info["input"] = f"N x 3 x {args.size} x {args.size}, N in {batches}"
    print("\n".join(f"{k}: {v}" for k, v in info.items()), flush=True)
    cost = CostModel()

    structure_rows, latency_rows, csv_rows = [], [], []
    for name in nets:
        torch.manual_seed(args.seed)
        model = models.randomize_(getattr(models, name)(), args.seed).eval()
        for batch in batches:
            x = torch.randn(batch, 3, args.size, args.size, generator=torch.Generator().manual_seed(batch))
            captured = capture(model, (x,)).graph_module
            start = time.perf_counter()
            gm = fxrep.optimize(model, (x,))
            wall = time.perf_counter() - start
            report = gm.fxrep_report
            est_before, est_after = graph_seconds(captured, cost), graph_seconds(gm, cost)
            with torch.inference_mode():
                rel = max_errors(model(x), gm(x))[1]
            conv_b, conv_a = report.ops_before.get("conv", 0), report.ops_after.get("conv", 0)
            ops_b, ops_a = sum(report.ops_before.values()), sum(report.ops_after.values())
            structure_rows.append([name, batch, f"{conv_b} -> {conv_a}", f"{ops_b} -> {ops_a}",
                                   f"{report.parameters_before:,} -> {report.parameters_after:,}",
                                   f"{est_before * 1e6:.0f}", f"{est_after * 1e6:.0f}",
                                   f"{est_after / est_before:.2f}", f"{wall:.1f}", f"{rel:.1e}"])
            for n in thread_counts:
                rounds = 3 if args.quick else args.rounds if n == 1 else max(5, args.rounds // 2)
                with threads(n):
                    stats = time_interleaved({"eager": lambda m=model, x=x: m(x), "captured": lambda g=captured, x=x: g(x),
                                              "fxrep": lambda g=gm, x=x: g(x)}, rounds=rounds, warmup=3,
                                             min_sample_seconds=0.002)
                e, c, f = stats["eager"], stats["captured"], stats["fxrep"]
                ratio, cpu_ratio = paired_ratios(f.wall, e.wall), paired_ratios(f.cpu, e.cpu)
                latency_rows.append([name, n, batch, e.wall.ms(), c.wall.ms(), f.wall.ms(),
                                     f"{ratio.median:.2f} [{ratio.q1:.2f}-{ratio.q3:.2f}]",
                                     f"{e.cpu.median * 1e3:.3f} / {f.cpu.median * 1e3:.3f}",
                                     f"{cpu_ratio.median:.2f}" if n == 1 else "-",
                                     f"{est_after / est_before:.2f}"])
                csv_rows.append([name, n, batch, conv_b, conv_a, ops_b, ops_a, report.parameters_before,
                                 report.parameters_after, est_before, est_after, e.wall.median, e.wall.q1, e.wall.q3,
                                 c.wall.median, f.wall.median, f.wall.q1, f.wall.q3, e.cpu.median, f.cpu.median,
                                 ratio.median, ratio.q1, ratio.q3, cpu_ratio.median, e.wall.n, wall, rel])
                print(f"{name} batch {batch} threads {n}: convs {conv_b}->{conv_a}, est {est_before * 1e6:.0f}->"
                      f"{est_after * 1e6:.0f} us, eager {e.wall.ms()} ms, fxrep {f.wall.ms()} ms, "
                      f"paired {ratio.median:.2f}", flush=True)

    info["load average (1/5/15 min, at end)"] = " ".join(f"{v:.2f}" for v in os.getloadavg())
    structure_header = ["net", "batch", "convs before -> after", "ops before -> after",
                        "parameters + buffers before -> after", "est. before us", "est. after us",
                        "est. after/before", "optimize() s", "max rel err"]
    latency_header = ["net", "threads", "batch", "eager ms median [IQR]", "captured ms", "fxrep ms",
                      "fxrep/eager wall (paired) [IQR]", "CPU ms eager / fxrep", "fxrep/eager CPU (paired)",
                      "est. after/before"]
    print(md_table(structure_header, structure_rows))
    print(md_table(latency_header, latency_rows))
    suffix = "_quick" if args.quick else ""
    write_text(args.out / f"blocks{suffix}.md", "\n\n".join([
        "# Reference small nets before / after fxrep.optimize() (CPU)",
        md_info(info),
        "## Structure and estimated time (CostModel() in fxrep/cost.py)\n\n" + md_table(structure_header,
                                                                                       structure_rows),
        "## Measured latency (torch.inference_mode, interleaved rounds; CPU time meaningful at 1 thread)\n\n"
        + md_table(latency_header, latency_rows),
    ]))
    write_csv(args.out / f"blocks{suffix}.csv",
              ["net", "threads", "batch", "convs_before", "convs_after", "ops_before", "ops_after", "params_before",
               "params_after", "est_before_s", "est_after_s", "eager_wall_s", "eager_wall_q1", "eager_wall_q3",
               "captured_wall_s", "fxrep_wall_s", "fxrep_wall_q1", "fxrep_wall_q3", "eager_cpu_s", "fxrep_cpu_s",
               "paired_wall_ratio", "paired_wall_ratio_q1", "paired_wall_ratio_q3", "paired_cpu_ratio", "rounds",
               "optimize_s", "max_rel_err"], csv_rows)
    print(f"wrote {args.out / f'blocks{suffix}.md'} and .csv")


if __name__ == "__main__":
    main()
