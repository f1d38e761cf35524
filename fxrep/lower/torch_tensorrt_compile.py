"""Compile a model with Torch-TensorRT after fxrep has collapsed its over-parameterized blocks.

The other route to TensorRT (besides ONNX + ``build_engine``): fxrep's plain graph is re-captured
with ``torch.export`` (Torch-TensorRT's ``dynamo.compile`` takes an ``ExportedProgram``) and
handed over. The result is a ``torch.fx.GraphModule`` whose TensorRT subgraphs run as engines and
whose unsupported ops stay in PyTorch. torch_tensorrt only imports where CUDA exists.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence
from typing import Any

import torch

from fxrep.lower.errors import LoweringError
from fxrep.lower.example_inputs import as_input_tuple

__all__ = ["compile_tensorrt"]

logger = logging.getLogger(__name__)


def compile_tensorrt(
    module: torch.nn.Module,
    example_inputs: torch.Tensor | Sequence[torch.Tensor],
    **options: Any,
) -> torch.nn.Module:
    """Optimize ``module`` with ``fxrep.optimize`` and compile the result with ``torch_tensorrt.dynamo.compile``.

    ``options`` go to ``torch_tensorrt.dynamo.compile`` unchanged (e.g. ``use_explicit_typing``,
    ``workspace_size``, ``min_block_size``); ``arg_inputs`` defaults to the example inputs on the GPU.
    Raises LoweringError when there is no CUDA device or torch_tensorrt does not import.
    """
    inputs = as_input_tuple(example_inputs)
    if not torch.cuda.is_available():
        raise LoweringError(
            "compile_tensorrt needs an NVIDIA GPU with CUDA, and torch sees none. Without a GPU, build an "
            "engine ahead of time with fxrep.lower.build_engine(..., runtime='tensorrt_rtx') instead."
        )
    torch_tensorrt = _import_torch_tensorrt()
    from fxrep import optimize

    optimized = optimize(module, inputs)
    device = torch.device("cuda", torch.cuda.current_device())
    cuda_inputs = tuple(t.to(device) for t in inputs)
    if any(t.device != device for t in (*optimized.parameters(), *optimized.buffers())):
        # A copy: the optimized graph may share tensors with the caller's model, which must not move.
        optimized = copy.deepcopy(optimized).to(device)
    exported = torch.export.export(optimized, cuda_inputs, strict=False)
    if "inputs" not in options:
        options.setdefault("arg_inputs", list(cuda_inputs))
    logger.debug("torch_tensorrt.dynamo.compile options: %s", sorted(options))
    return torch_tensorrt.dynamo.compile(exported, **options)


def _import_torch_tensorrt() -> Any:
    try:
        import torch_tensorrt
    except (ImportError, OSError) as exc:
        raise LoweringError(
            f"compile_tensorrt needs torch_tensorrt, which does not import here ({type(exc).__name__}: {exc}). "
            "Install the build matching your torch: pip install torch-tensorrt"
        ) from exc
    return torch_tensorrt
