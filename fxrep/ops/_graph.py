"""Small read-only queries on fx nodes shared by the op views: constants, modules, shapes."""

from __future__ import annotations

import numbers
from typing import Any

import torch
from torch import nn
from torch.fx import GraphModule, Node


def owning_module(node: Node) -> GraphModule:
    module = node.graph.owning_module
    if module is None:
        raise ValueError(f"node {node.name} belongs to a graph without an owning GraphModule")
    return module


def called_module(node: Node) -> nn.Module | None:
    """The submodule a ``call_module`` node calls, else None."""
    if node.op != "call_module":
        return None
    return owning_module(node).get_submodule(str(node.target))


def has_hooks(module: nn.Module) -> bool:
    """Whether calling ``module`` runs user hooks (they may change what it computes)."""
    hook_dicts = (module._forward_hooks, module._forward_pre_hooks, module._backward_hooks)
    return any(len(hooks) for hooks in hook_dicts)


def attribute(node: Node) -> Any:
    """The object a ``get_attr`` node reads."""
    target = str(node.target)
    module_path, _, name = target.rpartition(".")
    owner = owning_module(node).get_submodule(module_path) if module_path else owning_module(node)
    return getattr(owner, name)


def constant_value(arg: Any) -> torch.Tensor | float | int | bool | None:
    """The value of ``arg`` when it is known without running the graph, else None.

    Constants are Python numbers and ``get_attr`` nodes (parameters, buffers and tensors that
    `EvaluateConstantSubgraphs` produced). Anything computed from a graph input is not constant.
    """
    if isinstance(arg, bool | numbers.Number) and not isinstance(arg, complex):
        return arg
    if isinstance(arg, torch.Tensor):
        return arg
    if isinstance(arg, Node) and arg.op == "get_attr":
        value = attribute(arg)
        if isinstance(value, torch.Tensor):
            return value.detach()
    return None


def tensor_constant(arg: Any) -> torch.Tensor | None:
    """``constant_value`` as a tensor (numbers become 0-d tensors), or None."""
    value = constant_value(arg)
    if value is None:
        return None
    if isinstance(value, torch.Tensor):
        return value
    return torch.tensor(value)


def example_value(node: Any) -> torch.Tensor | None:
    """The (fake) tensor recorded for ``node`` by torch.export or shape propagation, if any."""
    if not isinstance(node, Node):
        return None
    value = node.meta.get("val")
    if isinstance(value, torch.Tensor):
        return value
    meta = node.meta.get("tensor_meta")
    if meta is not None and hasattr(meta, "shape"):
        return torch.empty(meta.shape, dtype=meta.dtype, device="meta")
    return None


def dims(node: Any) -> tuple[int | None, ...] | None:
    """``node``'s shape with symbolic (dynamic) dimensions as None; None when the shape is unknown."""
    value = example_value(node)
    if value is None:
        return None
    return tuple(dim if isinstance(dim, int) else None for dim in value.shape)


def size_at_unit_batch(dim: Any) -> int:
    """A recorded dimension as an int, every dynamic size (a dynamic batch) set to 1: ``s0 * 196`` -> 196.

    Cost estimates count a dynamic batch as 1; a dimension that merges the batch with static ones
    (``x.flatten(0, 1)`` of a (batch, tokens, C) tensor) keeps its static factor.
    """
    if isinstance(dim, int):
        return dim
    try:
        expr = dim.node.expr
        return max(1, int(expr.xreplace({symbol: 1 for symbol in expr.free_symbols})))
    except (AttributeError, TypeError, ValueError):
        return 1


def static_shape(node: Any) -> tuple[int, ...] | None:
    """``node``'s shape when every dimension is a plain int, else None."""
    shape = dims(node)
    if shape is None or any(dim is None for dim in shape):
        return None
    return shape  # type: ignore[return-value]


def rank(node: Any) -> int | None:
    value = example_value(node)
    return None if value is None else value.dim()


def dtype_of(node: Any) -> torch.dtype | None:
    value = example_value(node)
    return None if value is None else value.dtype
