"""Inline a replacement function at a match, in the graph's own form.

``replacement=lambda x: F.hardswish(x)`` is called with the match's wildcards (by parameter name)
and what it computes is copied into the graph before the matched root:

- in a module-level graph (``torch.fx.symbolic_trace``) as written: ``F.hardswish`` stays a
  functional call;
- in an ATen graph (``torch.export``) as ATen ops (``aten.hardswish``), traced with ``make_fx`` on
  the fake tensors recorded for the bound nodes, so exported graphs stay ATen-only.

Wildcards bound to graph nodes are read from those nodes; tensors (constant wildcards, weights) are
registered as frozen parameters next to the code they replace; other values (numbers, tuples) are
passed to the function as they are.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch._guards import detect_fake_mode
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.fx import Graph, GraphModule, Node
from torch.fx.experimental.proxy_tensor import make_fx

from ..algebra import NotExact
from ..rewriter import Rewriter
from .markers import PatternError
from .match_result import PatternMatch
from .tracing import parameter_names, trace_function


def inline_function(function: Callable[..., Any], match: PatternMatch, rewriter: Rewriter) -> Node:
    """Emit ``function(**wildcards)`` before ``match.root``; return the node holding its value."""
    names = parameter_names(function)
    missing = [name for name in names if name not in match]
    if missing:
        raise PatternError(f"replacement {getattr(function, '__name__', function)} takes {missing}, which the "
                           f"pattern does not bind (it binds {sorted(match.bindings)})")
    values = {name: match[name] for name in names}
    path = rewriter.module_path(match.nodes)
    symbolic = {name: _symbolic_spec(name, value) for name, value in values.items()}
    symbolic = {name: spec for name, spec in symbolic.items() if spec is not None}
    concrete = {name: value for name, value in values.items() if name not in symbolic}
    if rewriter.level == "module":
        graph = trace_function(function, symbolic, concrete)
        constants: dict[str, torch.Tensor] = {}
    else:
        graph, constants = _trace_aten(function, values, symbolic, concrete)
    inputs = _flat_inputs(values, symbolic)
    return _copy_into(graph, constants, inputs, match.root, rewriter, path)


def _symbolic_spec(name: str, value: Any) -> str | list[str] | None:
    """How a wildcard enters the traced function: one placeholder, a list of them, or (None) as it is."""
    if isinstance(value, Node | torch.Tensor):
        return name
    if isinstance(value, list | tuple) and value and all(isinstance(v, Node | torch.Tensor) for v in value):
        return [f"{name}_{index}" for index in range(len(value))]
    return None


def _flat_inputs(values: dict[str, Any], symbolic: dict[str, Any]) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for name, spec in symbolic.items():
        if isinstance(spec, list):
            flat.update(zip(spec, values[name], strict=True))
        else:
            flat[spec] = values[name]
    return flat


def _trace_aten(function: Callable[..., Any], values: dict[str, Any], symbolic: dict[str, Any],
                concrete: dict[str, Any]) -> tuple[Graph, dict[str, torch.Tensor]]:
    """Trace ``function`` to ATen ops with fake tensors shaped like the bound values."""
    recorded = [v.meta.get("val") for v in _flat_inputs(values, symbolic).values() if isinstance(v, Node)]
    mode = detect_fake_mode([v for v in recorded if isinstance(v, torch.Tensor)]) or FakeTensorMode(
        allow_non_fake_inputs=True)
    order = list(symbolic)

    def fake(value: Any) -> Any:
        if isinstance(value, Node):
            example = value.meta.get("val")
            if not isinstance(example, torch.Tensor):
                raise NotExact(f"the shape of {value.name} is unknown, so the replacement cannot be traced")
            return example
        return mode.from_tensor(value)

    arguments = []
    for name in order:
        value = values[name]
        arguments.append([fake(v) for v in value] if isinstance(symbolic[name], list) else fake(value))

    def call(*args: Any) -> Any:
        return function(**dict(zip(order, args, strict=True)), **concrete)

    traced: GraphModule = make_fx(call, pre_dispatch=True, tracing_mode="fake")(*arguments)
    placeholders = [n for n in traced.graph.nodes if n.op == "placeholder"]
    flat_names = [item for name in order for item in (symbolic[name] if isinstance(symbolic[name], list)
                                                      else [symbolic[name]])]
    for node, name in zip(placeholders, flat_names, strict=True):
        node.target = name
    constants = {str(n.target): getattr(traced, str(n.target)) for n in traced.graph.nodes if n.op == "get_attr"}
    return traced.graph, constants


def _copy_into(graph: Graph, constants: dict[str, torch.Tensor], inputs: dict[str, Any], like: Node,
               rewriter: Rewriter, path: str) -> Node:
    env: dict[Node, Any] = {}
    result: Any = None
    for node in graph.nodes:
        if node.op == "placeholder":
            value = inputs[str(node.target)]
            if isinstance(value, torch.Tensor):
                value = rewriter.constant(value, rewriter.fresh_name(path, f"reparam_{node.target}"), before=like)
            env[node] = value
        elif node.op == "get_attr":
            tensor = constants[str(node.target)]
            env[node] = rewriter.constant(tensor, rewriter.fresh_name(path, "reparam_constant"), before=like)
        elif node.op == "output":
            result = torch.fx.node.map_arg(node.args[0], lambda n: env[n])
        else:
            args, kwargs = _map_arguments((node.args, node.kwargs), env, rewriter, like, path)
            env[node] = rewriter.call(node.op, node.target, args, kwargs, like=like)
    if not isinstance(result, Node):
        raise PatternError("a replacement function must return one tensor")
    return result


def _map_arguments(arguments: Any, env: dict[Node, Any], rewriter: Rewriter, like: Node, path: str) -> Any:
    """Traced arguments with nodes read from ``env`` and tensor literals registered as constants."""

    def convert(value: Any) -> Any:
        if isinstance(value, Node):
            return env[value]
        if isinstance(value, torch.Tensor):
            return rewriter.constant(value, rewriter.fresh_name(path, "reparam_constant"), before=like)
        return value

    return torch.fx.node.map_aggregate(arguments, convert)
