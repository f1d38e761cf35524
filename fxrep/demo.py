"""``fxrep demo``: RepVGG-A0 from training form to a plain deploy graph, timed against the official conversion.

The demo builds the built-in training-form RepVGG-A0 with seeded random weights and BatchNorm
statistics (`fxrep.models.randomize_`: with fresh BatchNorms a folding mistake would not show),
optimizes it, prints the report, times the training form, fxrep's output and the official
hand-written deploy conversion (`repvgg_model_convert`) on the CPU, and writes what a user would
ship: the deploy module, the report as JSON, before/after pictures, an ONNX file checked with
onnxruntime and a TensorRT engine. Steps whose optional dependency is missing are skipped with a
one-line reason.

The deploy module is saved as a ``torch.export`` program (``.pt2``: graph and weights in one
file). ``torch.save`` of the GraphModule that `fxrep.optimize` returns does not work: the module
that ``torch.export`` unlifts holds local functions that do not pickle. Load it back with
`load_optimized` (``torch.export.load(path).module()``); no fxrep import is needed to run it.

The helpers below (saving, ONNX, engines, pictures, latency) are shared with ``fxrep optimize``.
"""

from __future__ import annotations

import importlib.util
import json
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from fxrep.progress import step

__all__ = [
    "build_saved_engine",
    "describe_pictures",
    "draw_pictures",
    "engine_unavailable",
    "export_checked_onnx",
    "format_layers",
    "load_optimized",
    "median_latencies_ms",
    "onnx_unavailable",
    "pictures_unavailable",
    "run_demo",
    "save_optimized",
]

ONNX_EXTRA = 'pip install "fxrep[onnx]"'
ENGINE_EXTRA = 'pip install "fxrep[tensorrt-rtx]"'
DRAW_EXTRA = 'pip install "fxrep[draw]"'
DEMO_BATCHES = (1, 8)


def run_demo(output_dir: str | Path = "fxrep-demo", *, size: int = 224, seed: int = 0,
             quick: bool = False, threads: int | None = None) -> dict[str, Any]:
    """Run the demo (see the module docstring), print as it goes, and return what it measured and wrote.

    The result has ``report`` (`fxrep.Report`), ``latency_ms`` ({model: {batch: ms}}), ``convs``
    ({model: count}), ``max_abs_vs_official`` (float), ``files`` ({kind: Path}) and ``skipped``
    ({step: reason}). ``quick`` uses fewer timing repetitions (for tests; pass a small ``size`` too).
    ``threads`` sets torch's intra-op threads for the timings (default: leave torch's setting).
    """
    from fxrep.models import randomize_, repvgg_a0, repvgg_model_convert
    from fxrep.optimization import optimize

    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    warmup, repeats = (1, 3) if quick else (2, 10)
    model = randomize_(repvgg_a0(), seed).eval()
    example = (torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(seed)),)
    print(f"fxrep demo: RepVGG-A0 in training form (seeded random weights and BatchNorm statistics), "
          f"input 1x3x{size}x{size}\n")

    optimized = optimize(model, example, dynamic_batch=True, progress=True)
    report = optimized.fxrep_report
    print(report)
    official = repvgg_model_convert(model).eval()

    models = {"training form": model, "fxrep": optimized, "official deploy conversion": official}
    convs = {"training form": report.ops_before.get("conv", 0), "fxrep": report.ops_after.get("conv", 0),
             "official deploy conversion": sum(isinstance(m, nn.Conv2d) for m in official.modules())}
    latency = _time_all(models, example, warmup, repeats, threads)
    print()
    _print_latency(latency, convs, warmup, repeats, threads or torch.get_num_threads())
    with torch.inference_mode():
        reference = official(*example)
        max_abs = float((optimized(*example) - reference).abs().max())
        scale = float(reference.abs().max())
    print(f"\nfxrep vs official deploy conversion: max abs difference {max_abs:.3g} (outputs up to {scale:.3g})\n")

    files, skipped = _write_artifacts(model, optimized, example, out)
    print(f"\nload the deploy module: fxrep.demo.load_optimized({str(files['deploy module'])!r}) "
          "(= torch.export.load(path).module())")
    return {"report": report, "latency_ms": latency, "convs": convs, "max_abs_vs_official": max_abs,
            "files": files, "skipped": skipped}


def _time_all(models: dict[str, nn.Module], example: tuple[torch.Tensor, ...], warmup: int, repeats: int,
              threads: int | None) -> dict[str, dict[int, float]]:
    latency: dict[str, dict[int, float]] = {name: {} for name in models}
    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        with step(f"timing {len(models)} models at batch {' and '.join(map(str, DEMO_BATCHES))}"):
            for batch in DEMO_BATCHES:
                batch_input = (example[0].expand(batch, -1, -1, -1).contiguous(),)
                for name, ms in median_latencies_ms(models, batch_input, warmup=warmup, repeats=repeats).items():
                    latency[name][batch] = ms
    finally:
        torch.set_num_threads(previous)
    return latency


def _print_latency(latency: dict[str, dict[int, float]], convs: dict[str, int], warmup: int, repeats: int,
                   threads: int) -> None:
    from fxrep.report import format_table

    base = latency["training form"]
    rows = []
    for name, times in latency.items():
        cells = [name, str(convs[name])]
        cells += [f"{times[b]:.2f} ms" for b in DEMO_BATCHES]
        cells += [f"{base[b] / times[b]:.2f}x" for b in DEMO_BATCHES]
        rows.append(cells)
    header = ["model", "convs", *(f"batch {b}" for b in DEMO_BATCHES), *(f"speed-up b{b}" for b in DEMO_BATCHES)]
    print(f"CPU latency ({threads} thread{'s' if threads > 1 else ''}, torch.inference_mode, median of {repeats} runs "
          f"after {warmup} warm-up)")
    print("\n".join(format_table(header, rows)))


def _write_artifacts(model: nn.Module, optimized: nn.Module, example: tuple[torch.Tensor, ...],
                     out: Path) -> tuple[dict[str, Path], dict[str, str]]:
    """Write the deploy module, report, pictures, ONNX and engine, printing one line per file or skipped step."""
    files: dict[str, Path] = {}
    skipped: dict[str, str] = {}

    def wrote(kind: str, path: Path, detail: str = "") -> None:
        files[kind] = path
        print(f"wrote {kind}: {path}{detail}")

    def skip(what: str, reason: str) -> None:
        skipped[what] = reason
        print(f"skipped {what}: {reason}")

    with step("saving the deploy module (torch.export)"):
        path = save_optimized(optimized, example, out / "repvgg_a0_fxrep.pt2", dynamic_batch=True)
    with step("loading it back"), torch.inference_mode():
        difference = float((load_optimized(path)(*example) - optimized(*example)).abs().max())
    wrote("deploy module", path, f" (loaded back: max abs difference {difference:.3g})")
    path = out / "report.json"
    path.write_text(json.dumps(optimized.fxrep_report.to_dict(), indent=2, default=str) + "\n")
    wrote("report", path)

    reason = pictures_unavailable()
    if reason is None:
        try:
            with step("drawing the graph before and after"):
                pictures = draw_pictures(model, example, optimized, out)
            files["pictures"] = pictures["before"][0]
            print(f"wrote pictures in {out}: {describe_pictures(pictures)}")
        except Exception as error:  # a picture is never worth failing the demo for: say why and go on
            reason = f"{type(error).__name__}: {error}"
    if reason is not None:
        skip("pictures", reason)

    reason = onnx_unavailable()
    if reason is not None:
        skip("ONNX export", reason)
        skip("TensorRT engine", "it is built from the ONNX file")
        return files, skipped
    path = out / "repvgg_a0_fxrep.onnx"
    wrote("ONNX", path, f" ({export_checked_onnx(optimized, example, path, dynamic_batch=True)})")

    reason = engine_unavailable("auto")
    if reason is not None:
        skip("TensorRT engine", reason)
        return files, skipped
    batches = (1, 1, max(DEMO_BATCHES))
    engine = build_saved_engine(path, example, out / "repvgg_a0_fxrep.engine", dynamic_batch=batches)
    wrote("TensorRT engine", out / "repvgg_a0_fxrep.engine",
          f" ({engine.runtime}, fp32, batch {batches[0]}..{batches[2]}, + .json metadata)")
    print(f"  network layers: {format_layers(engine.layer_summary())}")
    return files, skipped


# ---------------------------------------------------------------------------------------------- shared helpers
def save_optimized(module: nn.Module, example_inputs: Sequence[torch.Tensor], path: str | Path, *,
                   dynamic_batch: bool = False) -> Path:
    """Save an optimized module as a ``torch.export`` program at ``path``; return the path.

    With ``dynamic_batch`` the program accepts any batch size (the module must have been optimized
    with ``dynamic_batch=True``). Load it with `load_optimized`. Raises LoweringError if the module
    cannot be re-exported.
    """
    from fxrep.lower.errors import LoweringError

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    inputs = tuple(example_inputs)
    dynamic_shapes = None
    if dynamic_batch:
        # export specializes a size-1 dimension, so trace the dynamic batch with two samples
        inputs = tuple(torch.cat([t, t]) if t.dim() and t.shape[0] == 1 else t for t in inputs)
        batch = torch.export.Dim("batch", min=1)
        dynamic_shapes = tuple({0: batch} if t.dim() else None for t in inputs)
    try:
        program = torch.export.export(module, inputs, strict=False, dynamic_shapes=dynamic_shapes)
    except Exception as error:  # export fails in many ways; all mean the module cannot be saved this way
        hint = " (optimize with dynamic_batch=True to save a dynamic-batch module)" if dynamic_batch else ""
        raise LoweringError(f"saving the optimized module failed while re-exporting it with torch.export: "
                            f"{type(error).__name__}: {str(error).strip().splitlines()[0]}{hint}") from error
    torch.export.save(program, path)
    return path


def load_optimized(path: str | Path) -> nn.Module:
    """Load a module written by `save_optimized` (``torch.export.load(path).module()``), ready to call."""
    return torch.export.load(str(path)).module()


def onnx_unavailable() -> str | None:
    """Why ONNX export cannot run here (naming the pip extra), or None when it can."""
    missing = [name for name in ("onnx", "onnxscript") if importlib.util.find_spec(name) is None]
    if missing:
        return f"{' and '.join(missing)} not installed ({ONNX_EXTRA})"
    return None


def engine_unavailable(runtime: str = "auto") -> str | None:
    """Why no TensorRT engine can be built with ``runtime`` here (naming the pip extra), or None."""
    reason = onnx_unavailable()
    if reason is not None:
        return f"engines are built from ONNX, and {reason}"
    from fxrep.lower.errors import LoweringError
    from fxrep.lower.tensorrt_runtime import import_runtime

    try:
        import_runtime(runtime)
    except LoweringError as error:
        return f"{str(error).split(' (', 1)[0]} ({ENGINE_EXTRA}; data-center GPUs: pip install tensorrt)"
    return None


def pictures_unavailable() -> str | None:
    """Why before/after pictures cannot be drawn here, or None."""
    if importlib.util.find_spec("fxrep.drawing") is None:
        return "fxrep.drawing is not available in this installation"
    if importlib.util.find_spec("matplotlib") is None:
        return f"matplotlib not installed ({DRAW_EXTRA})"
    return None


def export_checked_onnx(module: nn.Module, example_inputs: Sequence[torch.Tensor], path: str | Path, *,
                        dynamic_batch: bool = False) -> str:
    """Export ``module`` to ONNX at ``path``, check it with onnxruntime when installed; return what the check said."""
    from fxrep.lower import check_onnx, export_onnx

    with step("exporting ONNX"):
        path = export_onnx(module, tuple(example_inputs), path, dynamic_batch=dynamic_batch)
    if importlib.util.find_spec("onnxruntime") is None:
        return f"not checked: onnxruntime not installed ({ONNX_EXTRA})"
    if any(t.dtype == torch.bfloat16 for t in example_inputs):
        return "not checked: onnxruntime's CPU provider cannot run bfloat16"
    half = any(t.dtype == torch.float16 for t in example_inputs)
    tolerances = {"rtol": 1e-2, "atol": 1e-2} if half else {}  # fp16 rounds differently in onnxruntime
    with step("checking ONNX with onnxruntime"):
        error = check_onnx(path, module, tuple(example_inputs), **tolerances)
    return f"checked with onnxruntime: max abs error {error:.3g}"


def build_saved_engine(source: nn.Module | str | Path, example_inputs: Sequence[torch.Tensor], path: str | Path, *,
                       runtime: str = "auto", precision: str = "fp32",
                       dynamic_batch: tuple[int, int, int] | None = None) -> Any:
    """Build a TensorRT engine from a module or ONNX file, save it to ``path`` (+ ``.json``), return the Engine."""
    from fxrep.lower import build_engine

    with step(f"building a TensorRT engine ({runtime} runtime, {precision})"):
        return build_engine(source, tuple(example_inputs), path, runtime=runtime, precision=precision,
                            dynamic_batch=dynamic_batch, progress=False)


def format_layers(summary: dict[str, int]) -> str:
    """``{"CONVOLUTION": 22, ...}`` as "CONVOLUTION 22, ACTIVATION 22, ..." (most frequent first)."""
    return ", ".join(f"{kind} {count}" for kind, count in sorted(summary.items(), key=lambda kv: (-kv[1], kv[0])))


def draw_pictures(model: nn.Module, example_inputs: Sequence[torch.Tensor], optimized: nn.Module,
                  directory: str | Path, *, max_nodes: int | None = None) -> dict[str, list[Path]]:
    """Draw the captured graph and the optimized graph, with the merges highlighted, as before.png / after.png.

    A graph of more than ``max_nodes`` boxes (default ``fxrep.drawing.MAX_NODES``) gets its overview
    grouped by module there and one picture per part beside it (``before-1-stem--stages.1.png``,
    ...: `fxrep.drawing.draw_parts`). Returns ``{"before": paths, "after": paths}``, each overview
    first. Uses ``optimized``'s report instead of optimizing again (what
    ``fxrep.drawing.before_and_after`` would do); only the capture is repeated. Raises ImportError
    without fxrep.drawing or matplotlib.
    """
    from fxrep.capture import capture
    from fxrep.drawing import MAX_NODES, draw_parts

    directory = Path(directory)
    limit = MAX_NODES if max_nodes is None else max_nodes
    captured = capture(model, tuple(example_inputs)).graph_module
    name = type(model).__name__
    graphs = {"before": captured, "after": optimized}
    return {stage: draw_parts(graph, directory / f"{stage}.png", report=optimized, title=f"{name} {stage} fxrep",
                              max_nodes=limit)
            for stage, graph in graphs.items()}


def describe_pictures(pictures: dict[str, list[Path]]) -> str:
    """What `draw_pictures` wrote, in a few words: ``"before.png (overview) + 2 pictures of its parts, after.png"``."""
    described = []
    for paths in pictures.values():
        parts = len(paths) - 1
        described.append(paths[0].name + (f" (overview grouped by module) + {parts} picture{'s' if parts != 1 else ''} "
                                          "of its parts" if parts else ""))
    return ", ".join(described)


def median_latencies_ms(modules: dict[str, nn.Module], inputs: Sequence[torch.Tensor], *, warmup: int = 2,
                        repeats: int = 10) -> dict[str, float]:
    """Median wall time of ``module(*inputs)`` per module, in ms, under ``torch.inference_mode`` after warm-up.

    The modules take turns within each repetition, so a load change on a shared machine hits all of
    them alike instead of skewing whichever was being timed at that moment.
    """
    times: dict[str, list[float]] = {name: [] for name in modules}
    with torch.inference_mode():
        for _ in range(warmup):
            for module in modules.values():
                module(*inputs)
        for _ in range(repeats):
            for name, module in modules.items():
                start = time.perf_counter()
                module(*inputs)
                times[name].append((time.perf_counter() - start) * 1e3)
    return {name: statistics.median(values) for name, values in times.items()}
