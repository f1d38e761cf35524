"""fxrep's GPU benchmark: one run that measures every GPU figure and writes it under $OUT.

    bash benchmarks/gpu/run.sh [--quick | --dry-run]          # what to run (it calls this script)
    python benchmarks/gpu/gpu_bench.py [--quick | --dry-run] [--out DIR] [--budget-s S] [--sections ...]

1. Preflight (`preflight.check`): torch, CUDA and GPU name; fxrep must import from this checkout
   and optimize a block on the device. If it cannot run, one line on stderr says why (exit 2).
2. Sections, each timed with CUDA events (`cuda_timer`) through `_timing.time_rounds` (warm-up,
   interleaved rounds with rotating order, paired per-round ratios with a 95% CI of the median):
   ``models`` (`models_bench`: training form vs fxrep.optimize vs hand conversion, eager),
   ``ops`` (`ops_bench`: the single-op set of ``benchmarks/op_set.py``) and ``compile``
   (`compile_bench`: ``torch.compile(backend="fxrep")`` vs Inductor on the hand conversion), in that
   order, within the mode's time budget (`plan.py`); a failing configuration is recorded and the
   run goes on.
3. The GPU cost constants fitted to the single ops (`fit_constants`), reported, not applied.

Files (at most 8, the device tool's limit; suffix "_quick" / "_dry_run" by mode):
``gpu_bench.md`` (every table), ``gpu_models.csv``, ``gpu_compile.csv``, ``gpu_ops.csv``,
``gpu_fit.md``, ``gpu_fit.csv`` and ``gpu_bench.log`` (this run's output). The folder is ``--out``,
else $OUT, else ``benchmarks/results/`` (a dry run: a temporary folder).

``--dry-run`` runs the same code on the CPU (one thread) with tiny sizes and the host's wall clock,
to test the script where no GPU is; its figures mean nothing. Exit codes: 0 every section complete, 1 some
configuration failed or was skipped for time (the rest is still written), 2 cannot run here.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import pathlib
import sys
import tempfile
import traceback
from collections.abc import Iterator
from typing import TextIO

BENCHMARKS = pathlib.Path(__file__).resolve().parents[1]
if str(BENCHMARKS) not in sys.path:
    sys.path.insert(0, str(BENCHMARKS))

import preflight  # noqa: E402  (only the standard library until the check says torch and fxrep work)

SECTIONS = ("models", "ops", "compile")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="smoke run, under 1 minute on an H200")
    mode.add_argument("--dry-run", action="store_true", help="the same code on the CPU, tiny sizes (tests the script)")
    parser.add_argument("--out", type=pathlib.Path, default=None, help="results folder (default: $OUT, see above)")
    parser.add_argument("--budget-s", type=float, default=None, help="time budget of the sections, seconds")
    parser.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    parser.add_argument("--device", default=None, help="default: cuda (cpu with --dry-run)")
    parser.add_argument("--no-cudnn-benchmark", action="store_true",
                        help="keep torch.backends.cudnn.benchmark off (default: on, as deployments run)")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def out_dir(args: argparse.Namespace) -> pathlib.Path:
    if args.out is not None:
        return args.out
    if os.environ.get("OUT"):
        return pathlib.Path(os.environ["OUT"])
    if args.dry_run:
        return pathlib.Path(tempfile.gettempdir()) / "fxrep_gpu_dry_run"
    return BENCHMARKS / "results"


class _Tee:
    """Writes to the console and to the run's log file."""

    def __init__(self, *streams: TextIO) -> None:
        self.streams = streams

    def write(self, text: str) -> int:
        for stream in self.streams:
            stream.write(text)
        return len(text)

    def flush(self) -> None:
        for stream in self.streams:
            stream.flush()


@contextlib.contextmanager
def logged(path: pathlib.Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as log:
        stdout, stderr = sys.stdout, sys.stderr
        sys.stdout, sys.stderr = _Tee(stdout, log), _Tee(stderr, log)
        try:
            yield
        finally:
            sys.stdout, sys.stderr = stdout, stderr


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    mode = "dry-run" if args.dry_run else "quick" if args.quick else "full"
    device = args.device or ("cpu" if args.dry_run else "cuda")
    if device == "cpu":  # a dry run on a shared CPU: OpenMP threads spinning against other processes slow ops ~100x
        with contextlib.suppress(ImportError):  # (no torch: the preflight says so)
            import torch

            torch.set_num_threads(1)
    try:
        info = preflight.check(device, args.dry_run)
    except preflight.CannotRun as error:
        print(f"gpu_bench: cannot run: {error}", file=sys.stderr)
        return 2
    from plan import make_plan

    plan = make_plan(mode, device, args.budget_s)
    out = out_dir(args)
    with logged(out / f"gpu_bench{plan.suffix}.log"):
        return run(plan, args, info, out)


def run(plan, args: argparse.Namespace, info: dict[str, str], out: pathlib.Path) -> int:
    import torch
    from _timing import machine_info
    from cuda_timer import select_timer
    from plan import Budget
    from report import write_results

    timer, clock = select_timer(plan.device, args.dry_run)
    if plan.device == "cuda":
        torch.backends.cudnn.benchmark = not args.no_cudnn_benchmark
    host = machine_info()
    info = {"date": host.pop("date"), "mode": plan.mode, **info,
            "cudnn.benchmark": str(torch.backends.cudnn.benchmark), "clock": clock,
            "host cpu": host["cpu"], "host logical cpus": host["logical cpus"],
            "torch threads": str(torch.get_num_threads()), "command": host["command"],
            "time budget of the sections": f"{plan.budget_seconds:g} s"}
    print("\n".join(f"{key}: {value}" for key, value in info.items()), flush=True)
    budget = Budget(plan.budget_seconds)
    results: dict[str, object] = {}
    crashed: list[str] = []
    for name in SECTIONS:
        if name not in args.sections:
            continue
        start = budget.elapsed()
        try:
            results[name] = _section(name).run(plan, timer, clock, budget, **({} if name == "ops" else
                                                                                {"seed": args.seed}))
        except Exception:  # a section's own failure (its configurations catch theirs): record, go on
            crashed.append(f"{name}: {traceback.format_exc().strip().splitlines()[-1]}")
            traceback.print_exc()
        info[f"section {name} took"] = f"{budget.elapsed() - start:.0f} s"
        print(f"section {name}: {budget.elapsed() - start:.1f} s", flush=True)
    info["sections took (total)"] = f"{budget.elapsed():.0f} s"
    complete = write_results(plan, info, results, crashed, out, clock)
    return 0 if complete else 1


def _section(name: str):
    import compile_bench
    import models_bench
    import ops_bench

    return {"models": models_bench, "ops": ops_bench, "compile": compile_bench}[name]


if __name__ == "__main__":
    sys.exit(main())
