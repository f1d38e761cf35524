"""`Activation`: the common element-wise non-linearities in module, functional, method or ATen form.

fxrep never folds through a non-linearity; the view exists so patterns, ``explain`` and ``draw``
can name them (``kind`` is a lower-case name such as ``"relu"`` or ``"hardswish"``).

The clamp family (``relu``, ``relu6``, ``hardtanh``, ``clamp``) carries its bounds: ``min`` / ``max``
(None where unbounded; a `Node` for a bound computed at run time). `Activation.clamp` reads every form
of the family, including the Python ``torch.clamp`` / ``Tensor.clamp`` / ``clip`` / ``clamp_min``
calls, which `Activation.from_node` (and so ``op_kind``) leaves unnamed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.fx import Node

from ._binding import REQUIRED, bind, bind_schema, is_hashable
from ._graph import called_module

aten = torch.ops.aten

_MODULES = {
    nn.ReLU: "relu", nn.ReLU6: "relu6", nn.GELU: "gelu", nn.SiLU: "silu", nn.Sigmoid: "sigmoid", nn.Tanh: "tanh",
    nn.Hardswish: "hardswish", nn.Hardsigmoid: "hardsigmoid", nn.LeakyReLU: "leaky_relu", nn.ELU: "elu",
    nn.Mish: "mish", nn.Softplus: "softplus", nn.PReLU: "prelu", nn.Hardtanh: "hardtanh", nn.SELU: "selu",
}
_FUNCTIONS = {
    F.relu: "relu", torch.relu: "relu", F.relu6: "relu6", F.gelu: "gelu", F.silu: "silu", torch.sigmoid: "sigmoid",
    F.sigmoid: "sigmoid", torch.tanh: "tanh", F.tanh: "tanh", F.hardswish: "hardswish",
    F.hardsigmoid: "hardsigmoid", F.leaky_relu: "leaky_relu", F.elu: "elu", F.mish: "mish", F.softplus: "softplus",
    F.hardtanh: "hardtanh", F.selu: "selu",
}
_METHODS = {"relu": "relu", "relu_": "relu", "sigmoid": "sigmoid", "tanh": "tanh"}
_ATEN = {
    aten.relu.default: "relu", aten.relu_.default: "relu", aten.gelu.default: "gelu", aten.silu.default: "silu",
    aten.silu_.default: "silu", aten.sigmoid.default: "sigmoid", aten.tanh.default: "tanh",
    aten.hardswish.default: "hardswish", aten.hardswish_.default: "hardswish",
    aten.hardsigmoid.default: "hardsigmoid", aten.leaky_relu.default: "leaky_relu", aten.elu.default: "elu",
    aten.mish.default: "mish", aten.softplus.default: "softplus", aten.hardtanh.default: "hardtanh",
    aten.hardtanh_.default: "hardtanh", aten._prelu_kernel.default: "prelu", aten.prelu.default: "prelu",
    aten.relu6.default: "relu6", aten.clamp.default: "clamp", aten.clamp_min.default: "clamp",
}

_INPUT = ("input", REQUIRED)
ClampSpec = tuple[tuple[str, Any], ...] | tuple[float, float | None]
"""Fixed (min, max) bounds, or the (name, default) parameters to bind the bounds from."""
CLAMP_FUNCTIONS: dict[Any, ClampSpec] = {
    F.relu: (0.0, None), torch.relu: (0.0, None), F.relu6: (0.0, 6.0),
    F.hardtanh: (_INPUT, ("min_val", -1.0), ("max_val", 1.0), ("inplace", False)),
    torch.clamp: (_INPUT, ("min", None), ("max", None)),
    torch.clip: (_INPUT, ("min", None), ("max", None)),
    torch.clamp_min: (_INPUT, ("min", REQUIRED)),
}
"""Python functions of the clamp family."""
CLAMP_METHODS: dict[str, ClampSpec] = {
    "relu": (0.0, None), "relu_": (0.0, None),
    "clamp": (("self", REQUIRED), ("min", None), ("max", None)),
    "clip": (("self", REQUIRED), ("min", None), ("max", None)),
    "clamp_min": (("self", REQUIRED), ("min", REQUIRED)),
}
"""Tensor methods of the clamp family."""
_CLAMP_ATEN: dict[Any, tuple[float, float | None] | None] = {
    aten.relu.default: (0.0, None), aten.relu_.default: (0.0, None), aten.relu6.default: (0.0, 6.0),
    aten.hardtanh.default: None, aten.hardtanh_.default: None, aten.clamp.default: None,
    aten.clamp_.default: None, aten.clip.default: None, aten.clamp_min.default: None,
}
_CLAMP_MODULES = (nn.ReLU, nn.ReLU6, nn.Hardtanh)
_CLAMP_KINDS = ("relu", "relu6", "hardtanh", "clamp")


def clamp_bounds(bound: Mapping[str, Any]) -> tuple[Any, Any]:
    """(min, max) from bound arguments of hardtanh (``min_val``/``max_val``) or clamp (``min``/``max``)."""
    if "min_val" in bound:
        return bound["min_val"], bound["max_val"]
    return bound.get("min"), bound.get("max")


@dataclass(frozen=True, eq=False)
class Activation:
    """An element-wise non-linearity ``kind`` applied to ``input``; ``min`` / ``max``: a clamp's bounds."""

    node: Node
    input: Node
    kind: str
    min: Any = None
    max: Any = None

    @classmethod
    def from_node(cls, node: Node) -> Activation | None:
        kind = None
        module = called_module(node)
        if module is not None:
            kind = _MODULES.get(type(module))
        elif node.op == "call_function" and is_hashable(node.target):
            kind = _FUNCTIONS.get(node.target) or _ATEN.get(node.target)
        elif node.op == "call_method":
            kind = _METHODS.get(str(node.target))
        source = node.args[0] if node.args else node.kwargs.get("input", node.kwargs.get("self"))
        if kind is None or not isinstance(source, Node):
            return None
        clamp = cls.clamp(node) if kind in _CLAMP_KINDS else None
        if clamp is not None and clamp.input is source:
            return replace(clamp, kind=kind)
        return cls(node, source, kind)

    @classmethod
    def clamp(cls, node: Node) -> Activation | None:
        """``node`` as a clamp with its bounds, in any form of the family (see the module docstring).

        None where the arguments do not bind, the input is not a node, or a module is called with
        more than its input; bounds may be nodes (computed at run time).
        """
        module = called_module(node)
        if module is not None:
            if type(module) not in _CLAMP_MODULES:
                return None
            bounds = (0.0, None) if type(module) is nn.ReLU else (module.min_val, module.max_val)
            source = node.args[0] if len(node.args) == 1 and not node.kwargs else None
            if not isinstance(source, Node):
                return None
            return cls(node, source, _MODULES[type(module)], *bounds)
        bound, bounds, kind = _clamp_arguments(node)
        if bound is None:
            return None
        source = bound.get("input", bound.get("self"))
        if not isinstance(source, Node):
            return None
        return cls(node, source, kind, *bounds)


def _clamp_arguments(node: Node) -> tuple[dict[str, Any] | None, tuple[Any, Any], str]:
    """The bound arguments of a clamp-family call, its (min, max) and its kind."""
    if node.op == "call_function" and is_hashable(node.target) and node.target in _CLAMP_ATEN:
        bound = bind_schema(node)
        fixed = _CLAMP_ATEN[node.target]
        return bound, fixed if fixed is not None else clamp_bounds(bound or {}), _ATEN.get(node.target, "clamp")
    if node.op == "call_function" and is_hashable(node.target) and node.target in CLAMP_FUNCTIONS:
        spec, kind = CLAMP_FUNCTIONS[node.target], _FUNCTIONS.get(node.target, "clamp")
    elif node.op == "call_method" and node.target in CLAMP_METHODS:
        spec, kind = CLAMP_METHODS[str(node.target)], _METHODS.get(str(node.target), "clamp")
    else:
        return None, (None, None), ""
    if not isinstance(spec[0], tuple):
        params = (("self" if node.op == "call_method" else "input", REQUIRED), ("inplace", False))
        return bind(node.args, node.kwargs, params), spec, kind  # type: ignore[return-value]
    bound = bind(node.args, node.kwargs, spec)  # type: ignore[arg-type]
    return bound, clamp_bounds(bound or {}), kind
