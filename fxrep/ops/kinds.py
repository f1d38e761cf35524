"""``op_kind(node)``: a short name for what a node computes, for reports, ``explain`` and pictures."""

from __future__ import annotations

import torch
from torch.fx import Node

from .activation import Activation
from .arithmetic import Arithmetic
from .batchnorm import BatchNorm
from .border_fill import BorderFill
from .concat import Cat
from .conv import Conv
from .identity import Identity
from .linear import Linear
from .pad import Pad
from .pool import AvgPool, MaxPool

VIEWS = (Conv, BatchNorm, Linear, Arithmetic, Pad, AvgPool, MaxPool, Cat, Identity, Activation, BorderFill)


def op_kind(node: Node) -> str | None:
    """``"conv"``, ``"batchnorm"``, ``"add"``, ``"relu"``, ... or None for ops no view recognises."""
    if node.op in ("placeholder", "output", "get_attr"):
        return None
    for view_type in VIEWS:
        view = view_type.from_node(node)
        if view is None:
            continue
        if isinstance(view, Conv):
            return "conv_transpose" if view.transposed else "conv"
        if isinstance(view, Arithmetic):
            return view.op
        if isinstance(view, Activation):
            return view.kind
        return {
            BatchNorm: "batchnorm", Linear: "linear", Pad: "pad", AvgPool: "avgpool", MaxPool: "maxpool",
            Cat: "cat", Identity: "identity", BorderFill: "border_fill",
        }[type(view)]
    return None


def target_name(node: Node) -> str:
    """A short name for what a node calls (``mean``, ``flatten``, ``Dropout``), for unrecognised ops."""
    target = node.target
    if node.op == "call_module":
        return type(node.graph.owning_module.get_submodule(str(target))).__name__
    if isinstance(target, torch._ops.OpOverload):
        return target._schema.name.split("::")[-1]
    if node.op == "call_method":
        return str(target)
    return getattr(target, "__name__", str(target))
