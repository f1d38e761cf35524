"""Trace a Python function into a bare ``torch.fx.Graph``, one placeholder per parameter.

Patterns and module-level replacements are traced this way: every torch function and operator
applied to the symbolic values is recorded as it was written (``F.conv2d``, ``operator.add``,
``Tensor.clamp``), with nothing inlined. Values that are not parameters (numbers, strings) become
literal arguments.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

from torch.fx import Graph, Node, Proxy
from torch.fx.proxy import GraphAppendingTracer

from .markers import PatternError


def parameter_names(function: Callable[..., Any]) -> tuple[str, ...]:
    """The function's parameter names; refuses ``*args`` / ``**kwargs``, which cannot be bound by name."""
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError) as error:
        raise PatternError(f"cannot read the parameters of {_label(function)}: {error}") from error
    names = []
    for parameter in signature.parameters.values():
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            raise PatternError(f"{_label(function)} takes *{parameter.name}; pattern and replacement functions "
                               "name each value they match, e.g. def pattern(x, weight): ...")
        names.append(parameter.name)
    return tuple(names)


def trace_function(function: Callable[..., Any], symbolic: Mapping[str, Any],
                   concrete: Mapping[str, Any] | None = None) -> Graph:
    """Call ``function`` with a placeholder proxy for each entry of ``symbolic``, record what it does.

    A ``symbolic`` entry is a name (one placeholder) or a list of names (a list of placeholders).
    ``concrete`` values are passed as they are. The graph ends in an output node.
    """
    graph = Graph()
    tracer = GraphAppendingTracer(graph)
    arguments: dict[str, Any] = dict(concrete or {})
    for name, spec in symbolic.items():
        if isinstance(spec, list):
            arguments[name] = [Proxy(graph.placeholder(item), tracer) for item in spec]
        else:
            arguments[name] = Proxy(graph.placeholder(spec), tracer)
    try:
        result = function(**arguments)
    except PatternError:
        raise
    except Exception as error:
        raise PatternError(
            f"tracing {_label(function)} failed with {type(error).__name__}: {error}. Pattern and replacement "
            "functions may only apply torch functions and operators to their parameters (no control flow on "
            "values, no tensors created inside: pass them as parameters)"
        ) from error
    if not isinstance(result, Proxy | Node):
        raise PatternError(f"{_label(function)} must return one tensor computed from its parameters, "
                           f"got {type(result).__name__}")
    graph.output(tracer.create_arg(result))
    return graph


def _label(function: Callable[..., Any]) -> str:
    return f"{getattr(function, '__qualname__', repr(function))}()"
