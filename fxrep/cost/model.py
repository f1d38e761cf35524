"""The analytic cost model: estimated run time of one op from its signature (`CostModel`).

With the constants of one `Target` (``fxrep/cost/targets.py``, where each constant's origin is):

    dense conv (>= 16 input channels per group) or Linear:
        on oneDNN:  t = MACs / rate * (1 + narrow_out_channels / O) + bytes / bytes_per_second + fresh + fixed
            rate, fixed = pointwise_macs_per_second, seconds_per_pointwise_conv      (1x1)
                        | macs_per_second * winograd_speedup, seconds_per_conv      (3x3, stride 1, undilated, 2-d)
                        | macs_per_second, seconds_per_conv                         (other kernels)
        native (targets with ``aten_cpu_backends``, where ATen's rule `uses_onednn` says no; every Linear):
                    t = MACs / native_rate + unfolded / im2col_bytes_per_second + bytes / bytes_per_second
                        + fresh + native fixed
            native_rate, native fixed = native_pointwise_macs_per_second, native_seconds_per_pointwise_conv
                                          (1x1: a plain GEMM, nothing unfolded)
                                      | native_macs_per_second, native_seconds_per_conv   (kxk: im2col + GEMM)
            unfolded = 2 * I/groups * prod(kernel) * output positions * batch * itemsize (written, then read)
    grouped conv (< 16 input channels per group, e.g. depthwise):
        t = MACs / grouped_macs_per_second + outputs * grouped_seconds_per_output
            + bytes / bytes_per_second + fresh + seconds_per_grouped_conv
    average pool:
        t = MACs / pool_macs_per_second + bytes / bytes_per_second + fresh + seconds_per_pool
        (a target without a pool rate costs the depthwise conv the pool equals)
    element-wise (add, mul, addcmul, pad, batch norm, ...):
        t = bytes / elementwise_bytes_per_second * (addcmul_slowdown for addcmul) + fresh + seconds_per_op

- MACs = O * I/groups * prod(kernel) * output positions * batch (a pool: channels * prod(kernel) *
  output positions * batch);
- bytes = (input + output activations + weights) * itemsize; element-wise: (operands + 1) * numel *
  itemsize;
- fresh = output bytes / fresh_bytes_per_second when the output is at least
  ``fresh_bytes_threshold`` bytes (new pages every call), else 0;
- a rate or fixed cost left None in the target falls back to the simple model's: ``macs_per_second``,
  ``seconds_per_op``, ``bytes_per_second``.

`CostModel.seconds(signature)` is the one question (`fxrep.cost.estimator.CostEstimator`);
``node_seconds``, ``conv_seconds`` and ``elementwise_seconds`` derive from it.
``benchmarks/bench_cost_model.py`` fits the CPU constants and prints estimate against measured
time for every op and decision.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..algebra import ConvMap
from .estimator import SignatureCosts
from .signatures import ConvSignature, ElementwiseSignature, OpSignature, PoolSignature
from .targets import CPU, GROUPED_DENSE_THRESHOLD, Target, uses_onednn


@dataclass(frozen=True)
class CostModel(SignatureCosts):
    """Estimates seconds for op signatures on ``target`` (see the module docstring)."""

    target: Target = CPU

    def seconds(self, signature: OpSignature) -> float:
        """Estimated time of one op."""
        if isinstance(signature, ConvSignature):
            return self._conv(signature)
        if isinstance(signature, PoolSignature):
            return self._pool(signature)
        if isinstance(signature, ElementwiseSignature):
            return self._elementwise(signature)
        raise TypeError(f"no cost for {type(signature).__name__}")

    def _conv(self, conv: ConvSignature) -> float:
        t = self.target
        macs = float(conv.macs)
        out_numel = conv.out_channels * _prod(conv.out_size) * conv.batch
        moved = (conv.activation_numel + conv.weight_numel) * conv.itemsize
        common = moved / t.bytes_per_second + self._fresh(out_numel * conv.itemsize)
        if conv.groups > 1 and conv.in_per_group < GROUPED_DENSE_THRESHOLD and conv.nd > 0:
            return (macs / t.grouped_macs_per_second + out_numel * t.grouped_seconds_per_output + common
                    + _or(t.seconds_per_grouped_conv, t.seconds_per_op))
        if t.aten_cpu_backends and (conv.nd == 0 or not uses_onednn(
                conv.in_channels, conv.in_size, conv.batch, conv.kernel, conv.stride, conv.dilation, conv.groups,
                t.threads)):
            if conv.is_pointwise:
                return (macs / _or(t.native_pointwise_macs_per_second, t.macs_per_second) + common
                        + _or(t.native_seconds_per_pointwise_conv, t.seconds_per_op))
            unfolded = 2 * macs / conv.out_channels * conv.groups * conv.itemsize
            return (macs / _or(t.native_macs_per_second, t.macs_per_second) + unfolded / t.im2col_bytes_per_second
                    + common + _or(t.native_seconds_per_conv, t.seconds_per_op))
        if conv.is_pointwise:
            rate = _or(t.pointwise_macs_per_second, t.macs_per_second)
            fixed = _or(t.seconds_per_pointwise_conv, t.seconds_per_op)
        else:
            rate = t.macs_per_second * (t.winograd_speedup if conv.is_winograd_shape else 1.0)
            fixed = _or(t.seconds_per_conv, t.seconds_per_op)
        return macs / rate * (1.0 + t.narrow_out_channels / conv.out_channels) + common + fixed

    def _pool(self, pool: PoolSignature) -> float:
        t = self.target
        if t.pool_macs_per_second is None:
            return self._conv(pool.as_depthwise_conv())
        conv = pool.as_depthwise_conv()
        out_numel = pool.channels * _prod(conv.out_size) * pool.batch
        moved = conv.activation_numel * pool.itemsize
        return (conv.macs / t.pool_macs_per_second + moved / t.bytes_per_second
                + self._fresh(out_numel * pool.itemsize) + _or(t.seconds_per_pool, t.seconds_per_op))

    def _elementwise(self, op: ElementwiseSignature) -> float:
        t = self.target
        if op.kind == "layout":
            return t.seconds_per_op  # a view: dispatch only, no data moved
        moved = op.numel * (op.operands + 1) * op.itemsize
        slowdown = t.addcmul_slowdown if op.kind == "addcmul" else 1.0
        return (moved / _or(t.elementwise_bytes_per_second, t.bytes_per_second) * slowdown
                + self._fresh(op.numel * op.itemsize) + t.seconds_per_op)

    def _fresh(self, out_bytes: float) -> float:
        t = self.target
        return out_bytes / t.fresh_bytes_per_second if out_bytes >= t.fresh_bytes_threshold else 0.0

    @staticmethod
    def winograd_eligible(conv: ConvMap) -> bool:
        return (conv.nd == 2 and conv.kernel_size == (3, 3) and conv.stride == (1, 1)
                and conv.dilation == (1, 1) and conv.groups == 1)


def _or(value: float | None, default: float) -> float:
    return default if value is None else value


def _prod(values: tuple[int, ...]) -> int:
    result = 1
    for value in values:
        result *= int(value)
    return result
