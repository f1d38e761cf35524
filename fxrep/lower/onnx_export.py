"""Export a module or fx graph to ONNX with the dynamo exporter, and check the file against PyTorch.

``torch.onnx.export(..., dynamo=True)`` captures the module with ``torch.export`` (non-strict), so
it accepts plain ``nn.Module`` s, ``torch.fx.symbolic_trace`` graphs and the ATen-level
GraphModules that ``torch.export.export(...).module()`` returns (pytree in/out specs, a
``_guards_fn`` submodule) alike. Export always runs with BatchNorm and dropout in inference mode;
the caller's training flags are restored afterwards.

``check_onnx`` runs the file in onnxruntime on the CPU and compares every output with the module,
so a broken export is found before it reaches TensorRT.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pathlib
from collections.abc import Iterator, Sequence

import torch

from fxrep.lower.errors import LoweringError
from fxrep.lower.example_inputs import as_input_tuple
from fxrep.lower.fix_batchnorm_fusion import restore_fused_initializer_dtypes

__all__ = ["export_onnx", "check_onnx"]

logger = logging.getLogger(__name__)

# Protobuf refuses messages over 2 GiB; stay clear of it and store weights next to the model above this.
_EXTERNAL_DATA_BYTES = 1 << 30

_ORT_INPUT_TYPES = {
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(double)": "float64",
    "tensor(int64)": "int64",
    "tensor(int32)": "int32",
    "tensor(bool)": "bool",
}


@contextlib.contextmanager
def inference_mode(module: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """Put ``module`` in eval mode for the duration of the block, then restore every submodule's flag.

    Sets the flags directly: the module of ``torch.export.export(...).module()`` raises on ``eval()``.
    """
    flags = [(submodule, submodule.training) for submodule in module.modules()]
    for submodule, _ in flags:
        submodule.training = False
    try:
        yield module
    finally:
        for submodule, training in flags:
            submodule.training = training


def export_onnx(
    module: torch.nn.Module,
    example_inputs: torch.Tensor | Sequence[torch.Tensor],
    path: str | os.PathLike[str],
    *,
    dynamic_batch: bool = False,
    opset: int | None = None,
) -> pathlib.Path:
    """Export ``module`` to an ONNX file at ``path`` and return the path.

    ``dynamic_batch=True`` makes dimension 0 of every input (and hence of the outputs) symbolic,
    named ``batch``; the file then runs at any batch size. ``opset`` picks the default-domain opset
    (torch's default when None). Weights are stored inside the file unless they exceed 1 GiB.

    Raises LoweringError naming the failed stage (capture, translation) and the underlying cause.
    """
    inputs = as_input_tuple(example_inputs)
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    external_data = _weight_bytes(module) > _EXTERNAL_DATA_BYTES
    dynamic_shapes = _batch_dynamic_shapes(inputs) if dynamic_batch else None
    logger.debug(
        "exporting %s to %s (dynamic_batch=%s, opset=%s, external_data=%s)",
        type(module).__name__,
        path,
        dynamic_batch,
        opset,
        external_data,
    )
    with inference_mode(module):
        try:
            program = torch.onnx.export(
                module,
                inputs,
                dynamo=True,
                dynamic_shapes=dynamic_shapes,
                opset_version=opset,
                external_data=external_data,
                verbose=False,
            )
        except Exception as exc:  # the exporter raises many types; all of them mean the same thing here
            raise _export_error(module, exc) from exc
    restore_fused_initializer_dtypes(program.model)
    program.save(path, external_data=external_data)
    if dynamic_batch:
        _require_symbolic_batch(path, module)
    return path


def check_onnx(
    path: str | os.PathLike[str],
    module: torch.nn.Module,
    example_inputs: torch.Tensor | Sequence[torch.Tensor],
    *,
    rtol: float = 1e-3,
    atol: float = 1e-4,
) -> float:
    """Run the ONNX file in onnxruntime (CPU) and compare each output with ``module``; return the max abs error.

    An element passes when ``|onnx - torch| <= atol + rtol * |torch|`` (as ``torch.testing`` does).
    Raises LoweringError when onnxruntime cannot load or run the file, when the number or shapes
    of outputs differ, or when any element is out of tolerance (naming the output and the errors).
    """
    import numpy as np

    ort = _import_onnxruntime()
    inputs = as_input_tuple(example_inputs)
    try:
        session = ort.InferenceSession(os.fspath(path), providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise LoweringError(f"onnxruntime cannot load {path}: {exc}") from exc
    session_inputs = session.get_inputs()
    if len(session_inputs) != len(inputs):
        raise LoweringError(
            f"{path} takes {len(session_inputs)} inputs ({', '.join(i.name for i in session_inputs)}) "
            f"but {len(inputs)} example inputs were given"
        )
    feeds = {}
    for spec, tensor in zip(session_inputs, inputs, strict=True):
        if spec.type not in _ORT_INPUT_TYPES:
            raise LoweringError(
                f"check_onnx cannot feed input {spec.name!r} of type {spec.type}: onnxruntime's CPU provider "
                "and numpy do not handle it (bfloat16 models can only be checked on the device they run on)"
            )
        feeds[spec.name] = tensor.detach().cpu().to(_torch_dtype(spec.type)).numpy()
    try:
        actual = session.run(None, feeds)
    except Exception as exc:
        raise LoweringError(f"onnxruntime failed to run {path}: {exc}") from exc
    with torch.no_grad(), inference_mode(module):
        expected = [
            leaf.detach().cpu()
            for leaf in torch.utils._pytree.tree_leaves(module(*inputs))
            if isinstance(leaf, torch.Tensor)
        ]
    output_names = [spec.name for spec in session.get_outputs()]
    if len(actual) != len(expected):
        raise LoweringError(
            f"{path} has {len(actual)} outputs but the module returns {len(expected)} tensors"
        )

    max_error = 0.0
    for index, (onnx_value, torch_value) in enumerate(zip(actual, expected, strict=True)):
        reference = torch_value.to(torch.float64).numpy()
        onnx_value = np.asarray(onnx_value, dtype=np.float64)
        label = f"output {index} ({output_names[index]!r})"
        if onnx_value.shape != reference.shape:
            raise LoweringError(
                f"{path}: {label} has shape {onnx_value.shape} but PyTorch returns {reference.shape}"
            )
        if reference.size == 0:
            continue
        error = np.abs(onnx_value - reference)
        max_error = max(max_error, float(error.max()))
        bad = ~(error <= atol + rtol * np.abs(reference))  # NaN counts as a mismatch
        if bad.any():
            worst = np.unravel_index(int(np.nanargmax(np.where(bad, error, -1.0))), error.shape)
            relative = error / np.maximum(np.abs(reference), np.finfo(np.float64).tiny)
            raise LoweringError(
                f"{path} disagrees with PyTorch on {label}: {int(bad.sum())} of {bad.size} elements out of "
                f"tolerance (atol={atol:g}, rtol={rtol:g}); max abs error {float(np.nanmax(error)):.3g} "
                f"at index {tuple(int(i) for i in worst)}, max rel error {float(np.nanmax(relative)):.3g}"
            )
    logger.debug("%s matches PyTorch: max abs error %s", path, max_error)
    return max_error


def _weight_bytes(module: torch.nn.Module) -> int:
    tensors = {id(t): t for t in [*module.parameters(), *module.buffers()]}
    return sum(t.numel() * t.element_size() for t in tensors.values())


def _batch_dynamic_shapes(inputs: tuple[torch.Tensor, ...]) -> tuple[dict[int, object] | None, ...]:
    # One shared Dim: every input's dimension 0 is the same batch.
    batch = torch.export.Dim("batch", min=1)
    return tuple({0: batch} if tensor.dim() > 0 else None for tensor in inputs)


def _require_symbolic_batch(path: pathlib.Path, module: torch.nn.Module) -> None:
    import onnx

    graph = onnx.load(os.fspath(path), load_external_data=False).graph
    fixed = [
        graph_input.name
        for graph_input in graph.input
        if graph_input.type.tensor_type.shape.dim and not graph_input.type.tensor_type.shape.dim[0].dim_param
    ]
    if fixed:
        raise LoweringError(
            f"dynamic_batch=True, but {type(module).__name__} fixes the batch size of input(s) {', '.join(fixed)} "
            "(a reshape/view in the graph has the example batch size baked in; this is what a GraphModule from "
            "torch.export.export(...) captured without dynamic_shapes looks like). Capture it with "
            "dynamic_shapes={'x': {0: torch.export.Dim('batch')}} or export the original nn.Module."
        )


def _export_error(module: torch.nn.Module, exc: Exception) -> LoweringError:
    stage, advice = {
        "TorchExportError": (
            "capturing the graph with torch.export",
            "make forward traceable by torch.export (no data-dependent Python control flow; see "
            "https://pytorch.org/docs/stable/generated/exportdb/index.html)",
        ),
        "ConversionError": (
            "translating ATen ops to ONNX",
            "an op has no ONNX translation: replace it, or pass it through torch.onnx.export's "
            "custom_translation_table yourself",
        ),
        "DispatchError": (
            "translating ATen ops to ONNX",
            "an op has no ONNX translation for these argument types: replace it or change the dtypes",
        ),
    }.get(type(exc).__name__, ("exporting", "see the chained exception for the full exporter report"))
    cause = exc.__cause__ if exc.__cause__ is not None else exc
    summary = str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
    return LoweringError(
        f"ONNX export of {type(module).__name__} failed while {stage}: {type(cause).__name__}: {summary}. "
        f"What to do: {advice}."
    )


def _import_onnxruntime():
    try:
        import onnxruntime
    except ImportError as exc:
        raise LoweringError(
            "check_onnx needs onnxruntime: pip install onnxruntime (or pip install 'fxrep[onnx]')"
        ) from exc
    return onnxruntime


def _torch_dtype(ort_type: str) -> torch.dtype:
    return getattr(torch, _ORT_INPUT_TYPES[ort_type])
