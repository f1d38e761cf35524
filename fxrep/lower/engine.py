"""A built TensorRT engine: its serialized bytes plus what is known about it without a GPU.

Building needs no GPU (TensorRT-RTX builds on the CPU); running does. So an ``Engine`` carries the
metadata that the build produced (runtime, precision, input/output names, shapes and dtypes, the
optimization profile, and the network's layers by type) and can be saved, loaded and inspected
anywhere. Calling it deserializes the bytes lazily and runs them on torch's current CUDA stream.

``save(path)`` writes the plan to ``path`` and the metadata to ``path + ".json"``.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import pathlib
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch

from fxrep.lower.errors import LoweringError

__all__ = ["Engine", "TensorSpec"]

logger = logging.getLogger(__name__)

_FORMAT_VERSION = 1

Shape = tuple[int, ...]


@dataclass(frozen=True)
class TensorSpec:
    """An engine input or output. ``shape`` has -1 for dynamic dimensions; ``dtype`` is a torch dtype name.

    ``profile`` is the (min, opt, max) shape range of a dynamic input, None otherwise.
    """

    name: str
    shape: Shape
    dtype: str
    profile: tuple[Shape, Shape, Shape] | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TensorSpec:
        profile = data.get("profile")
        return cls(
            name=data["name"],
            shape=tuple(data["shape"]),
            dtype=data["dtype"],
            profile=None if profile is None else tuple(tuple(shape) for shape in profile),
        )

    def __str__(self) -> str:
        dims = "x".join("?" if d < 0 else str(d) for d in self.shape)
        text = f"{self.name}: {self.dtype}[{dims}]"
        if self.profile is not None:
            text += f" (batch {self.profile[0][0]}..{self.profile[2][0]})"
        return text


class Engine:
    """A serialized TensorRT engine with its build-time metadata; call it with CUDA tensors to run it."""

    def __init__(
        self,
        serialized: bytes,
        *,
        runtime: str,
        precision: str,
        inputs: Sequence[TensorSpec],
        outputs: Sequence[TensorSpec],
        layers: Mapping[str, int],
        kernels: Mapping[str, int] | None = None,
        runtime_version: str = "",
        build_seconds: float | None = None,
    ) -> None:
        self.serialized = bytes(serialized)
        self.runtime = runtime
        self.precision = precision
        self.inputs = tuple(inputs)
        self.outputs = tuple(outputs)
        self.runtime_version = runtime_version
        self.build_seconds = build_seconds
        self._layers = dict(layers)
        self._kernels = dict(kernels or {})
        self._context: Any = None  # (runtime, engine, execution context), made on the first call

    @property
    def input_names(self) -> list[str]:
        return [spec.name for spec in self.inputs]

    @property
    def output_names(self) -> list[str]:
        return [spec.name for spec in self.outputs]

    def layer_summary(self) -> dict[str, int]:
        """Layers of the network handed to the builder, by TensorRT layer type (e.g. {"CONVOLUTION": 20}).

        One layer per ONNX op (plus the CONSTANT/SHUFFLE helpers the parser adds), before the
        builder fuses anything: a Conv followed by a Relu counts as one CONVOLUTION and one ACTIVATION.
        """
        return dict(self._layers)

    def kernel_summary(self) -> dict[str, int]:
        """Layers of the built engine (after fusion) by kind, when the builder's log listed them; else {}.

        With TensorRT-RTX the kinds are its compiler's: "correlation" (convolutions, with the
        following activation fused in), "kgen" (generated pointwise/reduction kernels), ....
        """
        return dict(self._kernels)

    def metadata(self) -> dict[str, Any]:
        """Everything but the engine bytes, as JSON-compatible data (what ``save`` writes to the sidecar)."""
        return {
            "format_version": _FORMAT_VERSION,
            "runtime": self.runtime,
            "runtime_version": self.runtime_version,
            "precision": self.precision,
            "inputs": [asdict(spec) for spec in self.inputs],
            "outputs": [asdict(spec) for spec in self.outputs],
            "layers": self._layers,
            "kernels": self._kernels,
            "build_seconds": self.build_seconds,
            "engine_bytes": len(self.serialized),
        }

    def save(self, path: str | os.PathLike[str]) -> pathlib.Path:
        """Write the engine to ``path`` and its metadata to ``path + ".json"``; return ``path``."""
        path = pathlib.Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(self.serialized)
        _sidecar(path).write_text(json.dumps(_jsonable(self.metadata()), indent=2) + "\n")
        logger.debug("saved %s (%s bytes) and its metadata", path, len(self.serialized))
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Engine:
        """Read an engine written by ``save`` (the plan file and its ``.json`` sidecar)."""
        path = pathlib.Path(path)
        sidecar = _sidecar(path)
        if not sidecar.exists():
            raise LoweringError(f"{sidecar} is missing: Engine.load reads engines written by Engine.save")
        meta = json.loads(sidecar.read_text())
        if meta.get("format_version") != _FORMAT_VERSION:
            raise LoweringError(
                f"{sidecar} has format_version {meta.get('format_version')}, expected {_FORMAT_VERSION}"
            )
        return cls(
            path.read_bytes(),
            runtime=meta["runtime"],
            precision=meta["precision"],
            inputs=[TensorSpec.from_json(spec) for spec in meta["inputs"]],
            outputs=[TensorSpec.from_json(spec) for spec in meta["outputs"]],
            layers=meta["layers"],
            kernels=meta.get("kernels"),
            runtime_version=meta.get("runtime_version", ""),
            build_seconds=meta.get("build_seconds"),
        )

    def __call__(self, *inputs: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        """Run the engine on CUDA tensors (one per input, in order); return one tensor or a tuple.

        Floating inputs are cast to the engine's input dtype. The work is queued on torch's current
        CUDA stream. Not thread-safe: one execution context is reused across calls.
        """
        if not torch.cuda.is_available():
            raise LoweringError(
                f"running a {self.runtime} engine needs an NVIDIA GPU with CUDA, and torch sees none. "
                "Building does not: save the engine with engine.save(path) and run Engine.load(path) "
                "on a machine with a GPU."
            )
        if len(inputs) != len(self.inputs):
            raise ValueError(
                f"the engine takes {len(self.inputs)} inputs ({', '.join(self.input_names)}), got {len(inputs)}"
            )
        context = self._execution_context()
        feeds = []
        for spec, tensor in zip(self.inputs, inputs, strict=True):
            if not isinstance(tensor, torch.Tensor) or not tensor.is_cuda:
                raise ValueError(f"input {spec.name!r} must be a CUDA tensor, got {_describe(tensor)}")
            dtype = getattr(torch, spec.dtype)
            tensor = (tensor.to(dtype) if tensor.is_floating_point() else tensor).contiguous()
            if not context.set_input_shape(spec.name, tuple(tensor.shape)):
                raise LoweringError(
                    f"input {spec.name!r} has shape {tuple(tensor.shape)}, outside what the engine accepts "
                    f"({spec}; build with dynamic_batch=(min, opt, max) for other batch sizes)"
                )
            context.set_tensor_address(spec.name, tensor.data_ptr())
            feeds.append(tensor)  # keep alive until the work is queued
        results = []
        for spec in self.outputs:
            shape = tuple(context.get_tensor_shape(spec.name))
            result = torch.empty(shape, dtype=getattr(torch, spec.dtype), device=feeds[0].device)
            context.set_tensor_address(spec.name, result.data_ptr())
            results.append(result)
        stream = torch.cuda.current_stream(feeds[0].device)
        if not context.execute_async_v3(stream.cuda_stream):
            raise LoweringError(
                f"{self.runtime} execute_async_v3 failed; see the TensorRT messages in the log"
            )
        return results[0] if len(results) == 1 else tuple(results)

    def _execution_context(self) -> Any:
        if self._context is None:
            from fxrep.lower.tensorrt_feedback import tensorrt_logger

            trt = importlib.import_module(self.runtime)
            trt_logger = tensorrt_logger(self.runtime)
            runtime = trt.Runtime(trt_logger)
            with trt_logger.collector.capture() as records:
                engine = runtime.deserialize_cuda_engine(self.serialized)
            if engine is None:
                errors = "; ".join(r.message for r in records if r.is_error) or "no message"
                raise LoweringError(
                    f"{self.runtime} {getattr(trt, '__version__', '')} cannot deserialize this engine "
                    f"(built with {self.runtime_version or 'an unknown version'}): {errors}"
                )
            trt_logger.collector.replay(records)
            context = engine.create_execution_context()
            if context is None:
                raise LoweringError(
                    f"{self.runtime} could not create an execution context (out of GPU memory?)"
                )
            self._context = (runtime, engine, context)
        return self._context[2]

    def __repr__(self) -> str:
        inputs = ", ".join(str(spec) for spec in self.inputs)
        outputs = ", ".join(str(spec) for spec in self.outputs)
        layers = ", ".join(
            f"{kind}={count}" for kind, count in sorted(self._layers.items(), key=lambda kv: -kv[1])
        )
        return (
            f"Engine(runtime={self.runtime!r}, precision={self.precision!r}, inputs=[{inputs}], "
            f"outputs=[{outputs}], layers={{{layers}}}, {len(self.serialized)} bytes)"
        )


def _sidecar(path: pathlib.Path) -> pathlib.Path:
    return path.with_name(path.name + ".json")


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {key: _jsonable(item) for key, item in value.items()}
    if isinstance(value, (tuple, list)):
        return [_jsonable(item) for item in value]
    return value


def _describe(value: object) -> str:
    if isinstance(value, torch.Tensor):
        return f"a tensor on {value.device}"
    return type(value).__name__
