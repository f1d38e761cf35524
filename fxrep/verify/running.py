"""Running an fx graph node by node, with a hook on every value, in its own dtype or in float64.

The local checks and the divergence analysis need what a compiled forward hides: the value of a
node as soon as it is computed, and the chance to replace it before its readers use it. `run_graph`
is a `torch.fx.Interpreter` whose ``hook(node, value, inputs)`` returns the value the readers get; values
are freed after their last use as usual, so a run holds no more than the forward itself plus what
the hook keeps.

In float64 (`float64_copy` gives the module with float64 parameters and buffers) every floating
tensor an op reads or returns is cast to float64, so constants a graph creates in float32 (``full``,
``to(dtype)``) do not pull the computation back down; ops without readers (shape asserts, the
export guard function) are skipped, since an assert on the dtype would fail for the cast tensor.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from torch import fx
from torch.fx import GraphModule, Node
from torch.fx.node import map_arg

Hook = Callable[[Node, Any, list[Any]], Any]
"""``hook(node, value, inputs) -> value``: sees every node's value (and the values of the nodes it read,
in `node_inputs` order) and returns what the node's readers get."""


class NodeRaised(Exception):
    """A node of the graph raised while it ran (``node`` names it, ``cause`` is what it raised)."""

    def __init__(self, node: Node, cause: BaseException) -> None:
        super().__init__(f"node {node.name} raised {type(cause).__name__}: {cause}")
        self.node, self.cause = node, cause


class _Interpreter(fx.Interpreter):
    def __init__(self, gm: GraphModule, hook: Hook | None, float64: bool) -> None:
        super().__init__(gm)
        self.extra_traceback = False  # NodeRaised names the node; keep the cause's own message
        self.hook, self.float64 = hook, float64

    def run_node(self, node: Node) -> Any:
        if self.float64 and not node.users and node.op not in ("output", "placeholder"):
            return None
        try:
            if self.float64:
                args, kwargs = self.fetch_args_kwargs_from_env(node)
                value = to_float64(getattr(self, node.op)(node.target, to_float64(args), to_float64(kwargs)))
            else:
                value = super().run_node(node)
        except NodeRaised:
            raise
        except Exception as error:
            raise NodeRaised(node, error) from error
        if self.hook is None:
            return value
        return self.hook(node, value, [self.env[source] for source in node_inputs(node)])


def run_graph(gm: GraphModule, inputs: Sequence[Any], hook: Hook | None = None, *, float64: bool = False) -> Any:
    """Run ``gm`` on ``inputs`` (as the module would be called) through ``hook``; returns the outputs.

    Raises `NodeRaised` naming the node when an op raises. With ``float64`` pass a `float64_copy`.
    """
    with torch.no_grad():
        return _Interpreter(gm, hook, float64).run(*(to_float64(tuple(inputs)) if float64 else inputs))


def run_node64(gm: GraphModule, node: Node, env: dict[str, Any]) -> Any:
    """One node of a `float64_copy` evaluated alone in float64, its inputs taken from ``env`` (by node name)."""
    with torch.no_grad():
        return _run_node64(gm, node, env)


def _run_node64(gm: GraphModule, node: Node, env: dict[str, Any]) -> Any:
    args = to_float64(map_arg(node.args, lambda n: env[n.name]))
    kwargs = to_float64(map_arg(node.kwargs, lambda n: env[n.name]))
    try:
        if node.op == "get_attr":
            value: Any = gm
            for part in str(node.target).split("."):
                value = getattr(value, part)
            return to_float64(value)
        if node.op == "call_function":
            return to_float64(node.target(*args, **kwargs))
        if node.op == "call_method":
            self_value, *rest = args
            return to_float64(getattr(self_value, node.target)(*rest, **kwargs))
        if node.op == "call_module":
            return to_float64(gm.get_submodule(str(node.target))(*args, **kwargs))
    except Exception as error:
        raise NodeRaised(node, error) from error
    raise NodeRaised(node, ValueError(f"a {node.op} node cannot be evaluated alone"))


def float64_copy(gm: GraphModule) -> GraphModule:
    """A copy of ``gm`` with every floating parameter and buffer in float64 (for `run_graph(float64=True)`)."""
    return copy.deepcopy(gm).to(torch.float64)


def to_float64(value: Any) -> Any:
    """``value`` with every floating tensor in it (tuples, lists, dicts too) cast to float64."""
    if isinstance(value, torch.Tensor):
        return value.double() if value.is_floating_point() and value.dtype != torch.float64 else value
    return map_leaves(value, to_float64) if _is_container(value) else value


def map_leaves(value: Any, function: Callable[[Any], Any]) -> Any:
    """Apply ``function`` to every leaf of nested tuples (named or not), lists and dicts."""
    if isinstance(value, dict):
        return {key: function(item) if not _is_container(item) else map_leaves(item, function)
                for key, item in value.items()}
    if isinstance(value, list | tuple):
        items = [function(item) if not _is_container(item) else map_leaves(item, function) for item in value]
        if isinstance(value, list):
            return items
        if hasattr(type(value), "_fields"):  # a namedtuple
            return type(value)(*items)
        return type(value)(items) if type(value) is not tuple else tuple(items)
    return function(value)


def leaves(value: Any) -> Iterator[Any]:
    """The leaves of nested tuples, lists and dicts, in order."""
    if isinstance(value, dict):
        for item in value.values():
            yield from leaves(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from leaves(item)
    else:
        yield value


def _is_container(value: Any) -> bool:
    return isinstance(value, dict | list | tuple)


def node_inputs(node: Node) -> list[Node]:
    """The nodes ``node`` reads, in argument order, each once."""
    return list(dict.fromkeys(node.all_input_nodes))
