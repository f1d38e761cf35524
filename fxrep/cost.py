"""Cost model: estimated run time of ops, so a collapse is applied only where it pays.

    time(conv) = MACs / rate  +  bytes moved / bandwidth  +  per-op overhead

- MACs = O * I/groups * prod(kernel) * output positions * batch. Dense 3x3, stride-1, undilated 2-d
  convs run as Winograd F(2x2,3x3)/F(4x4,3x3) in cuDNN and TensorRT, which needs 2.25x-4x fewer
  multiplies: their MACs are divided by ``winograd_speedup``.
- Grouped convs with few channels per group (depthwise) are memory bound and run far below the
  dense rate: they use ``grouped_macs_per_second``.
- bytes = (input + output activations) * batch * itemsize + weights * itemsize.
- Element-wise ops (BatchNorm, add, mul, pad) cost their bytes plus the per-op overhead.

All constants of a target live in one `Target`; `CPU` is a least-squares fit (log space) to
single-thread timings of ~170 single ATen ops on this project's 2-core CI machine (AMD EPYC, AVX2,
torch 2.14 / oneDNN 3.12; see the comment at `CPU`), and `GPU` comes from published H100 figures.
``benchmarks/bench_cost_model.py`` re-fits them and prints estimate against measured time for
every decision, so the constants can be checked on a new machine.
Shapes come from the graph's recorded fake tensors; unknown sizes use batch 1 and 32 per spatial
axis, which keeps comparisons between alternatives meaningful.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from torch.fx import Node

from .algebra import ConvMap, NotExact, avgpool_map
from .ops import AvgPool, Conv, Linear, Pad, example_value

NOMINAL_SPATIAL = 32
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
    """Estimates seconds for convs, element-wise ops and whole graph nodes on ``target``."""

    target: Target = CPU

    def conv_seconds(self, conv: ConvMap, in_size: Sequence[int] | None, batch: int = 1,
                     itemsize: int = 4) -> float:
        in_size = tuple(in_size) if in_size is not None else (NOMINAL_SPATIAL,) * conv.nd
        out_size = conv.output_size(in_size)
        positions = math.prod(out_size) * batch
        macs = conv.macs_per_output() * positions
        if self.winograd_eligible(conv):
            macs /= self.target.winograd_speedup
        per_group_in = conv.weight.shape[1]
        rate = self.target.macs_per_second
        if conv.groups > 1 and per_group_in < GROUPED_DENSE_THRESHOLD:
            rate = self.target.grouped_macs_per_second
        activations = conv.in_channels * math.prod(in_size) + conv.out_channels * math.prod(out_size)
        moved = (activations * batch + conv.weight.numel()) * itemsize
        return macs / rate + moved / self.target.bytes_per_second + self.target.seconds_per_op

    def elementwise_seconds(self, numel: int, operands: int = 1, itemsize: int = 4) -> float:
        moved = numel * (operands + 1) * itemsize
        return moved / self.target.bytes_per_second + self.target.seconds_per_op

    @staticmethod
    def winograd_eligible(conv: ConvMap) -> bool:
        return (conv.nd == 2 and conv.kernel_size == (3, 3) and conv.stride == (1, 1)
                and conv.dilation == (1, 1) and conv.groups == 1)

    def node_seconds(self, node: Node) -> float:
        """Estimated time of one graph node as it stands (0 for nodes that compute nothing)."""
        if node.op in ("placeholder", "output", "get_attr"):
            return 0.0
        batch, itemsize = batch_and_itemsize(node)
        conv = Conv.from_node(node)
        if conv is not None and not conv.transposed:
            try:
                return self.conv_seconds(conv.geometry(), spatial_size(conv.input), batch, itemsize)
            except NotExact:
                pass
        linear = Linear.from_node(node)
        if linear is not None and linear.weight is not None:
            rows = numel(node) // max(1, linear.weight.shape[0]) if numel(node) else batch
            geometry = ConvMap(linear.weight, linear.bias, (), (), (), 1)
            return self.conv_seconds(geometry, (), rows, itemsize)
        pool = AvgPool.from_node(node)
        if pool is not None:
            channels = channels_of(pool.input)
            if channels is not None:
                pool_map = avgpool_map(channels, pool.kernel_size, pool.stride, pool.padding)
                return self.conv_seconds(pool_map, spatial_size(pool.input), batch, itemsize)
        size = numel(node)
        if size is None:
            return self.target.seconds_per_op
        operands = 0 if Pad.from_node(node) is not None else len(
            [n for n in node.all_input_nodes if n.op != "get_attr"])
        return self.elementwise_seconds(size, max(operands, 1), itemsize)


def numel(node: Node) -> int | None:
    value = example_value(node)
    if value is None or not all(isinstance(d, int) for d in value.shape):
        return None
    return value.numel()


def spatial_size(node: Node) -> tuple[int, ...] | None:
    value = example_value(node)
    if value is None or value.dim() < 3 or not all(isinstance(d, int) for d in value.shape[2:]):
        return None
    return tuple(value.shape[2:])


def channels_of(node: Node) -> int | None:
    value = example_value(node)
    if value is None or value.dim() < 2 or not isinstance(value.shape[1], int):
        return None
    return value.shape[1]


def batch_and_itemsize(node: Node) -> tuple[int, int]:
    value = example_value(node)
    if value is None:
        return 1, 4
    batch = value.shape[0] if value.dim() > 0 and isinstance(value.shape[0], int) else 1
    return batch, value.element_size()
