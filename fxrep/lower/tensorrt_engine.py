"""Build a TensorRT (or TensorRT-RTX) engine from a module or an ONNX file.

The path is always module -> ONNX -> ``OnnxParser`` -> ``build_serialized_network``: the ONNX file
is the contract between PyTorch and TensorRT, and ``parse_from_file`` reads weights stored as
external data. Everything needed later without a GPU (io specs, layers by type) is read from the
network definition at build time and kept in the returned :class:`~fxrep.lower.engine.Engine`.

Precision: with a strongly typed network (TensorRT-RTX, TensorRT >= 11) the types come from the
ONNX model, so fp16/bf16 exports the module in that dtype; a TensorRT with ``BuilderFlag.FP16``
keeps an fp32 network and sets the flag. See ``tensorrt_runtime``.
"""

from __future__ import annotations

import copy
import logging
import os
import pathlib
import sys
import tempfile
import time
import warnings
from collections.abc import Sequence
from types import ModuleType
from typing import Any

import torch

from fxrep.lower.engine import Engine
from fxrep.lower.errors import LoweringError
from fxrep.lower.example_inputs import as_input_tuple, cast_floating
from fxrep.lower.tensorrt_feedback import (
    BuildProgress,
    engine_kernel_summary,
    progress_monitor,
    tensorrt_logger,
)
from fxrep.lower.tensorrt_network import (
    check_network_precision,
    input_specs,
    layer_summary,
    parser_failure_message,
    tensor_spec,
)
from fxrep.lower.tensorrt_runtime import (
    PRECISIONS,
    import_runtime,
    network_creation_flags,
    precision_builder_flag,
    uses_precision_flags,
)
from fxrep.lower.timing_cache import load_timing_cache, save_timing_cache

__all__ = ["build_engine"]

logger = logging.getLogger(__name__)

# Runtimes whose builder ignores timing caches: TensorRT-RTX deprecated them in 1.2 ("Timing cache
# operations are no-ops"), and loading one makes its CPU-only builder query for a GPU.
_NO_TIMING_CACHE = frozenset({"tensorrt_rtx"})


def build_engine(
    module_or_onnx_path: torch.nn.Module | str | os.PathLike[str],
    example_inputs: torch.Tensor | Sequence[torch.Tensor] | None = None,
    path: str | os.PathLike[str] | None = None,
    *,
    runtime: str = "auto",
    precision: str = "fp32",
    dynamic_batch: tuple[int, int, int] | None = None,
    workspace: int | None = None,
    timing_cache: str | os.PathLike[str] | None = None,
    progress: bool | None = None,
) -> Engine:
    """Build an engine for a module (exported to ONNX first) or an ONNX file; save it to ``path`` if given.

    - ``example_inputs``: a tensor or tuple of tensors; needed for a module, and for an ONNX file
      with dynamic dimensions (their sizes come from here).
    - ``runtime``: "tensorrt", "tensorrt_rtx" or "auto" (the first that imports, in that order).
    - ``precision``: "fp32", "fp16" or "bf16" (see the module docstring for how each runtime does it).
    - ``dynamic_batch``: ``(min, opt, max)`` batch sizes for one optimization profile over dimension
      0 of every input; None builds for the example shapes.
    - ``workspace``: limit of the builder's workspace memory pool, in bytes.
    - ``timing_cache``: file to load tactic timings from and save them to after the build (classic
      TensorRT; TensorRT-RTX has no timing cache and warns that it ignores the argument).
    - ``progress``: print the builder's phases to stderr; None prints when stderr is a terminal.

    Raises ValueError for unknown options, LoweringError when export, parsing or building fails.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {tuple(PRECISIONS)}, got {precision!r}")
    batch_range = _check_batch_range(dynamic_batch)
    runtime_name, trt = import_runtime(runtime)
    strongly_typed = not uses_precision_flags(trt)
    inputs = None if example_inputs is None else as_input_tuple(example_inputs)
    if progress is None:
        progress = sys.stderr.isatty()

    with tempfile.TemporaryDirectory(prefix="fxrep-onnx-") as workdir:
        if isinstance(module_or_onnx_path, torch.nn.Module):
            if inputs is None:
                raise ValueError("build_engine needs example_inputs to export a module to ONNX")
            if strongly_typed:
                # The network takes its types from the model: export it in the requested precision.
                module, inputs = _in_dtype(module_or_onnx_path, inputs, PRECISIONS[precision])
            else:
                module = module_or_onnx_path
            from fxrep.lower.onnx_export import export_onnx

            onnx_path = export_onnx(
                module, inputs, pathlib.Path(workdir) / "model.onnx", dynamic_batch=batch_range is not None
            )
        else:
            onnx_path = pathlib.Path(module_or_onnx_path)
            _check_onnx_file(onnx_path)
        engine = _build(
            trt,
            runtime_name,
            onnx_path,
            inputs,
            precision=precision,
            strongly_typed=strongly_typed,
            batch_range=batch_range,
            workspace=workspace,
            timing_cache=None if timing_cache is None else pathlib.Path(timing_cache),
            progress=progress,
        )
    if path is not None:
        engine.save(path)
    return engine


def _build(
    trt: ModuleType,
    runtime_name: str,
    onnx_path: pathlib.Path,
    inputs: tuple[torch.Tensor, ...] | None,
    *,
    precision: str,
    strongly_typed: bool,
    batch_range: tuple[int, int, int] | None,
    workspace: int | None,
    timing_cache: pathlib.Path | None,
    progress: bool,
) -> Engine:
    trt_logger = tensorrt_logger(runtime_name)
    builder = trt.Builder(trt_logger)
    network = builder.create_network(network_creation_flags(trt, strongly_typed=strongly_typed))
    parser = trt.OnnxParser(network, trt_logger)
    with trt_logger.collector.capture() as records:
        parsed = parser.parse_from_file(os.fspath(onnx_path))
    if not parsed:
        raise LoweringError(parser_failure_message(parser, onnx_path, runtime_name, records))
    trt_logger.collector.replay(records)
    if network.num_outputs == 0:
        raise LoweringError(
            f"{runtime_name} parsed {onnx_path} into an empty network (no outputs): the file is not an "
            "ONNX model, or it is truncated"
        )
    if strongly_typed:
        check_network_precision(network, precision, runtime_name, onnx_path)

    config = builder.create_builder_config()
    specs = input_specs(network, inputs, batch_range, onnx_path)
    if any(spec.profile is not None for spec in specs):
        profile = builder.create_optimization_profile()
        for spec in specs:
            if spec.profile is not None:
                profile.set_shape(spec.name, *spec.profile)
        config.add_optimization_profile(profile)
    if workspace is not None:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace))
    if not strongly_typed:
        flag = precision_builder_flag(trt, precision)
        if flag is not None:
            config.set_flag(flag)
    # DETAILED makes the builder log the compiled layers, which gives Engine.kernel_summary().
    config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED
    if timing_cache is not None:
        if runtime_name in _NO_TIMING_CACHE:
            warnings.warn(
                f"timing_cache={os.fspath(timing_cache)!r} is ignored: {runtime_name} has no timing cache "
                "(its timing-cache API is a deprecated no-op that would make the CPU-only build look for a "
                "GPU); it caches JIT-compiled kernels at run time instead",
                stacklevel=3,
            )
            timing_cache = None
        else:
            load_timing_cache(config, timing_cache)
    reporter = BuildProgress(sys.stderr) if progress else None
    monitor = None if reporter is None else progress_monitor(trt, reporter)
    if monitor is not None:
        config.progress_monitor = monitor  # `monitor` stays referenced here until the build is over

    start = time.perf_counter()
    with trt_logger.collector.capture() as records:
        serialized = builder.build_serialized_network(network, config)
    seconds = time.perf_counter() - start
    if serialized is None:
        errors = [r.message for r in records if r.is_error] or [r.message for r in records[-5:]]
        if not errors:  # TensorRT keeps the first logger of the process; it was not ours
            errors = [
                "no message reached fxrep (another TensorRT logger was registered first in this process)"
            ]
        raise LoweringError(
            f"{runtime_name} could not build an engine from {onnx_path.name}: " + " | ".join(errors)
        )
    trt_logger.collector.replay(records)
    if timing_cache is not None:
        save_timing_cache(config, timing_cache)

    engine = Engine(
        memoryview(serialized).tobytes(),
        runtime=runtime_name,
        precision=precision,
        inputs=specs,
        outputs=[tensor_spec(network.get_output(i)) for i in range(network.num_outputs)],
        layers=layer_summary(network),
        kernels=engine_kernel_summary(records),
        runtime_version=getattr(trt, "__version__", ""),
        build_seconds=seconds,
    )
    if reporter is not None:
        reporter.finish(f"engine built in {seconds:.2f}s ({len(engine.serialized)} bytes)")
    logger.info("built %s %s engine in %.2fs: %s", runtime_name, precision, seconds, engine.layer_summary())
    return engine


def _check_batch_range(dynamic_batch: Any) -> tuple[int, int, int] | None:
    if dynamic_batch is None:
        return None
    try:
        low, opt, high = (int(b) for b in dynamic_batch)
    except (TypeError, ValueError):
        raise ValueError(
            f"dynamic_batch must be (min, opt, max) batch sizes, got {dynamic_batch!r}"
        ) from None
    if not 1 <= low <= opt <= high:
        raise ValueError(f"dynamic_batch must satisfy 1 <= min <= opt <= max, got {dynamic_batch!r}")
    return low, opt, high


def _in_dtype(
    module: torch.nn.Module, inputs: tuple[torch.Tensor, ...], dtype: torch.dtype
) -> tuple[torch.nn.Module, tuple[torch.Tensor, ...]]:
    """A copy of ``module`` and ``inputs`` in ``dtype`` (the originals when they already are)."""
    floating = [t for t in (*module.parameters(), *module.buffers()) if t.is_floating_point()]
    if all(t.dtype == dtype for t in floating):
        return module, cast_floating(inputs, dtype)
    return copy.deepcopy(module).to(dtype), cast_floating(inputs, dtype)


def _check_onnx_file(path: pathlib.Path) -> None:
    if not path.is_file():
        raise LoweringError(f"ONNX file {path} does not exist")
    try:
        import onnx
    except ImportError:  # the parser's own checks still apply
        return
    try:
        onnx.checker.check_model(os.fspath(path))
    except Exception as exc:
        raise LoweringError(f"{path} is not a valid ONNX model: {type(exc).__name__}: {exc}") from exc
