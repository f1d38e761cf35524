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

Which nodes are in place and what their out-of-place form is comes from `fxrep.ops.inplace`, the
table the torch.compile backend and the final stage's re-inplacing use too.
"""

from __future__ import annotations

import operator

import torch
from torch.fx import GraphModule, Node

from .ops.inplace import InPlaceCall, in_place_call

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
    calls: list[InPlaceCall] = []
    for node in list(gm.graph.nodes):
        call = in_place_call(node, gm)
        if call is None:
            continue
        if call.out_of_place is None:
            raise UnsafeMutation(_no_out_of_place(call))
        _check_safe(node, call.mutated)
        for user in list(call.mutated.users):
            if user is not node and order[user] > order[node]:
                user.replace_input_with(call.mutated, node)
        calls.append(call)
    for call in calls:
        call.out_of_place.apply(call.node)
    if calls:
        gm.graph.lint()
        gm.recompile()
    return len(calls)


def _no_out_of_place(call: InPlaceCall) -> str:
    name, target = call.node.name, call.node.target
    if target is operator.setitem:
        return f"{name} assigns into a slice of {getattr(call.mutated, 'name', call.mutated)}"
    if isinstance(target, torch._ops.OpOverload):
        return f"{name} ({call.description}) writes into its arguments in place"
    return f"{name} calls {call.description} in place, which has no out-of-place form"


def _check_safe(node: Node, mutated: object) -> None:
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
