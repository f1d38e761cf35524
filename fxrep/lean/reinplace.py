"""Re-inplacing: which out-of-place element-wise ops of a functional ATen graph may write their input.

Capture functionalises the graph (``relu_`` becomes ``relu``) so the passes can treat values as
immutable; at run time every such op then allocates a fresh output although its input is never read
again. The lean forward writes them in place again (``x.relu_()``, ``x.add_(y)``) when alias
analysis proves that nothing can observe the overwritten input:

- the input is the output of an op known to allocate a fresh tensor (`FRESH`), or a view of one
  (views and any op not in `FRESH` are assumed to alias their tensor inputs: ``dropout`` in eval
  returns its input itself, ``reshape`` and ``contiguous`` may);
- nothing in its alias class is a model input, a parameter, a buffer or a constant;
- no member of the alias class (the tensor, its views, what aliases them) is read after the op,
  returned, or read by the op a second time (``add(x, x)``);
- the op's output has the input's shape, dtype, device and strides, so writing in place gives the
  same tensor (a broadcast ``add`` of a smaller input, a dtype promotion or a different layout
  keeps the op out of place).

For ``add`` and ``mul`` (commutative and exact in either order, ``alpha`` 1) the second operand is
written when the first cannot be. The decision is made when the module's code is generated, on the
graph as it is then, so a later edit of the graph followed by ``recompile()`` is analysed again.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch.fx import Graph, Node
from torch.fx.experimental.symbolic_shapes import statically_known_true

from ..ops.inplace import in_place_overload

OpOverload = torch._ops.OpOverload  # the type of torch.ops.aten.<op>.<overload>; torch has no public alias
aten = torch.ops.aten

#: Element-wise ops the lean forward may run in place (each has an in-place twin in `fxrep.ops.inplace`; the
#: twins' fast entry points are derived from the out-of-place ones in `fxrep.lean.entry_points`).
REINPLACEABLE: frozenset[OpOverload] = frozenset({
    aten.relu.default, aten.relu6.default, aten.hardtanh.default, aten.hardswish.default, aten.silu.default, aten.sigmoid.default,
    aten.clamp.default, aten.clamp_min.default, aten.gelu.default, aten.tanh.default, aten.hardsigmoid.default,
    aten.leaky_relu.default, aten.add.Tensor, aten.mul.Tensor,
})
_COMMUTATIVE = frozenset({aten.add.Tensor, aten.mul.Tensor})

#: Ops whose outputs never share memory with their inputs (checked in tests/lean/test_reinplace.py).
FRESH: frozenset[OpOverload] = frozenset({
    aten.conv1d.default, aten.conv2d.default, aten.conv3d.default, aten.conv1d.padding, aten.conv2d.padding,
    aten.conv3d.padding, aten.convolution.default, aten.conv_transpose1d.default, aten.conv_transpose2d.input,
    aten.conv_transpose3d.input, aten.linear.default, aten.mm.default, aten.bmm.default, aten.addmm.default,
    aten.matmul.default, aten.batch_norm.default, aten._native_batch_norm_legit_no_training.default,
    aten.layer_norm.default, aten.group_norm.default, aten.add.Tensor, aten.sub.Tensor, aten.mul.Tensor,
    aten.div.Tensor, aten.neg.default, aten.relu.default, aten.hardtanh.default, aten.hardswish.default,
    aten.silu.default, aten.sigmoid.default, aten.clamp.default, aten.clamp_min.default, aten.gelu.default,
    aten.tanh.default, aten.hardsigmoid.default, aten.leaky_relu.default, aten.relu6.default,
    aten.mean.dim, aten.sum.dim_IntList, aten.softmax.int, aten.log_softmax.int, aten.adaptive_avg_pool2d.default,
    aten.avg_pool2d.default, aten.max_pool2d.default, aten.cat.default, aten.clone.default,
    aten.scaled_dot_product_attention.default, aten.exp.default, aten.sqrt.default, aten.rsqrt.default,
    aten.pow.Tensor_Scalar,
})


@dataclass(frozen=True)
class InPlace:
    """Run ``node`` as ``overload`` writing its argument number ``written`` (0, or 1 for a swapped add/mul)."""

    node: Node
    overload: OpOverload
    written: int

    def arguments(self) -> tuple[Any, ...]:
        args = tuple(self.node.args)
        return args if self.written == 0 else (args[1], args[0], *args[2:])


def in_place_plan(graph: Graph) -> dict[Node, InPlace]:
    """The nodes of ``graph`` that can run in place without any reader noticing (module docstring)."""
    nodes = list(graph.nodes)
    position = {node: index for index, node in enumerate(nodes)}
    aliases = _AliasClasses()
    plan: dict[Node, InPlace] = {}
    for node in nodes:
        aliases.add(node)
        choice = _choose(node, aliases, position)
        if choice is not None:
            plan[node] = choice
            aliases.union(node, node.args[choice.written])  # its output is the written tensor
    return plan


def _choose(node: Node, aliases: _AliasClasses, position: Mapping[Node, int]) -> InPlace | None:
    if node.op != "call_function" or node.target not in REINPLACEABLE:
        return None
    twin = in_place_overload(node.target)
    if twin is None:
        return None
    candidates = [0]
    if node.target in _COMMUTATIVE and node.kwargs.get("alpha", 1) == 1 and len(node.args) == 2:
        candidates.append(1)
    for index in candidates:
        if index < len(node.args) and _may_write(node, node.args[index], aliases, position):
            return InPlace(node, twin, index)
    return None


def _may_write(node: Node, value: Any, aliases: _AliasClasses, position: Mapping[Node, int]) -> bool:
    """Whether ``node`` may overwrite ``value``: every condition of the module docstring holds."""
    return (isinstance(value, Node) and _same_tensor_layout(value, node) and not aliases.is_external(value)
            and not _read_twice(node, value, aliases) and not _read_later(node, value, aliases, position))


def _read_twice(node: Node, value: Node, aliases: _AliasClasses) -> bool:
    """Whether another argument of ``node`` may share memory with ``value`` (``add(x, x)``, ``add(x, x.t())``)."""
    members = aliases.members(value)
    others = [a for a in (*node.args, *node.kwargs.values()) if a is not value]
    return any(isinstance(a, Node) and a in members for a in _flatten(others))


def _read_later(node: Node, value: Node, aliases: _AliasClasses, position: Mapping[Node, int]) -> bool:
    """Whether anything that may share memory with ``value`` is read after ``node`` (or returned)."""
    here = position[node]
    return any(user is not node and position[user] > here
               for member in aliases.members(value) for user in member.users)


def _same_tensor_layout(value: Node, node: Node) -> bool:
    """Whether ``node``'s output has exactly the shape, dtype, device and strides of ``value``."""
    before, after = value.meta.get("val"), node.meta.get("val")
    if not isinstance(before, torch.Tensor) or not isinstance(after, torch.Tensor):
        return False
    if before.dtype != after.dtype or before.device != after.device or before.dim() != after.dim():
        return False
    pairs = zip((*before.shape, *before.stride()), (*after.shape, *after.stride()), strict=True)
    return all(statically_known_true(a == b) for a, b in pairs)


class _AliasClasses:
    """Union-find over graph values: two nodes are in one class when they may share memory."""

    def __init__(self) -> None:
        self._parent: dict[Node, Node] = {}
        self._members: dict[Node, set[Node]] = {}
        self._external: dict[Node, bool] = {}

    def add(self, node: Node) -> None:
        self._parent[node] = node
        self._members[node] = {node}
        self._external[node] = node.op in ("placeholder", "get_attr")
        if node.op in ("call_function", "call_method", "call_module") and not (
                node.op == "call_function" and node.target in FRESH):
            for source in _flatten((node.args, node.kwargs)):
                if isinstance(source, Node) and source in self._parent:
                    self.union(node, source)

    def find(self, node: Node) -> Node:
        while self._parent[node] is not node:
            self._parent[node] = self._parent[self._parent[node]]
            node = self._parent[node]
        return node

    def union(self, a: Node, b: Node) -> None:
        root_a, root_b = self.find(a), self.find(b)
        if root_a is root_b:
            return
        if len(self._members[root_a]) < len(self._members[root_b]):
            root_a, root_b = root_b, root_a
        self._parent[root_b] = root_a
        self._members[root_a] |= self._members.pop(root_b)
        self._external[root_a] = self._external[root_a] or self._external.pop(root_b)

    def members(self, node: Node) -> set[Node]:
        return self._members[self.find(node)]

    def is_external(self, node: Node) -> bool:
        return self._external[self.find(node)]


def _flatten(value: Any) -> Iterable[Any]:
    if isinstance(value, list | tuple):
        for item in value:
            yield from _flatten(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _flatten(item)
    elif isinstance(value, slice):
        yield from _flatten((value.start, value.stop, value.step))
    else:
        yield value
