"""RepVGG-A0: fxrep.optimize() against the official hand-written deploy conversion, on the CPU.

One run measures, side by side, for RepVGG-A0 (ImageNet head, 224x224 input) with randomized
weights and BatchNorm statistics (`fxrep.models.randomize_(model, seed=0)`, eval mode):

- ``fxrep.optimize()`` wall time at batch 1 and batch 8 (one static-shape optimize per batch size),
  split into capture / passes / verify from ``report.seconds``;
- convolutions run by (a) the training form, (b) fxrep's output, (c) ``repvgg_model_convert`` (the
  official hand conversion), and the max abs / rel error of (b) and (c) against (a) on the example
  input and two random inputs (rel = max abs / max |(a)|, as in `fxrep.verify`);
- CPU latency of (a), (b), (c) and (c2), a deep copy of (c) timed as if it were another variant (an
  A/A control: its ratio to (c) shows the noise floor of the method), at batch 1 and 8 with
  ``torch.set_num_threads`` 1 and 2, under ``torch.inference_mode()``: warm-up, then interleaved
  rounds with rotating order (see ``_timing.py``); wall-clock median / quartiles / min and process
  CPU time per variant, and the paired per-round ratio (b)/(c) with the distribution-free 95%
  confidence interval of its median;
- the acceptance check: (b) must be within 3% of (c), i.e. paired median ratio (b)/(c) <= 1.03, at
  every batch size and thread count, on wall-clock time (and, at 1 thread, on CPU time, which
  other processes on the machine cannot inflate); a row whose CI straddles 1.03 is marked
  inconclusive; PASS / FAIL is printed as measured;
- diagnostics that explain any gap: the ATen ops each variant runs per forward (torch.profiler
  counts and self time), the weights' dtype / contiguity / memory format, the cost of the
  ``_guards_fn`` input-shape check and of the pytree (un)flattening that ``torch.export`` modules
  run on every call, and two extra variants timed at batch 1 — (b') fxrep's module with the
  ``_guards_fn`` call removed, (c') the hand-converted module carrying fxrep's weights — which
  separate call overhead from weight values.

Writes ``benchmarks/results/repvgg_a0.md`` and ``repvgg_a0.csv``.

    python benchmarks/bench_repvgg.py [--quick] [--threads 1 2] [--rounds-b1 40] [--rounds-b8 15]
"""

from __future__ import annotations

import argparse
import copy
import os
import pathlib
import time

import torch
from _timing import (
    RESULTS_DIR,
    Stats,
    Timing,
    conv_count,
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
from torch import nn

import fxrep
from fxrep.models import randomize_, repvgg_a0, repvgg_model_convert

TOLERANCE = 1.03
SIZE = 224


def verdict_of(ratio: Stats) -> str:
    """PASS / FAIL on the paired median ratio; 'inconclusive' when the median's 95% CI straddles 1.03."""
    low, high = ratio.median_ci()
    if high <= TOLERANCE:
        return "PASS"
    if low > TOLERANCE:
        return "FAIL"
    return f"{'PASS' if ratio.median <= TOLERANCE else 'FAIL'} (inconclusive: CI straddles {TOLERANCE})"


def build(seed: int) -> tuple[nn.Module, nn.Module]:
    torch.manual_seed(seed)
    model = randomize_(repvgg_a0(), seed).eval()
    return model, repvgg_model_convert(model).eval()


def optimize_timed(model: nn.Module, batch: int) -> tuple[torch.fx.GraphModule, float]:
    x = torch.randn(batch, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(batch))
    start = time.perf_counter()
    gm = fxrep.optimize(model, (x,))
    return gm, time.perf_counter() - start


def without_guards(gm: torch.fx.GraphModule) -> torch.fx.GraphModule:
    """A copy of ``gm`` whose forward skips the ``_guards_fn`` input-shape check (diagnostic only)."""
    stripped = copy.deepcopy(gm)
    for node in list(stripped.graph.nodes):
        if node.op == "call_module" and str(node.target) == "_guards_fn":
            stripped.graph.erase_node(node)
    stripped.recompile()
    return stripped


def with_fxrep_weights(deploy: nn.Module, gm: torch.fx.GraphModule) -> nn.Module:
    """A copy of the hand-converted model carrying fxrep's merged weights (same layers, same order)."""
    from fxrep.ops import Conv

    convs = [Conv.from_node(n) for n in gm.graph.nodes]
    weights = [(c.weight, c.bias) for c in convs if c is not None and c.weight is not None]
    target = copy.deepcopy(deploy)
    layers = [m for m in target.modules() if isinstance(m, nn.Conv2d)]
    if len(layers) != len(weights):
        raise RuntimeError(f"{len(layers)} convs in the deploy model, {len(weights)} in fxrep's")
    with torch.no_grad():
        for layer, (weight, bias) in zip(layers, weights, strict=True):
            layer.weight.copy_(weight)
            layer.bias.copy_(bias)
    return target


def weight_summary(name: str, module: nn.Module) -> list:
    tensors = [p for n, p in module.named_parameters() if n.endswith("weight") and p.dim() == 4]
    return [name, len(tensors), sorted({str(t.dtype) for t in tensors}),
            all(t.is_contiguous() for t in tensors),
            sum(t.is_contiguous(memory_format=torch.channels_last) and not t.is_contiguous() for t in tensors),
            sum(int(((t != 0) & (t.abs() < torch.finfo(t.dtype).tiny)).sum()) for t in tensors)]


def profile_ops(fn, x: torch.Tensor, calls: int) -> dict[str, tuple[float, float]]:
    """ATen op -> (calls per forward, self CPU us per forward) from torch.profiler."""
    from torch.profiler import ProfilerActivity, profile

    with torch.inference_mode():
        fn(x)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(calls):
                fn(x)
    return {e.key: (e.count / calls, e.self_cpu_time_total / calls) for e in prof.key_averages()}


def micro_overheads(gm: torch.fx.GraphModule, x: torch.Tensor, rounds: int) -> dict[str, Timing]:
    from torch.fx._pytree import tree_flatten_spec
    from torch.utils._pytree import tree_unflatten

    out = gm(x)

    def pytree_roundtrip():
        (flat,) = tree_flatten_spec(([x], {}), gm._in_spec)
        return tree_unflatten((out,), gm._out_spec), flat

    return time_interleaved({"_guards_fn(x)": lambda: gm._guards_fn(x), "pytree in/out": pytree_roundtrip},
                            rounds=rounds, warmup=20, min_sample_seconds=0.001)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run (~1-2 minutes): batch 1, 1 thread, few rounds")
    parser.add_argument("--threads", type=int, nargs="+", default=None, help="thread counts (default 1 2)")
    parser.add_argument("--rounds-b1", type=int, default=100, help="rounds at batch 1, 1 thread (2 threads: 40%%)")
    parser.add_argument("--rounds-b8", type=int, default=30, help="rounds at batch 8, 1 thread (2 threads: 40%%)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=pathlib.Path, default=RESULTS_DIR)
    args = parser.parse_args()
    thread_counts = args.threads or ([1] if args.quick else [1, 2])
    rounds = {(n, b): (8 if b == 1 else 2) if args.quick else
              max(5, int((args.rounds_b1 if b == 1 else args.rounds_b8) * (1.0 if n == 1 else 0.4)))
              for n in thread_counts for b in (1, 8)}
    batches = (1,) if args.quick else (1, 8)
    info = machine_info()
    info["threads measured"] = " ".join(map(str, thread_counts))
    print("\n".join(f"{k}: {v}" for k, v in info.items()))

    model, deploy = build(args.seed)
    gms, optimize_rows = {}, []
    for batch in batches:
        gm, wall = optimize_timed(model, batch)
        gms[batch] = gm
        s = gm.fxrep_report.seconds
        optimize_rows.append([batch, f"{wall:.2f}", f"{s.get('capture', 0):.2f}", f"{s.get('passes', 0):.2f}",
                              f"{s.get('verify', 0):.2f}"])
    print(md_table(["batch", "optimize() wall s", "capture s", "passes s", "verify s"], optimize_rows))

    # ------------------------------------------------------------ structure and numerics
    report = gms[1].fxrep_report
    counts = [["(a) training form", conv_count(model), report.parameters_before],
              ["(b) fxrep.optimize", conv_count(gms[1]), report.parameters_after],
              ["(c) repvgg_model_convert", conv_count(deploy), sum(p.numel() for p in deploy.parameters())
               + sum(b.numel() for b in deploy.buffers())]]
    error_rows = []
    generator = torch.Generator().manual_seed(123)
    with torch.inference_mode():
        for batch in batches:
            inputs = [("example", torch.randn(batch, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(batch)))]
            inputs += [(f"random {i}", torch.randn(batch, 3, SIZE, SIZE, generator=generator))
                       for i in ((1,) if args.quick else (1, 2))]
            worst = {"(b) fxrep": (0.0, 0.0), "(c) hand": (0.0, 0.0)}
            for _, x in inputs:
                ref = model(x)
                for name, fn in (("(b) fxrep", gms[batch]), ("(c) hand", deploy)):
                    a, r = max_errors(ref, fn(x))
                    worst[name] = (max(worst[name][0], a), max(worst[name][1], r))
            for name, (a, r) in worst.items():
                error_rows.append([batch, name, f"{a:.3g}", f"{r:.3g}"])
    print(md_table(["variant", "convs", "parameters + buffers"], counts))
    print(md_table(["batch", "variant vs (a)", "max abs err", "max rel err"], error_rows))

    # ------------------------------------------------------------ latency
    latency_rows, verdict_rows, csv_rows = [], [], []
    control = copy.deepcopy(deploy)
    for n in thread_counts:
        with threads(n):
            for batch in batches:
                x = torch.randn(batch, 3, SIZE, SIZE)
                gm = gms[batch]
                fns = {"(a) training form": lambda x=x: model(x), "(b) fxrep": lambda x=x, gm=gm: gm(x),
                       "(c) hand-converted": lambda x=x: deploy(x),
                       "(c2) copy of (c), A/A control": lambda x=x: control(x)}
                stats = time_interleaved(fns, rounds=rounds[(n, batch)], warmup=2 if args.quick else 4, inner=1)
                b, c, c2 = stats["(b) fxrep"], stats["(c) hand-converted"], stats["(c2) copy of (c), A/A control"]
                for name, st in stats.items():
                    latency_rows.append([n, batch, name, f"{st.wall.median * 1e3:.2f}",
                                         f"{st.wall.q1 * 1e3:.2f}-{st.wall.q3 * 1e3:.2f}", f"{st.wall.min * 1e3:.2f}",
                                         f"{st.cpu.median * 1e3:.2f} [{st.cpu.q1 * 1e3:.2f}-{st.cpu.q3 * 1e3:.2f}]",
                                         st.wall.n])
                    for clock_name, clock in (("wall", st.wall), ("cpu", st.cpu)):
                        csv_rows.append([f"latency {clock_name}", n, batch, name, clock.median, clock.q1, clock.q3,
                                         clock.min, clock.n])
                for clock_name in ("wall", "cpu"):
                    if clock_name == "cpu" and n != 1:
                        continue  # CPU time sums the threads' spin-waits: not a latency with 2 threads
                    ratio = paired_ratios(getattr(b, clock_name), getattr(c, clock_name))
                    aa = paired_ratios(getattr(c2, clock_name), getattr(c, clock_name))
                    low, high = ratio.median_ci()
                    aa_low, aa_high = aa.median_ci()
                    verdict_rows.append([n, batch, "wall clock" if clock_name == "wall" else "CPU time",
                                         f"{ratio.median:.4f}", f"{low:.4f}-{high:.4f}", f"{ratio.q1:.4f}-{ratio.q3:.4f}",
                                         f"{aa.median:.4f} [{aa_low:.4f}-{aa_high:.4f}]", verdict_of(ratio), ratio.n])
                    csv_rows.append([f"ratio (b)/(c) {clock_name}", n, batch, "paired", ratio.median, ratio.q1,
                                     ratio.q3, ratio.min, ratio.n])
                    csv_rows.append([f"ratio (c2)/(c) {clock_name}", n, batch, "paired A/A", aa.median, aa.q1,
                                     aa.q3, aa.min, aa.n])
                print(f"threads {n} batch {batch}: " + "; ".join(f"{k} {v.wall.ms()} ms" for k, v in stats.items())
                      + "; " + "; ".join(f"{r[2]} (b)/(c) {r[3]} CI {r[4]} A/A {r[6]} {r[7]}"
                                         for r in verdict_rows if r[0] == n and r[1] == batch), flush=True)
    latency_header = ["threads", "batch", "variant", "wall median ms", "wall IQR ms", "wall min ms",
                      "CPU-time median [IQR] ms", "rounds"]
    verdict_header = ["threads", "batch", "clock", "(b)/(c) paired median", "95% CI of median", "IQR",
                      "A/A control (c2)/(c) [95% CI]", "within 3%", "rounds"]
    print(md_table(latency_header, latency_rows))
    print(md_table(verdict_header, verdict_rows))

    # ------------------------------------------------------------ diagnostics
    x1 = torch.randn(1, 3, SIZE, SIZE)
    gm = gms[1]
    weight_rows = [weight_summary("(b) fxrep", gm), weight_summary("(c) hand-converted", deploy)]
    weight_header = ["variant", "conv weights", "dtypes", "all contiguous (NCHW)", "channels_last only",
                     "denormal values"]
    with torch.no_grad():
        b_weights = [p for n, p in gm.named_parameters() if n.endswith("weight") and p.dim() == 4]
        c_weights = [m.weight for m in deploy.modules() if isinstance(m, nn.Conv2d)]
        weight_gap = max((b - c).abs().max().item() / c.abs().max().item()
                         for b, c in zip(b_weights, c_weights, strict=True))
    profile_calls = 2 if args.quick else 10
    with threads(1):
        prof_b, prof_c = profile_ops(gm, x1, profile_calls), profile_ops(deploy, x1, profile_calls)
        overheads = micro_overheads(gm, x1, rounds=10 if args.quick else 60)
    keys = sorted(set(prof_b) | set(prof_c), key=lambda k: -(prof_b.get(k, (0, 0))[1] + prof_c.get(k, (0, 0))[1]))
    profile_rows = [[k, f"{prof_b.get(k, (0, 0))[0]:g}", f"{prof_c.get(k, (0, 0))[0]:g}",
                     f"{prof_b.get(k, (0, 0))[1]:.0f}", f"{prof_c.get(k, (0, 0))[1]:.0f}"]
                    for k in keys if k.startswith("aten::")]
    profile_header = ["op", "calls/fwd (b)", "calls/fwd (c)", "self us/fwd (b) [1t]", "self us/fwd (c) [1t]"]
    overhead_rows = [[k, v.wall.us(), v.cpu.us(), v.wall.n] for k, v in overheads.items()]
    overhead_header = ["per-call Python overhead of (b)", "wall us median [IQR]", "CPU us median [IQR]", "rounds"]
    diag_rows = []
    diag_header = ["threads", "batch", "variant", "wall median [IQR] ms", "CPU median [IQR] ms",
                   "paired wall ratio to (c) [IQR]", "paired CPU ratio to (c) [IQR]"]
    if not args.quick:
        stripped, swapped = without_guards(gm), with_fxrep_weights(deploy, gm)
        with threads(1):
            fns = {"(b) fxrep": lambda: gm(x1), "(b') fxrep without _guards_fn": lambda: stripped(x1),
                   "(c) hand-converted": lambda: deploy(x1), "(c') hand-converted, fxrep weights": lambda: swapped(x1)}
            stats = time_interleaved(fns, rounds=rounds[(1, 1)] if (1, 1) in rounds else 20, warmup=2, inner=1)
        base = stats["(c) hand-converted"]
        for name, st in stats.items():
            rw, rc = paired_ratios(st.wall, base.wall), paired_ratios(st.cpu, base.cpu)
            diag_rows.append([1, 1, name, st.wall.ms(), st.cpu.ms(), f"{rw.median:.4f} [{rw.q1:.4f}-{rw.q3:.4f}]",
                              f"{rc.median:.4f} [{rc.q1:.4f}-{rc.q3:.4f}]"])
            csv_rows.append(["diagnostic wall", 1, 1, name, st.wall.median, st.wall.q1, st.wall.q3, st.wall.min,
                             st.wall.n])
            csv_rows.append(["diagnostic cpu", 1, 1, name, st.cpu.median, st.cpu.q1, st.cpu.q3, st.cpu.min, st.cpu.n])
    print(md_table(weight_header, weight_rows))
    print(f"max relative difference between fxrep's and the hand conversion's conv weights: {weight_gap:.3g}")
    print(md_table(profile_header, profile_rows))
    print(md_table(overhead_header, overhead_rows))
    if diag_rows:
        print(md_table(diag_header, diag_rows))

    # ------------------------------------------------------------ verdict and files
    info["load average (1/5/15 min, at end)"] = " ".join(f"{v:.2f}" for v in os.getloadavg())
    wall_rows = [row for row in verdict_rows if row[2] == "wall clock"]
    cpu_rows = [row for row in verdict_rows if row[2] == "CPU time"]
    worst = max(wall_rows, key=lambda row: float(row[3]))
    passed = all(row[7].startswith("PASS") for row in wall_rows)
    conclusive = all(row[7] in ("PASS", "FAIL") for row in wall_rows)
    summary = (f"**Acceptance (fxrep's output within 3% of the hand conversion): {'PASS' if passed else 'FAIL'}"
               f"{'' if conclusive else ' (not every row conclusive, see the 95% CIs)'}** on wall-clock latency: "
               f"paired per-round median ratio (b)/(c) <= {TOLERANCE} at every thread count and batch; worst "
               f"{worst[3]} (95% CI {worst[4]}) at {worst[0]} thread(s), batch {worst[1]}.")
    if cpu_rows:
        summary += (" Process CPU time at 1 thread (robust to other processes taking the core): "
                    + ", ".join(f"batch {row[1]}: {row[3]} (CI {row[4]}, A/A control {row[6]}) {row[7]}"
                                for row in cpu_rows) + ".")
    print(summary)
    sections = [
        "# RepVGG-A0: fxrep.optimize() vs the official hand conversion (CPU)",
        md_info(info),
        summary,
        "## fxrep.optimize() wall time\n\n" + md_table(
            ["batch", "optimize() wall s", "capture s", "passes s", "verify s"], optimize_rows),
        "## Structure and numerics\n\n" + md_table(["variant", "convs", "parameters + buffers"], counts)
        + "\n\n" + md_table(["batch", "variant vs (a)", "max abs err", "max rel err"], error_rows),
        "## Latency (torch.inference_mode, 224x224, interleaved rounds)\n\n" + md_table(latency_header, latency_rows)
        + "\n\n" + md_table(verdict_header, verdict_rows),
        "## Diagnostics\n\n" + md_table(weight_header, weight_rows)
        + f"\n\nmax relative difference between fxrep's and the hand conversion's conv weights: {weight_gap:.3g}"
        + f"\n\nATen ops per forward at batch 1, 1 thread (torch.profiler, {profile_calls} forwards):\n\n"
        + md_table(profile_header, profile_rows)
        + "\n\nPer-call Python overhead of the torch.export module (b), 1 thread:\n\n"
        + md_table(overhead_header, overhead_rows)
        + ("\n\n" + md_table(diag_header, diag_rows) if diag_rows else ""),
    ]
    out = args.out
    suffix = "_quick" if args.quick else ""
    write_text(out / f"repvgg_a0{suffix}.md", "\n\n".join(sections))
    write_csv(out / f"repvgg_a0{suffix}.csv", ["kind", "threads", "batch", "variant", "median_s", "q1_s", "q3_s",
                                                "min_s", "rounds"], csv_rows)
    print(f"wrote {out / f'repvgg_a0{suffix}.md'} and .csv")


if __name__ == "__main__":
    main()
