"""Describe a node of the graph being rewritten as an `OpShape`, through fxrep's op views.

The views recognise the module, functional and ATen forms of each op, so this is where one pattern
comes to match every form. The clamp family (``relu``, ``relu6``, ``hardtanh``, ``clamp``, ``clip``)
is read here directly, because the `Activation` view names it but does not carry its bounds.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.fx import Node
from torch.fx.operator_schemas import normalize_function

from .. import pass_api as api
from ..ops._binding import REQUIRED, bind, bind_schema, is_hashable
from .op_shape import RUNTIME, OpShape

aten = torch.ops.aten

_INPUT = ("input", REQUIRED)
CLAMP_FUNCTIONS: dict[Any, tuple[tuple[str, Any], ...] | tuple[float, float | None]] = {
    F.relu: (0.0, None), torch.relu: (0.0, None), F.relu6: (0.0, 6.0),
    F.hardtanh: (_INPUT, ("min_val", -1.0), ("max_val", 1.0), ("inplace", False)),
    torch.clamp: (_INPUT, ("min", None), ("max", None)),
    torch.clip: (_INPUT, ("min", None), ("max", None)),
    torch.clamp_min: (_INPUT, ("min", REQUIRED)),
}
"""Python functions of the clamp family: fixed (min, max) bounds, or the parameters to bind them from."""
CLAMP_METHODS: dict[str, tuple[tuple[str, Any], ...] | tuple[float, float | None]] = {
    "relu": (0.0, None), "relu_": (0.0, None),
    "clamp": (("self", REQUIRED), ("min", None), ("max", None)),
    "clip": (("self", REQUIRED), ("min", None), ("max", None)),
    "clamp_min": (("self", REQUIRED), ("min", REQUIRED)),
}
_CLAMP_ATEN: dict[Any, tuple[float, float | None] | None] = {
    aten.relu.default: (0.0, None), aten.relu_.default: (0.0, None), aten.relu6.default: (0.0, 6.0),
    aten.hardtanh.default: None, aten.hardtanh_.default: None, aten.clamp.default: None,
    aten.clamp_.default: None, aten.clip.default: None, aten.clamp_min.default: None,
}
_SKIPPED_SETTINGS = ("input", "self", "inplace", "training")


def describe_node(node: Node) -> OpShape | None:
    """``node`` as an `OpShape`, or None for placeholders, outputs, constants and unknown modules."""
    if node.op not in ("call_function", "call_method", "call_module"):
        return None
    for reader in (_conv, _linear, _batchnorm, _arithmetic, _clamp, _activation, cat_shape, pad_shape,
                   avg_pool_shape):
        shape = reader(node)
        if shape is not None:
            return shape
    if node.op == "call_module":
        return None
    return OpShape(node.op, _label(node), tuple(node.args), dict(node.kwargs), target=node.target)


def clamp_bounds(bound: dict[str, Any]) -> tuple[Any, Any]:
    """(min, max) from bound arguments of hardtanh (``min_val``/``max_val``) or clamp (``min``/``max``)."""
    if "min_val" in bound:
        return bound["min_val"], bound["max_val"]
    return bound.get("min"), bound.get("max")


def _label(node: Node) -> str:
    return api.op_kind(node) or str(getattr(node.target, "__name__", node.target))


def _hooks_problem(module: nn.Module | None, node: Node) -> str | None:
    if module is not None and api.has_hooks(module):
        return f"{node.name}'s module has hooks that may change what it computes"
    return None


def _conv(node: Node) -> OpShape | None:
    conv = api.Conv.from_node(node)
    if conv is None:
        return None
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


def _linear(node: Node) -> OpShape | None:
    linear = api.Linear.from_node(node)
    if linear is None:
        return None
    weight = linear.weight if linear.weight is not None and linear.is_constant else RUNTIME
    bias = linear.bias if linear.is_constant else (RUNTIME if linear.bias is None else linear.bias)
    return OpShape("linear", "linear", (linear.input,), {"weight": weight, "bias": bias},
                   problem=_hooks_problem(linear.module, node))


def _batchnorm(node: Node) -> OpShape | None:
    bn = api.BatchNorm.from_node(node)
    if bn is None:
        return None

    def value(tensor: torch.Tensor | None) -> Any:
        return tensor if tensor is not None or bn.parameters_are_constant else RUNTIME

    params = {"running_mean": value(bn.running_mean), "running_var": value(bn.running_var),
              "weight": value(bn.weight), "bias": value(bn.bias), "eps": bn.eps,
              "training": bn.uses_batch_statistics}
    parts = (bn.call,) if bn.call is not node else ()
    return OpShape("batchnorm", "batchnorm", (bn.input,), params, parts=parts,
                   problem=_hooks_problem(bn.module, node))


def _arithmetic(node: Node) -> OpShape | None:
    view = api.Arithmetic.from_node(node)
    if view is None:
        return None
    return OpShape(view.op, view.op, view.operands, {"alpha": view.alpha})


def _clamp(node: Node) -> OpShape | None:
    module = node.graph.owning_module.get_submodule(str(node.target)) if node.op == "call_module" else None
    if module is not None:
        if type(module) is nn.ReLU:
            bounds = (0.0, None)
        elif type(module) in (nn.ReLU6, nn.Hardtanh):
            bounds = (module.min_val, module.max_val)
        else:
            return None
        source = node.args[0] if len(node.args) == 1 and not node.kwargs else None
        if not isinstance(source, Node):
            return None
        return OpShape("clamp", _label(node), (source,), {"min": bounds[0], "max": bounds[1]},
                       problem=_hooks_problem(module, node))
    bound, bounds = _clamp_arguments(node)
    if bound is None:
        return None
    source = bound.get("input", bound.get("self"))
    if not isinstance(source, Node) or isinstance(bounds[0], Node) or isinstance(bounds[1], Node):
        return None
    return OpShape("clamp", _label(node), (source,), {"min": bounds[0], "max": bounds[1]})


def _clamp_arguments(node: Node) -> tuple[dict[str, Any] | None, tuple[Any, Any]]:
    if node.op == "call_function" and node.target in _CLAMP_ATEN:
        bound = bind_schema(node)
        fixed = _CLAMP_ATEN[node.target]
        return bound, fixed if fixed is not None else clamp_bounds(bound or {})
    if node.op == "call_function" and is_hashable(node.target) and node.target in CLAMP_FUNCTIONS:
        spec = CLAMP_FUNCTIONS[node.target]
    elif node.op == "call_method" and node.target in CLAMP_METHODS:
        spec = CLAMP_METHODS[str(node.target)]
    else:
        return None, (None, None)
    if not isinstance(spec[0], tuple):
        params = (("self" if node.op == "call_method" else "input", REQUIRED), ("inplace", False))
        bound = bind(node.args, node.kwargs, params)
        return bound, spec  # type: ignore[return-value]
    bound = bind(node.args, node.kwargs, spec)  # type: ignore[arg-type]
    return bound, clamp_bounds(bound or {})


def _activation(node: Node) -> OpShape | None:
    view = api.Activation.from_node(node)
    if view is None:
        return None
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
    view = api.Cat.from_node(node)
    return None if view is None else OpShape("cat", "cat", tuple(view.inputs), {"dim": view.dim})


def pad_shape(node: Node) -> OpShape | None:
    view = api.Pad.from_node(node)
    if view is None:
        return None
    return OpShape("pad", "pad", (view.input,), {"pads": view.pads, "mode": view.mode, "value": view.value})


def avg_pool_shape(node: Node) -> OpShape | None:
    view = api.AvgPool.from_node(node)
    if view is None:
        return None
    kind = f"avg_pool{len(view.kernel_size)}d"
    params = {"kernel_size": view.kernel_size, "stride": view.stride, "padding": view.padding,
              "ceil_mode": view.ceil_mode, "count_include_pad": view.count_include_pad,
              "divisor_override": view.divisor_override}
    return OpShape(kind, kind, (view.input,), params)

