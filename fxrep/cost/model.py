"""The analytic cost model: estimated run time of one op from its signature.

    time(conv) = MACs / rate  +  bytes moved / bandwidth  +  per-op overhead

- MACs = O * I/groups * prod(kernel) * output positions * batch. Dense 3x3, stride-1, undilated 2-d
  convs run as Winograd F(2x2,3x3)/F(4x4,3x3) in cuDNN and TensorRT, which needs 2.25x-4x fewer
  multiplies: their MACs are divided by ``winograd_speedup``.
- Grouped convs with few channels per group (depthwise) are memory bound and run far below the
  dense rate: they use ``grouped_macs_per_second``.
- bytes = (input + output activations) * itemsize + weights * itemsize.
- Element-wise ops (BatchNorm, add, mul, pad) cost their bytes plus the per-op overhead.
- An average pool costs what the depthwise conv it equals costs.

All constants of a target live in one `Target`; `CPU` is a least-squares fit (log space) to
single-thread timings of ~170 single ATen ops on this project's 2-core CI machine (AMD EPYC, AVX2,
torch 2.14 / oneDNN 3.12; see the comment at `CPU`), and `GPU` comes from published H100 figures.
``benchmarks/bench_cost_model.py`` re-fits them and prints estimate against measured time for
every decision, so the constants can be checked on a new machine.

`CostModel.seconds(signature)` is the one question the planner asks (`fxrep.cost.signatures`);
``node_seconds``, ``conv_seconds`` and ``elementwise_seconds`` are the same estimate for a graph
node, a `ConvMap` and an element count.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from torch.fx import Node

from ..algebra import ConvMap
from .signatures import (
    ConvSignature,
    ElementwiseSignature,
    OpSignature,
    PoolSignature,
    node_signature,
)

GROUPED_DENSE_THRESHOLD = 16
"""Channels per group from which a grouped conv runs at the dense rate."""


@dataclass(frozen=True)
class Target:
    """Throughput constants of one execution target."""

    name: str
    macs_per_second: float
    grouped_macs_per_second: float
    bytes_per_second: float
    seconds_per_op: float
    winograd_speedup: float


# Fitted 2026-11-25 on the 2-core AMD EPYC (AVX2) CI machine, torch 2.14.1 (oneDNN 3.12), 1 thread, by
# `python benchmarks/bench_cost_model.py` (log-space least squares over ~170 single ops, process CPU
# time; fit quality and decisions in benchmarks/results/cost_model.md). Run-to-run spread on this shared
# machine is ~30% (a run under load 5 gave 1.9e10, 3.6e9, 2.6e10, 1.4e-5, 1.1); these are from the
# quietest run. Before: 2.0e10, 2.0e9, 8.0e9, 8e-6, 1.0. oneDNN on AVX2 runs 3x3 convs directly (no Winograd).
CPU = Target("cpu", macs_per_second=2.5e10, grouped_macs_per_second=4.7e9, bytes_per_second=2.7e10,
             seconds_per_op=1.2e-5, winograd_speedup=1.0)
GPU = Target("gpu", macs_per_second=2.5e13, grouped_macs_per_second=1.0e12, bytes_per_second=2.5e12,
             seconds_per_op=6e-6, winograd_speedup=2.25)
TARGETS = {"cpu": CPU, "gpu": GPU}


@dataclass(frozen=True)
class CostModel:
    """Estimates seconds for op signatures on ``target`` (see the module docstring)."""

    target: Target = CPU

    def seconds(self, signature: OpSignature) -> float:
        """Estimated time of one op."""
        if isinstance(signature, ConvSignature):
            return self._conv(signature)
        if isinstance(signature, PoolSignature):
            return self._conv(signature.as_depthwise_conv())
        if isinstance(signature, ElementwiseSignature):
            moved = signature.numel * (signature.operands + 1) * signature.itemsize
            return moved / self.target.bytes_per_second + self.target.seconds_per_op
        raise TypeError(f"no cost for {type(signature).__name__}")

    def _conv(self, conv: ConvSignature) -> float:
        macs = float(conv.macs)
        if conv.is_winograd_shape:
            macs /= self.target.winograd_speedup
        rate = self.target.macs_per_second
        if conv.groups > 1 and conv.in_per_group < GROUPED_DENSE_THRESHOLD:
            rate = self.target.grouped_macs_per_second
        moved = (conv.activation_numel + conv.weight_numel) * conv.itemsize
        return macs / rate + moved / self.target.bytes_per_second + self.target.seconds_per_op

    def node_seconds(self, node: Node) -> float:
        """Estimated time of one graph node as it stands (0 for nodes that compute nothing)."""
        signature = node_signature(node)
        return 0.0 if signature is None else self.seconds(signature)

    def conv_seconds(self, conv: ConvMap, in_size: Sequence[int] | None, batch: int = 1,
                     itemsize: int = 4) -> float:
        """Estimated time of ``conv`` on a batch of inputs of spatial size ``in_size``."""
        return self.seconds(ConvSignature.of(conv, in_size, batch, itemsize))

    def elementwise_seconds(self, numel: int, operands: int = 1, itemsize: int = 4) -> float:
        return self.seconds(ElementwiseSignature("elementwise", numel, operands, itemsize))

    @staticmethod
    def winograd_eligible(conv: ConvMap) -> bool:
        return (conv.nd == 2 and conv.kernel_size == (3, 3) and conv.stride == (1, 1)
                and conv.dilation == (1, 1) and conv.groups == 1)
