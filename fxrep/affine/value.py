"""`AffineValue`: a tensor in the graph written as an affine function of earlier tensors.

    value = sum_k  M_k(source_k)  +  bias            (bias per channel, maps bias-free)

Each ``M_k`` is a `ConvMap` and each ``source_k`` a node that is materialised anyway (a region's
input or a tensor kept for other reasons). Every linear op updates the value: a BatchNorm scales
and shifts it, a conv composes with every map, an add merges the maps of equal sources, a
concatenation stacks them. When a value has one source the whole region is one conv.

Padding needs one more piece. A zero or constant pad on the value's grid gives a *ring* of border
positions whose values are fixed constants (per side, per channel) instead of what the maps would
produce there. ``BNAndPadLayer`` of Diverse Branch Block pads with zeros and then overwrites each
side with the BN bias; once every side holds exactly what the maps produce outside their grid (the
bias, when no tap reaches the input, see `fxrep.algebra.borders`), the ring is just a larger grid
and is folded into the maps' padding. A ring that never matches makes the value non-emittable and
the region keeps the pad op.

``channel_dim`` is 1 for channels-first tensors (conv, BatchNorm; ``nd`` spatial dims after it) and
-1 for Linear layers applied to the last dimension of a tensor of any rank (``nd`` is 0).

Layout ops (reshape, flatten, permute, transpose, ...; `fxrep.ops.Layout`) commute with a value whose
maps are all pointwise (1x1, stride 1, unpadded: they only mix channels) as long as the op keeps the
channel axis whole: ``L(M(s)) = M(L(s))``. `AffineValue.relayout` therefore moves the layout op onto
the sources: a `Source` remembers the `LayoutStep`s it is read through (re-emitted in front of the
conv or Linear that reads it), and the value's channel axis moves to where ``L`` puts it. A chain of
steps that brings a source back to its own shape (LeViT's ``flatten(0, 1)`` ... ``reshape_as``) is
dropped. This is how a BatchNorm1d on ``x.flatten(0, 1)`` folds into the Linear before it. A mean over
axes the maps do not read (`fxrep.ops.Mean`: global average pooling) is one more such step, so a
BatchNorm before the pooling of a classifier head folds into the head's Linear.

A *shape-only* value (``shape_only=True``, used while planning) composes its non-diagonal maps as
meta tensors (`fxrep.algebra.shape_only`): every exactness rule and every shape comes out the same as
for the real value, at no cost, while biases and border values stay real numbers.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import torch
from torch.fx import Node

from ..algebra import (
    ConvMap,
    NotExact,
    check_border,
    compose_kernels,
    diagonal_map,
    extend_padding,
    extension_is_constant,
    fold_into_outputs,
    identity_map,
    propagate_bias,
    regroup,
    shape_only,
    stack_maps,
    sum_maps,
)
from ..algebra.conv_map import Padding
from ..algebra.shape_only import empty_weight
from ..ops import Layout, Mean, dims

SizeOf = Callable[["Source"], "tuple[int, ...] | None"]


def size_for(size_of: SizeOf, source: Source, nd: int) -> tuple[int, ...] | None:
    """``size_of(source)`` when it describes ``nd`` spatial dims, else None (unknown)."""
    size = size_of(source)
    return size if size is not None and len(size) == nd else None

READER_KEY = "fxrep_padding_reader"
"""``node.meta[READER_KEY]`` on a re-emitted mode pad: the module or op it stands for (`Source.reader`)."""

FILL_RTOL = 1e-5
"""Relative tolerance when comparing a fill value with the bias it must equal (float32 rounding)."""


@dataclass(frozen=True)
class LayoutStep:
    """One reshape, permute or mean a source is read through, with the source's own channel count filled in."""

    kind: str
    """``reshape``, ``permute`` or ``mean``."""
    dims: tuple[int | None, ...]
    """The shape after the step (None: a dynamic size)."""
    permutation: tuple[int, ...] = ()
    axes: tuple[int, ...] = ()
    """``mean``: the averaged axes (of the step's input)."""
    keepdim: bool = False
    replay: tuple | None = None
    """``reshape``: the same reshape by axes alone, valid for any size (`fxrep.ops.Layout.replay`)."""


@dataclass(frozen=True)
class Source:
    """A materialised tensor read by a term: through layout steps, then padded with a non-zero mode."""

    node: Node
    padding_mode: str = "zeros"
    padding: Padding = ()
    reader: str = ""
    """The op (module path or node name) that pads with ``padding_mode``, for messages."""
    layout: tuple[LayoutStep, ...] = ()

    def describe(self) -> str:
        through = f"{self.node.name} through {len(self.layout)} layout op(s)" if self.layout else self.node.name
        if self.padding_mode == "zeros":
            return f"{through} with zero padding"
        return f"{self.reader or 'a branch'} reads {through} with {self.padding_mode} padding"

    def dims(self) -> tuple[int | None, ...] | None:
        """The shape the term reads (after the layout steps, before padding); None when unknown."""
        return self.layout[-1].dims if self.layout else dims(self.node)

    def through(self, step: LayoutStep) -> Source:
        """This source read through one more layout step (a chain back to the source's own shape is dropped).

        A source read through a reflect / replicate / circular pad takes no further step: the step
        would act on the padded tensor, but a `Source` applies its layout before its padding.
        """
        if self.padding_mode != "zeros":
            raise NotExact(f"a layout op after {self.reader or 'a branch'}'s {self.padding_mode} padding of "
                           f"{self.node.name} cannot move onto {self.node.name}")
        layout = (*self.layout, step)
        if all(s.kind == "reshape" for s in layout) and _same_dims(step.dims, dims(self.node)):
            layout = ()
        elif all(s.kind == "permute" for s in layout) and _composed(layout) == tuple(range(len(step.permutation))):
            layout = ()
        return replace(self, layout=layout)


@dataclass(frozen=True, eq=False)
class Ring:
    """Border positions around the grid: widths per spatial axis, one constant per side and channel."""

    widths: Padding
    values: tuple[torch.Tensor, ...]  # axis 0 low, axis 0 high, axis 1 low, ...; each of shape (C,)
    origin: Node | None = None
    """The tensor that was padded; cutting there leaves a pad of a plain tensor, which always folds."""

    def map_values(self, function: Callable[[torch.Tensor], torch.Tensor]) -> Ring:
        return Ring(self.widths, tuple(function(v) for v in self.values), self.origin)


@dataclass(frozen=True, eq=False)
class AffineValue:
    """``sum_k terms[k].map(terms[k].source) + bias`` (see the module docstring)."""

    terms: tuple[tuple[Source, ConvMap], ...]
    bias: torch.Tensor
    nd: int
    channel_dim: int = 1
    ring: Ring | None = None
    rules: Counter = field(default_factory=Counter)
    shape_only: bool = False

    # ------------------------------------------------------------------ construction
    @classmethod
    def of_source(cls, source: Source | Node, channels: int, nd: int, channel_dim: int = 1, *,
                  shape_only: bool = False) -> AffineValue:
        """The identity on ``source`` (shape-only: composed maps will carry shapes, not numbers)."""
        if isinstance(source, Node):
            source = Source(source)
        return cls(((source, identity_map(channels, nd)),), torch.zeros(channels, dtype=torch.float64), nd,
                   channel_dim, shape_only=shape_only)

    def factored(self) -> tuple[AffineValue, ConvMap, torch.Tensor] | None:
        """``value = D * core + bias`` for a scaled average pool of one tensor: (core, D as a map, bias).

        The core is the plain pool (factor 1), which runs as one pool op; ``D`` (per-channel, a diagonal
        map) and the bias are left to the readers to fold (a planner's *residual* materialisation).
        None when the value is not one scaled pool.
        """
        if self.ring is not None or len(self.terms) != 1:
            return None
        source, conv = self.terms[0]
        if not conv.uniform or conv.is_diagonal or conv.groups != conv.in_channels or conv.in_channels != conv.out_channels:
            return None
        taps = math.prod(conv.kernel_size)
        unit = ConvMap(torch.full(tuple(conv.weight.shape), 1.0 / taps, dtype=torch.float64), None, conv.stride,
                       conv.padding, conv.dilation, conv.groups, uniform=True)
        factor = conv.pool_factor()
        scale = diagonal_map(factor if factor is not None else torch.ones(self.channels, dtype=torch.float64),
                             None, self.nd)
        if factor is None:
            scale = shape_only(scale)  # unknown per-channel factors: never taken for the identity
        core = AffineValue(((source, unit),), torch.zeros_like(self.bias), self.nd, self.channel_dim, None,
                           self.rules, self.shape_only)
        return core, scale, self.bias

    def read_through(self, node: Node, scale: ConvMap, bias: torch.Tensor) -> AffineValue:
        """``scale(node) + bias``: how readers see a tensor holding this value's factored core."""
        return AffineValue(((Source(node), scale),), bias, self.nd, self.channel_dim, None, Counter(), self.shape_only)

    def channel_axis(self, rank: int) -> int:
        """The channel axis of a rank-``rank`` tensor holding this value."""
        return 1 if self.channel_dim == 1 else rank - 1

    def as_source(self, node: Node) -> AffineValue:
        """The identity on ``node``, a tensor holding this value (same layout)."""
        return AffineValue.of_source(node, self.channels, self.nd, self.channel_dim, shape_only=self.shape_only)

    @property
    def channels(self) -> int:
        return self.bias.numel()

    @property
    def sources(self) -> tuple[Source, ...]:
        return tuple(source for source, _ in self.terms)

    def map_of(self, source: Source) -> ConvMap | None:
        return next((m for s, m in self.terms if s == source), None)

    def rename_sources(self, mapping: dict[Node, Node]) -> AffineValue:
        """The same value reading ``mapping[node]`` wherever it read ``node``."""
        terms = tuple((replace(s, node=mapping.get(s.node, s.node)), m) for s, m in self.terms)
        return replace(self, terms=terms)

    @property
    def is_bare_source(self) -> bool:
        """The identity on one source: nothing has been applied yet."""
        return (len(self.terms) == 1 and self.terms[0][1].is_identity and self.ring is None
                and not bool(self.bias.ne(0).any()))

    def with_rule(self, rule: str) -> AffineValue:
        rules = Counter(self.rules)
        rules[rule] += 1
        return replace(self, rules=rules)

    # ------------------------------------------------------------------ pointwise affine ops
    def scale(self, factor: torch.Tensor) -> AffineValue:
        """``factor * value`` for a scalar or per-channel ``factor`` (shape () or (C,))."""
        factor = factor.to(torch.float64)
        self._check_per_channel(factor, "scale")
        per_channel = factor.expand(self.channels)

        def scaled(m: ConvMap) -> ConvMap:
            return m if m.weight.is_meta else replace(m, weight=fold_into_outputs(m.weight, None, per_channel, None)[0])

        terms = tuple((s, scaled(m)) for s, m in self.terms)
        ring = None if self.ring is None else self.ring.map_values(lambda v: v * per_channel)
        return replace(self, terms=terms, bias=self.bias * per_channel, ring=ring)

    def shift(self, offset: torch.Tensor) -> AffineValue:
        """``value + offset`` for a scalar or per-channel constant."""
        self._check_per_channel(offset, "shift")
        offset = offset.to(torch.float64).expand(self.channels)
        ring = None if self.ring is None else self.ring.map_values(lambda v: v + offset)
        return replace(self, bias=self.bias + offset, ring=ring)

    def _check_per_channel(self, constant: torch.Tensor, what: str) -> None:
        if constant.numel() not in (1, self.channels):
            raise NotExact(f"a per-channel {what} of {constant.numel()} values does not match the "
                           f"{self.channels} channels of the value it applies to")

    # ------------------------------------------------------------------ combining values
    def add(self, other: AffineValue, size_of: SizeOf, alpha: float = 1.0) -> AffineValue:
        """``self + alpha * other``; maps of the same source are merged into one (`sum_maps`)."""
        if other.channel_dim != self.channel_dim or other.nd != self.nd:
            raise NotExact("the summed tensors have different layouts")
        if other.channels != self.channels:
            raise NotExact(f"the summed tensors have {self.channels} and {other.channels} channels")
        if alpha != 1:
            other = other.scale(torch.tensor(float(alpha)))
        left, right = _common_ring(self, other, size_of)
        terms = list(left.terms)
        for source, conv in right.terms:
            index = next((i for i, (s, _) in enumerate(terms) if s == source), None)
            if index is None:
                terms.append((source, conv))
            else:
                terms[index] = (source, sum_maps([terms[index][1], conv], size_for(size_of, source, self.nd)))
        terms = _center_taps_into_padded(terms, size_of, self.nd)
        ring = None
        if left.ring is not None:
            ring = Ring(left.ring.widths, tuple(a + b for a, b in zip(left.ring.values, right.ring.values,
                                                                         strict=True)), left.ring.origin)
        return AffineValue(tuple(terms), left.bias + right.bias, self.nd, self.channel_dim, ring,
                           self.rules + other.rules, self.shape_only or other.shape_only)

    def then(self, conv: ConvMap, size_of: SizeOf) -> AffineValue:
        """``conv(value)``: compose ``conv`` after every map; exact only if its padding reads what we produce."""
        if conv.nd != self.nd:
            raise NotExact(f"a {conv.nd}-d op cannot follow a {self.nd}-d tensor")
        if conv.in_channels != self.channels:
            raise ValueError(f"op reads {conv.in_channels} channels, value has {self.channels}")
        value = self.resolve_ring(size_of)
        for source, inner in value.terms:
            check_border(conv, inner, None, size_for(size_of, source, self.nd))
        if conv.has_padding and bool(value.bias.ne(0).any()):
            channel = int(torch.nonzero(value.bias)[0])
            raise NotExact(
                f"the op zero-pads (padding {conv.padding}) a tensor whose border value is its bias "
                f"({float(value.bias[channel]):.4g} on channel {channel}), not 0"
            )
        outer = conv.without_bias()
        if self.shape_only and not outer.is_diagonal:
            outer = shape_only(outer)
        terms = tuple((s, compose_kernels(outer, m)) for s, m in value.terms)
        bias = propagate_bias(conv, value.bias)  # the op's real weights: biases stay numbers
        return AffineValue(terms, bias, self.nd, self.channel_dim, None, self.rules, self.shape_only)

    def relayout(self, layout: Layout | Mean) -> AffineValue:
        """The value after ``layout`` (a reshape, permute or mean), moved onto the sources (module docstring)."""
        if self.ring is not None:
            raise NotExact(f"{layout.node.name} reshapes a tensor with a padded border")
        if not all(_pointwise(conv) for _, conv in self.terms):
            raise NotExact(f"{layout.node.name} moves axes that a conv or pool before it reads (its kernel spans "
                           "them), so the two do not commute")
        channel = layout.channel_after(self.channel_axis(len(layout.in_dims)))
        if channel is None:
            raise NotExact(f"{layout.node.name} splits the channel axis or merges it with another axis, so a "
                           "per-channel affine on one side is not per-channel on the other")
        rank = len(layout.out_dims)
        if channel == 1:
            channel_dim, nd = 1, rank - 2
        elif channel == rank - 1:
            channel_dim, nd = -1, 0
        else:
            raise NotExact(f"after {layout.node.name} the channels are on axis {channel} of {rank}, neither right "
                           "after the batch nor last, where a conv or Linear could read them")
        terms = []
        for source, conv in self.terms:
            step_dims = list(layout.out_dims)
            step_dims[channel] = conv.in_channels
            if isinstance(layout, Mean):
                step = LayoutStep("mean", tuple(step_dims), axes=layout.axes, keepdim=layout.keepdim)
            else:
                step = LayoutStep(layout.kind, tuple(step_dims), layout.permutation, replay=layout.replay)
            terms.append((source.through(step), _as_pointwise(conv, nd)))
        return AffineValue(tuple(terms), self.bias, nd, channel_dim, None, self.rules, self.shape_only)

    @staticmethod
    def concatenate(values: Sequence[AffineValue], size_of: SizeOf) -> AffineValue:
        """Concatenation along the channel dim: maps of each source stack along output channels."""
        if len(values) == 1:
            return values[0]  # a concatenation of one tensor is that tensor
        first = values[0]
        if any(v.channel_dim != first.channel_dim or v.nd != first.nd for v in values):
            raise NotExact("the concatenated tensors have different layouts")
        rings = [v.ring for v in values]
        if any(r is not None for r in rings):
            if any(r is None or r.widths != rings[0].widths for r in rings):
                raise NotExact("the concatenated tensors have different padded borders")
        sources: list[Source] = []
        for value in values:
            sources.extend(s for s in value.sources if s not in sources)
        terms = []
        planning = any(v.shape_only for v in values)
        total = sum(v.channels for v in values)
        for source in sources:
            if planning:
                # shape-only: the zero blocks of values that do not read `source` change no geometry
                present = [regroup(shape_only(v.map_of(source)), 1) for v in values if v.map_of(source) is not None]
                stacked = stack_maps(present, size_for(size_of, source, first.nd))
                terms.append((source, replace(stacked, weight=empty_weight((total, *stacked.weight.shape[1:])))))
                continue
            template = regroup(next(v.map_of(source) for v in values if v.map_of(source) is not None), 1)
            parts = []
            for value in values:
                conv = value.map_of(source)
                if conv is None:
                    zeros = template.weight.new_zeros(value.channels, *template.weight.shape[1:])
                    conv = replace(template, weight=zeros, bias=None)
                parts.append(conv)
            terms.append((source, stack_maps(parts, size_for(size_of, source, first.nd))))
        ring = None
        if rings[0] is not None:
            sides = len(rings[0].values)
            ring = Ring(rings[0].widths, tuple(torch.cat([r.values[i] for r in rings]) for i in range(sides)),
                        rings[0].origin)
        rules = sum((v.rules for v in values), Counter())
        return AffineValue(tuple(terms), torch.cat([v.bias for v in values]), first.nd, first.channel_dim, ring,
                           rules, any(v.shape_only for v in values))

    # ------------------------------------------------------------------ padding and border fills
    def pad(self, widths: Padding, value: float, size_of: SizeOf, origin: Node | None = None) -> AffineValue:
        """Constant-pad the spatial grid by ``widths`` (per-axis (low, high)) with ``value``.

        ``origin`` is the padded node, remembered so a caller can cut there when the ring never folds.
        """
        if any(lo < 0 or hi < 0 for lo, hi in widths):
            raise NotExact(f"negative padding {widths} crops the tensor")
        fill = torch.full((self.channels,), float(value), dtype=torch.float64)
        if self.ring is None:
            ring = Ring(widths, (fill,) * (2 * self.nd), origin)
        else:
            if not all(_close(v, fill) for v in self.ring.values):
                raise NotExact("padding again around a border of different constant values")
            ring = Ring(tuple((a + c, b + d) for (a, b), (c, d) in zip(self.ring.widths, widths, strict=True)),
                        self.ring.values, self.ring.origin)
        return replace(self, ring=ring).resolve_ring(size_of, required=False)

    def fill(self, axis: int, start: int, end: int, grid_size: int, values: torch.Tensor,
             size_of: SizeOf) -> AffineValue:
        """Overwrite positions ``[start, end)`` of spatial ``axis`` with per-channel ``values``.

        Exact as a ring update only when the slice is exactly one side of the ring.
        """
        if self.ring is None:
            raise NotExact("a slice of the tensor is overwritten with constants, which is not a conv")
        low, high = self.ring.widths[axis]
        if (start, end) == (0, low) and low > 0:
            side = 2 * axis
        elif (start, end) == (grid_size - high, grid_size) and high > 0:
            side = 2 * axis + 1
        else:
            raise NotExact(f"overwritten slice [{start}:{end}] on axis {axis} is not a padded border "
                           f"(border widths {self.ring.widths[axis]})")
        sides = list(self.ring.values)
        sides[side] = values.to(torch.float64)
        ring = Ring(self.ring.widths, tuple(sides), self.ring.origin)
        return replace(self, ring=ring).resolve_ring(size_of, required=False)

    def resolve_ring(self, size_of: SizeOf, required: bool = True) -> AffineValue:
        """Fold the ring into the maps' padding when it holds what the maps produce there."""
        ring = self.ring
        if ring is None:
            return self
        mismatch = next((v for v in ring.values if not _close(v, self.bias)), None)
        geometry_ok = all(extension_is_constant(m, ring.widths, size_for(size_of, s, self.nd)) for s, m in self.terms)
        if mismatch is None and geometry_ok:
            terms = tuple((s, extend_padding(m, ring.widths)) for s, m in self.terms)
            return replace(self, terms=terms, ring=None)
        if not required:
            return self
        if not geometry_ok:
            raise NotExact("the padded border sits next to outputs that read the input, so it cannot become "
                           "conv padding")
        channel = int(torch.nonzero(~_close_mask(mismatch, self.bias))[0])
        raise NotExact(
            f"the border is padded with {float(mismatch[channel]):.4g} on channel {channel} but the branch "
            f"produces {float(self.bias[channel]):.4g} there (its bias); only padding with the bias is exact"
        )


def _center_taps_into_padded(terms: list[tuple[Source, ConvMap]], size_of: SizeOf, nd: int
                             ) -> list[tuple[Source, ConvMap]]:
    """Merge a pointwise term on ``x`` into a term on ``x`` padded with reflect / replicate / circular.

    A 1x1 map (identity, per-channel scale) reads only positions inside ``x``, which the padded tensor
    holds unchanged at an offset of the low padding: on the padded tensor it is the same 1x1 weight at
    that tap, a map with negative padding (a crop), and `sum_maps` places it in the padded kernel
    exactly. Anything wider would read the border, where the padding modes differ: left apart.
    """
    for plain_index, (plain, map_) in enumerate(terms):
        if plain.padding_mode != "zeros" or not _pointwise(map_):
            continue
        for padded_index, (padded, padded_map) in enumerate(terms):
            if padded.padding_mode == "zeros" or padded.node is not plain.node or padded.layout != plain.layout:
                continue
            crop = ConvMap(map_.weight, None, map_.stride, tuple((-lo, -hi) for lo, hi in padded.padding),
                           map_.dilation, map_.groups)
            try:
                merged = sum_maps([padded_map, crop], size_for(size_of, padded, nd))
            except NotExact:
                continue
            terms = [t for i, t in enumerate(terms) if i != plain_index]
            terms[padded_index - (padded_index > plain_index)] = (padded, merged)
            return _center_taps_into_padded(terms, size_of, nd)
    return terms


def _pointwise(conv: ConvMap) -> bool:
    """Mixes channels only: every kernel size 1, stride 1, no padding."""
    return (all(k == 1 for k in conv.kernel_size) and all(s == 1 for s in conv.stride) and not conv.has_padding)


def _as_pointwise(conv: ConvMap, nd: int) -> ConvMap:
    """A pointwise map with ``nd`` spatial axes (a 0-d map is a Linear)."""
    weight = conv.weight.reshape(*conv.weight.shape[:2], *([1] * nd))
    return ConvMap(weight, conv.bias, (1,) * nd, ((0, 0),) * nd, (1,) * nd, conv.groups)


def _same_dims(a, b) -> bool:
    """Equal shapes; one dynamic size (None) in the same place is equal too (the element counts agree)."""
    if b is None or len(a) != len(b) or sum(x is None for x in a) > 1:
        return False
    return all(x == y for x, y in zip(a, b, strict=True))


def _composed(layout: Sequence[LayoutStep]) -> tuple[int, ...]:
    """The permutation a chain of permute steps applies (output axis i holds input axis result[i])."""
    order = tuple(range(len(layout[0].permutation)))
    for step in layout:
        order = tuple(order[i] for i in step.permutation)
    return order


def _close_mask(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a - b).abs() <= FILL_RTOL * (1.0 + b.abs())


def _close(a: torch.Tensor, b: torch.Tensor) -> bool:
    return bool(_close_mask(a, b).all())


def _common_ring(a: AffineValue, b: AffineValue, size_of: SizeOf) -> tuple[AffineValue, AffineValue]:
    """Bring two summands to the same ring (both None, or equal widths)."""
    if a.ring is None and b.ring is None:
        return a, b
    if a.ring is not None and b.ring is not None and a.ring.widths == b.ring.widths:
        return a, b
    return a.resolve_ring(size_of), b.resolve_ring(size_of)
