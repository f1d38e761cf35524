"""`Cat`: ``torch.cat`` / ``torch.concat`` / ``aten.cat`` as one view, with a non-negative ``dim``."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.fx import Node

from ._binding import REQUIRED, bind_call
from ._graph import rank

_PARAMS = (("tensors", REQUIRED), ("dim", 0))
_SIGNATURES = {torch.cat: _PARAMS, torch.concat: _PARAMS, torch.concatenate: (("tensors", REQUIRED), ("axis", 0))}


@dataclass(frozen=True, eq=False)
class Cat:
    """Concatenation of ``inputs`` along ``dim`` (negative dims resolved when the rank is known)."""

    node: Node
    inputs: tuple[Node, ...]
    dim: int

    @classmethod
    def from_node(cls, node: Node) -> Cat | None:
        if node.op != "call_function":
            return None
        bound = bind_call(node, _SIGNATURES, overloads=(torch.ops.aten.cat.default,))
        if bound is None:
            return None
        tensors = bound["tensors"]
        dim = int(bound.get("dim", bound.get("axis", 0)))
        if not isinstance(tensors, list | tuple) or not all(isinstance(t, Node) for t in tensors):
            return None
        if dim < 0:
            node_rank = rank(node)
            if node_rank is None:
                return None
            dim += node_rank
        return cls(node, tuple(tensors), dim)
