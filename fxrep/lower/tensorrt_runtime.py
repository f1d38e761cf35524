"""Pick the TensorRT flavour to build with, and say how it handles reduced precision.

Two packages expose the same Python API under different module names:

- ``tensorrt`` (data-center TensorRT; ``pip install tensorrt``). Up to 10.x it has precision
  builder flags (``BuilderFlag.FP16`` / ``BF16``): the network stays fp32 and the builder may pick
  fp16 kernels. TensorRT 11 removed those flags: every network is strongly typed.
- ``tensorrt_rtx`` (TensorRT for RTX; ``pip install tensorrt-rtx-cu13``). Its networks are always
  strongly typed (``create_network(0)`` already has the STRONGLY_TYPED flag set) and its builder
  runs ahead of time on a machine without a GPU.

With a strongly typed network the tensor types come from the ONNX model, so fp16/bf16 means
exporting the module in that dtype. The decision is made by probing the API (is there a
``BuilderFlag.FP16``?), not by version numbers.
"""

from __future__ import annotations

import importlib
import logging
from types import ModuleType

import torch

from fxrep.lower.errors import LoweringError

__all__ = [
    "RUNTIMES",
    "PRECISIONS",
    "import_runtime",
    "uses_precision_flags",
    "precision_builder_flag",
    "network_creation_flags",
    "torch_dtype_name",
]

logger = logging.getLogger(__name__)

#: Runtime names accepted by ``build_engine(runtime=...)``, in the order "auto" tries them.
RUNTIMES: tuple[str, ...] = ("tensorrt", "tensorrt_rtx")

#: Precision names and the torch dtype a strongly typed network is exported in.
PRECISIONS: dict[str, torch.dtype] = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}

_PIP_PACKAGES = {"tensorrt": "tensorrt", "tensorrt_rtx": "tensorrt-rtx-cu13"}

_BUILDER_FLAGS = {"fp16": "FP16", "bf16": "BF16"}

# TensorRT DataType member name -> torch dtype name, for engine metadata and output allocation.
_TORCH_DTYPE_NAMES = {
    "FLOAT": "float32",
    "HALF": "float16",
    "BF16": "bfloat16",
    "INT8": "int8",
    "UINT8": "uint8",
    "INT32": "int32",
    "INT64": "int64",
    "BOOL": "bool",
    "FP8": "float8_e4m3fn",
}


def import_runtime(runtime: str = "auto") -> tuple[str, ModuleType]:
    """Import the TensorRT Python module for ``runtime`` and return ``(name, module)``.

    ``runtime`` is "tensorrt", "tensorrt_rtx" or "auto" (the first of those that imports).
    Raises ValueError for another name, LoweringError naming the pip package when none imports.
    """
    if runtime != "auto" and runtime not in RUNTIMES:
        raise ValueError(f"runtime must be one of {('auto', *RUNTIMES)}, got {runtime!r}")
    candidates = RUNTIMES if runtime == "auto" else (runtime,)
    failures = []
    for name in candidates:
        try:
            module = importlib.import_module(name)
        except (ImportError, OSError) as exc:  # OSError: the wheel is there but its shared libraries are not
            failures.append(f"{name}: {type(exc).__name__}: {exc}")
            continue
        logger.debug("using %s %s", name, getattr(module, "__version__", "?"))
        return name, module
    install = " or ".join(f"pip install {_PIP_PACKAGES[name]}" for name in candidates)
    raise LoweringError(
        f"no TensorRT runtime could be imported for runtime={runtime!r} ({'; '.join(failures)}). "
        f"Install one: {install} (TensorRT-RTX builds engines on a machine without a GPU)."
    )


def uses_precision_flags(trt: ModuleType) -> bool:
    """True when this TensorRT has fp16/bf16 builder flags (weak typing); False when networks are strongly typed."""
    return hasattr(trt.BuilderFlag, "FP16")


def precision_builder_flag(trt: ModuleType, precision: str) -> object | None:
    """The ``BuilderFlag`` that enables ``precision`` on a weakly typed network (None for fp32)."""
    if precision == "fp32":
        return None
    flag = getattr(trt.BuilderFlag, _BUILDER_FLAGS[precision], None)
    if flag is None:
        raise LoweringError(
            f"this TensorRT ({getattr(trt, '__version__', '?')}) has no BuilderFlag.{_BUILDER_FLAGS[precision]}: "
            f"precision={precision!r} is not available with it"
        )
    return flag


def network_creation_flags(trt: ModuleType, *, strongly_typed: bool) -> int:
    """Bit mask for ``Builder.create_network``: STRONGLY_TYPED when asked and the API has it."""
    flag = getattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
    if strongly_typed and flag is not None:
        return 1 << int(flag)
    return 0


def torch_dtype_name(data_type: object) -> str:
    """Name of the torch dtype for a TensorRT ``DataType`` (``DataType.HALF`` -> "float16")."""
    name = getattr(data_type, "name", str(data_type).rsplit(".", 1)[-1])
    return _TORCH_DTYPE_NAMES.get(name, name.lower())
