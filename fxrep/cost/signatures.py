"""Op signatures: what a cost model needs to know about one op, as a small hashable value.

A signature says what an op computes and at which shapes, nothing more: a conv's geometry and its
input size, an element-wise op's kind and element count. Every cost question fxrep asks is
``seconds(signature)``, so an analytic model and a model that times ops on the device (keyed by
signature in a timing cache) answer the same questions, and the planner never needs to know which
one it talks to.

- `ConvSignature`: a dense, grouped or depthwise conv (``nd`` spatial axes), or a Linear
  (``nd == 0``: ``batch`` is then the number of rows, every position but the features).
- `PoolSignature`: an average pool (costed like the depthwise conv it equals).
- `ElementwiseSignature`: add, mul, addcmul, pad, batch norm, ... over ``numel`` output elements
  reading ``operands`` tensors of that size (``channels``, when known, is the axis a per-channel
  operand broadcasts along). Kind ``layout`` is a reshape or permute (`fxrep.ops.Layout`): a view
  that moves no data.

Every signature also carries ``dtype`` and ``device`` (torch's names, e.g. ``"float32"``, ``"cuda:0"``),
None where the asker does not know them: the analytic model ignores both (it uses ``itemsize``); a
measured model times the op in that dtype on that device, or in its own defaults where None.

`node_signature(node)` describes an existing graph node, so "leave it as it is" is costed through
the same door as every planned op. `signature_fields` / `signature_from_fields` turn a signature
into plain JSON-able fields and back (the timing cache's keys).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

import torch
from torch.fx import Node

from ..algebra import ConvMap, NotExact
from ..ops import (
    AvgPool,
    BatchNorm,
    Conv,
    Layout,
    Linear,
    Mean,
    Pad,
    example_value,
    op_kind,
    size_at_unit_batch,
    view_of,
)

NOMINAL_SPATIAL = 32
"""Spatial size per axis assumed where the graph recorded none (keeps comparisons meaningful)."""

Padding = tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class ConvSignature:
    """A conv (or a Linear when ``nd == 0``) at one input size."""

    in_channels: int
    out_channels: int
    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    padding: Padding
    dilation: tuple[int, ...]
    groups: int
    in_size: tuple[int, ...]
    batch: int
    itemsize: int = 4
    dtype: str | None = None
    device: str | None = None

    @classmethod
    def of(cls, conv: ConvMap, in_size: Sequence[int] | None, batch: int, itemsize: int = 4, *,
           dtype: str | None = None, device: str | None = None) -> ConvSignature:
        """The signature of ``conv`` applied to a ``batch`` of inputs of spatial size ``in_size``."""
        size = tuple(in_size) if in_size is not None else (NOMINAL_SPATIAL,) * conv.nd
        return cls(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                   conv.dilation, conv.groups, size, max(1, int(batch)), itemsize, dtype, device)

    @property
    def nd(self) -> int:
        return len(self.kernel)

    @property
    def out_size(self) -> tuple[int, ...]:
        return tuple(
            (n + lo + hi - d * (k - 1) - 1) // s + 1
            for n, (lo, hi), d, k, s in zip(self.in_size, self.padding, self.dilation, self.kernel, self.stride,
                                            strict=True)
        )

    @property
    def in_per_group(self) -> int:
        return self.in_channels // self.groups

    @property
    def macs(self) -> int:
        """Multiply-accumulates: ``O * I / groups * prod(kernel) * output positions * batch``."""
        positions = _prod(self.out_size) * self.batch
        return self.out_channels * self.in_per_group * _prod(self.kernel) * positions

    @property
    def weight_numel(self) -> int:
        return self.out_channels * self.in_per_group * _prod(self.kernel)

    @property
    def activation_numel(self) -> int:
        """Input plus output elements."""
        return (self.in_channels * _prod(self.in_size) + self.out_channels * _prod(self.out_size)) * self.batch

    @property
    def is_pointwise(self) -> bool:
        """Every kernel axis 1 (a 1x1 conv, or a Linear)."""
        return all(k == 1 for k in self.kernel)

    @property
    def is_winograd_shape(self) -> bool:
        """Dense 3x3, stride 1, undilated 2-d: the shape cuDNN/TensorRT run as Winograd."""
        return (self.nd == 2 and self.kernel == (3, 3) and self.stride == (1, 1) and self.dilation == (1, 1)
                and self.groups == 1)

    def describe(self) -> str:
        if self.nd == 0:
            return f"linear {self.in_channels}->{self.out_channels} x{self.batch} rows"
        kernel = "x".join(map(str, self.kernel))
        grouped = "" if self.groups == 1 else (" depthwise" if self.groups == self.in_channels else
                                              f" groups={self.groups}")
        return (f"conv{kernel}{grouped} {self.in_channels}->{self.out_channels} stride {self.stride} "
                f"at {'x'.join(map(str, self.in_size))}, batch {self.batch}")


@dataclass(frozen=True)
class PoolSignature:
    """An average pool over ``channels`` channels at one input size."""

    channels: int
    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    padding: tuple[int, ...]
    in_size: tuple[int, ...]
    batch: int
    itemsize: int = 4
    dtype: str | None = None
    device: str | None = None

    def as_depthwise_conv(self) -> ConvSignature:
        """The depthwise conv this pool equals (kernel ``1 / prod(kernel)``, same stride and padding)."""
        return ConvSignature(self.channels, self.channels, self.kernel, self.stride,
                             tuple((p, p) for p in self.padding), (1,) * len(self.kernel), self.channels,
                             self.in_size, self.batch, self.itemsize, self.dtype, self.device)

    def describe(self) -> str:
        return f"avgpool{'x'.join(map(str, self.kernel))} of {self.channels} channels"


@dataclass(frozen=True)
class ElementwiseSignature:
    """An op touching each of ``numel`` output elements once, reading ``operands`` tensors of that size."""

    kind: str
    numel: int
    operands: int = 1
    itemsize: int = 4
    channels: int | None = None
    dtype: str | None = None
    device: str | None = None

    def describe(self) -> str:
        return f"{self.kind} of {self.numel} elements"


OpSignature = ConvSignature | PoolSignature | ElementwiseSignature


_SIGNED_VIEWS = (Conv, BatchNorm, Linear, Pad, AvgPool, Layout, Mean)
"""The views `node_signature` reads, in `fxrep.ops.VIEWS` order; other ops are element-wise by `op_kind`."""


def node_signature(node: Node) -> OpSignature | None:
    """What ``node`` computes, as a signature; None for nodes that compute nothing (inputs, constants)."""
    if node.op in ("placeholder", "output", "get_attr"):
        return None
    batch, itemsize = batch_and_itemsize(node)
    dtype, device = dtype_and_device(node)
    view = view_of(node, _SIGNED_VIEWS)
    if isinstance(view, Conv) and not view.transposed:
        try:
            return ConvSignature.of(view.geometry(), spatial_size(view.input), batch, itemsize, dtype=dtype,
                                    device=device)
        except NotExact:
            pass
    if isinstance(view, Linear) and view.weight is not None:
        out_features = view.weight.shape[0]
        size = numel(node)
        rows = size // max(1, out_features) if size else batch
        return ConvSignature(view.weight.shape[1], out_features, (), (), (), (), 1, (), max(1, rows), itemsize,
                             dtype, device)
    if isinstance(view, AvgPool):
        channels = channels_of(view.input)
        if channels is not None:
            size = spatial_size(view.input) or (NOMINAL_SPATIAL,) * len(view.kernel_size)
            return PoolSignature(channels, view.kernel_size, view.stride, view.padding, size, batch, itemsize,
                                 dtype, device)
    count = numel(node)
    if count is None:
        count = batch * NOMINAL_SPATIAL ** 2
    channels = channels_of(node)
    if isinstance(view, Pad):
        return ElementwiseSignature("pad", count, 1, itemsize, channels, dtype, device)
    if isinstance(view, Layout):
        return ElementwiseSignature("layout", count, 0, itemsize, channels, dtype, device)
    if isinstance(view, Mean):  # reads the whole input once
        read = numel(view.input) or count
        return ElementwiseSignature("mean", read, 1, itemsize, channels_of(view.input), dtype, device)
    if isinstance(view, BatchNorm):
        return ElementwiseSignature("batchnorm", count, 1, itemsize, channels, dtype, device)
    operands = len([n for n in node.all_input_nodes if n.op != "get_attr"])
    return ElementwiseSignature(op_kind(node) or "other", count, max(operands, 1), itemsize, channels, dtype,
                                device)


_SIGNATURE_TYPES: dict[str, type] = {"conv": ConvSignature, "pool": PoolSignature, "elementwise": ElementwiseSignature}
_CONTEXT_FIELDS = ("dtype", "device")


def signature_fields(signature: OpSignature) -> dict[str, Any]:
    """``signature`` as plain JSON-able fields: ``{"op": "conv" | "pool" | "elementwise", ...}``.

    ``dtype`` and ``device`` are left out: whoever stores the fields records the dtype and device the
    op actually ran in (the timing cache resolves None to its own defaults).
    """
    for name, kind in _SIGNATURE_TYPES.items():
        if type(signature) is kind:
            values = {f.name: _plain(getattr(signature, f.name)) for f in fields(signature)
                      if f.name not in _CONTEXT_FIELDS}
            return {"op": name, **values}
    raise TypeError(f"not an op signature: {type(signature).__name__}")


def signature_from_fields(values: Mapping[str, Any], *, dtype: str | None = None,
                          device: str | None = None) -> OpSignature:
    """The signature `signature_fields` described (``ValueError`` naming what is missing or unknown)."""
    op = values.get("op")
    kind = _SIGNATURE_TYPES.get(op) if isinstance(op, str) else None
    if kind is None:
        raise ValueError(f"unknown op signature kind {values.get('op')!r} (expected one of {sorted(_SIGNATURE_TYPES)})")
    arguments = {}
    for f in fields(kind):
        if f.name in _CONTEXT_FIELDS:
            continue
        if f.name in values:
            arguments[f.name] = _tuples(values[f.name])
    try:
        return kind(**arguments, dtype=dtype, device=device)
    except TypeError as error:
        raise ValueError(f"incomplete {values.get('op')} signature {dict(values)}: {error}") from error


def _plain(value: Any) -> Any:
    return [_plain(v) for v in value] if isinstance(value, tuple) else value


def _tuples(value: Any) -> Any:
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value


def numel(node: Node) -> int | None:
    """Elements of ``node``'s recorded value, a dynamic dimension (a dynamic batch) counted as 1, as
    `batch_and_itemsize` counts it; None when no value is recorded."""
    value = example_value(node)
    if value is None:
        return None
    count = 1
    for d in value.shape:
        count *= size_at_unit_batch(d)
    return count


def spatial_size(node: Node) -> tuple[int, ...] | None:
    """``node``'s recorded spatial size (dims after batch and channels), when static."""
    value = example_value(node)
    if value is None or value.dim() < 3 or not all(isinstance(d, int) for d in value.shape[2:]):
        return None
    return tuple(value.shape[2:])


def channels_of(node: Node) -> int | None:
    value = example_value(node)
    if value is None or value.dim() < 2 or not isinstance(value.shape[1], int):
        return None
    return value.shape[1]


def dtype_and_device(node: Node) -> tuple[str | None, str | None]:
    """torch's names of ``node``'s recorded dtype and device (``"float32"``, ``"cpu"``), None when unknown."""
    value = example_value(node)
    if value is None:
        return None, None
    return str(value.dtype).removeprefix("torch."), str(value.device)


def batch_and_itemsize(node: Node) -> tuple[int, int]:
    """The recorded batch (1 when unknown or dynamic) and element size (4 when unknown) of ``node``."""
    value = example_value(node)
    if value is None:
        return 1, 4
    batch = value.shape[0] if value.dim() > 0 and isinstance(value.shape[0], int) else 1
    return batch, value.element_size() if value.dtype != torch.bool else 1


def _prod(values: Sequence[int]) -> int:
    result = 1
    for value in values:
        result *= int(value)
    return result
