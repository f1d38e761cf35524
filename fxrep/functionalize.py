"""Make a module-level graph functional: in-place ops become out-of-place ops.

A symbolically traced graph records ``nn.ReLU(inplace=True)``, ``F.relu(x, inplace=True)``,
``x.relu_()`` or ``x.add_(y)`` as ordinary nodes, but they change ``x`` itself: a node that reads
``x`` after them sees the new value although the graph's edges still point at ``x``. Rewrites that
treat values as immutable (and dead-code elimination, which would drop an in-place op whose result
is unused) would then change the model. torch.export functionalises its graphs itself; this does the
same for module-level graphs:

    y = relu_(x); z = f(x)      becomes      y = relu(x); z = f(y)

i.e. every reader of ``x`` after the in-place op reads the op's result, and the op no longer writes.
That is only equivalent when ``x`` is not a view of another tensor (or viewed by one), and not a
graph input, parameter or buffer (whose mutation the caller would see); such graphs raise
`UnsafeMutation`, and capture falls back to torch.export.
"""

from __future__ import annotations

import inspect
import operator
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch.fx import GraphModule, Node

_IN_PLACE_OPERATORS = {operator.iadd: operator.add, operator.isub: operator.sub, operator.imul: operator.mul,
                       operator.itruediv: operator.truediv}
_VIEW_METHODS = frozenset({
    "view", "view_as", "reshape", "reshape_as", "flatten", "transpose", "permute", "t", "unsqueeze", "squeeze",
    "expand", "expand_as", "narrow", "select", "unfold", "diagonal", "as_strided", "detach", "contiguous",
    "split", "chunk", "unbind", "movedim", "swapaxes", "T", "mT",
})
_VIEW_FUNCTIONS = frozenset({
    torch.reshape, torch.flatten, torch.transpose, torch.permute, torch.t, torch.unsqueeze, torch.squeeze,
    torch.narrow, torch.select, torch.diagonal, torch.as_strided, torch.detach, torch.split, torch.chunk,
    torch.unbind, torch.movedim, torch.swapaxes, operator.getitem,
})


class UnsafeMutation(ValueError):
    """The graph mutates a tensor in a way that cannot be rewritten into a functional graph."""


def functionalize_inplace(gm: GraphModule) -> int:
    """Rewrite every in-place op of ``gm`` out of place (module docstring); returns how many."""
    order = {node: index for index, node in enumerate(gm.graph.nodes)}
    fixes: list[Callable[[], None]] = []
    for node in list(gm.graph.nodes):
        found = _in_place(gm, node)
        if found is None:
            continue
        mutated, make_out_of_place = found
        _check_safe(node, mutated)
        for user in list(mutated.users):
            if user is not node and order[user] > order[node]:
                user.replace_input_with(mutated, node)
        fixes.append(make_out_of_place)
    for fix in fixes:
        fix()
    if fixes:
        gm.graph.lint()
        gm.recompile()
    return len(fixes)


def _check_safe(node: Node, mutated: Any) -> None:
    if not isinstance(mutated, Node):
        raise UnsafeMutation(f"{node.name} mutates a constant in place")
    if mutated.op in ("placeholder", "get_attr"):
        kind = "a graph input" if mutated.op == "placeholder" else "a parameter or buffer"
        raise UnsafeMutation(f"{node.name} mutates {mutated.name}, {kind}, in place; the caller would see it")
    if _is_view(mutated):
        raise UnsafeMutation(f"{node.name} mutates {mutated.name} in place, which is a view of another tensor")
    for user in mutated.users:
        if user is not node and _is_view(user):
            raise UnsafeMutation(f"{node.name} mutates {mutated.name} in place, and {user.name} is a view of it")


def _is_view(node: Node) -> bool:
    if node.op == "call_method":
        return str(node.target) in _VIEW_METHODS
    if node.op == "call_function":
        try:
            return node.target in _VIEW_FUNCTIONS
        except TypeError:
            return False
    return False


def _in_place(gm: GraphModule, node: Node) -> tuple[Any, Callable[[], None]] | None:
    """``(mutated argument, function making the node out of place)`` for an in-place node, else None."""
    if not node.args:
        return None
    first = node.args[0]
    if node.op == "call_module":
        module = gm.get_submodule(str(node.target))
        if getattr(module, "inplace", False) is True:
            return first, lambda: setattr(module, "inplace", False)
        return None
    if node.op == "call_method":
        name = str(node.target)
        if name.endswith("_") and not name.startswith("_"):
            if not hasattr(torch.Tensor, name[:-1]):
                raise UnsafeMutation(f"{node.name} calls .{name}() in place, which has no out-of-place form")
            return first, lambda: setattr(node, "target", name[:-1])
        return None
    if node.op != "call_function":
        return None
    target = node.target
    if isinstance(target, torch._ops.OpOverload):
        return _in_place_aten(node, target)
    if target in _IN_PLACE_OPERATORS:
        return first, lambda: setattr(node, "target", _IN_PLACE_OPERATORS[target])
    if target is operator.setitem:
        raise UnsafeMutation(f"{node.name} assigns into a slice of {getattr(first, 'name', first)}")
    name = getattr(target, "__name__", "")
    for namespace in (torch, F):
        if getattr(namespace, name, None) is target and name.endswith("_") and not name.startswith("_"):
            out_of_place = getattr(namespace, name[:-1], None)
            if out_of_place is None:
                raise UnsafeMutation(f"{node.name} calls {name} in place, which has no out-of-place form")
            return first, lambda replacement=out_of_place: setattr(node, "target", replacement)
    return _in_place_keyword(node, target)


def _in_place_keyword(node: Node, target: Any) -> tuple[Any, Callable[[], None]] | None:
    """Functions such as ``F.relu(x, inplace=True)``."""
    try:
        signature = inspect.signature(target)
    except (TypeError, ValueError):
        return None
    if "inplace" not in signature.parameters:
        return None
    try:
        bound = signature.bind(*node.args, **node.kwargs)
    except TypeError:
        return None
    if bound.arguments.get("inplace") is not True:
        return None
    bound.arguments["inplace"] = False

    def out_of_place() -> None:
        node.args, node.kwargs = tuple(bound.args), dict(bound.kwargs)

    return node.args[0], out_of_place


def _in_place_aten(node: Node, target: torch._ops.OpOverload) -> tuple[Any, Callable[[], None]] | None:
    schema = target._schema
    if not schema.is_mutable:
        return None
    first = schema.arguments[0] if schema.arguments else None
    written = [a for a in schema.arguments if a.alias_info is not None and a.alias_info.is_write]
    name = schema.name.split("::")[-1]
    packet = getattr(torch.ops.aten, name[:-1], None) if name.endswith("_") else None
    out_of_place = getattr(packet, target._overloadname, None) if packet is not None else None
    if written != [first] or out_of_place is None:
        raise UnsafeMutation(f"{node.name} ({schema.name}) writes into its arguments in place")
    return node.args[0], lambda: setattr(node, "target", out_of_place)
