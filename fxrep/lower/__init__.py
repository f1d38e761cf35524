"""Lowering: turn a (plain, fxrep-optimized) model into ONNX files and TensorRT engines.

- ``export_onnx`` / ``check_onnx``: dynamo ONNX export, checked with onnxruntime on the CPU.
- ``build_engine`` -> ``Engine``: TensorRT or TensorRT-RTX engines via the ONNX parser; RTX builds
  on a machine without a GPU. Engines save/load with a JSON sidecar and run on CUDA tensors.
- ``compile_tensorrt``: the Torch-TensorRT route (needs a GPU and torch_tensorrt).

Importing this package is cheap: onnx, onnxruntime, tensorrt and torch_tensorrt are imported by the
functions that use them.
"""

from __future__ import annotations

from fxrep.lower.engine import Engine, TensorSpec
from fxrep.lower.errors import LoweringError
from fxrep.lower.onnx_export import check_onnx, export_onnx
from fxrep.lower.tensorrt_engine import build_engine
from fxrep.lower.torch_tensorrt_compile import compile_tensorrt

__all__ = [
    "Engine",
    "LoweringError",
    "TensorSpec",
    "build_engine",
    "check_onnx",
    "compile_tensorrt",
    "export_onnx",
]
