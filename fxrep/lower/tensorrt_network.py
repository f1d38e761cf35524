"""Read what the ONNX parser put into a TensorRT network definition.

Everything an Engine knows without a GPU comes from here: input and output specs (with the
optimization profile for dynamic dimensions), the layers by type, and the checks that the
network is what the caller asked for (its precision, its batch dimension). Also the message for
a failed parse, which names each failing ONNX node and op with the parser's own description.
"""

from __future__ import annotations

import pathlib
from collections import Counter
from typing import Any

import torch

from fxrep.lower.engine import Shape, TensorSpec
from fxrep.lower.errors import LoweringError
from fxrep.lower.tensorrt_feedback import LogRecord
from fxrep.lower.tensorrt_runtime import PRECISIONS, torch_dtype_name

__all__ = ["parser_failure_message", "check_network_precision", "input_specs", "tensor_spec", "layer_summary"]


def parser_failure_message(
    parser: Any, path: pathlib.Path, runtime_name: str, records: list[LogRecord]
) -> str:
    """Describe a failed parse: each ParserError's node index, name, op type, error code and description."""
    problems = []
    for index in range(parser.num_errors):
        error = parser.get_error(index)
        code = getattr(error.code(), "name", str(error.code()))
        if error.node() >= 0:
            where = f"node {error.node()} {error.node_name()!r} (op {error.node_operator()})"
        else:
            where = "the model"
        problems.append(f"{where}: {code}: {error.desc()}")
    if not problems:
        problems = [r.message for r in records if r.is_error] or ["no error reported"]
    return (
        f"{runtime_name} cannot parse {path.name}: "
        + "; ".join(problems)
        + ". An op TensorRT does not support must be replaced in the model or provided as a TensorRT plugin."
    )


def check_network_precision(network: Any, precision: str, runtime_name: str, path: pathlib.Path) -> None:
    """Raise LoweringError unless a strongly typed network computes in ``precision`` somewhere."""
    wanted = str(PRECISIONS[precision]).removeprefix("torch.")
    types = {
        torch_dtype_name(network.get_layer(i).get_output_type(j))
        for i in range(network.num_layers)
        for j in range(network.get_layer(i).num_outputs)
    }
    if wanted not in types:
        floating = sorted(types & {"float32", "float16", "bfloat16"}) or ["no floating type"]
        raise LoweringError(
            f"precision={precision!r}, but {path.name} computes in {', '.join(floating)}. {runtime_name} networks "
            "are strongly typed: the types come from the ONNX model. Pass the module instead (build_engine "
            f"exports it in {wanted}), export it in {wanted} yourself, or pass the precision the model has."
        )


def input_specs(
    network: Any,
    inputs: tuple[torch.Tensor, ...] | None,
    batch_range: tuple[int, int, int] | None,
    path: pathlib.Path,
) -> list[TensorSpec]:
    """Specs of the network's inputs, with an optimization profile for each input with dynamic dimensions.

    ``batch_range`` = (min, opt, max) spans dimension 0; other dynamic dimensions take the size of
    the example input. Without ``batch_range`` a dynamic input gets min = opt = max = example shape.
    """
    count = network.num_inputs
    if inputs is not None and len(inputs) != count:
        raise ValueError(f"{path.name} has {count} inputs but {len(inputs)} example inputs were given")
    specs = []
    for index in range(count):
        tensor = network.get_input(index)
        shape: Shape = tuple(tensor.shape)
        example = None if inputs is None else tuple(inputs[index].shape)
        if example is not None and (
            len(example) != len(shape) or any(d >= 0 and d != e for d, e in zip(shape, example, strict=True))
        ):
            raise ValueError(f"example input {index} has shape {example}, but {path.name} expects {shape}")
        profile = None
        if batch_range is not None:
            if not shape or shape[0] >= 0:
                raise LoweringError(
                    f"dynamic_batch was given, but input {tensor.name!r} of {path.name} has a fixed batch "
                    f"size (shape {shape}); export it with a dynamic dimension 0 (export_onnx(..., dynamic_batch=True))"
                )
            rest = _fill_dynamic(shape[1:], None if example is None else example[1:], tensor.name, path)
            profile = tuple((batch, *rest) for batch in batch_range)
        elif any(d < 0 for d in shape):
            fixed = _fill_dynamic(shape, example, tensor.name, path)
            profile = (fixed, fixed, fixed)
        specs.append(TensorSpec(tensor.name, shape, torch_dtype_name(tensor.dtype), profile))
    return specs


def _fill_dynamic(shape: Shape, example: Shape | None, name: str, path: pathlib.Path) -> Shape:
    if all(d >= 0 for d in shape):
        return shape
    if example is None:
        raise LoweringError(
            f"input {name!r} of {path.name} has dynamic dimensions {shape}: pass example_inputs to fix their sizes"
        )
    return example


def tensor_spec(tensor: Any) -> TensorSpec:
    """Spec of a network ``ITensor`` (name, shape with -1 for dynamic dimensions, torch dtype name)."""
    return TensorSpec(tensor.name, tuple(tensor.shape), torch_dtype_name(tensor.dtype))


def layer_summary(network: Any) -> dict[str, int]:
    """Count the network's layers by ``LayerType`` name, e.g. {"ACTIVATION": 3, "CONVOLUTION": 4}."""
    counts = Counter(network.get_layer(i).type.name for i in range(network.num_layers))
    return dict(sorted(counts.items()))
