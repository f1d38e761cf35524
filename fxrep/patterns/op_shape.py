"""`OpShape`: what one node computes, in the same terms for a pattern node and for a graph node.

A pattern written with ``F.conv2d`` must match ``nn.Conv2d`` modules, ``F.conv2d`` calls and
``aten.conv2d`` alike, so both sides are described the same way: a ``kind`` (``"conv2d"``,
``"clamp"``, ``"cat"``, ...), the ``operands`` that flow in (matched recursively) and named
``params`` (weights and settings, matched against literals or bound to wildcards).

Kinds are canonical: ``relu``, ``relu6``, ``hardtanh``, ``clamp`` and ``clip`` are all ``clamp`` with
bounds ``min`` and ``max``, since they compute the same function. Ops no op view knows keep their
exact call target (``call_function`` / ``call_method``) and match that target, or its ATen form:
a pattern traced with ``torch.erf`` matches ``aten.erf.default`` in a torch.export graph (a
``torch.*`` function and the ATen overload packet of the same name, with the same operands and
literals; an argument convention that differs between the two simply does not match).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch


class _Runtime:
    """Marks a param (a weight, a bias) that is computed from a graph input at run time."""

    def __repr__(self) -> str:
        return "<computed at run time>"


RUNTIME = _Runtime()

EXACT_KINDS = ("call_function", "call_method")


@dataclass(frozen=True, eq=False)
class OpShape:
    """One node as ``kind(*operands, **params)``; ``label`` names it in messages (``"relu6"``)."""

    kind: str
    label: str
    operands: tuple[Any, ...]
    params: Mapping[str, Any] = field(default_factory=dict)
    target: Any = None
    """The call target, for kinds matched by exact target (``call_function`` / ``call_method``)."""
    parts: tuple[Any, ...] = ()
    """Other graph nodes that belong to this op (ATen batch norm's tuple-returning call under its getitem)."""
    problem: str | None = None
    """Why this op cannot take part in a rewrite although its kind matches (e.g. its module has hooks)."""

    def same_kind(self, other: OpShape) -> bool:
        if self.kind != other.kind:
            return False
        return self.kind not in EXACT_KINDS or _same_target(self.target, other.target)


def _same_target(a: Any, b: Any) -> bool:
    try:
        if bool(a == b):
            return True
    except Exception:  # some callables compare badly; identity is the fallback
        if a is b:
            return True
    aten_a, aten_b = _aten_name(a), _aten_name(b)
    if (aten_a is None) == (aten_b is None):
        return False  # two torch functions, or two ATen overloads: only the exact target matches
    name, function = (aten_a, b) if aten_a is not None else (aten_b, a)
    return _torch_function_name(function) == name


def _aten_name(target: Any) -> str | None:
    """``"erf"`` for ``aten.erf.default`` (any overload of an ATen op), else None."""
    if isinstance(target, torch._ops.OpOverload) and target.namespace == "aten":
        return target.overloadpacket.__name__
    return None


def _torch_function_name(target: Any) -> str | None:
    """``"erf"`` for ``torch.erf`` / ``torch.special.erf``-style public functions of torch, else None."""
    name = getattr(target, "__name__", None)
    module = getattr(target, "__module__", None) or ""
    if not isinstance(name, str) or not (module == "torch" or module.startswith("torch.")):
        return None
    return name if getattr(torch, name, None) is target else None


def literal_matches(name: str, pattern_value: Any, target_value: Any, target_params: Mapping[str, Any]) -> bool:
    """Whether a literal the pattern wrote equals the graph's value for ``name``.

    Numbers compare with a relative tolerance of 1e-6 (``1 / 6`` equals ``0.1666667``); sequences
    element by element; a conv's ``padding="same"`` / ``"valid"`` against its actual padding.
    """
    if name == "padding" and isinstance(pattern_value, str):
        return _padding_is(pattern_value, target_value, target_params)
    return same_value(pattern_value, target_value)


def same_value(a: Any, b: Any) -> bool:
    """Equality for literals and constants: numbers approximately, tensors by value, sequences elementwise."""
    if a is b:
        return True
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return _same_tensor(a, b)
    if isinstance(a, bool) or isinstance(b, bool):
        return a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-12)
    if isinstance(a, Sequence) and isinstance(b, Sequence) and not isinstance(a, str) and not isinstance(b, str):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def _same_tensor(a: Any, b: Any) -> bool:
    if not isinstance(a, torch.Tensor):
        a, b = b, a
    if isinstance(b, int | float) and not isinstance(b, bool):
        return a.numel() == 1 and math.isclose(float(a), float(b), rel_tol=1e-6, abs_tol=1e-12)
    if not isinstance(b, torch.Tensor) or a.shape != b.shape:
        return False
    return bool(torch.equal(a, b.to(a.dtype))) if a.dtype == b.dtype else bool(torch.allclose(a, b.to(a.dtype)))


def _padding_is(mode: str, padding: Any, params: Mapping[str, Any]) -> bool:
    if not isinstance(padding, tuple):
        return False
    if mode == "valid":
        return all(lo == 0 and hi == 0 for lo, hi in padding)
    kernel, dilation = params.get("kernel_size"), params.get("dilation")
    if mode != "same" or kernel is None or dilation is None:
        return False
    for (lo, hi), k, d in zip(padding, kernel, dilation, strict=True):
        total = d * (k - 1)
        if (lo, hi) != (total // 2, total - total // 2):
            return False
    return True
