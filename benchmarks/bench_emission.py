"""The module fxrep.optimize returns against the hand-converted eager model, and the torch.compile backend.

Issue 13: at equal op structure, fxrep's module must run at least as fast as the model converted by
its authors' own hand-written reparameterization. For each model (fxrep's RepVGG-A0 and
MobileOne-S0 with their official conversions, and the timm families with a hand-written
``reparameterize_model``: mobileone_s0, repvit_m1, efficientvit_m0, fastvit_t8, repvgg_a0, levit_128s),
with randomized weights and BatchNorm statistics (`fxrep.models.randomize_`, seed 0), this measures

- op structure: fxrep's op counts against those of the hand-converted model captured the same way
  (``identical``, or what differs);
- eager latency of fxrep's module and of the hand-converted model at batch 1 and 8, 1 and 2 threads,
  224x224, under ``torch.inference_mode()``: interleaved rounds with rotating order
  (``_timing.time_interleaved``; each sample is at least 30 ms of back-to-back calls of one
  variant, the steady state of a serving loop), and the paired per-round ratio fxrep / hand with the
  distribution-free 95% confidence interval of its median; verdict against the target 1.00
  (PASS / FAIL, "inconclusive" when the CI straddles it). At 1 thread the ratio of process CPU
  times is shown too (other processes cannot inflate it);
- Python overhead per op: under the profiler, the time a forward spends outside its top-level ATen
  ops (module calls, attribute reads, wrappers, argument parsing), per forward and per op, fxrep
  against eager (batch 1, 1 thread);
- ``torch.compile``: ``backend="fxrep"`` on the training form against Inductor (default options)
  on the hand-converted model, same batches and threads, paired rounds (and, for reference, both
  with torch.compile's ``guard_filter_fn=torch.compiler.skip_guard_on_all_nn_modules_unsafe``, and
  Inductor on the module ``fxrep.optimize`` returned); plus Dynamo's own per-call
  cost for each (a no-op backend, caches flushed before each call by a 32 MB copy), which is what
  the training form's ~1,000 parameters cost on every call whatever the backend.

A model whose float32 forward is too unstable at another batch size to verify a dynamic batch is
optimized per batch size with static shapes (fxrep does that itself and says so in the report;
the note is copied into the results). Nothing here asserts on timings: the numbers are reported.

Writes ``benchmarks/results/emission.md`` and ``emission.csv``.

    python benchmarks/bench_emission.py [--quick] [--models NAME ...] [--threads 1 2] [--batches 1 8]
                                        [--rounds-b1 30] [--rounds-b8 12] [--no-compile]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from _timing import (
    RESULTS_DIR,
    Stats,
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
from fxrep.capture import capture
from fxrep.models import randomize_
from fxrep.optimization import batch_is_dynamic
from fxrep.report import count_ops

TARGET = 1.00
SIZE_QUERIES = {"sym_size"}  # x.size(0) of a dynamic batch: a shape read, not an op
SAME_KIND = {"view": "view/reshape", "reshape": "view/reshape", "_unsafe_view": "view/reshape",
             "flatten": "view/reshape"}  # spellings of one view that captures and passes exchange
SIZE = 224
TIMM_MODELS = ("mobileone_s0", "repvit_m1", "efficientvit_m0", "fastvit_t8", "repvgg_a0", "levit_128s")


@dataclass(frozen=True)
class ModelSpec:
    """A training-form model and its authors' hand-written conversion."""

    name: str
    build: Callable[[], nn.Module]
    convert: Callable[[nn.Module], nn.Module]


def _fxrep_models() -> list[ModelSpec]:
    from fxrep.models import repvgg_a0, repvgg_model_convert
    from fxrep.models.mobileone import mobileone_s0, reparameterize_model

    return [ModelSpec("RepVGG-A0 (fxrep.models)", repvgg_a0, repvgg_model_convert),
            ModelSpec("MobileOne-S0 (fxrep.models)", mobileone_s0, reparameterize_model)]


def _timm_models() -> list[ModelSpec]:
    import timm
    from timm.utils.model import reparameterize_model

    return [ModelSpec(f"timm {name}", lambda name=name: timm.create_model(name, pretrained=False),
                      reparameterize_model) for name in TIMM_MODELS]


def all_models() -> list[ModelSpec]:
    return _fxrep_models() + _timm_models()


@dataclass
class Prepared:
    """One model ready to time: training form, hand conversion, fxrep's module(s) per batch size."""

    spec: ModelSpec
    model: nn.Module
    hand: nn.Module
    fxrep: dict[int, nn.Module]
    optimize_seconds: dict[int, float]
    notes: list[str]
    structure: str
    errors: dict[str, float] = field(default_factory=dict)


def example(batch: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(seed))


def prepare(spec: ModelSpec, batches: list[int]) -> Prepared:
    model = randomize_(spec.build(), 0).eval()
    hand = spec.convert(model).eval()
    start = time.perf_counter()
    optimized = fxrep.optimize(model, example(min(batches)))
    seconds = {min(batches): time.perf_counter() - start}
    modules = {batch: optimized for batch in batches}
    notes = [n for n in optimized.fxrep_report.notes if n.startswith(("dynamic batch", "lean forward"))]
    if not batch_is_dynamic(optimized):  # fxrep fell back to static shapes: one module per batch size
        for batch in batches:
            if batch != min(batches):
                start = time.perf_counter()
                modules[batch] = fxrep.optimize(model, example(batch))
                seconds[batch] = time.perf_counter() - start
    prepared = Prepared(spec, model, hand, modules, seconds, notes, structure_of(optimized, hand))
    x = example(1, seed=1)
    with torch.inference_mode():
        reference = model(x)
        prepared.errors["fxrep vs training form"] = max_errors(reference, modules[min(batches)](x))[1] \
            if min(batches) == 1 or batch_is_dynamic(optimized) else float("nan")
        prepared.errors["hand vs training form"] = max_errors(reference, hand(x))[1]
    return prepared


def structure_of(optimized: nn.Module, hand: nn.Module) -> str:
    """``identical`` or what fxrep's op counts have more / fewer of than the hand-converted model.

    The hand-converted model is captured like fxrep's module was (dynamic batch or not), so both
    graphs spell shapes alike (a dynamic flatten is a reshape, a static one a view).
    """
    shapes = ({0: torch.export.Dim("batch", min=1)},) if batch_is_dynamic(optimized) else None
    theirs_graph = capture(hand, (example(2),), method="export", dynamic_shapes=shapes).graph_module
    ours, theirs = (_kinds(g) for g in (optimized, theirs_graph))
    if ours == theirs:
        return "identical"
    kinds = sorted(set(ours) | set(theirs))
    parts = [f"{ours[k] - theirs[k]:+d} {k}" for k in kinds if ours[k] != theirs[k]]
    return "fxrep " + ", ".join(parts)


def _kinds(gm: torch.fx.GraphModule) -> Counter:
    counts: Counter = Counter()
    for kind, count in count_ops(gm).items():
        if kind not in SIZE_QUERIES:
            counts[SAME_KIND.get(kind, kind)] += count
    return counts


# ------------------------------------------------------------------------------------------- measuring
def verdict(ratio: Stats) -> str:
    low, high = ratio.median_ci()
    if high <= TARGET:
        return "PASS"
    if low > TARGET:
        return "FAIL"
    return f"{'PASS' if ratio.median <= TARGET else 'FAIL'} (inconclusive)"


def ratio_cell(ratio: Stats) -> str:
    low, high = ratio.median_ci()
    return f"{ratio.median:.3f} [{low:.3f}-{high:.3f}]"


SAMPLE_SECONDS = 0.03
"""Each sample times at least this long of back-to-back calls of one variant (the steady state of a
serving loop, which calls one model again and again); the variants still alternate every round."""


def time_pair(fxrep_fn: Callable[[], Any], hand_fn: Callable[[], Any], rounds: int) -> dict[str, Any]:
    timings = time_interleaved({"fxrep": fxrep_fn, "hand": hand_fn}, rounds=rounds, warmup=3,
                               min_sample_seconds=SAMPLE_SECONDS)
    wall = paired_ratios(timings["fxrep"].wall, timings["hand"].wall)
    cpu = paired_ratios(timings["fxrep"].cpu, timings["hand"].cpu)
    return {"fxrep_ms": timings["fxrep"].wall.median * 1e3, "hand_ms": timings["hand"].wall.median * 1e3,
            "ratio": wall, "cpu_ratio": cpu}


def python_overhead(prepared: Prepared, repeats: int = 10) -> dict[str, float]:
    """Per forward and per op: time between the ATen ops a forward runs (batch 1, 1 thread), fxrep vs eager.

    Under the profiler each forward is a ``record_function`` range; the top-level ATen ops inside it
    are the graph's nodes (a conv, a view, an add ...). What the range holds outside those ops is the
    Python the forward runs between them: module calls, attribute reads, wrappers, argument parsing,
    the input check. The profiler's own cost per op is counted in both variants alike.
    """
    x = example(1)
    result: dict[str, float] = {}
    with threads(1), torch.inference_mode():
        for name, module in (("fxrep", prepared.fxrep[min(prepared.fxrep)]), ("hand", prepared.hand)):
            for _ in range(3):
                module(x)
            with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profile:
                for _ in range(repeats):
                    with torch.profiler.record_function("forward"):
                        module(x)
            events = profile.events()
            forwards = [e for e in events if e.name == "forward"]
            ops = [e for e in events if e.cpu_parent is not None and e.cpu_parent.name == "forward"]
            outside = sum(f.time_range.elapsed_us() for f in forwards) - sum(e.time_range.elapsed_us() for e in ops)
            result[f"{name}_us"] = outside / repeats
            result[f"{name}_ops"] = len(ops) / repeats
            result[f"{name}_per_op"] = outside / max(len(ops), 1)
    return result


def dynamo_call_overhead(module: nn.Module, calls: int = 30) -> float:
    """Seconds Dynamo spends per call before and after the compiled graph (a no-op backend), caches flushed."""
    torch._dynamo.reset()
    outputs: dict[str, Any] = {}

    def no_op_backend(gm: torch.fx.GraphModule, inputs: list[Any]) -> Callable[..., Any]:
        def run(*args: Any) -> Any:
            if "result" not in outputs:  # the graph runs once, for an output of the right structure
                outputs["result"] = gm(*args)
            return outputs["result"]

        return run

    big, copy_into = torch.randn(8_000_000), torch.empty(8_000_000)
    x = example(1)
    with torch.inference_mode():
        compiled = torch.compile(module, backend=no_op_backend)
        compiled(x)
        compiled(x)
        samples = []
        for _ in range(calls):
            copy_into.copy_(big)  # evict the caches, as the model's own work does between calls
            start = time.perf_counter()
            compiled(x)
            samples.append(time.perf_counter() - start)
    torch._dynamo.reset()
    return statistics.median(samples)


class _TrainingForm(nn.Module):
    """The training form, compiled under a forward of its own.

    The training form and its hand conversion are instances of one class (timm's ByobNet, fxrep's
    RepVGG): compiled as they are, they would share Dynamo's cache of that class's ``forward``, and
    every call would first check the other model's entry. Each compiled variant gets a wrapper
    class (so a code object) of its own.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> Any:
        return self.model(x)


class _TrainingFormUnguarded(_TrainingForm):
    def forward(self, x: torch.Tensor) -> Any:
        return self.model(x)


class _HandConverted(_TrainingForm):
    def forward(self, x: torch.Tensor) -> Any:
        return self.model(x)


class _HandConvertedUnguarded(_TrainingForm):
    def forward(self, x: torch.Tensor) -> Any:
        return self.model(x)


UNGUARDED = {"guard_filter_fn": torch.compiler.skip_guard_on_all_nn_modules_unsafe}
"""torch.compile's opt-in that drops Dynamo's guards on nn-module attributes (unsafe in general: a
changed attribute is not noticed); the frozen-weight inference the fxrep backend assumes anyway."""


def compile_pair(prepared: Prepared, batches: list[int], thread_counts: list[int],
                 rounds: dict[int, int]) -> list[dict[str, Any]]:
    """backend="fxrep" on the training form vs Inductor on the hand-converted model, every batch and thread count.

    Also timed, for reference: both again with `UNGUARDED`, and Inductor on fxrep.optimize's module.
    """
    torch._dynamo.reset()
    rows = []
    compiled: dict[str, Any] = {}
    seconds: dict[str, float] = {}
    first = example(min(batches))
    with torch.inference_mode():
        for name, make in (("fxrep", lambda: torch.compile(_TrainingForm(prepared.model), backend="fxrep")),
                           ("hand", lambda: torch.compile(_HandConverted(prepared.hand))),
                           ("fxrep unguarded", lambda: torch.compile(_TrainingFormUnguarded(prepared.model),
                                                                     backend="fxrep", options=dict(UNGUARDED))),
                           ("hand unguarded", lambda: torch.compile(_HandConvertedUnguarded(prepared.hand),
                                                                    options=dict(UNGUARDED)))):
            start = time.perf_counter()
            compiled[name] = make()
            compiled[name](first)
            seconds[name] = time.perf_counter() - start
        reference = prepared.model(example(1, seed=1))
        error = max_errors(reference, compiled["fxrep"](example(1, seed=1)))[1]
    plain: dict[int, Any] = {}  # Inductor on fxrep's module itself, compiled once per distinct module
    for batch in batches:
        x = example(batch)
        module = prepared.fxrep[batch]
        plain.setdefault(id(module), torch.compile(module))
        variants = {**compiled, "module": plain[id(module)]}
        with torch.inference_mode():  # a new batch size recompiles (a dynamic batch); not timed
            for fn in variants.values():
                fn(x)
        for count in thread_counts:
            with threads(count):
                timings = time_interleaved({name: (lambda fn=fn, x=x: fn(x)) for name, fn in variants.items()},
                                           rounds=rounds[batch], warmup=3, min_sample_seconds=SAMPLE_SECONDS)
            hand = timings["hand"]
            rows.append({"batch": batch, "threads": count,
                         **{f"{name}_ms": timing.wall.median * 1e3 for name, timing in timings.items()},
                         "ratio": paired_ratios(timings["fxrep"].wall, hand.wall),
                         "cpu_ratio": paired_ratios(timings["fxrep"].cpu, hand.cpu),
                         "unguarded_ratio": paired_ratios(timings["fxrep unguarded"].wall,
                                                          timings["hand unguarded"].wall),
                         "module_ratio": paired_ratios(timings["module"].wall, hand.wall)})
    torch._dynamo.reset()
    return [dict(row, compile_s=(seconds["fxrep"], seconds["hand"]), error=error) for row in rows]


# ------------------------------------------------------------------------------------------- main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 models, batch 1, 1 thread, few rounds (development)")
    parser.add_argument("--models", nargs="*", help="substrings of model names to run (default: all)")
    parser.add_argument("--threads", nargs="*", type=int, default=[1, 2])
    parser.add_argument("--batches", nargs="*", type=int, default=[1, 8])
    parser.add_argument("--rounds-b1", type=int, default=30)
    parser.add_argument("--rounds-b8", type=int, default=12)
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile comparison")
    args = parser.parse_args()
    specs = all_models()
    if args.quick:
        args.threads, args.batches, args.rounds_b1, args.rounds_b8 = [1], [1], 8, 4
        specs = [s for s in specs if s.name in ("RepVGG-A0 (fxrep.models)", "timm mobileone_s0")]
    if args.models:
        specs = [s for s in specs if any(word in s.name for word in args.models)]
    rounds = {batch: (args.rounds_b1 if batch == 1 else args.rounds_b8) for batch in args.batches}
    info = machine_info()
    print("\n".join(f"{k}: {v}" for k, v in info.items()), flush=True)

    eager_rows, compile_rows, overhead_rows, csv_rows, model_notes = [], [], [], [], []
    for spec in specs:
        print(f"\n== {spec.name}", flush=True)
        prepared = prepare(spec, args.batches)
        model_notes.append((spec.name, prepared))
        print(f"  structure: {prepared.structure}; optimize {', '.join(f'b{b} {s:.1f} s' for b, s in prepared.optimize_seconds.items())}",
              flush=True)
        for batch in args.batches:
            x = example(batch)
            module = prepared.fxrep[batch]
            for count in args.threads:
                with threads(count):
                    result = time_pair(lambda module=module, x=x: module(x), lambda hand=prepared.hand, x=x: hand(x),
                                       rounds[batch])
                cpu = ratio_cell(result["cpu_ratio"]) if count == 1 else "-"
                row = [spec.name, prepared.structure, count, batch, f"{result['fxrep_ms']:.2f}", f"{result['hand_ms']:.2f}",
                       ratio_cell(result["ratio"]), cpu, verdict(result["ratio"])]
                eager_rows.append(row)
                csv_rows.append(["eager", *row])
                print("  " + " | ".join(map(str, row[2:])), flush=True)
        overhead = python_overhead(prepared)
        dynamo = {name: dynamo_call_overhead(module) for name, module in
                  (("training form", prepared.model), ("hand", prepared.hand))} if not args.no_compile else {}
        overhead_row = [spec.name, f"{overhead['fxrep_ops']:.0f} / {overhead['hand_ops']:.0f}",
                        f"{overhead['fxrep_us']:.0f} / {overhead['hand_us']:.0f}",
                        f"{overhead['fxrep_per_op']:.2f} / {overhead['hand_per_op']:.2f}",
                        f"{dynamo['training form'] * 1e6:.0f} / {dynamo['hand'] * 1e6:.0f}" if dynamo else "-"]
        overhead_rows.append(overhead_row)
        csv_rows.append(["overhead", *overhead_row])
        print("  overhead: " + " | ".join(overhead_row[1:]), flush=True)
        if not args.no_compile and (not args.quick or spec.name == "timm mobileone_s0"):
            for result in compile_pair(prepared, args.batches, args.threads, rounds):
                row = [spec.name, result["threads"], result["batch"], f"{result['fxrep_ms']:.2f}",
                       f"{result['hand_ms']:.2f}", ratio_cell(result["ratio"]),
                       ratio_cell(result["cpu_ratio"]) if result["threads"] == 1 else "-", verdict(result["ratio"]),
                       f"{result['fxrep unguarded_ms']:.2f} / {result['hand unguarded_ms']:.2f} "
                       f"({ratio_cell(result['unguarded_ratio'])})",
                       f"{result['module_ms']:.2f} ({ratio_cell(result['module_ratio'])})",
                       f"{result['compile_s'][0]:.0f} / {result['compile_s'][1]:.0f}", f"{result['error']:.1e}"]
                compile_rows.append(row)
                csv_rows.append(["compile", *row])
                print("  compile " + " | ".join(map(str, row[1:])), flush=True)

    info["load average (1/5/15 min, at end)"] = " ".join(f"{v:.2f}" for v in os.getloadavg())
    write_results(info, eager_rows, overhead_rows, compile_rows, csv_rows, model_notes)


def write_results(info: dict[str, str], eager_rows: list, overhead_rows: list, compile_rows: list, csv_rows: list,
                  model_notes: list) -> None:
    eager_header = ["model", "structure (fxrep vs hand)", "threads", "batch", "fxrep ms", "hand ms",
                    "fxrep / hand, wall [95% CI]", "CPU time ratio", "<= 1.00"]
    overhead_header = ["model", "ATen ops per forward fxrep / hand", "Python us per forward fxrep / hand",
                       "Python us per op fxrep / hand", "Dynamo per-call us, training form / hand"]
    compile_header = ["model", "threads", "batch", "backend=fxrep ms", "Inductor(hand) ms",
                      "fxrep / Inductor(hand), wall [95% CI]", "CPU time ratio", "<= 1.00",
                      "both with skip_guard_on_all_nn_modules_unsafe: ms fxrep / hand (ratio)",
                      "Inductor(fxrep.optimize module) ms (/ Inductor(hand))", "compile s fxrep / Inductor",
                      "max rel err vs training form"]
    notes = []
    for name, prepared in model_notes:
        errors = ", ".join(f"{k} {v:.1e}" for k, v in prepared.errors.items())
        notes.append(f"- **{name}**: {errors}; " + "; ".join(prepared.notes))
    text = "\n\n".join([
        "# fxrep's module vs the hand-converted model (eager), and backend=\"fxrep\" vs Inductor(hand)",
        md_info(info),
        "## Eager: fxrep.optimize vs the hand-written conversion\n\n" + md_table(eager_header, eager_rows),
        "## Python overhead between ops (batch 1, 1 thread, profiler)\n\n" + md_table(overhead_header, overhead_rows),
        "## torch.compile: backend=\"fxrep\" on the training form vs Inductor on the hand-converted model\n\n"
        + (md_table(compile_header, compile_rows) if compile_rows else "(not run)"),
        "## Per model\n\n" + "\n".join(notes),
    ])
    print("\n" + text)
    write_text(RESULTS_DIR / "emission.md", text)
    width = max(len(row) for row in csv_rows) if csv_rows else 0
    write_csv(RESULTS_DIR / "emission.csv", ["table", *(f"c{i}" for i in range(width - 1))], csv_rows)


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
