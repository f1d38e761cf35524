"""One dispatch over the op views, and ``op_kind(node)``: a short name for what a node computes.

`view_of(node, views)` is the one place that asks the views in turn which one recognises a node;
code that treats each kind of op differently (``op_kind``, the cost model's op signatures, the
pattern matcher's `OpShape`, the affine classification) asks it once and dispatches on the view's
type. `VIEWS` lists every view in precedence order: where two recognise the same node (`NoOp`
recognises some `Identity`, `Arithmetic` and `Layout` nodes) the earlier one wins; the other views
recognise disjoint sets of nodes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeAlias

import torch
from torch.fx import Node

from .activation import Activation
from .arithmetic import Arithmetic
from .batchnorm import BatchNorm
from .border_fill import BorderFill
from .concat import Cat
from .conv import Conv
from .identity import Identity
from .layout import Layout
from .linear import Linear
from .no_op import NoOp
from .pad import Pad
from .pool import AvgPool, MaxPool
from .reduce import AdaptiveAvgPool, Mean

View: TypeAlias = (Conv | BatchNorm | Linear | Arithmetic | Pad | AvgPool | MaxPool | Cat | Identity | Activation
                   | BorderFill | NoOp | Layout | Mean | AdaptiveAvgPool)
"""Any op view."""

VIEWS: tuple[type, ...] = (Conv, BatchNorm, Linear, Arithmetic, Pad, AvgPool, MaxPool, Cat, Identity, Activation,
                           BorderFill, NoOp, Layout, Mean, AdaptiveAvgPool)
"""Every op view, in precedence order (see the module docstring)."""

NAMED_VIEWS: tuple[type, ...] = VIEWS[:VIEWS.index(BorderFill) + 1]
"""The views `op_kind` names; a node only the later ones recognise is named by its target."""

_NAMES = {
    BatchNorm: "batchnorm", Linear: "linear", Pad: "pad", AvgPool: "avgpool", MaxPool: "maxpool",
    Cat: "cat", Identity: "identity", BorderFill: "border_fill",
}


def view_of(node: Node, views: Sequence[type] = VIEWS) -> View | None:
    """The view of ``node`` by the first of ``views`` (default: all, in precedence order) that recognises it.

    None for placeholders, outputs and ``get_attr`` nodes, and for ops none of ``views`` recognises.
    Pass a subset in `VIEWS` order to dispatch over only the views a caller handles.
    """
    if node.op in ("placeholder", "output", "get_attr"):
        return None
    for view_type in views:
        view = view_type.from_node(node)
        if view is not None:
            return view
    return None


def op_kind(node: Node) -> str | None:
    """``"conv"``, ``"batchnorm"``, ``"add"``, ``"relu"``, ... or None for ops no named view recognises."""
    view = view_of(node, NAMED_VIEWS)
    if view is None:
        return None
    if isinstance(view, Conv):
        return "conv_transpose" if view.transposed else "conv"
    if isinstance(view, Arithmetic):
        return view.op
    if isinstance(view, Activation):
        return view.kind
    return _NAMES[type(view)]


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
