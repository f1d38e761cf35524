"""What materialising one value emits: the ops, their cost and their count, from one description.

A planned region materialises some of its nodes. For each, `materialize` decides what the graph
will hold, as an `Emission`: an ordered list of `EmittedOp`s. Emitting (`emit`), costing
(`Emission.seconds`) and counting (`Emission.op_count`) all read that list, so the three can never
disagree.

``value = sum_k M_k(source_k) + bias`` becomes:

- a source read through layout steps (`fxrep.affine.value.LayoutStep`) gets one ``reshape``,
  ``permute`` or ``mean`` op per step;
- a source read with a non-zero padding mode (reflect, replicate, circular) gets one ``pad`` op;
- an identity map emits nothing (the source itself);
- a diagonal map (per-channel scale) emits one ``scale`` (multiply); a value without convs adds its
  bias with one ``shift`` (``x * a + c`` as two ops: ``addcmul`` is several times slower than a
  multiply on the CPU, and its shape function fails on a dynamic batch);
- a map that is a scaled average pool (`ConvMap.uniform`) runs as one ``pool`` (and a ``scale``) where
  the cost model says that is cheaper than the depthwise conv;
- any other map emits one ``conv`` (a Linear for 0-d maps); the first conv carries the bias; a conv
  whose padding differs between the two sides of an axis is preceded by a zero ``pad`` for the
  difference;
- the parts are summed by ``add`` ops; a bias nothing could carry becomes one ``shift``.

A node whose value is its own op applied to materialised inputs (nothing folded into it), or whose
value no ops can express (a border ring that never became conv padding), is *kept*: one ``keep`` op
standing for the original node, costed as the node is.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import torch
import torch.nn.functional as F
from torch.fx import Node

from ..algebra import ConvMap, NotExact, regroup
from ..algebra.conv_map import Padding
from ..cost import (
    NOMINAL_SPATIAL,
    ConvSignature,
    CostModel,
    ElementwiseSignature,
    OpSignature,
    PoolSignature,
    dtype_and_device,
    node_signature,
)
from ..ops import dims as node_dims
from ..rewriter import Rewriter
from .shapes import GraphShapes
from .value import READER_KEY, AffineValue, Source, size_for

Operand = Node | int
"""A graph node (a source of the value) or the index of an earlier op of the same emission."""


@dataclass(frozen=True, eq=False)
class EmittedOp:
    """One op an emission adds to the graph (``keep``: the original node, left as it is)."""

    kind: str
    """``keep``, ``reshape``, ``permute``, ``mean``, ``pad``, ``conv``, ``pool``, ``scale``, ``add`` or ``shift``."""
    inputs: tuple[Operand, ...]
    signature: OpSignature
    conv: ConvMap | None = None
    scale: torch.Tensor | None = None
    """Broadcastable per-channel factor (``scale``)."""
    shift: torch.Tensor | None = None
    """Broadcastable per-channel offset (``shift``)."""
    pads: Padding = ()
    mode: str = "constant"
    shape: tuple[int, ...] = ()
    """``reshape``: the target shape (-1 for the one dynamic size); ``permute``: the permutation;
    ``mean``: the averaged axes."""
    keepdim: bool = False
    replay: tuple | None = None
    """``reshape`` by axes alone (``("flatten", start, end)``, ...) instead of ``shape``."""
    reader: str = ""
    """``pad`` with a padding mode: the op of the original graph that padded so (for messages)."""

    def describe(self) -> str:
        return self.signature.describe() if self.kind in ("conv", "keep") else self.kind


@dataclass(frozen=True, eq=False)
class Emission:
    """What the graph holds for one materialised node (see the module docstring)."""

    node: Node
    ops: tuple[EmittedOp, ...]
    result: Operand | None
    """The op (index) or source node holding the value; None when the node is kept."""
    value: AffineValue | None = None
    rules: Counter = field(default_factory=Counter)
    kept_because: str = ""

    @property
    def keeps(self) -> bool:
        """The original node stays as it is."""
        return self.result is None

    @property
    def op_count(self) -> int:
        return len(self.ops)

    def seconds(self, cost_model: CostModel) -> float:
        return sum(cost_model.seconds(op.signature) for op in self.ops)

    def describe(self) -> str:
        if self.keeps:
            return f"{self.node.name} kept"
        if not self.ops:
            return f"{self.node.name} = its source"
        return f"{self.node.name} = " + " + ".join(op.describe() for op in self.ops if op.kind != "add")


def kept(node: Node, because: str = "") -> Emission:
    """The emission that leaves ``node`` as it is."""
    signature = node_signature(node) or ElementwiseSignature("other", 0)
    return Emission(node, (EmittedOp("keep", (), signature),), None, None, Counter(), because)


def materialize(node: Node, value: AffineValue | None, inputs_materialized: bool, shapes: GraphShapes,
                reason: str = "", cost_model: CostModel | None = None) -> Emission:
    """What materialising ``node`` emits; raises `NotExact` when it cannot be materialised here.

    ``value`` is None when the node's op cannot take its inputs' values (``reason`` says why);
    ``inputs_materialized`` says whether every input of the node's op is a tensor of its own (then
    the original node can stay). With a ``cost_model``, a term that is a scaled average pool runs as
    a pool (and a scale) where that is cheaper than the depthwise conv it equals.
    """
    if value is None:
        if inputs_materialized:
            return kept(node, reason)
        raise NotExact(reason)
    if not value.rules and inputs_materialized:
        return kept(node)
    try:
        return _lower(node, value, shapes, cost_model)
    except NotExact as why:
        if inputs_materialized:
            return kept(node, str(why))
        raise


def _lower(node: Node, value: AffineValue, shapes: GraphShapes, cost_model: CostModel | None) -> Emission:
    if value.ring is not None:
        raise NotExact("the value still has a padded border that no conv padding reproduces")
    if not value.terms:
        raise NotExact("the value does not depend on any tensor")
    batch, itemsize = shapes.batch_and_itemsize(node)
    dtype, device = dtype_and_device(node)
    out_numel = shapes.numel(node) or batch * value.channels * NOMINAL_SPATIAL ** value.nd
    ops: list[EmittedOp] = []
    padded: dict[Source, int] = {}

    def elementwise(kind: str, operands: int = 1, count: int = out_numel, channels: int = value.channels
                    ) -> OpSignature:
        return ElementwiseSignature(kind, count, operands, itemsize, channels, dtype, device)

    def operand(source: Source) -> Operand:
        current: Operand = source.node
        if source.layout:
            current = laid_out(source)
        if source.padding_mode == "zeros":
            return current
        if source not in padded:
            size = size_for(shapes.recorded_size, source, value.nd) or (NOMINAL_SPATIAL,) * value.nd
            channels = value_channels(value, source)
            ops.append(EmittedOp("pad", (current,), elementwise("pad", 1, batch * channels * _prod(size), channels),
                                 pads=source.padding, mode=source.padding_mode, reader=source.reader))
            padded[source] = len(ops) - 1
        return padded[source]

    def laid_out(source: Source) -> Operand:
        key = replace(source, padding_mode="zeros", padding=(), reader="")
        if key not in padded:
            current: Operand = source.node
            channels = value_channels(value, source)
            before = source.node
            for step in source.layout:
                if step.kind == "mean":
                    read = _prod(d if d is not None else batch for d in (dims_of(before) or step.dims))
                    ops.append(EmittedOp("mean", (current,), elementwise("mean", 1, read, channels),
                                         shape=step.axes, keepdim=step.keepdim))
                else:
                    count = _prod(d if d is not None else batch for d in step.dims)
                    signature = elementwise("layout", 0, count, channels)
                    if step.kind == "permute":
                        ops.append(EmittedOp("permute", (current,), signature, shape=step.permutation))
                    elif step.replay is not None:
                        ops.append(EmittedOp("reshape", (current,), signature, replay=step.replay))
                    elif not shapes.guarded:
                        raise NotExact(f"a reshape of {source.node.name} is given by sizes that only hold for the "
                                       "traced input (the graph does not check its input sizes); capture with "
                                       "example inputs (torch.export) to fold through it")
                    elif sum(d is None for d in step.dims) > 1:
                        raise NotExact(f"{source.node.name} would be reshaped to a shape with several dynamic sizes")
                    else:
                        shape = tuple(-1 if d is None else d for d in step.dims)
                        ops.append(EmittedOp("reshape", (current,), signature, shape=shape))
                current, before = len(ops) - 1, step
            padded[key] = current
        return padded[key]

    bias = value.bias if bool(value.bias.ne(0).any()) else None
    parts: list[Operand] = []
    for source, conv in _ordered(value.terms):
        source_operand = operand(source)
        if conv.is_identity:
            parts.append(source_operand)
            continue
        if conv.is_diagonal:
            scale = _broadcastable(conv.weight.reshape(-1), value)
            ops.append(EmittedOp("scale", (source_operand,), elementwise("mul"), scale=scale))
            parts.append(len(ops) - 1)
            continue
        pooled = _as_pool(conv, source_operand, size_for(shapes.recorded_size, source, conv.nd), batch, itemsize,
                          dtype, device)
        if pooled is not None and cost_model is not None:
            pool, factor = pooled
            scale = None if factor is None else EmittedOp("scale", (), elementwise("mul"),
                                                          scale=_broadcastable(factor, value))
            as_conv = ConvSignature.of(conv, size_for(shapes.recorded_size, source, conv.nd), batch, itemsize,
                                       dtype=dtype, device=device)
            pool_seconds = cost_model.seconds(pool.signature) + (0 if scale is None else
                                                                  cost_model.seconds(scale.signature))
            if pool_seconds < cost_model.seconds(as_conv):
                ops.append(pool)
                if scale is not None:
                    ops.append(replace(scale, inputs=(len(ops) - 1,)))
                parts.append(len(ops) - 1)
                continue
        if bias is not None:
            conv = replace(conv, bias=bias)
            bias = None
        if conv.nd == 0 and conv.groups > 1:
            conv = regroup(conv, 1)
        in_size = size_for(shapes.recorded_size, source, conv.nd)
        if conv.nd and conv.symmetric_padding is None:
            common = tuple(min(lo, hi) for lo, hi in conv.padding)
            extra = tuple((lo - c, hi - c) for (lo, hi), c in zip(conv.padding, common, strict=True))
            size = in_size or (NOMINAL_SPATIAL,) * conv.nd
            in_size = tuple(n + lo + hi for n, (lo, hi) in zip(size, extra, strict=True))
            ops.append(EmittedOp("pad", (source_operand,),
                                 elementwise("pad", 1, batch * conv.in_channels * _prod(in_size), conv.in_channels),
                                 pads=extra))
            source_operand = len(ops) - 1
            conv = replace(conv, padding=tuple((c, c) for c in common))
        rows = batch if conv.nd else max(1, out_numel // max(1, value.channels))
        ops.append(EmittedOp("conv", (source_operand,),
                             ConvSignature.of(conv, in_size, rows, itemsize, dtype=dtype, device=device), conv=conv))
        parts.append(len(ops) - 1)
    result = parts[0]
    for part in parts[1:]:
        ops.append(EmittedOp("add", (result, part), elementwise("add", 2)))
        result = len(ops) - 1
    if bias is not None:
        ops.append(EmittedOp("shift", (result,), elementwise("add"), shift=_broadcastable(bias, value)))
        result = len(ops) - 1
    return Emission(node, tuple(ops), result, value, Counter(value.rules))


def _as_pool(conv: ConvMap, source: Operand, in_size, batch: int, itemsize: int, dtype, device
             ) -> tuple[EmittedOp, torch.Tensor | None] | None:
    """A `uniform` map as an ``avg_pool`` op (count_include_pad) and the per-channel factor still to apply
    (None when it is known to be 1; ones, standing for unknown factors, on shape-only maps)."""
    if not conv.uniform or conv.nd not in (1, 2, 3) or conv.symmetric_padding is None:
        return None
    padding = conv.symmetric_padding
    if any(p > k // 2 for p, k in zip(padding, conv.kernel_size, strict=True)) or any(d != 1 for d in conv.dilation):
        return None  # torch pools pad at most half the kernel and do not dilate
    size = tuple(in_size) if in_size is not None else (NOMINAL_SPATIAL,) * conv.nd
    signature = PoolSignature(conv.out_channels, conv.kernel_size, conv.stride, padding, size, batch, itemsize,
                              dtype, device)
    pool = EmittedOp("pool", (source,), signature, conv=conv)
    factor = conv.pool_factor()
    if factor is None:
        return pool, torch.ones(conv.out_channels, dtype=torch.float64)
    if bool(torch.allclose(factor, torch.ones_like(factor), rtol=0, atol=1e-12)):
        return pool, None
    return pool, factor


def emit(rewriter: Rewriter, emission: Emission, *, resolve: Callable[[Node], Node], path: str,
         dtype: torch.dtype, device: torch.device) -> Node | None:
    """Add ``emission``'s ops before its node; returns the node holding the value (None when kept).

    ``resolve`` maps a source node to the node that holds its value now (an earlier emission may
    have replaced it).
    """
    if emission.keeps:
        return None
    like = emission.node
    made: list[Node] = []

    def get(operand: Operand) -> Node:
        return made[operand] if isinstance(operand, int) else resolve(operand)

    def constant(tensor: torch.Tensor) -> torch.Tensor:
        return tensor.to(dtype).to(device)

    for op in emission.ops:
        inputs = [get(i) for i in op.inputs]
        if op.kind == "conv":
            made.append(rewriter.conv(inputs[0], op.conv, like=like, path=path, dtype=dtype, device=device))
        elif op.kind == "pad":
            made.append(_pad(rewriter, inputs[0], op, like))
        elif op.kind == "reshape" and op.replay is not None:
            made.append(rewriter.reshape_by_axes(inputs[0], op.replay, like=like))
        elif op.kind == "reshape":
            made.append(rewriter.reshape(inputs[0], op.shape, like=like))
        elif op.kind == "permute":
            made.append(rewriter.permute(inputs[0], op.shape, like=like))
        elif op.kind == "mean":
            made.append(rewriter.mean(inputs[0], op.shape, op.keepdim, like=like))
        elif op.kind == "pool":
            made.append(rewriter.avg_pool(inputs[0], op.conv.kernel_size, op.conv.stride, op.conv.symmetric_padding,
                                          like=like))
        elif op.kind == "scale":
            made.append(rewriter.mul(inputs[0], constant(op.scale), like=like, path=path))
        elif op.kind == "add":
            made.append(rewriter.add(inputs[0], inputs[1], like=like))
        elif op.kind == "shift":
            made.append(rewriter.add(inputs[0], constant(op.shift), like=like, path=path))
        else:
            raise ValueError(f"an emission cannot contain a {op.kind!r} op")
    return get(emission.result)


def _pad(rewriter: Rewriter, source: Node, op: EmittedOp, like: Node) -> Node:
    if op.mode == "constant":
        return rewriter.pad(source, op.pads, like=like)
    flat = [p for lo, hi in reversed(op.pads) for p in (lo, hi)]
    if rewriter.level == "module":
        node = rewriter.call("call_function", F.pad, (source, flat), {"mode": op.mode}, like=like)
    else:
        node = rewriter.call("call_function", torch.ops.aten.pad.default, (source, flat, op.mode), like=like)
    if op.reader:
        node.meta[READER_KEY] = op.reader
    return node


def dims_of(where) -> tuple[int | None, ...] | None:
    """The shape of a graph node or after a layout step."""
    return where.dims if hasattr(where, "kind") else node_dims(where)


def value_channels(value: AffineValue, source: Source) -> int:
    """Channels of ``source`` as ``value`` reads it."""
    conv = value.map_of(source)
    return conv.in_channels if conv is not None else value.channels


def _ordered(terms: Sequence[tuple[Source, ConvMap]]) -> list[tuple[Source, ConvMap]]:
    """Convs first (so the first one can carry the bias), identities and scales after."""
    return sorted(terms, key=lambda term: (term[1].is_identity or term[1].is_diagonal))


def _broadcastable(per_channel: torch.Tensor, value: AffineValue) -> torch.Tensor:
    if value.channel_dim == -1:
        return per_channel.reshape(-1)
    return per_channel.reshape(-1, *([1] * value.nd))


def _prod(values: Sequence[int]) -> int:
    result = 1
    for v in values:
        result *= int(v)
    return result
