"""Describe a node of a traced pattern function as an `OpShape`.

Pattern nodes are calls as the user wrote them (``F.conv2d(x, w, padding=1)``, ``x.clamp(min=0)``),
with wildcards (placeholders) where a graph has weights. Settings the pattern leaves out match any
value; settings it writes must match (after normalisation: ``padding=1`` is ``((1, 1), (1, 1))`` for
a 2-d conv). Functional convs always pad with zeros, and ``F.batch_norm`` means inference mode.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch.nn.functional as F
from torch.fx import Node

from ..algebra import normalize_padding
from ..ops import Activation, Arithmetic, is_hashable, per_axis
from ..ops.activation import CLAMP_FUNCTIONS, CLAMP_METHODS, clamp_bounds
from .markers import PatternError
from .node_shapes import activation_settings, avg_pool_shape, cat_shape, pad_shape
from .op_shape import OpShape

_CONV = ("input", "weight", "bias", "stride", "padding", "dilation", "groups")
_CONV_T = ("input", "weight", "bias", "stride", "padding", "output_padding", "groups", "dilation")
_CONVS = {F.conv1d: ("conv1d", _CONV, 1), F.conv2d: ("conv2d", _CONV, 2), F.conv3d: ("conv3d", _CONV, 3),
          F.conv_transpose1d: ("conv_transpose1d", _CONV_T, 1), F.conv_transpose2d: ("conv_transpose2d", _CONV_T, 2),
          F.conv_transpose3d: ("conv_transpose3d", _CONV_T, 3)}
_LINEAR = ("input", "weight", "bias")
_BATCHNORM = ("input", "running_mean", "running_var", "weight", "bias", "training", "momentum", "eps")
_DEFAULT_EPS = 1e-5


def describe_pattern_node(node: Node, pattern_name: str) -> OpShape:
    """The `OpShape` of one call in a pattern; raises `PatternError` for calls a pattern cannot use."""
    target = node.target
    hashable = is_hashable(target)
    if node.op == "call_function" and hashable and target in _CONVS:
        return _conv(node, *_CONVS[target], pattern_name)
    if node.op == "call_function" and target is F.linear:
        bound = _explicit(node, _LINEAR, pattern_name)
        return OpShape("linear", "linear", (bound.pop("input"),), bound)
    if node.op == "call_function" and target is F.batch_norm:
        return _batchnorm(node, pattern_name)
    arithmetic = Arithmetic.from_node(node)
    if arithmetic is not None:
        return OpShape(arithmetic.op, arithmetic.op, arithmetic.operands, {"alpha": arithmetic.alpha})
    clamp = _clamp(node, pattern_name)
    if clamp is not None:
        return clamp
    activation = Activation.from_node(node)
    if activation is not None:
        return OpShape(activation.kind, activation.kind, (activation.input,), activation_settings(node, None))
    for reader in (cat_shape, pad_shape, avg_pool_shape):
        shape = _read(reader, node, pattern_name)
        if shape is not None:
            return shape
    if node.op in ("call_function", "call_method"):
        label = str(getattr(target, "__name__", target))
        return OpShape(node.op, label, tuple(node.args), dict(node.kwargs), target=target)
    raise PatternError(f"pattern {pattern_name}: cannot use a {node.op} node ({node.format_node()})")


def _explicit(node: Node, names: tuple[str, ...], pattern_name: str) -> dict[str, Any]:
    """The arguments the pattern wrote, by parameter name (left-out ones are absent, not defaulted)."""
    if len(node.args) > len(names):
        raise PatternError(f"pattern {pattern_name}: {node.format_node()} has more arguments than {names}")
    bound = dict(zip(names, node.args, strict=False))
    for key, value in node.kwargs.items():
        if key not in names or key in bound:
            raise PatternError(f"pattern {pattern_name}: unexpected argument {key}= in {node.format_node()}")
        bound[key] = value
    return bound


def _literal(value: Any, normalize: Callable[[Any], Any]) -> Any:
    return value if isinstance(value, Node) else normalize(value)


def _conv(node: Node, kind: str, names: tuple[str, ...], nd: int, pattern_name: str) -> OpShape:
    bound = _explicit(node, names, pattern_name)
    source = bound.pop("input")
    for name in ("stride", "dilation", "output_padding"):
        if name in bound:
            bound[name] = _literal(bound[name], lambda v: per_axis(v, nd))
    if "padding" in bound and not isinstance(bound["padding"], str):
        bound["padding"] = _literal(bound["padding"], lambda v: normalize_padding(v, nd))
    bound["padding_mode"] = "zeros"
    return OpShape(kind, kind, (source,), bound)


def _batchnorm(node: Node, pattern_name: str) -> OpShape:
    bound = _explicit(node, _BATCHNORM, pattern_name)
    source = bound.pop("input")
    bound.pop("momentum", None)
    bound["training"] = bool(bound.get("training", False))
    if not isinstance(bound.get("eps"), Node) and bound.get("eps", _DEFAULT_EPS) == _DEFAULT_EPS:
        bound.pop("eps", None)
    return OpShape("batchnorm", "batchnorm", (source,), bound)


def _clamp(node: Node, pattern_name: str) -> OpShape | None:
    if node.op == "call_function" and is_hashable(node.target) and node.target in CLAMP_FUNCTIONS:
        spec = CLAMP_FUNCTIONS[node.target]
        label = node.target.__name__
    elif node.op == "call_method" and node.target in CLAMP_METHODS:
        spec = CLAMP_METHODS[str(node.target)]
        label = str(node.target)
    else:
        return None
    source = node.args[0] if node.args else node.kwargs.get("input", node.kwargs.get("self"))
    if isinstance(spec[0], tuple):
        names = tuple(name for name, _ in spec)  # type: ignore[misc]
        bound = _explicit(node, names, pattern_name)
        defaults = {name: default for name, default in spec}  # type: ignore[misc]
        low, high = clamp_bounds({**defaults, **bound})
    else:
        low, high = spec  # type: ignore[misc]
    return OpShape("clamp", label, (source,), {"min": low, "max": high})


def _read(reader: Callable[[Node], OpShape | None], node: Node, pattern_name: str) -> OpShape | None:
    try:
        return reader(node)
    except (TypeError, ValueError) as error:
        raise PatternError(f"pattern {pattern_name}: the settings of {node.format_node()} must be literal "
                           f"numbers, not wildcards ({error})") from error

