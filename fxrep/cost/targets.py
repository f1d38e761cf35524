"""The constants of each cost target, in one place, each saying where it came from (`Target`).

The analytic `CostModel` (``fxrep/cost/model.py``, where the formula is) turns an op signature into
seconds with one `Target`'s constants. A target with only the first five constants is the simple
model (one MAC rate, a grouped rate, one bandwidth, one fixed cost per op, a Winograd factor); the
others refine it per op kind and are None (or neutral) where a target does not use them:

- ``aten_cpu_backends``: dense convs run the way eager PyTorch runs them on a CPU, either on oneDNN
  or on ATen's native path (im2col + GEMM for a kxk kernel, a plain GEMM for 1x1), chosen by ATen's
  rule (see `uses_onednn`); each path has its own constants:
  oneDNN: ``macs_per_second`` (kxk), ``pointwise_macs_per_second`` (1x1), ``seconds_per_conv``,
  ``seconds_per_pointwise_conv``, and ``narrow_out_channels`` (with O output channels the rate is
  divided by ``1 + narrow_out_channels / O``); native: ``native_macs_per_second``,
  ``native_pointwise_macs_per_second`` (also every Linear), ``native_seconds_per_conv``,
  ``native_seconds_per_pointwise_conv`` and ``im2col_bytes_per_second`` (the unfolded input it
  writes and reads);
- ``winograd_speedup`` divides the MACs of dense 3x3 stride-1 undilated 2-d convs (GPU);
- grouped convs with fewer than 16 input channels per group (depthwise): ``grouped_macs_per_second``,
  ``grouped_seconds_per_output`` and ``seconds_per_grouped_conv``;
- average pools: ``pool_macs_per_second`` and ``seconds_per_pool`` (None: costed as the depthwise
  conv they equal);
- bytes: ``bytes_per_second`` for a conv's activations and weights, ``elementwise_bytes_per_second``
  for element-wise ops (None: the same); ``addcmul_slowdown`` multiplies the latter for ``addcmul``
  (its broadcast per-channel form is not vectorised on this CPU); an output of at least
  ``fresh_bytes_threshold`` bytes lands in freshly mapped memory (glibc serves allocations over its
  32 MiB mmap threshold with new pages, so every call pays the page faults) and costs
  ``fresh_bytes_per_second`` on top;
- ``seconds_per_op``: the fixed cost (dispatch, allocation) of an element-wise op, and of every op
  kind whose own fixed cost is None.

A new machine is calibrated with ``python benchmarks/bench_cost_model.py``, which fits these
constants to single-op timings (``benchmarks/op_set.py``) and prints a `Target(...)` to paste here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

GROUPED_DENSE_THRESHOLD = 16
"""Channels per group from which a grouped conv runs at the dense rate."""

FRESH_ALLOCATION_BYTES = 32 * 2**20
"""glibc's largest mmap threshold on 64-bit Linux: bigger blocks always come from fresh pages."""


@dataclass(frozen=True)
class Target:
    """Throughput constants of one execution target (see the module docstring)."""

    name: str
    macs_per_second: float
    grouped_macs_per_second: float
    bytes_per_second: float
    seconds_per_op: float
    winograd_speedup: float = 1.0
    aten_cpu_backends: bool = False
    threads: int = 1
    pointwise_macs_per_second: float | None = None
    seconds_per_conv: float | None = None
    seconds_per_pointwise_conv: float | None = None
    narrow_out_channels: float = 0.0
    native_macs_per_second: float | None = None
    native_pointwise_macs_per_second: float | None = None
    native_seconds_per_conv: float | None = None
    native_seconds_per_pointwise_conv: float | None = None
    im2col_bytes_per_second: float = math.inf
    grouped_seconds_per_output: float = 0.0
    seconds_per_grouped_conv: float | None = None
    pool_macs_per_second: float | None = None
    seconds_per_pool: float | None = None
    elementwise_bytes_per_second: float | None = None
    addcmul_slowdown: float = 1.0
    fresh_bytes_threshold: float = math.inf
    fresh_bytes_per_second: float = math.inf
    source: str = ""


def uses_onednn(in_channels: int, in_size: tuple[int, ...], batch: int, kernel: tuple[int, ...],
                stride: tuple[int, ...], dilation: tuple[int, ...], groups: int, threads: int) -> bool:
    """Whether eager PyTorch (2.x, float32, CPU) runs this conv on oneDNN rather than its native path.

    ATen's rule (``use_mkldnn`` in aten/src/ATen/native/Convolution.cpp), checked on this machine with
    ``torch.profiler`` (``aten::mkldnn_convolution`` vs ``aten::_slow_conv2d_forward``):

        (strided or dilated or batch >= 16 or kernel not 1x1 or threads > 1)
        and (groups > 1 or every kernel axis > 3 or batch > 1 or input elements > 20480)
    """
    pointwise = all(k == 1 for k in kernel)
    first = (any(s != 1 for s in stride) or any(d != 1 for d in dilation) or batch >= 16 or not pointwise
             or threads > 1)
    numel = batch * in_channels
    for n in in_size:
        numel *= n
    second = groups > 1 or all(k > 3 for k in kernel) or batch > 1 or numel > 20480
    return first and second


# Fitted 2026-12-01 by `python benchmarks/bench_cost_model.py --threads 1 2 --decision-threads 1` (its
# "fit 1t per-kind (rounded)"; tables in benchmarks/results/cost_model.md). Before (issue #11, another
# machine): macs_per_second=2.5e10, grouped_macs_per_second=4.7e9, bytes_per_second=2.7e10,
# seconds_per_op=1.2e-5, winograd_speedup=1.0, one fixed cost for every op.
CPU = Target(
    "cpu",
    macs_per_second=1.3e11,
    grouped_macs_per_second=8.5e10,
    bytes_per_second=2.0e10,
    seconds_per_op=1.5e-6,
    winograd_speedup=1.0,
    aten_cpu_backends=True,
    threads=1,
    pointwise_macs_per_second=6.3e10,
    seconds_per_conv=3.1e-5,
    seconds_per_pointwise_conv=3.1e-5,
    narrow_out_channels=6.2,
    native_macs_per_second=4.7e10,
    native_pointwise_macs_per_second=6.3e10,
    native_seconds_per_conv=7.6e-6,
    native_seconds_per_pointwise_conv=4.2e-6,
    im2col_bytes_per_second=3.9e10,
    grouped_seconds_per_output=2.2e-10,
    seconds_per_grouped_conv=3.3e-5,
    pool_macs_per_second=1.5e9,
    seconds_per_pool=2.5e-6,
    elementwise_bytes_per_second=8.9e10,
    addcmul_slowdown=4.8,
    fresh_bytes_threshold=FRESH_ALLOCATION_BYTES,
    fresh_bytes_per_second=2.0e9,
    source=("fitted 2026-12-01 on the 2-core AMD EPYC (AVX-512) development machine (shared, load average 4-6), "
            "torch 2.14.1 with oneDNN, ONE thread, process CPU time, by `python benchmarks/bench_cost_model.py "
            "--threads 1 2 --decision-threads 1`: log-space least squares over the 605 single ops of "
            "benchmarks/op_set.py 'full' up to 1 GMAC (median |estimate / measured - 1| 13%). "
            "pointwise_macs_per_second and seconds_per_pointwise_conv (oneDNN 1x1 convs, which one thread "
            "runs only when strided or at batch >= 16) are not in that set and were set equal to the native "
            "1x1 rate and the oneDNN kxk fixed cost."),
)

GPU = Target(
    "gpu",
    macs_per_second=2.5e13,
    grouped_macs_per_second=1.0e12,
    bytes_per_second=2.5e12,
    seconds_per_op=6e-6,
    winograd_speedup=2.25,
    source=("published NVIDIA H100 figures, not measured by fxrep (no GPU was available): 2.5e13 MAC/s is about "
            "75% of the 67 TFLOPS FP32 peak, 2.5e12 B/s is below the 3.35 TB/s HBM3 peak, 6 us per op is the "
            "order of a kernel launch, a depthwise conv is memory-bound (1e12 MAC/s) and cuDNN / TensorRT run "
            "dense 3x3 stride-1 convs as Winograd F(2x2,3x3) (2.25x fewer multiplies). "
            "benchmarks/gpu/ fits them on a GPU."),
)

TARGETS = {"cpu": CPU, "gpu": GPU}
