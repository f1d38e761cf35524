"""Cost models for planner tests whose optimum can be worked out by hand (independent of CPU constants)."""

from __future__ import annotations

from dataclasses import dataclass

from torch.fx import Node

from fxrep.cost import ConvSignature, OpSignature, PoolSignature, node_signature


@dataclass(frozen=True)
class CountingCost:
    """Every op costs ``per_op``, plus ``per_mac`` per multiply-accumulate of a conv or pool."""

    per_op: float = 1.0
    per_mac: float = 0.0

    def seconds(self, signature: OpSignature) -> float:
        if isinstance(signature, PoolSignature):
            signature = signature.as_depthwise_conv()
        macs = signature.macs if isinstance(signature, ConvSignature) else 0
        return self.per_op + self.per_mac * macs

    def node_seconds(self, node: Node) -> float:
        signature = node_signature(node)
        return 0.0 if signature is None else self.seconds(signature)
