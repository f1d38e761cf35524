"""End to end: a RepVGG-A0 in its training form -> plain convs -> ONNX -> TensorRT engine.

1. Build ``fxrep.models.repvgg_a0()`` as trained: every block is a 3x3 conv-BN, a 1x1 conv-BN and an
   identity BN, added. ``randomize_`` gives the BatchNorms non-trivial statistics, so a folding
   mistake would show in the error below.
2. ``fxrep.optimize`` collapses each block into one 3x3 conv and prints what it did.
3. ``fxrep.export_onnx`` writes the plain model; ``fxrep.check_onnx`` runs it in onnxruntime and
   compares it with PyTorch.
4. When a TensorRT runtime imports (``tensorrt``, or ``tensorrt_rtx``, whose builder runs on a CPU),
   ``fxrep.build_engine`` builds an engine and prints its layers: 22 convolutions, one per block.
   The engine runs only where CUDA is available.

Run: python examples/repvgg_to_tensorrt.py [--size 64] [--out DIR]
"""

from __future__ import annotations

import argparse
import importlib.util
import pathlib
import tempfile

import torch

import fxrep
from fxrep.lower import LoweringError
from fxrep.models import randomize_, repvgg_a0


def tensorrt_runtime() -> str | None:
    """The TensorRT runtime ``build_engine(runtime="auto")`` would pick, or None when none imports."""
    for name in ("tensorrt", "tensorrt_rtx"):
        if importlib.util.find_spec(name) is not None:
            return name
    return None


def optimize_repvgg(size: int = 64, seed: int = 0) -> tuple[torch.nn.Module, torch.fx.GraphModule,
                                                            tuple[torch.Tensor, ...]]:
    """The training-form model, its optimized graph and the example inputs."""
    model = randomize_(repvgg_a0(num_classes=10), seed=seed).eval()
    inputs = (torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(seed)),)
    return model, fxrep.optimize(model, inputs), inputs


def main(size: int = 64, out: pathlib.Path | None = None) -> None:
    model, gm, inputs = optimize_repvgg(size)
    report = fxrep.report_of(gm)
    print(report)
    with torch.no_grad():
        expected = model(*inputs)
        error = (gm(*inputs) - expected).abs().max().item()
    print(f"\noptimized: {report.ops_before['conv']} convs + {report.ops_before['batchnorm']} BatchNorms -> "
          f"{report.ops_after['conv']} convs; max abs error {error:.3g} on logits up to "
          f"{expected.abs().max().item():.3g}")

    missing = [name for name in ("onnx", "onnxscript", "onnxruntime") if importlib.util.find_spec(name) is None]
    if missing:
        print(f"ONNX: {', '.join(missing)} not installed (pip install 'fxrep[onnx]' to export and check)")
        return
    with tempfile.TemporaryDirectory() as scratch:
        folder = out or pathlib.Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        onnx_path = fxrep.export_onnx(gm, inputs, folder / "repvgg_a0.onnx")
        # Randomized BatchNorms make the logits large (hundreds), so float32 round-off is judged
        # against the output's scale rather than element by element.
        scale = expected.abs().max().item()
        onnx_error = fxrep.check_onnx(onnx_path, gm, inputs, rtol=1e-3, atol=1e-5 * scale)
        print(f"ONNX: {onnx_path.name} matches PyTorch in onnxruntime (max abs error {onnx_error:.3g})")

        runtime = tensorrt_runtime()
        if runtime is None:
            print("TensorRT: no runtime installed (pip install 'fxrep[tensorrt-rtx]' builds engines on a CPU)")
            return
        engine = fxrep.build_engine(onnx_path, inputs, folder / "repvgg_a0.engine", runtime="auto")
        layers = engine.layer_summary()
        print(f"TensorRT ({engine.runtime} {engine.runtime_version}) engine built: "
              f"{len(engine.serialized):,} bytes")
        print("  layers: " + ", ".join(f"{kind} x{count}" for kind, count in sorted(layers.items())))
        print(f"  {layers.get('CONVOLUTION', 0)} convolution layers")
        if not torch.cuda.is_available():
            print("  no CUDA device here, so the engine is not run (keep it with --out DIR, then "
                  "fxrep.Engine.load(path) on a machine with a GPU)")
            return
        try:
            result = engine(*(t.cuda() for t in inputs))
        except LoweringError as error:  # e.g. a TensorRT-RTX engine on a GPU that runtime does not support
            print(f"  could not run the engine here: {error}")
            return
        engine_error = (result.float().cpu() - expected).abs().max().item()
        print(f"  ran on {torch.cuda.get_device_name()}: max abs error {engine_error:.3g}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=64, help="input height and width (default 64)")
    parser.add_argument("--out", type=pathlib.Path, default=None, help="keep the ONNX file and engine here")
    arguments = parser.parse_args()
    main(arguments.size, arguments.out)
