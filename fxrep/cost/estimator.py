"""The one cost question every decision asks: how long does this op take? (`CostEstimator`)

Whatever decides by cost - the region planner, horizontal fusion - talks to an object with two
methods and nothing else:

    seconds(signature) -> float   # one op, described by its `OpSignature` (fxrep.cost.signatures)
    node_seconds(node) -> float   # a graph node as it stands: seconds(node_signature(node)),
                                  # 0 for nodes that compute nothing (inputs, constants, output)

A plan's cost is the sum of its ops' ``seconds``. The analytic `CostModel` and the timed
`MeasuredCostModel` both implement it, so either can be handed to a pass unchanged; so can a
user's own object with these two methods (``isinstance(x, CostEstimator)`` checks they exist).

`SignatureCosts` is the base both built-in models share: a subclass writes ``seconds`` only, and
``node_seconds`` plus the conveniences ``conv_seconds`` (a `ConvMap` at a size) and
``elementwise_seconds`` (an element count) are derived from it, so every question goes through the
same door and the answers cannot disagree.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from torch.fx import Node

from ..algebra import ConvMap
from .signatures import ConvSignature, ElementwiseSignature, OpSignature, node_signature


@runtime_checkable
class CostEstimator(Protocol):
    """Estimated seconds of one op (see the module docstring)."""

    def seconds(self, signature: OpSignature) -> float:
        """Seconds one call of the op ``signature`` describes takes."""
        ...

    def node_seconds(self, node: Node) -> float:
        """``seconds(node_signature(node))``; 0 for nodes that compute nothing."""
        ...


class SignatureCosts(ABC):
    """A `CostEstimator` whose every answer is derived from ``seconds(signature)``."""

    @abstractmethod
    def seconds(self, signature: OpSignature) -> float:
        """Seconds one call of the op ``signature`` describes takes."""

    def node_seconds(self, node: Node) -> float:
        """Seconds of one graph node as it stands (0 for nodes that compute nothing)."""
        signature = node_signature(node)
        return 0.0 if signature is None else self.seconds(signature)

    def conv_seconds(self, conv: ConvMap, in_size: Sequence[int] | None, batch: int = 1,
                     itemsize: int = 4) -> float:
        """Seconds of ``conv`` on a batch of inputs of spatial size ``in_size``."""
        return self.seconds(ConvSignature.of(conv, in_size, batch, itemsize))

    def elementwise_seconds(self, numel: int, operands: int = 1, itemsize: int = 4) -> float:
        """Seconds of an element-wise op over ``numel`` elements: a per-channel affine (1 operand) or an add (2)."""
        return self.seconds(ElementwiseSignature("elementwise", numel, operands, itemsize))
