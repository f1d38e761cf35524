"""`Match`: the one way fxrep says "yes, this" or "no, because".

Everything that looks at a candidate and may refuse it answers with a `Match`, so the reason travels
with the answer and is recorded where it was found (as onnxscript's rewriter does with its
``MatchResult``):

- ``Match.ok(value)``: a success carrying what was found (a pattern match, an `AffineOp`, the node a
  rewrite emitted, a `ConvMap`, ...); the only truthy kind.
- ``Match.fail(reason)``: a candidate refused, with a reason written for a user reading the report
  ("conv3 feeds 2 users"). ``near_miss=True`` marks a failure worth reporting where most failures are
  not (a pattern whose ops matched but whose condition failed, against a plain structural mismatch).
- ``Match.none()``: not a candidate at all (a ReLU asked whether it is affine): falsy with no reason,
  so there is nothing to report. A pass that returns it refuses nothing.

Its users: `Pass.rewrite_each` (a rewrite function answers None or a `Match` per node),
`fxrep.patterns` (``Pattern.match``, the matcher's search, ``PatternPass`` checks and rewrites),
``fxrep.affine.affine_op`` (is this node affine, and if recognised but not, why not), and the
built-in passes.

The float64 kernel algebra (`fxrep.algebra`) stays exception-based: a formula deep in a composition
raises `NotExact` (whose ``reason`` is its message) rather than threading a result through every
formula. `attempt` is where such an error becomes a `Match`: ``attempt(conv.conv_map)`` is
``Match.ok(conv_map)`` or ``Match.fail(reason)``, and `Match.from_error` converts a caught one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from .algebra.errors import NotExact

T = TypeVar("T")


@dataclass(frozen=True)
class Match(Generic[T]):
    """``Match.ok(value)``, ``Match.fail(reason)`` or ``Match.none()`` (see the module docstring); truthy on success."""

    matched: bool
    value: T | None = None
    reason: str = ""
    """Why not ("" on success, and for `none`)."""
    near_miss: bool = False
    """For a failure: worth reporting where plain failures are not (the matcher's search sets it)."""

    @classmethod
    def ok(cls, value: T | None = None) -> Match[T]:
        return cls(True, value)

    @classmethod
    def fail(cls, reason: str, near_miss: bool = False) -> Match[T]:
        return cls(False, None, reason, near_miss)

    @classmethod
    def none(cls) -> Match[T]:
        """Not a candidate at all: falsy, with no reason to report."""
        return cls(False)

    @classmethod
    def from_error(cls, error: NotExact, near_miss: bool = False) -> Match[T]:
        """The failure a caught `NotExact` stands for (its reason)."""
        return cls.fail(error.reason, near_miss)

    def __bool__(self) -> bool:
        return self.matched


def attempt(function: Callable[..., T], *args: Any, **kwargs: Any) -> Match[T]:
    """``Match.ok(function(*args, **kwargs))``, or ``Match.fail(reason)`` when it raises `NotExact`."""
    try:
        return Match.ok(function(*args, **kwargs))
    except NotExact as error:
        return Match.from_error(error)


__all__ = ["Match", "attempt"]
