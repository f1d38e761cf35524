"""`Arithmetic`: elementwise add / sub / mul / div / neg in Python, torch, Tensor-method or ATen form.

``a - alpha * b`` and ``a + alpha * b`` keep their ``alpha``; ``rsub`` is turned around so that
``lhs - alpha * rhs`` always holds. Operands are fx nodes or constants (numbers, tensors).
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch.fx import Node

from ._binding import REQUIRED, bind, bind_schema, is_hashable

aten = torch.ops.aten

Op = Literal["add", "sub", "mul", "div", "neg"]

_BINARY = (("input", REQUIRED), ("other", REQUIRED))
_FUNCTIONS: dict[Any, tuple[Op, tuple]] = {
    operator.add: ("add", (("input", REQUIRED), ("other", REQUIRED))),
    operator.sub: ("sub", (("input", REQUIRED), ("other", REQUIRED))),
    operator.mul: ("mul", _BINARY),
    operator.truediv: ("div", _BINARY),
    operator.neg: ("neg", (("input", REQUIRED),)),
    torch.add: ("add", (*_BINARY, ("alpha", 1))),
    torch.sub: ("sub", (*_BINARY, ("alpha", 1))),
    torch.subtract: ("sub", (*_BINARY, ("alpha", 1))),
    torch.mul: ("mul", _BINARY),
    torch.multiply: ("mul", _BINARY),
    torch.div: ("div", (*_BINARY, ("rounding_mode", None))),
    torch.divide: ("div", (*_BINARY, ("rounding_mode", None))),
    torch.true_divide: ("div", _BINARY),
    torch.neg: ("neg", (("input", REQUIRED),)),
    torch.negative: ("neg", (("input", REQUIRED),)),
}
_METHODS: dict[str, tuple[Op, tuple]] = {
    "add": ("add", (*_BINARY, ("alpha", 1))),
    "__add__": ("add", _BINARY),
    "sub": ("sub", (*_BINARY, ("alpha", 1))),
    "__sub__": ("sub", _BINARY),
    "mul": ("mul", _BINARY),
    "__mul__": ("mul", _BINARY),
    "div": ("div", (*_BINARY, ("rounding_mode", None))),
    "__truediv__": ("div", _BINARY),
    "neg": ("neg", (("input", REQUIRED),)),
    "__neg__": ("neg", (("input", REQUIRED),)),
}
_ATEN: dict[Any, Op] = {
    aten.add.Tensor: "add", aten.add.Scalar: "add",
    aten.sub.Tensor: "sub", aten.sub.Scalar: "sub",
    aten.rsub.Tensor: "sub", aten.rsub.Scalar: "sub",
    aten.mul.Tensor: "mul", aten.mul.Scalar: "mul",
    aten.div.Tensor: "div", aten.div.Scalar: "div",
    aten.neg.default: "neg",
}


@dataclass(frozen=True, eq=False)
class Arithmetic:
    """``lhs + alpha * rhs``, ``lhs - alpha * rhs``, ``lhs * rhs``, ``lhs / rhs`` or ``-lhs``."""

    node: Node
    op: Op
    lhs: Any
    rhs: Any
    alpha: float | int = 1

    @property
    def operands(self) -> tuple[Any, ...]:
        return (self.lhs,) if self.op == "neg" else (self.lhs, self.rhs)

    @classmethod
    def from_node(cls, node: Node) -> Arithmetic | None:
        if node.op == "call_function" and node.target in _ATEN:
            bound = bind_schema(node)
            if bound is None:
                return None
            op = _ATEN[node.target]
            if node.target in (aten.rsub.Tensor, aten.rsub.Scalar):
                bound["self"], bound["other"] = bound["other"], bound["self"]
            if bound.get("rounding_mode") is not None:
                return None
            return cls(node, op, bound["self"], bound.get("other"), bound.get("alpha", 1))
        if node.op == "call_function":
            entry = _FUNCTIONS.get(node.target) if is_hashable(node.target) else None
        elif node.op == "call_method":
            entry = _METHODS.get(str(node.target))
        else:
            entry = None
        if entry is None:
            return None
        op, params = entry
        bound = bind(node.args, node.kwargs, params)
        if bound is None or bound.get("rounding_mode") is not None:
            return None
        return cls(node, op, bound["input"], bound.get("other"), bound.get("alpha", 1))

