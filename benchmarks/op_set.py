"""The single-op set a cost target is fitted on: which ops, at which shapes, and what fxrep's cost model sees.

One definition for every calibration of `fxrep.cost.Target` constants, so a GPU fit
(``benchmarks/gpu/``) and a CPU fit time the same kinds of op and can be compared:

- convs, called as an optimized graph calls them (``aten.conv2d.default(x, w, b, stride, padding,
  dilation, groups)``): dense 1x1 / 3x3 (stride 1 and 2) / 5x5 / 7x7, depthwise 3x3 (stride 1 and
  2) and 7x7, grouped 3x3 with 8 channels per group (below the cost model's dense threshold) and with
  4 groups (at or above it), 1x1 expansions C -> 4C and reductions 4C -> C;
- ``aten.avg_pool2d`` 3x3 stride 1 with ``count_include_pad=True`` (what DBB's avg branch runs);
- element-wise ops: ``aten.add`` of two activations, the per-channel affines fxrep emits
  (``aten.mul`` by a per-channel scale, ``aten.addcmul`` of a per-channel shift and scale), ReLU and
  inference batch norm;

over C in 8..512 channels, H x H in 7..112 and batch 1 and 8 (`op_specs("full")`; "quick" and "tiny"
are smaller grids of the same kinds, "tiny" for dry runs). Shapes whose MACs exceed ``max_macs``
are left out.

`signature` is the op as `fxrep.cost` describes it (the question every cost model answers), and
`features` says what the analytic `fxrep.cost.CostModel` charges it for under a *simple* target (the
five constants a `Target` needs, every refinement neutral: the form of fxrep's GPU target), read
from the model itself: that estimate is linear in (1 / macs_per_second, 1 / (macs_per_second *
winograd_speedup), 1 / grouped_macs_per_second, 1 / bytes_per_second, seconds_per_op), so the
estimate under a simple target that sets one of these to 1 and the others to 0 is that feature
(dense MACs, Winograd-shape MACs, grouped MACs, bytes moved, ops). A least-squares fit over measured
times then gives the five constants (``benchmarks/bench_cost_model.py``'s `fit_target`). `build` makes the tensors and the call for one
device, dtype and memory format.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch

from fxrep.cost import (
    GROUPED_DENSE_THRESHOLD,
    ConvSignature,
    CostModel,
    ElementwiseSignature,
    OpSignature,
    PoolSignature,
    Target,
)

aten = torch.ops.aten

FEATURES = ("dense_macs", "wino_macs", "grouped_macs", "bytes", "ops")
"""The cost model's terms, in the order of ``benchmarks/bench_cost_model.py``'s ``FEATURES``."""

CONV_KINDS = ("conv",)
POOL_KINDS = ("avgpool",)
ELEMENTWISE_KINDS = ("add", "mul", "addcmul", "relu", "batchnorm")
ELEMENTWISE_OPERANDS = {"add": 2, "mul": 1, "addcmul": 1, "relu": 1, "batchnorm": 1}
"""Activation operands, as `CostModel.node_seconds` counts them (constants such as a scale are not)."""

GRIDS: dict[str, dict[str, tuple[int, ...]]] = {
    "full": {"channels": (8, 32, 128, 512), "sizes": (7, 14, 28, 56, 112), "batches": (1, 8)},
    "quick": {"channels": (32, 256), "sizes": (14, 56), "batches": (1, 8)},
    "tiny": {"channels": (8, 16), "sizes": (7, 14), "batches": (1, 2)},
}
DEFAULT_MAX_MACS = 1.0e11


@dataclass(frozen=True)
class OpSpec:
    """One op at one shape: a conv, an average pool or an element-wise op over (batch, C, size, size)."""

    kind: str
    channels: int
    size: int
    batch: int
    out_channels: int = 0
    kernel: int = 1
    stride: int = 1
    groups: int = 1

    @property
    def padding(self) -> int:
        return self.kernel // 2

    @property
    def out_size(self) -> int:
        return (self.size + 2 * self.padding - self.kernel) // self.stride + 1

    @property
    def category(self) -> str:
        """The group an op's fit quality is reported in."""
        if self.kind == "avgpool":
            return f"avgpool {self.kernel}x{self.kernel}"
        if self.kind in ELEMENTWISE_KINDS:
            return {"mul": "mul (per-channel scale)", "addcmul": "addcmul (per-channel affine)"}.get(self.kind,
                                                                                                  self.kind)
        k, s = f"{self.kernel}x{self.kernel}", "" if self.stride == 1 else f" s{self.stride}"
        if self.groups == self.channels == self.out_channels and self.groups > 1:
            return f"depthwise {k}{s}"
        if self.groups > 1:
            below = self.channels // self.groups < GROUPED_DENSE_THRESHOLD
            return f"grouped {k} ({'<' if below else '>='}{GROUPED_DENSE_THRESHOLD}/group)"
        return f"dense {k}{s}"

    @property
    def label(self) -> str:
        """A unique, readable name: ``conv 32->32 k3 s1 g1 @28 b8``, ``add 32 @28 b8``."""
        if self.kind == "conv":
            return (f"conv {self.channels}->{self.out_channels} k{self.kernel} s{self.stride} g{self.groups} "
                    f"@{self.size} b{self.batch}")
        if self.kind == "avgpool":
            return f"avgpool {self.channels} k{self.kernel} s{self.stride} @{self.size} b{self.batch}"
        return f"{self.kind} {self.channels} @{self.size} b{self.batch}"

    @property
    def macs(self) -> int:
        if self.kind == "conv":
            return (self.out_channels * (self.channels // self.groups) * self.kernel ** 2 * self.out_size ** 2
                    * self.batch)
        if self.kind == "avgpool":
            return self.channels * self.kernel ** 2 * self.out_size ** 2 * self.batch
        return 0

    @property
    def numel(self) -> int:
        """Elements of the op's output."""
        channels = self.out_channels if self.kind == "conv" else self.channels
        return self.batch * channels * self.out_size ** 2


def conv(channels: int, out_channels: int, kernel: int, size: int, batch: int, *, stride: int = 1,
         groups: int = 1) -> OpSpec:
    return OpSpec("conv", channels, size, batch, out_channels, kernel, stride, groups)


def specs_at(channels: int, size: int, batch: int) -> list[OpSpec]:
    """Every kind of op of the set at one (C, H, batch)."""
    c = channels
    specs = [
        conv(c, c, 1, size, batch),
        conv(c, c, 3, size, batch),
        conv(c, c, 3, size, batch, stride=2),
        conv(c, c, 5, size, batch),
        conv(c, c, 7, size, batch),
        conv(c, c, 3, size, batch, groups=c),
        conv(c, c, 3, size, batch, stride=2, groups=c),
        conv(c, c, 7, size, batch, groups=c),
    ]
    if c // 8 > 1:
        specs.append(conv(c, c, 3, size, batch, groups=c // 8))   # 8 channels per group
    if c // 4 >= GROUPED_DENSE_THRESHOLD:
        specs.append(conv(c, c, 3, size, batch, groups=4))        # RepVGG-g4-style, dense rate
    specs.append(OpSpec("avgpool", c, size, batch, kernel=3))
    specs += [OpSpec(kind, c, size, batch) for kind in ELEMENTWISE_KINDS]
    return specs


def op_specs(scale: str = "full", max_macs: float = DEFAULT_MAX_MACS) -> list[OpSpec]:
    """The op set at one scale ("full", "quick" or "tiny"), without ops above ``max_macs``."""
    if scale not in GRIDS:
        raise ValueError(f"scale must be one of {', '.join(GRIDS)}, got {scale!r}")
    grid = GRIDS[scale]
    specs: list[OpSpec] = []
    for batch in grid["batches"]:
        for size in grid["sizes"]:
            for channels in grid["channels"]:
                specs += specs_at(channels, size, batch)
            for channels in grid["channels"][:-1]:  # channel expansions and reductions
                specs += [conv(channels, 4 * channels, 1, size, batch), conv(4 * channels, channels, 1, size, batch)]
    return _unique(s for s in specs if s.macs <= max_macs)


def _unique(specs: Iterable[OpSpec]) -> list[OpSpec]:
    seen: dict[str, OpSpec] = {}
    for spec in specs:
        seen.setdefault(spec.label, spec)
    return list(seen.values())


# ---------------------------------------------------------------------- what the cost model sees
def signature(spec: OpSpec, itemsize: int) -> OpSignature:
    """The `fxrep.cost` signature of ``spec`` with elements of ``itemsize`` bytes: what a cost model is asked."""
    k, s, p = (spec.kernel,) * 2, (spec.stride,) * 2, spec.padding
    in_size = (spec.size, spec.size)
    if spec.kind == "conv":
        return ConvSignature(in_channels=spec.channels, out_channels=spec.out_channels, kernel=k, stride=s,
                             padding=((p, p), (p, p)), dilation=(1, 1), groups=spec.groups, in_size=in_size,
                             batch=spec.batch, itemsize=itemsize)
    if spec.kind == "avgpool":
        return PoolSignature(channels=spec.channels, kernel=k, stride=s, padding=(p, p), in_size=in_size,
                             batch=spec.batch, itemsize=itemsize)
    return ElementwiseSignature(kind=spec.kind, numel=spec.numel, operands=ELEMENTWISE_OPERANDS[spec.kind],
                                itemsize=itemsize)


def estimate(spec: OpSpec, model: CostModel, itemsize: int) -> float:
    """``model``'s estimate of ``spec`` (`fxrep.cost.CostModel.seconds` of its signature)."""
    return model.seconds(signature(spec, itemsize))


def simple(target: Target) -> Target:
    """``target``'s five simple-model constants alone (every refinement at its neutral default)."""
    return Target(f"{target.name} (simple)", macs_per_second=target.macs_per_second,
                  grouped_macs_per_second=target.grouped_macs_per_second, bytes_per_second=target.bytes_per_second,
                  seconds_per_op=target.seconds_per_op, winograd_speedup=target.winograd_speedup)


def _basis(**unit: float) -> CostModel:
    """A simple target whose estimate is one feature: the given constants as given, every other term off."""
    off = {"macs_per_second": math.inf, "grouped_macs_per_second": math.inf, "bytes_per_second": math.inf,
           "seconds_per_op": 0.0, "winograd_speedup": 1.0}
    return CostModel(Target("basis", **{**off, **unit}))


_DENSE = _basis(macs_per_second=1.0, winograd_speedup=math.inf)
_DENSE_AND_WINO = _basis(macs_per_second=1.0)
_GROUPED = _basis(grouped_macs_per_second=1.0)
_BYTES = _basis(bytes_per_second=1.0)
_OPS = _basis(seconds_per_op=1.0)


def features(spec: OpSpec, itemsize: int) -> dict[str, float]:
    """The cost model's terms for ``spec`` (see the module docstring), keyed by `FEATURES`."""
    dense = estimate(spec, _DENSE, itemsize)
    return {
        "dense_macs": dense,
        "wino_macs": estimate(spec, _DENSE_AND_WINO, itemsize) - dense,
        "grouped_macs": estimate(spec, _GROUPED, itemsize),
        "bytes": estimate(spec, _BYTES, itemsize),
        "ops": estimate(spec, _OPS, itemsize),
    }


def linear_estimate(values: dict[str, float], target: Target) -> float:
    """The simple model's estimate from `features` and ``target``'s five constants (= `estimate` of `simple`)."""
    weights = {"dense_macs": 1.0 / target.macs_per_second,
               "wino_macs": 1.0 / (target.macs_per_second * target.winograd_speedup),
               "grouped_macs": 1.0 / target.grouped_macs_per_second,
               "bytes": 1.0 / target.bytes_per_second, "ops": target.seconds_per_op}
    return sum(values[name] * weights[name] for name in FEATURES)


# ---------------------------------------------------------------------- running one op
def build(spec: OpSpec, device: str | torch.device, dtype: torch.dtype,
          memory_format: torch.memory_format = torch.channels_last,
          generator: torch.Generator | None = None) -> Callable[[], torch.Tensor]:
    """Tensors for ``spec`` on ``device`` in ``dtype`` / ``memory_format`` and the ATen call that runs it.

    ``generator`` (on ``device``; default: seeded 0) draws inputs N(0, 1), conv weights N(0, 0.01).
    """
    generator = generator if generator is not None else torch.Generator(device=device).manual_seed(0)

    def tensor(*shape: int, scale: float = 1.0) -> torch.Tensor:  # drawn on the device: large inputs are many
        return (torch.randn(shape, generator=generator, device=device) * scale).to(dtype)

    def activation(channels: int) -> torch.Tensor:
        return tensor(spec.batch, channels, spec.size, spec.size).contiguous(memory_format=memory_format)

    x = activation(spec.channels)
    if spec.kind == "conv":
        w = tensor(spec.out_channels, spec.channels // spec.groups, spec.kernel, spec.kernel, scale=0.1)
        w = w.contiguous(memory_format=memory_format)
        b = tensor(spec.out_channels)
        stride, padding = [spec.stride] * 2, [spec.padding] * 2
        return lambda: aten.conv2d.default(x, w, b, stride, padding, [1, 1], spec.groups)
    if spec.kind == "avgpool":
        kernel, stride, padding = [spec.kernel] * 2, [spec.stride] * 2, [spec.padding] * 2
        return lambda: aten.avg_pool2d.default(x, kernel, stride, padding, False, True)
    per_channel = (spec.channels, 1, 1)
    if spec.kind == "add":
        y = activation(spec.channels)
        return lambda: aten.add.Tensor(x, y)
    if spec.kind == "mul":
        scale = tensor(*per_channel)
        return lambda: aten.mul.Tensor(x, scale)
    if spec.kind == "addcmul":
        shift, scale = tensor(*per_channel), tensor(*per_channel)
        return lambda: aten.addcmul.default(shift, x, scale)
    if spec.kind == "relu":
        return lambda: aten.relu.default(x)
    if spec.kind == "batchnorm":
        weight, bias, mean = tensor(spec.channels), tensor(spec.channels), tensor(spec.channels)
        var = tensor(spec.channels).abs() + 0.5
        return lambda: aten._native_batch_norm_legit_no_training.default(x, weight, bias, mean, var, 0.1, 1e-5)[0]
    raise ValueError(f"unknown op kind {spec.kind!r}")
