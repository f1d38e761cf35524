"""In-place and out-of-place forms of the same op: the one table fxrep converts between them with.

Three parts of fxrep ask it the same question in different directions:

- capture (`fxrep.functionalize`) turns the in-place ops of module-level graphs out of place;
- the ``torch.compile`` backend (`fxrep.lower.dynamo_backend`) must not fold a tensor that an op of
  Dynamo's graph writes (`written_arguments`);
- the final stage (`fxrep.lean`) writes an out-of-place element-wise op in place where alias
  analysis allows (`in_place_overload`).

The pairs, by form:

- Python operators: ``operator.iadd`` <-> ``operator.add`` and the other augmented assignments
  (`OPERATORS`); ``operator.setitem`` writes into a slice and has no out-of-place form.
- ATen overloads: ``aten.relu_.default`` <-> ``aten.relu.default`` -- PyTorch's naming rule (the
  in-place op is the out-of-place name plus ``_``, with the same overload name), accepted only when
  the in-place schema writes exactly its first argument and nothing else.
- ``torch`` / ``torch.nn.functional`` functions and Tensor methods by the same naming rule
  (``torch.relu_`` <-> ``torch.relu``, ``x.add_(y)`` <-> ``x.add(y)``), and functions called with
  ``inplace=True`` (``F.relu(x, inplace=True)``).
- Modules with an ``inplace`` flag set (``nn.ReLU(inplace=True)``).
"""

from __future__ import annotations

import inspect
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.fx import GraphModule, Node

from ._binding import bind_call, is_hashable
from .batchnorm import _SIGNATURES as _BATCH_NORM_SIGNATURES

OpOverload = torch._ops.OpOverload  # the type of every torch.ops.aten.<op>.<overload>; torch has no public alias

#: Augmented-assignment operators (what ``x += y`` records in a traced graph) and their out-of-place
#: forms; ``setitem`` (``x[i] = y``) writes into a slice and has none.
OPERATORS: Mapping[Callable[..., Any], Callable[..., Any] | None] = {
    operator.iadd: operator.add, operator.isub: operator.sub, operator.imul: operator.mul,
    operator.itruediv: operator.truediv, operator.ifloordiv: operator.floordiv, operator.imod: operator.mod,
    operator.ipow: operator.pow, operator.iand: operator.and_, operator.ior: operator.or_,
    operator.ixor: operator.xor, operator.ilshift: operator.lshift, operator.irshift: operator.rshift,
    operator.imatmul: operator.matmul, operator.setitem: None,
}

_NAMESPACES = (torch, F)


@dataclass(frozen=True)
class OutOfPlace:
    """How to make one in-place node out of place: a new target, cleared ``inplace`` flag or keyword."""

    target: Any = None
    module: nn.Module | None = None
    args: tuple[Any, ...] | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)

    def apply(self, node: Node) -> None:
        """Rewrite ``node`` (and, for a module, the module's flag) into its out-of-place form."""
        if self.module is not None:
            self.module.inplace = False
        elif self.args is not None:
            node.args, node.kwargs = self.args, dict(self.kwargs)
        else:
            node.target = self.target


@dataclass(frozen=True)
class InPlaceCall:
    """A node that writes its argument ``mutated`` in place; ``out_of_place`` is None when no such form exists."""

    node: Node
    mutated: Any
    out_of_place: OutOfPlace | None
    description: str


def in_place_overload(op: OpOverload) -> OpOverload | None:
    """The in-place twin of an out-of-place ATen overload (``aten.relu.default`` -> ``aten.relu_.default``).

    None when there is none, or when it writes anything but its first argument.
    """
    name = op._schema.name.split("::")[-1]
    if name.endswith("_") or op._schema.is_mutable:
        return None
    packet = getattr(torch.ops.aten, name + "_", None) if op.namespace == "aten" else None
    twin = getattr(packet, op._overloadname, None) if packet is not None else None
    if twin is None or not _writes_only_first_argument(twin):
        return None
    return twin


def out_of_place_overload(op: OpOverload) -> OpOverload | None:
    """The out-of-place twin of an in-place ATen overload (``aten.add_.Tensor`` -> ``aten.add.Tensor``), or None."""
    name = op._schema.name.split("::")[-1]
    if not name.endswith("_") or not _writes_only_first_argument(op):
        return None
    packet = getattr(torch.ops.aten, name[:-1], None) if op.namespace == "aten" else None
    return getattr(packet, op._overloadname, None) if packet is not None else None


def in_place_call(node: Node, gm: GraphModule | None = None) -> InPlaceCall | None:
    """How ``node`` writes its first argument in place (see the module docstring), or None if it does not.

    ``gm`` resolves ``call_module`` targets; without it module calls are not inspected.
    """
    if not node.args or node.op not in ("call_module", "call_method", "call_function"):
        return None
    first = node.args[0]
    if node.op == "call_module":
        module = gm.get_submodule(str(node.target)) if gm is not None else None
        if module is not None and getattr(module, "inplace", False) is True:
            return InPlaceCall(node, first, OutOfPlace(module=module), f"{type(module).__name__}(inplace=True)")
        return None
    if node.op == "call_method":
        name = str(node.target)
        if not _is_in_place_name(name):
            return None
        fix = OutOfPlace(target=name[:-1]) if hasattr(torch.Tensor, name[:-1]) else None
        return InPlaceCall(node, first, fix, f".{name}()")
    target = node.target
    if isinstance(target, OpOverload):
        return _in_place_aten(node, target)
    if is_hashable(target) and target in OPERATORS:
        replacement = OPERATORS[target]
        fix = OutOfPlace(target=replacement) if replacement is not None else None
        return InPlaceCall(node, first, fix, target.__name__)
    name = getattr(target, "__name__", "")
    for namespace in _NAMESPACES:
        if _is_in_place_name(name) and getattr(namespace, name, None) is target:
            out_of_place = getattr(namespace, name[:-1], None)
            fix = OutOfPlace(target=out_of_place) if out_of_place is not None else None
            return InPlaceCall(node, first, fix, name)
    return _in_place_keyword(node, target)


def written_arguments(node: Node, gm: GraphModule | None = None) -> list[Node]:
    """Every graph value ``node`` may write, conservatively (for deciding what must not become a constant).

    `in_place_call`'s argument, plus: the first argument of any callable named like an in-place op
    (``foo_``, not ``_foo``), an ``out=`` tensor, and the running statistics of a training-mode
    ``F.batch_norm``.
    """
    written: list[Any] = []
    call = in_place_call(node, gm)
    if node.op == "call_function" and isinstance(node.target, OpOverload):
        written.extend(_schema_written(node, node.target))
    elif call is not None:
        written.append(call.mutated)
    elif node.op in ("call_function", "call_method") and node.args:
        name = node.target if node.op == "call_method" else getattr(node.target, "__name__", "")
        if isinstance(name, str) and _is_in_place_name(name):
            written.append(node.args[0])
    out = node.kwargs.get("out")
    if out is not None:
        written.append(out)
    written.extend(_updated_running_statistics(node))
    return [value for value in written if isinstance(value, Node)]


def _in_place_aten(node: Node, op: OpOverload) -> InPlaceCall | None:
    if not op._schema.is_mutable:
        return None
    out_of_place = out_of_place_overload(op)
    fix = OutOfPlace(target=out_of_place) if out_of_place is not None else None
    return InPlaceCall(node, node.args[0], fix, op._schema.name)


def _in_place_keyword(node: Node, target: Any) -> InPlaceCall | None:
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
    fix = OutOfPlace(args=tuple(bound.args), kwargs=dict(bound.kwargs))
    return InPlaceCall(node, node.args[0], fix, f"{getattr(target, '__name__', target)}(inplace=True)")


def _schema_written(node: Node, op: OpOverload) -> list[Any]:
    """The arguments of an ATen call that its schema marks as written."""
    values = []
    for index, argument in enumerate(op._schema.arguments):
        if argument.alias_info is None or not argument.alias_info.is_write:
            continue
        value = node.args[index] if index < len(node.args) else node.kwargs.get(argument.name)
        values.extend(value if isinstance(value, list | tuple) else [value])
    return values


def _writes_only_first_argument(op: OpOverload) -> bool:
    arguments = op._schema.arguments
    written = [a for a in arguments if a.alias_info is not None and a.alias_info.is_write]
    return bool(arguments) and written == [arguments[0]]


def _is_in_place_name(name: str) -> bool:
    return name.endswith("_") and not name.startswith("_")


def _updated_running_statistics(node: Node) -> list[Any]:
    """The running mean and variance a training-mode ``F.batch_norm`` updates, bound by name with the
    signature of the `fxrep.ops.BatchNorm` view (never ``node.args[1:3]``)."""
    if node.op != "call_function" or node.target is not F.batch_norm:
        return []
    bound = bind_call(node, _BATCH_NORM_SIGNATURES)
    if bound is None or not bound["training"]:
        return []
    return [bound["running_mean"], bound["running_var"]]
