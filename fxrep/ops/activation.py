"""`Activation`: the common element-wise non-linearities in module, functional, method or ATen form.

fxrep never folds through a non-linearity; the view exists so patterns, ``explain`` and ``draw``
can name them (``kind`` is a lower-case name such as ``"relu"`` or ``"hardswish"``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.fx import Node

from ._binding import is_hashable
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


@dataclass(frozen=True, eq=False)
class Activation:
    """An element-wise non-linearity ``kind`` applied to ``input``."""

    node: Node
    input: Node
    kind: str

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
        return cls(node, source, kind)
