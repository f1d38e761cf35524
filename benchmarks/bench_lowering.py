"""Benchmark the lowering of model variants: ONNX export, onnxruntime CPU latency, TensorRT-RTX builds.

By default, for RepVGG-A0 and torchvision's ResNet-18 (random weights and BatchNorm statistics from
``fxrep.models.randomize_``, eval mode), three variants each: the training form as the user has it,
``fxrep.optimize(model, x, dynamic_batch=True)``'s output, and the hand-converted deploy model
(RepVGG's official ``repvgg_model_convert``; for ResNet-18 ``torch.fx.experimental.optimization.fuse``,
which folds each BatchNorm into its conv). For each variant it measures:

- ONNX export time (dynamic batch) and the number of Conv nodes in the file;
- onnxruntime CPU latency, median of ``--runs`` runs after ``--warmup``, at batch 1 and 8;
- TensorRT-RTX engine build time (on the CPU; no GPU needed), the network's layers by type and the
  engine's compiled kernels by kind;
- with CUDA: TensorRT engine latency and PyTorch CUDA latency side by side.

Results are printed and written to ``benchmarks/results/lowering.md`` and ``lowering.csv``.

Other models: ``--model NAME=package.module:factory`` (a callable returning the training-form
nn.Module; repeatable) benchmarks its training form and fxrep's output.

    python benchmarks/bench_lowering.py [--runs 30] [--warmup 5] [--no-engine] [--model name=pkg.mod:fn]
"""

from __future__ import annotations

import argparse
import copy
import csv
import dataclasses
import importlib
import logging
import os
import pathlib
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable

import torch

from fxrep.lower import Engine, LoweringError, build_engine, check_onnx, export_onnx

logger = logging.getLogger("bench_lowering")

BATCH_SIZES = (1, 8)
RESULTS_DIR = pathlib.Path(__file__).resolve().parent / "results"


@dataclasses.dataclass(frozen=True)
class Variant:
    """One model to lower: a module in eval mode and the shape of one input sample (without batch)."""

    name: str
    module: torch.nn.Module
    sample_shape: tuple[int, ...] = (3, 224, 224)


def model_variants() -> list[Variant]:
    """RepVGG-A0 and ResNet-18: training form, fxrep's output, hand-converted deploy model."""
    import torchvision
    from torch.fx.experimental.optimization import fuse

    from fxrep.models import randomize_, repvgg_a0, repvgg_model_convert

    repvgg = randomize_(repvgg_a0(), seed=0).eval()
    resnet = randomize_(torchvision.models.resnet18(weights=None), seed=0).eval()
    return [
        Variant("repvgg_a0 training form", repvgg),
        fxrep_variant("repvgg_a0 fxrep.optimize", repvgg),
        Variant("repvgg_a0 hand-converted (repvgg_model_convert)", repvgg_model_convert(repvgg)),
        Variant("resnet18 training form (with BatchNorm)", resnet),
        fxrep_variant("resnet18 fxrep.optimize", resnet),
        Variant("resnet18 hand-converted (torch.fx fuse)", fuse(resnet)),
    ]


def fxrep_variant(name: str, model: torch.nn.Module, sample_shape: tuple[int, ...] = (3, 224, 224)) -> Variant:
    """``fxrep.optimize`` of ``model`` with a dynamic batch, so one ONNX file / engine serves batch 1 and 8."""
    import fxrep

    start = time.perf_counter()
    optimized = fxrep.optimize(model, torch.randn(1, *sample_shape), dynamic_batch=True)
    print(f"   fxrep.optimize of {name}: {time.perf_counter() - start:.1f} s", file=sys.stderr)
    return Variant(name, optimized, sample_shape)


def variant_from_spec(spec: str) -> Variant:
    """``NAME=package.module:factory`` -> Variant(NAME, factory().eval())."""
    name, _, target = spec.partition("=")
    module_name, _, attribute = target.partition(":")
    if not (name and module_name and attribute):
        raise SystemExit(f"--model expects NAME=package.module:factory, got {spec!r}")
    factory: Callable[[], torch.nn.Module] = getattr(importlib.import_module(module_name), attribute)
    return Variant(name, factory().eval())


def variants_from_specs(specs: list[str]) -> list[Variant]:
    """Each ``--model``: its training form and fxrep's output."""
    variants = []
    for spec in specs:
        trained = variant_from_spec(spec)
        variants += [trained, fxrep_variant(f"{trained.name} fxrep.optimize", trained.module, trained.sample_shape)]
    return variants


def warm_up(run: Callable[[], object], warmup: int) -> None:
    """Call ``run`` ``warmup`` times, and for at least half a second."""
    deadline = time.perf_counter() + 0.5
    done = 0
    while done < warmup or time.perf_counter() < deadline:
        run()
        done += 1


def median_ms(
    run: Callable[[], object], *, runs: int, warmup: int, sync: Callable[[], None] = lambda: None
) -> float:
    """Median wall time of ``run`` in ms over ``runs`` calls, after warming up."""
    warm_up(run, warmup)
    sync()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        run()
        sync()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def ort_latencies(
    lowered: list[tuple[Variant, pathlib.Path]], *, runs: int, warmup: int, rounds: int = 10
) -> list[dict[str, float]]:
    """onnxruntime CPU latency per variant and batch size, in ms.

    The runs are spread over ``rounds`` round-robin passes through all variants, so a slow spell of
    a shared machine lands on every variant alike instead of on whichever ran during it.
    """
    import onnxruntime as ort

    cases = []  # (variant index, batch, session, feed)
    for index, (variant, path) in enumerate(lowered):
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        fixed_batch = session.get_inputs()[0].shape[0]
        for batch in BATCH_SIZES:
            if isinstance(fixed_batch, int) and batch != fixed_batch:
                continue
            feed = {session.get_inputs()[0].name: torch.randn(batch, *variant.sample_shape).numpy()}
            warm_up(lambda session=session, feed=feed: session.run(None, feed), warmup)
            cases.append((index, batch, session, feed))
    times: dict[tuple[int, int], list[float]] = {(index, batch): [] for index, batch, _, _ in cases}
    for _ in range(rounds):
        for index, batch, session, feed in cases:
            for _ in range(max(1, runs // rounds)):
                start = time.perf_counter()
                session.run(None, feed)
                times[(index, batch)].append((time.perf_counter() - start) * 1e3)
    results: list[dict[str, float]] = [{} for _ in lowered]
    for (index, batch), samples in times.items():
        results[index][f"ort_cpu_b{batch}_ms"] = round(statistics.median(samples), 2)
    return results


def cuda_latencies(variant: Variant, engine: Engine, *, runs: int, warmup: int) -> dict[str, float]:
    module = copy.deepcopy(variant.module).cuda()
    results = {}
    for batch in BATCH_SIZES:
        if engine.inputs[0].shape[0] not in (-1, batch):
            continue
        x = torch.randn(batch, *variant.sample_shape, device="cuda")
        with torch.no_grad():
            torch_ms = median_ms(lambda x=x: module(x), runs=runs, warmup=warmup, sync=torch.cuda.synchronize)
        trt_ms = median_ms(lambda x=x: engine(x), runs=runs, warmup=warmup, sync=torch.cuda.synchronize)
        results[f"torch_cuda_b{batch}_ms"] = round(torch_ms, 3)
        results[f"trt_b{batch}_ms"] = round(trt_ms, 3)
    return results


def count_convs(module: torch.nn.Module) -> int:
    """Convolutions in a module: Conv2d submodules, or conv calls in an fx graph (fxrep's output is ATen-level)."""
    count = sum(isinstance(m, torch.nn.Conv2d) for m in module.modules())
    if isinstance(module, torch.fx.GraphModule):
        conv_targets = {
            torch.ops.aten.conv2d.default,
            torch.ops.aten.convolution.default,
            torch.nn.functional.conv2d,
        }
        count += sum(
            node.op == "call_function" and node.target in conv_targets for node in module.graph.nodes
        )
    return count


def lower(
    variant: Variant, workdir: pathlib.Path, *, engine: bool
) -> tuple[dict[str, object], pathlib.Path, Engine | None]:
    """Export (and check) the variant, build its engine; return the row so far, the ONNX path and the engine."""
    import onnx

    row: dict[str, object] = {"variant": variant.name}
    example = torch.randn(1, *variant.sample_shape)
    row["torch_convs"] = count_convs(variant.module)

    onnx_path = workdir / f"variant{len(list(workdir.glob('variant*.onnx')))}.onnx"
    start = time.perf_counter()
    try:
        export_onnx(variant.module, example, onnx_path, dynamic_batch=True)
        batch_range: tuple[int, int, int] | None = (1, max(BATCH_SIZES), max(BATCH_SIZES))
    except LoweringError as exc:  # a graph captured with a fixed batch size runs at that size only
        logger.warning("%s: timing batch 1 only: %s", variant.name, exc)
        export_onnx(variant.module, example, onnx_path)
        batch_range = None
    row["export_s"] = round(time.perf_counter() - start, 2)
    row["onnx_convs"] = sum(node.op_type == "Conv" for node in onnx.load(onnx_path).graph.node)
    row["onnx_max_abs_err"] = f"{check_onnx(onnx_path, variant.module, example):.1e}"
    if not engine:
        return row, onnx_path, None
    try:
        built = build_engine(onnx_path, example, runtime="tensorrt_rtx", dynamic_batch=batch_range)
    except LoweringError as exc:
        logger.warning("%s: no engine: %s", variant.name, exc)
        return row, onnx_path, None
    row["engine_build_s"] = round(built.build_seconds, 2)
    row["engine_layers"] = " ".join(f"{k}={v}" for k, v in sorted(built.layer_summary().items()))
    row["engine_kernels"] = " ".join(f"{k}={v}" for k, v in sorted(built.kernel_summary().items()))
    return row, onnx_path, built


def environment() -> str:
    import onnxruntime

    parts = [
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU threads",
        f"torch {torch.__version__}",
        f"onnxruntime {onnxruntime.__version__}",
    ]
    try:
        import tensorrt_rtx

        parts.append(f"tensorrt_rtx {tensorrt_rtx.__version__}")
    except ImportError:
        pass
    parts.append(f"GPU: {torch.cuda.get_device_name() if torch.cuda.is_available() else 'none'}")
    return "; ".join(parts)


def write_results(rows: list[dict[str, object]], out_dir: pathlib.Path, *, runs: int, warmup: int) -> None:
    columns = list(dict.fromkeys(key for row in rows for key in row))
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / "lowering.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    lines = [
        "# Lowering benchmark",
        "",
        f"Generated by `benchmarks/bench_lowering.py` on {time.strftime('%Y-%m-%d')}: {environment()}.",
        f"Latencies are medians of {runs} runs after {warmup} warm-up runs, batch sizes {BATCH_SIZES}; the",
        "onnxruntime runs alternate between variants in 10 rounds, so machine noise hits all variants alike.",
        "The engine is built by TensorRT-RTX on the CPU with a batch profile (1, 8, 8) (batch 1 only for a graph",
        "captured with a fixed batch size; such variants have no batch-8 numbers); `engine_layers` are",
        "the network's layers (one per ONNX op, before fusion), `engine_kernels` the compiled engine's kernels.",
        "torch.onnx's optimizer already folds a BatchNorm that follows a Conv (onnxscript's FuseBatchNormIntoConv),",
        "so a model and its BatchNorm-folded copy export to the same ONNX graph; `onnx_convs` shows what remains:",
        "what ONNX cannot do is merge parallel branches (RepVGG's 3x3 + 1x1 + identity); that is fxrep's job.",
        "",
        "| " + " | ".join(columns) + " |",
        "|" + "|".join("---" for _ in columns) + "|",
    ]
    lines += ["| " + " | ".join(str(row.get(c, "")) for c in columns) + " |" for row in rows]
    (out_dir / "lowering.md").write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model", action="append", default=[], help="NAME=package.module:factory (repeatable)"
    )
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--no-engine", action="store_true", help="skip the TensorRT-RTX builds")
    parser.add_argument("--out", type=pathlib.Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    variants = variants_from_specs(args.model) if args.model else model_variants()
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-lowering-") as workdir:
        # The first export in a process pays for the exporter's imports and registries; keep that out of the numbers.
        export_onnx(
            torch.nn.Conv2d(1, 1, 1).eval(), torch.randn(1, 1, 4, 4), pathlib.Path(workdir) / "warmup.onnx"
        )
        lowered = []
        for variant in variants:
            print(f"== lowering {variant.name}", file=sys.stderr)
            lowered.append((variant, *lower(variant, pathlib.Path(workdir), engine=not args.no_engine)))
        # Latencies last, all together: torch's and TensorRT's worker threads are idle by then.
        print("== timing onnxruntime", file=sys.stderr)
        latencies = ort_latencies(
            [(v, path) for v, _, path, _ in lowered], runs=args.runs, warmup=args.warmup
        )
        for (variant, row, _, engine), ort_row in zip(lowered, latencies, strict=True):
            row.update(ort_row)
            if engine is not None and torch.cuda.is_available():
                print(f"== timing {variant.name} on CUDA", file=sys.stderr)
                row.update(cuda_latencies(variant, engine, runs=args.runs, warmup=args.warmup))
            print("   " + ", ".join(f"{k}={v}" for k, v in row.items() if k != "variant"), file=sys.stderr)
            rows.append(row)
    write_results(rows, args.out, runs=args.runs, warmup=args.warmup)
    print((args.out / "lowering.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
