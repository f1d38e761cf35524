"""`Linear`: ``nn.Linear``, ``F.linear`` and ``aten.linear`` as one view (``y = x W^T + b``)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.fx import Node

from ..algebra import ConvMap, NotExact, linear_map
from ._binding import REQUIRED, bind_call
from ._graph import called_module, constant_value, has_hooks

_SIGNATURES = {F.linear: (("input", REQUIRED), ("weight", REQUIRED), ("bias", None))}
_OVERLOADS = (torch.ops.aten.linear.default,)


@dataclass(frozen=True, eq=False)
class Linear:
    """A linear-layer node; ``weight``/``bias`` are None when computed at run time (or no bias)."""

    node: Node
    input: Node
    weight: torch.Tensor | None
    bias: torch.Tensor | None
    is_constant: bool
    module: nn.Module | None

    @classmethod
    def from_node(cls, node: Node) -> Linear | None:
        module = called_module(node)
        if module is not None:
            if type(module) is not nn.Linear or len(node.args) != 1 or node.kwargs:
                return None
            if not isinstance(node.args[0], Node):
                return None
            bias = None if module.bias is None else module.bias.detach()
            return cls(node, node.args[0], module.weight.detach(), bias, True, module)
        if node.op != "call_function":
            return None
        bound = bind_call(node, _SIGNATURES, overloads=_OVERLOADS)
        if bound is None or not isinstance(bound["input"], Node):
            return None
        weight = constant_value(bound["weight"])
        bias = None if bound["bias"] is None else constant_value(bound["bias"])
        constant = isinstance(weight, torch.Tensor) and (bound["bias"] is None or isinstance(bias, torch.Tensor))
        return cls(
            node,
            bound["input"],
            weight if isinstance(weight, torch.Tensor) else None,
            bias if isinstance(bias, torch.Tensor) else None,
            constant,
            None,
        )

    def linear_map(self) -> ConvMap:
        """This layer as a 0-d `ConvMap`; raises `NotExact` when its parameters are not constant."""
        if not self.is_constant or self.weight is None:
            raise NotExact(f"{self.node.name}'s weight is computed from a graph input at run time")
        if self.module is not None and has_hooks(self.module):
            raise NotExact(f"{self.node.name}'s module has hooks that may change what it computes")
        return linear_map(self.weight, self.bias)
