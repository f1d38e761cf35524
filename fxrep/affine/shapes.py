"""The shapes a region's planning reads from the graph: spatial sizes, batch, element size, counts.

Two kinds of spatial size, kept apart on purpose:

- ``exact_size(source)``: the static spatial size a rewrite may rely on for exactness (branch grids
  that coincide only for the traced size, ``ceil_mode`` windows). Only graphs that check their input
  shapes (torch.export guards) give one; a symbolically traced graph runs on any size, so None.
- ``recorded_size(source)``: the size recorded at capture, for cost estimates, whether or not the
  graph guards it.

Both include the padding a `Source` applies first (a reflect-padded input is larger).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch.fx import GraphModule, Node

from ..cost import batch_and_itemsize, numel
from ..graph_facts import facts
from .value import Source


@dataclass(frozen=True)
class GraphShapes:
    """Shape queries on one graph (see the module docstring)."""

    guarded: bool

    @classmethod
    def of(cls, gm: GraphModule) -> GraphShapes:
        return cls(facts(gm).shapes_guarded)

    def exact_size(self, source: Source) -> tuple[int, ...] | None:
        return self.recorded_size(source) if self.guarded else None

    def recorded_size(self, source: Source) -> tuple[int, ...] | None:
        shape = source.dims()
        if shape is None or len(shape) < 3 or any(d is None for d in shape[2:]):
            return None
        size = tuple(shape[2:])
        if source.padding:
            size = tuple(n + lo + hi for n, (lo, hi) in zip(size, source.padding, strict=True))
        return size  # type: ignore[return-value]

    @staticmethod
    def batch_and_itemsize(node: Node) -> tuple[int, int]:
        return batch_and_itemsize(node)

    @staticmethod
    def numel(node: Node) -> int | None:
        return numel(node)
