"""Describe a node of the graph being rewritten as an `OpShape`, through fxrep's op views.

The views recognise the module, functional and ATen forms of each op, so this is where one pattern
comes to match every form. The clamp family (``relu``, ``relu6``, ``hardtanh``, ``clamp``, ``clip``)
is one op with bounds (`fxrep.ops.Activation.clamp`); `describe_node` dispatches on the view
`fxrep.ops.view_of` finds.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.fx import Node
from torch.fx.operator_schemas import normalize_function

from ..ops import (
    Activation,
    Arithmetic,
    AvgPool,
    BatchNorm,
    Cat,
    Conv,
    Linear,
    Pad,
    has_hooks,
    op_kind,
    view_of,
)
from .op_shape import RUNTIME, OpShape

_SKIPPED_SETTINGS = ("input", "self", "inplace", "training")
_DESCRIBED = (Conv, BatchNorm, Linear, Arithmetic, Pad, AvgPool, Cat, Activation)
"""The views `describe_node` reads, in `fxrep.ops.VIEWS` order."""


def describe_node(node: Node) -> OpShape | None:
    """``node`` as an `OpShape`, or None for placeholders, outputs, constants and unknown modules."""
    if node.op not in ("call_function", "call_method", "call_module"):
        return None
    shape = _clamp(node)
    if shape is not None:
        return shape
    view = view_of(node, _DESCRIBED)
    if view is not None:
        return _READERS[type(view)](view)
    if node.op == "call_module":
        return None
    return OpShape(node.op, _label(node), tuple(node.args), dict(node.kwargs), target=node.target)


def _label(node: Node) -> str:
    return op_kind(node) or str(getattr(node.target, "__name__", node.target))


def _hooks_problem(module: nn.Module | None, node: Node) -> str | None:
    if module is not None and has_hooks(module):
        return f"{node.name}'s module has hooks that may change what it computes"
    return None


def _conv(conv: Conv) -> OpShape:
    node = conv.node
    kind = f"conv_transpose{conv.nd}d" if conv.transposed else f"conv{conv.nd}d"
    params = {
        "weight": conv.weight if conv.weight_is_constant else RUNTIME,
        "bias": conv.bias if conv.bias_is_constant else RUNTIME,
        "stride": conv.stride, "padding": conv.padding, "dilation": conv.dilation, "groups": conv.groups,
        "padding_mode": conv.padding_mode, "kernel_size": conv.kernel_size,
    }
    if conv.transposed:
        params["output_padding"] = conv.output_padding
    return OpShape(kind, kind, (conv.input,), params, problem=_hooks_problem(conv.module, node))


def _linear(linear: Linear) -> OpShape:
    node = linear.node
    weight = linear.weight if linear.weight is not None and linear.is_constant else RUNTIME
    bias = linear.bias if linear.is_constant else (RUNTIME if linear.bias is None else linear.bias)
    return OpShape("linear", "linear", (linear.input,), {"weight": weight, "bias": bias},
                   problem=_hooks_problem(linear.module, node))


def _batchnorm(bn: BatchNorm) -> OpShape:
    node = bn.node

    def value(tensor: torch.Tensor | None) -> Any:
        return tensor if tensor is not None or bn.parameters_are_constant else RUNTIME

    params = {"running_mean": value(bn.running_mean), "running_var": value(bn.running_var),
              "weight": value(bn.weight), "bias": value(bn.bias), "eps": bn.eps,
              "training": bn.uses_batch_statistics}
    parts = (bn.call,) if bn.call is not node else ()
    return OpShape("batchnorm", "batchnorm", (bn.input,), params, parts=parts,
                   problem=_hooks_problem(bn.module, node))


def _arithmetic(view: Arithmetic) -> OpShape:
    return OpShape(view.op, view.op, view.operands, {"alpha": view.alpha})


def _clamp(node: Node) -> OpShape | None:
    """A clamp-family op with literal bounds as one ``clamp`` op (run-time bounds: an activation)."""
    view = Activation.clamp(node)
    if view is None or isinstance(view.min, Node) or isinstance(view.max, Node):
        return None
    module = node.graph.owning_module.get_submodule(str(node.target)) if node.op == "call_module" else None
    return OpShape("clamp", _label(node), (view.input,), {"min": view.min, "max": view.max},
                   problem=_hooks_problem(module, node))


def _activation(view: Activation) -> OpShape:
    node = view.node
    module = node.graph.owning_module.get_submodule(str(node.target)) if node.op == "call_module" else None
    return OpShape(view.kind, view.kind, (view.input,), activation_settings(node, module),
                   problem=_hooks_problem(module, node))


def activation_settings(node: Node, module: nn.Module | None) -> dict[str, Any]:
    """An activation's settings by name (``approximate``, ``negative_slope``, ...), as far as they can be read."""
    if module is not None:
        return {name: value for name, value in vars(module).items()
                if not name.startswith("_") and name not in _SKIPPED_SETTINGS
                and isinstance(value, int | float | str | bool)}
    if node.op != "call_function":
        return {}
    try:
        normalized = normalize_function(node.target, tuple(node.args), dict(node.kwargs),
                                        normalize_to_only_use_kwargs=True)
    except Exception:  # ambiguous or unknown signatures: no settings to compare
        normalized = None
    if normalized is None:
        return {key: value for key, value in node.kwargs.items() if key not in _SKIPPED_SETTINGS}
    return {key: value for key, value in normalized.kwargs.items() if key not in _SKIPPED_SETTINGS}


def cat_shape(node: Node) -> OpShape | None:
    view = Cat.from_node(node)
    return None if view is None else _cat(view)


def pad_shape(node: Node) -> OpShape | None:
    view = Pad.from_node(node)
    return None if view is None else _pad(view)


def avg_pool_shape(node: Node) -> OpShape | None:
    view = AvgPool.from_node(node)
    return None if view is None else _avg_pool(view)


def _cat(view: Cat) -> OpShape:
    return OpShape("cat", "cat", tuple(view.inputs), {"dim": view.dim})


def _pad(view: Pad) -> OpShape:
    return OpShape("pad", "pad", (view.input,), {"pads": view.pads, "mode": view.mode, "value": view.value})


def _avg_pool(view: AvgPool) -> OpShape:
    kind = f"avg_pool{len(view.kernel_size)}d"
    params = {"kernel_size": view.kernel_size, "stride": view.stride, "padding": view.padding,
              "ceil_mode": view.ceil_mode, "count_include_pad": view.count_include_pad,
              "divisor_override": view.divisor_override}
    return OpShape(kind, kind, (view.input,), params)


_READERS: dict[type, Any] = {
    Conv: _conv, BatchNorm: _batchnorm, Linear: _linear, Arithmetic: _arithmetic, Pad: _pad, AvgPool: _avg_pool,
    Cat: _cat, Activation: _activation,
}
"""How each view in `_DESCRIBED` becomes an `OpShape`."""
