"""Markers for pattern functions: `constant`, `named` and `sum_of`.

A pattern is written as a small PyTorch function and traced once with symbolic values. These
markers are ordinary functions that, called on those symbolic values, record one marker node in
the pattern graph; the matcher gives each its meaning. Called outside a pattern they raise, since
there they mean nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch.fx import Proxy


class PatternError(ValueError):
    """A pattern or replacement function that fxrep cannot use, with the reason and the fix."""


def constant(value: Any) -> Any:
    """Match a value known without running the graph, and bind it as a tensor or number.

    ``value`` must be one of the pattern's parameters: ``x * constant(gamma)`` matches ``x * p`` where
    ``p`` is a parameter, a buffer or a number, and ``match["gamma"]`` is its value. A tensor computed
    from a graph input at run time does not match.
    """
    return _record(constant, (value,), "constant(gamma)")


def named(name: str, value: Any) -> Any:
    """Match ``value`` and bind the graph node it matched as ``match[name]``.

    ``conv = named("conv", F.conv2d(x, w))`` lets a rewrite read the matched conv with
    ``api.Conv.from_node(match["conv"])``.
    """
    if not isinstance(name, str) or not name.isidentifier():
        raise PatternError(f"named() takes a name and a value, e.g. named('conv', F.conv2d(x, w)); got {name!r}")
    return _record(named, (name, value), "named('conv', F.conv2d(x, w))")


@dataclass(frozen=True, eq=False)
class SumOf:
    """The marker node's target: a sum of ``min_branches``..``max_branches`` terms matching ``branch``."""

    branch: Callable[..., Any]
    shared: int
    min_branches: int
    max_branches: int | None
    name: str

    @property
    def __name__(self) -> str:  # torch.fx names the marker node after its target
        return "sum_of"

    def __call__(self, *args: Any) -> Any:
        raise PatternError("sum_of() describes a pattern; it cannot be run")


def sum_of(branch: Callable[..., Any], *shared: Any, min_branches: int = 1, max_branches: int | None = None,
           name: str = "branches") -> Any:
    """Match a sum (an add tree in any order and association) of 1..n terms that each match ``branch``.

    ``branch``'s first ``len(shared)`` parameters receive ``shared`` (values of the enclosing pattern,
    matched once for all branches); its other parameters are matched per branch and bound as lists:
    in ``sum_of(lambda x, w: F.conv2d(x, w), x)``, ``match["w"]`` lists every branch's weight and
    ``match["branches"]`` (or ``match[name]``) lists one `Branch` per term, in graph order. Inside a
    larger sum (``x + sum_of(...)``) the other terms are matched first and the rest go to the branches.
    """
    if not callable(branch):
        raise PatternError(f"sum_of() takes a branch function first, got {type(branch).__name__}")
    if min_branches < 1 or (max_branches is not None and max_branches < min_branches):
        raise PatternError(f"sum_of() needs 1 <= min_branches <= max_branches, got {min_branches}, {max_branches}")
    marker = SumOf(branch, len(shared), min_branches, max_branches, name)
    return _record(marker, shared, "sum_of(lambda x, w: F.conv2d(x, w), x)")


def _record(target: Callable[..., Any], args: tuple[Any, ...], example: str) -> Any:
    proxy = next((a for a in args if isinstance(a, Proxy)), None)
    if proxy is None:
        raise PatternError(f"{getattr(target, '__name__', 'sum_of')}() is only meaningful inside a pattern function, "
                           f"applied to the pattern's values, e.g. {example}")
    return proxy.tracer.create_proxy("call_function", target, args, {})
