"""What materialising one value emits: the ops, their cost and their count, from one description.

A planned region materialises some of its nodes. For each, `materialize` decides what the graph
will hold, as an `Emission`: an ordered list of `EmittedOp`s. Emitting (`emit`), costing
(`Emission.seconds`) and counting (`Emission.op_count`) all read that list, so the three can never
disagree.

``value = sum_k M_k(source_k) + bias`` becomes:

- a source read with a non-zero padding mode (reflect, replicate, circular) gets one ``pad`` op;
- an identity map emits nothing (the source itself);
- a diagonal map (per-channel scale) emits one ``scale`` (multiply), or one ``affine`` (addcmul)
  when it carries the bias of a value without convs;
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
    node_signature,
)
from ..rewriter import Rewriter
from .shapes import GraphShapes
from .value import AffineValue, Source, size_for

Operand = Node | int
"""A graph node (a source of the value) or the index of an earlier op of the same emission."""


@dataclass(frozen=True, eq=False)
class EmittedOp:
    """One op an emission adds to the graph (``keep``: the original node, left as it is)."""

    kind: str
    """``keep``, ``pad``, ``conv``, ``scale``, ``affine``, ``add`` or ``shift``."""
    inputs: tuple[Operand, ...]
    signature: OpSignature
    conv: ConvMap | None = None
    scale: torch.Tensor | None = None
    """Broadcastable per-channel factor (``scale``, ``affine``)."""
    shift: torch.Tensor | None = None
    """Broadcastable per-channel offset (``affine``, ``shift``)."""
    pads: Padding = ()
    mode: str = "constant"

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
                reason: str = "") -> Emission:
    """What materialising ``node`` emits; raises `NotExact` when it cannot be materialised here.

    ``value`` is None when the node's op cannot take its inputs' values (``reason`` says why);
    ``inputs_materialized`` says whether every input of the node's op is a tensor of its own (then
    the original node can stay).
    """
    if value is None:
        if inputs_materialized:
            return kept(node, reason)
        raise NotExact(reason)
    if not value.rules and inputs_materialized:
        return kept(node)
    try:
        return _lower(node, value, shapes)
    except NotExact as why:
        if inputs_materialized:
            return kept(node, str(why))
        raise


def _lower(node: Node, value: AffineValue, shapes: GraphShapes) -> Emission:
    if value.ring is not None:
        raise NotExact("the value still has a padded border that no conv padding reproduces")
    if not value.terms:
        raise NotExact("the value does not depend on any tensor")
    batch, itemsize = shapes.batch_and_itemsize(node)
    out_numel = shapes.numel(node) or batch * value.channels * NOMINAL_SPATIAL ** value.nd
    ops: list[EmittedOp] = []
    padded: dict[Source, int] = {}

    def elementwise(kind: str, operands: int = 1) -> OpSignature:
        return ElementwiseSignature(kind, out_numel, operands, itemsize)

    def operand(source: Source) -> Operand:
        if source.padding_mode == "zeros":
            return source.node
        if source not in padded:
            size = size_for(shapes.recorded_size, source, value.nd) or (NOMINAL_SPATIAL,) * value.nd
            count = batch * value_channels(value, source) * _prod(size)
            ops.append(EmittedOp("pad", (source.node,), ElementwiseSignature("pad", count, 1, itemsize),
                                 pads=source.padding, mode=source.padding_mode))
            padded[source] = len(ops) - 1
        return padded[source]

    bias = value.bias if bool(value.bias.ne(0).any()) else None
    has_conv = any(not (m.is_identity or m.is_diagonal) for _, m in value.terms)
    parts: list[Operand] = []
    for source, conv in _ordered(value.terms):
        source_operand = operand(source)
        if conv.is_identity:
            parts.append(source_operand)
            continue
        if conv.is_diagonal:
            scale = _broadcastable(conv.weight.reshape(-1), value)
            if bias is not None and not has_conv:
                ops.append(EmittedOp("affine", (source_operand,), elementwise("addcmul"), scale=scale,
                                     shift=_broadcastable(bias, value)))
                bias = None
            else:
                ops.append(EmittedOp("scale", (source_operand,), elementwise("mul"), scale=scale))
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
            count = batch * conv.in_channels * _prod(in_size)
            ops.append(EmittedOp("pad", (source_operand,), ElementwiseSignature("pad", count, 1, itemsize),
                                 pads=extra))
            source_operand = len(ops) - 1
            conv = replace(conv, padding=tuple((c, c) for c in common))
        rows = batch if conv.nd else max(1, out_numel // max(1, value.channels))
        ops.append(EmittedOp("conv", (source_operand,), ConvSignature.of(conv, in_size, rows, itemsize), conv=conv))
        parts.append(len(ops) - 1)
    result = parts[0]
    for part in parts[1:]:
        ops.append(EmittedOp("add", (result, part), elementwise("add", 2)))
        result = len(ops) - 1
    if bias is not None:
        ops.append(EmittedOp("shift", (result,), elementwise("add"), shift=_broadcastable(bias, value)))
        result = len(ops) - 1
    return Emission(node, tuple(ops), result, value, Counter(value.rules))


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
        elif op.kind == "scale":
            made.append(rewriter.mul(inputs[0], constant(op.scale), like=like, path=path))
        elif op.kind == "affine":
            made.append(rewriter.addcmul(constant(op.shift), inputs[0], constant(op.scale), like=like, path=path))
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
        return rewriter.call("call_function", F.pad, (source, flat), {"mode": op.mode}, like=like)
    return rewriter.call("call_function", torch.ops.aten.pad.default, (source, flat, op.mode), like=like)


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
