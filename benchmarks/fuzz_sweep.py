"""Fuzz sweep: optimize thousands of random DAG models and count what happened.

The programs are the ones `tests/fuzz/test_random_dags.py` draws with hypothesis, sampled here with
plain seeded randomness (`tests.fuzz.random_dags.program_for_seed`): graph ``i`` of a sweep with
``--seed S`` is the program of seed ``S + i``, its weights and BatchNorm statistics are drawn by
`fxrep.models.randomize_` from the same seed, so every outcome is reproducible from its seed alone.
Each graph is optimized at each capture level (``symbolic_trace`` and ``torch.export``) and checked
independently of fxrep's verifier (`check_program`): outputs equal within the dtype tolerance on the
example and fresh random inputs, idempotence, cost decisions, conv count.

Printed and written to ``benchmarks/results/fuzz_sweep.md``: graphs generated; per capture level how
many optimized exactly, how many raised each documented error (with reason counts), how many
mismatches and undocumented exceptions (both must be 0), property violations; the rules that fired;
total time; every failure with its seed and the command that replays it.

    python benchmarks/fuzz_sweep.py --graphs 2000 --seed 0 [--workers 2] [--levels symbolic_trace,export]
    python benchmarks/fuzz_sweep.py --replay 365 --level symbolic_trace     # one seed, full details
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import pathlib
import platform
import subprocess
import sys
import time
from collections import Counter, defaultdict
from dataclasses import asdict

ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from tests.fuzz.random_dags import Outcome, check_program, program_for_seed  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "fuzz_sweep.md"
LEVELS = ("symbolic_trace", "export")


def _init_worker() -> None:
    torch.set_num_threads(1)
    import warnings

    warnings.filterwarnings("ignore")
    torch.export.export(torch.nn.Linear(2, 2), (torch.randn(1, 2),), strict=False)  # pay Dynamo's start-up once


def _run_seed(job: tuple[int, tuple[str, ...], int]) -> tuple[int, dict, list[tuple[str, dict]]]:
    seed, levels, max_steps = job
    program = program_for_seed(seed, max_steps=max_steps)
    info = {"nodes": len(program.nodes), "dtype": program.dtype, "nd": program.nd, "kinds": dict(program.kinds())}
    results = []
    for level in levels:
        outcome = check_program(program, seed, level)
        record = asdict(outcome)
        record["is_bug"] = outcome.is_bug
        record["level"] = level
        if outcome.status == "exact":
            record["detail"] = ""
        else:
            record["program"] = program.to_json()
        results.append((level, record))
    return seed, info, results


def code_version() -> str:
    """The fxrep commit the sweep ran against, and whether fxrep/ or passes/ had local changes."""
    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10).stdout
        except (OSError, subprocess.SubprocessError):
            return ""

    commit = git("rev-parse", "--short", "HEAD").strip() or "unknown"
    changed = [line[3:] for line in git("status", "--porcelain", "fxrep", "passes").splitlines()]
    return commit + (f" with local changes to {', '.join(changed)}" if changed else "")


def sweep(graphs: int, seed: int, levels: tuple[str, ...], workers: int, max_steps: int) -> dict:
    jobs = [(seed + i, levels, max_steps) for i in range(graphs)]
    code = code_version()  # at the start: the sweep imports fxrep now (workers re-import every 200 graphs)
    start = time.perf_counter()
    done: list[tuple[int, dict, list]] = []
    if workers <= 1:
        _init_worker()
        iterator = map(_run_seed, jobs)
        pool = None
    else:
        pool = multiprocessing.get_context("spawn").Pool(workers, initializer=_init_worker, maxtasksperchild=200)
        iterator = pool.imap_unordered(_run_seed, jobs, chunksize=2)
    try:
        for item in iterator:
            done.append(item)
            bad = [(lvl, r) for lvl, r in item[2] if r["is_bug"]]
            for lvl, r in bad:
                print(f"  seed {item[0]} {lvl}: {r['status']} {r['error']}: {r['reason']}", flush=True)
            if len(done) % 100 == 0:
                print(f"{len(done)}/{graphs} graphs, {time.perf_counter() - start:.0f} s", flush=True)
    finally:
        if pool is not None:
            pool.close()
            pool.join()
    return {"results": sorted(done), "seconds": time.perf_counter() - start, "levels": levels, "code": code,
            "graphs": graphs, "seed": seed, "workers": workers, "max_steps": max_steps}


def summarize(data: dict) -> str:
    results, levels = data["results"], data["levels"]
    lines = ["# Fuzz sweep: random DAG models through `fxrep.optimize`", ""]
    lines.append(f"`python benchmarks/fuzz_sweep.py --graphs {data['graphs']} --seed {data['seed']} "
                 f"--workers {data['workers']} --levels {','.join(levels)} --max-steps {data['max_steps']}`")
    lines.append("")
    lines.append(f"- fxrep: commit {data['code']}")
    lines.append(f"- machine: {platform.machine()}, {os.cpu_count()} CPU cores, torch {torch.__version__}, "
                 f"{data['workers']} worker process(es), 1 thread each")
    lines.append(f"- graphs generated: {len(results)} (seeds {data['seed']}..{data['seed'] + data['graphs'] - 1}); "
                 f"each optimized at {len(levels)} capture level(s): {len(results) * len(levels)} optimize() calls")
    lines.append(f"- total time: {data['seconds']:.0f} s wall")
    nodes = [info["nodes"] for _, info, _ in results]
    dtypes = Counter(info["dtype"] for _, info, _ in results)
    nds = Counter(f"{info['nd']}-D" for _, info, _ in results)
    kinds: Counter = Counter()
    for _, info, _ in results:
        kinds.update(info["kinds"])
    lines.append(f"- program size: {sum(nodes) / max(len(nodes), 1):.1f} nodes on average, at most {max(nodes, default=0)}")
    lines.append(f"- dtypes: {dict(dtypes.most_common())}; spatial dims: {dict(nds.most_common())}")
    lines.append(f"- node kinds: {dict(kinds.most_common())}")
    lines.append("")

    per_level: dict[str, list[tuple[int, dict]]] = defaultdict(list)
    for seed, _, outcomes in results:
        for level, record in outcomes:
            per_level[level].append((seed, record))
    lines += ["## Outcomes per capture level", ""]
    header = "| outcome | " + " | ".join(levels) + " |"
    lines += [header, "|---|" + "---|" * len(levels)]

    def row(label: str, predicate) -> None:
        counts = [sum(1 for _, r in per_level[lvl] if predicate(r)) for lvl in levels]
        lines.append(f"| {label} | " + " | ".join(str(c) for c in counts) + " |")

    row("optimized, exact (all properties hold)", lambda r: r["status"] == "exact")
    errors = sorted({r["error"] for lvl in levels for _, r in per_level[lvl] if r["status"] == "documented"})
    for error in errors:
        row(f"raised {error} (documented)", lambda r, e=error: r["status"] == "documented" and r["error"] == e)
    row("raised EquivalenceError: half-precision rounding (float64 shows the rewrite exact)",
        lambda r: r["status"] == "equivalence" and r["rounding_only"])
    row("raised EquivalenceError: wrong rewrite caught by fxrep's verifier (bug)",
        lambda r: r["status"] == "equivalence" and not r["rounding_only"])
    row("**mismatch**: returned a wrong module (must be 0)", lambda r: r["status"] == "mismatch")
    row("**undocumented exception** (must be 0)", lambda r: r["status"] == "undocumented")
    row("property violated (idempotence / cost / conv count)", lambda r: r["status"] == "property")
    row("(of the exact ones: captured by the other method after a fallback)", lambda r: r["status"] == "exact" and (
        ("export" in r["capture"]) != (r["level"] == "export")))
    row("total bugs (PassError, wrong rewrites, mismatches, undocumented, properties)", lambda r: r["is_bug"])
    lines.append("")
    lines += ["Mean seconds per optimize() call (including the independent check and the idempotence re-run): "
              + ", ".join(f"{lvl} {sum(r['seconds'] for _, r in per_level[lvl]) / max(len(per_level[lvl]), 1):.2f} s"
                          for lvl in levels), ""]

    reasons: dict[tuple[str, str, str], int] = Counter()
    for lvl in levels:
        for _, r in per_level[lvl]:
            if r["status"] != "exact":
                reasons[(lvl, f"{r['status']}: {r['error']}", r["reason"])] += 1
    if reasons:
        lines += ["## Reasons (normalised: numbers and node names blanked)", "",
                  "| level | outcome | reason | count |", "|---|---|---|---|"]
        for (lvl, outcome, reason), count in sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0])):
            lines.append(f"| {lvl} | {outcome} | {reason.replace('|', '/')} | {count} |")
        lines.append("")

    fired: Counter = Counter()
    for lvl in levels:
        for _, r in per_level[lvl]:
            fired.update(r.get("fired") or {})
    lines += ["## Rules fired (all exact outcomes, both levels)", "",
              ", ".join(f"{rule} x{count}" for rule, count in fired.most_common()) or "-", ""]

    failures = [(seed, lvl, r) for lvl in levels for seed, r in per_level[lvl] if r["is_bug"]]
    lines += ["## Failures (replay one with `python benchmarks/fuzz_sweep.py --replay SEED --level LEVEL "
              f"--max-steps {data['max_steps']}`)", ""]
    if not failures:
        lines.append("None.")
    else:
        lines += ["| seed | level | outcome | reason |", "|---|---|---|---|"]
        for seed, lvl, r in sorted(failures):
            lines.append(f"| {seed} | {lvl} | {r['status']}: {r['error']} | {r['reason'].replace('|', '/')} |")
    lines.append("")
    return "\n".join(lines)


def replay(seed: int, level: str, max_steps: int) -> int:
    torch.set_num_threads(1)
    program = program_for_seed(seed, max_steps=max_steps)
    print(f"seed {seed}, capture {level}\n\n{program.describe()}\n\njson: {program.to_json()}\n")
    outcome: Outcome = check_program(program, seed, level)
    print(f"outcome: {outcome.status} {outcome.error} {outcome.reason} (bug: {outcome.is_bug}, "
          f"{outcome.seconds:.2f} s)")
    if outcome.detail:
        print(outcome.detail)
    return 1 if outcome.is_bug else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--graphs", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--levels", default=",".join(LEVELS), help="comma-separated capture levels")
    parser.add_argument("--max-steps", type=int, default=6, help="composite steps per program (1..N)")
    parser.add_argument("--out", type=pathlib.Path, default=RESULTS)
    parser.add_argument("--replay", type=int, default=None, help="re-run one seed and print everything")
    parser.add_argument("--level", default="symbolic_trace", help="capture level for --replay")
    args = parser.parse_args(argv)
    if args.replay is not None:
        return replay(args.replay, args.level, args.max_steps)
    levels = tuple(level for level in args.levels.split(",") if level)
    data = sweep(args.graphs, args.seed, levels, args.workers, args.max_steps)
    text = summarize(data)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(f"written to {args.out}")
    return 1 if any(r["is_bug"] for _, _, outs in data["results"] for _, r in outs) else 0


if __name__ == "__main__":
    sys.exit(main())
