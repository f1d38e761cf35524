"""Binding a node's positional and keyword arguments to parameter names.

Op views read arguments by name, never by position (``node.args[6]`` is how bugs hide). ATen
overloads carry their schema; for the handful of Python callables fxrep recognises (``F.conv2d``,
``torch.add``, ``Tensor.add``, ...) each view module lists the parameter names next to the targets.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch.fx import Node

REQUIRED = object()

Params = Sequence[tuple[str, Any]]


def bind(args: Sequence[Any], kwargs: Mapping[str, Any], params: Params) -> dict[str, Any] | None:
    """Map ``args``/``kwargs`` onto ``params`` ((name, default) pairs); None when they do not fit."""
    if len(args) > len(params):
        return None
    bound: dict[str, Any] = {}
    for (name, _), value in zip(params, args, strict=False):
        bound[name] = value
    for name, value in kwargs.items():
        if name in bound or all(name != p for p, _ in params):
            return None
        bound[name] = value
    for name, default in params:
        if name not in bound:
            if default is REQUIRED:
                return None
            bound[name] = default
    return bound


def bind_schema(node: Node) -> dict[str, Any] | None:
    """Bind the arguments of a call to an ATen ``OpOverload`` using its schema."""
    target = node.target
    if not isinstance(target, torch._ops.OpOverload):
        return None
    params = []
    for argument in target._schema.arguments:
        default = argument.default_value if argument.has_default_value() else REQUIRED
        params.append((argument.name, default))
    return bind(node.args, node.kwargs, params)


def bind_call(node: Node, signatures: Mapping[Any, Params], methods: Mapping[str, Params] | None = None,
              overloads: Sequence[Any] = ()) -> dict[str, Any] | None:
    """Bind a call_function / call_method node against the known signatures, or an ATen schema.

    ``signatures`` maps Python callables to their parameters; ``methods`` maps Tensor method names
    (``self`` first); ``overloads`` lists the ATen overloads accepted (bound through their schema).
    """
    if node.op == "call_function":
        if node.target in overloads:
            return bind_schema(node)
        params = signatures.get(node.target) if is_hashable(node.target) else None
        return None if params is None else bind(node.args, node.kwargs, params)
    if node.op == "call_method" and methods is not None and node.target in methods:
        return bind(node.args, node.kwargs, methods[node.target])
    return None


def is_hashable(target: Any) -> bool:
    try:
        hash(target)
    except TypeError:
        return False
    return True


def per_axis(value: Any, nd: int) -> tuple[int, ...]:
    """An int or a sequence of ints as one int per axis (a single entry is repeated)."""
    if isinstance(value, int):
        return (value,) * nd
    value = tuple(int(v) for v in value)
    return value * nd if len(value) == 1 and nd > 1 else value
