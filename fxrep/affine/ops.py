"""Affine ops: what each recognised node does to an `AffineValue`.

``affine_op(node)`` classifies a node with a `Match` (`fxrep.match`):

- ``Match.ok(AffineOp)`` when the node is affine in its activation inputs (conv or Linear with
  constant parameters, BatchNorm with running statistics, add/sub of tensors, multiply/divide/add by
  a scalar or per-channel constant, constant pad, average pool, channel concatenation, border fill,
  identity);
- ``Match.fail(reason)`` when the op is recognised but is not affine here (a BatchNorm using batch
  statistics, a transposed conv, a reflect pad, a concatenation along a spatial axis, ...);
- ``Match.none()`` for everything else (non-linearities, unknown ops): no candidate, no reason.

``AffineOp.apply(values, size_of)`` computes the node's value from its inputs' values and raises
`NotExact` when the algebra cannot represent the result exactly. ``rule`` names the rewrite for the
report. ``input_layout(i)`` says how to read input ``i`` as a fresh source (channels, spatial dims,
channel dim) when it is not itself part of the value.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch
from torch import nn
from torch.fx import Node

from ..algebra import ConvMap, NotExact, avgpool_map
from ..match import Match, attempt
from ..ops import (
    AdaptiveAvgPool,
    Arithmetic,
    AvgPool,
    BatchNorm,
    BorderFill,
    Cat,
    Conv,
    Linear,
    Mean,
    NoOp,
    Pad,
    dims,
    dtype_of,
    rank,
    tensor_constant,
    view_of,
)
from ..ops import Layout as LayoutView  # the op view; TensorLayout below is (channels, nd, channel dim)
from ..pass_base import module_path_of
from .value import READER_KEY, AffineValue, SizeOf, Source, size_for

TensorLayout = tuple[int | None, int | None, int]  # channels, spatial dims, channel dim


@dataclass(frozen=True, eq=False)
class AffineOp:
    """Base: ``node`` computes an affine function of ``inputs``."""

    node: Node
    inputs: tuple[Node, ...]
    rule: str

    @property
    def absorbed(self) -> tuple[Node, ...]:
        """Other nodes that are part of this op (a tuple-returning BatchNorm behind its getitem)."""
        return ()

    def input_layout(self, index: int, siblings: Sequence[AffineValue] = ()) -> TensorLayout:
        """How to read input ``index`` as a fresh source; ``siblings`` are other inputs' known values."""
        return _layout_from_meta(self.inputs[index])

    def apply(self, values: Sequence[AffineValue], size_of: SizeOf) -> AffineValue:
        raise NotImplementedError


@dataclass(frozen=True, eq=False)
class ConvOp(AffineOp):
    conv: ConvMap
    view: Conv

    def input_layout(self, index: int, siblings: Sequence[AffineValue] = ()) -> TensorLayout:
        return self.conv.in_channels, self.conv.nd, 1

    def apply(self, values, size_of):
        (value,) = values
        if self.view.padding_mode != "zeros" and self.view.module is not None and self.conv.has_padding:
            value = _special_padding_source(value, self.view)
            conv = replace(self.conv, padding=((0, 0),) * self.conv.nd)
            return value.then(conv, size_of)
        return _with_rule(value.then(self.conv, size_of), value, self.rule)


@dataclass(frozen=True, eq=False)
class BatchNormOp(AffineOp):
    """An inference BatchNorm, ``a * x + c`` per channel (`fxrep.algebra.batchnorm_affine`).

    Applied to a value it scales the output channels of every map in it and shifts its bias
    (`AffineValue.scale` / `shift`, i.e. `fxrep.algebra.fold_into_outputs`), the same algebra as the
    `FoldBatchNorm` pass, so both fire the one rule ``fold_batchnorm``.
    """

    scale: torch.Tensor
    shift: torch.Tensor
    view: BatchNorm

    @property
    def absorbed(self) -> tuple[Node, ...]:
        return () if self.view.call is self.node else (self.view.call,)

    def input_layout(self, index: int, siblings: Sequence[AffineValue] = ()) -> TensorLayout:
        _, nd, _ = _layout_from_meta(self.inputs[0])
        if nd is None and self.view.module is not None:
            nd = {nn.BatchNorm2d: 2, nn.BatchNorm3d: 3}.get(type(self.view.module))
        return self.scale.numel(), nd, 1

    def apply(self, values, size_of):
        (value,) = values
        if value.channel_dim != 1:
            # BatchNorm normalises dim 1; a Linear on the last dim of an (N, C, ...) tensor mixed another axis
            raise NotExact("a BatchNorm normalises dim 1 of a value whose features are on its last dim")
        return _with_rule(value.scale(self.scale).shift(self.shift), value, self.rule)


@dataclass(frozen=True, eq=False)
class LinearLayerOp(AffineOp):
    linear: ConvMap

    def input_layout(self, index: int, siblings: Sequence[AffineValue] = ()) -> TensorLayout:
        return self.linear.in_channels, 0, 1 if rank(self.inputs[0]) == 2 else -1

    def apply(self, values, size_of):
        (value,) = values
        if value.nd != 0:
            raise NotExact("a Linear layer reads a tensor with spatial dims as features")
        return _with_rule(value.then(self.linear, size_of), value, self.rule)


@dataclass(frozen=True, eq=False)
class PointwiseOp(AffineOp):
    """``value * scale + shift`` with scalar or per-channel constants (mul, div, neg, add/sub const)."""

    scale: torch.Tensor | None
    shift: torch.Tensor | None
    constant: torch.Tensor | None  # the raw operand, shaped as in the graph, for the layout check

    def input_layout(self, index: int, siblings: Sequence[AffineValue] = ()) -> TensorLayout:
        """A tensor scaled by a vector along its last dim is read as tokens (channels last), else as NC..."""
        shape = dims(self.inputs[0])
        if self.constant is not None and shape is not None and len(shape) >= 3 and self.constant.dim() >= 1:
            const = tuple(self.constant.shape)
            if const[-1] == shape[-1] != 1 and all(d == 1 for d in const[:-1]):
                return shape[-1], 0, -1
        return _layout_from_meta(self.inputs[0])

    def apply(self, values, size_of):
        (value,) = values
        if self.constant is not None:
            _check_per_channel(self.constant, value)
        before = value
        if self.scale is not None:
            value = value.scale(_per_channel(self.scale))
        if self.shift is not None:
            value = value.shift(_per_channel(self.shift))
        return _with_rule(value, before, self.rule)


@dataclass(frozen=True, eq=False)
class SumOp(AffineOp):
    """``lhs + alpha * rhs`` of two tensors."""

    alpha: float

    def input_layout(self, index: int, siblings: Sequence[AffineValue] = ()) -> TensorLayout:
        """A tensor added to a known value of the same shape is laid out like it (tokens or channels-first)."""
        if siblings and dims(self.inputs[0]) == dims(self.inputs[1]):
            return siblings[0].channels, siblings[0].nd, siblings[0].channel_dim
        return _layout_from_meta(self.inputs[index])

    def apply(self, values, size_of):
        lhs, rhs = values
        result = lhs.add(rhs, size_of, self.alpha)
        merged = set(lhs.sources) & set(rhs.sources)
        if not merged:
            return result
        identity = any((v.map_of(s) is not None and v.map_of(s).is_identity) for s in merged for v in (lhs, rhs))
        return result.with_rule("fold_residual" if identity else self.rule)


@dataclass(frozen=True, eq=False)
class PadOp(AffineOp):
    widths: tuple[tuple[int, int], ...]  # trailing dims, as in the Pad view
    value: float

    def apply(self, values, size_of):
        (value,) = values
        if value.channel_dim != 1 or len(self.widths) > value.nd:
            raise NotExact("the pad reaches into the channel or batch dimension")
        widths = ((0, 0),) * (value.nd - len(self.widths)) + self.widths
        return _with_rule(value.pad(widths, self.value, size_of, origin=self.inputs[0]), value, self.rule)


@dataclass(frozen=True, eq=False)
class ModePadOp(AffineOp):
    """A reflect / replicate / circular pad of a tensor: the tensor, read through that padding.

    Only a tensor of its own can be read so (the padding copies its values, not a conv's); the convs
    that read the pad then carry the padded source, as a conv module with ``padding_mode`` does.
    """

    widths: tuple[tuple[int, int], ...]  # trailing dims, as in the Pad view
    mode: str

    def apply(self, values, size_of):
        (value,) = values
        if value.channel_dim != 1 or len(self.widths) > value.nd:
            raise NotExact("the pad reaches into the channel or batch dimension")
        if len(value.terms) != 1 or value.ring is not None or bool(value.bias.ne(0).any()):
            raise NotExact(f"{self.node.name} pads a computed tensor with mode {self.mode!r}")
        source, conv = value.terms[0]
        if source.padding_mode != "zeros" or source.padding or not conv.is_identity:
            raise NotExact(f"{self.node.name} pads a computed tensor with mode {self.mode!r}")
        widths = ((0, 0),) * (value.nd - len(self.widths)) + self.widths
        reader = self.node.meta.get(READER_KEY) or module_path_of(self.node) or self.node.name
        padded = replace(source, padding_mode=self.mode, padding=widths, reader=reader)
        return AffineValue.of_source(padded, value.channels, value.nd, value.channel_dim,
                                     shape_only=value.shape_only)


@dataclass(frozen=True, eq=False)
class AvgPoolOp(AffineOp):
    view: AvgPool

    def input_layout(self, index: int, siblings: Sequence[AffineValue] = ()) -> TensorLayout:
        channels, _, _ = _layout_from_meta(self.inputs[0])
        return channels, len(self.view.kernel_size), 1

    def apply(self, values, size_of):
        (value,) = values
        in_size = size_for(size_of, Source(self.inputs[0]), value.nd)  # static only where shapes are guarded
        pool = self.view.conv_map(value.channels, in_size)
        return _with_rule(value.then(pool, size_of), value, self.rule)


@dataclass(frozen=True, eq=False)
class AdaptivePoolOp(AffineOp):
    """An adaptive average pool that is an ordinary one at the guarded input size (kernel = stride)."""

    view: AdaptiveAvgPool

    def input_layout(self, index: int, siblings: Sequence[AffineValue] = ()) -> TensorLayout:
        channels, _, _ = _layout_from_meta(self.inputs[0])
        return channels, len(self.view.output_size), 1

    def apply(self, values, size_of):
        (value,) = values
        kernel = self.view.kernel_for(size_for(size_of, Source(self.inputs[0]), value.nd))
        if kernel is None:
            raise NotExact(f"{self.node.name} pools adaptively over a size that is not a static multiple of "
                           f"{self.view.output_size}")
        pool = avgpool_map(value.channels, kernel, kernel, (0,) * len(kernel))
        return _with_rule(value.then(pool, size_of), value, self.rule)


@dataclass(frozen=True, eq=False)
class CatOp(AffineOp):
    dim: int
    rank: int | None

    def apply(self, values, size_of):
        channel_dim = values[0].channel_dim
        along_channels = self.dim == 1 if channel_dim == 1 else self.rank is not None and self.dim == self.rank - 1
        if not along_channels:
            raise NotExact(f"{self.node.name} concatenates along dim {self.dim}, not along channels")
        result = AffineValue.concatenate(values, size_of)
        sources = [v.sources[0] for v in values if v.is_bare_source]
        if len(sources) == len(values) and len(set(sources)) == len(sources):
            return result  # distinct tensors side by side: nothing folds
        return result.with_rule(self.rule)


@dataclass(frozen=True, eq=False)
class FillOp(AffineOp):
    view: BorderFill

    @property
    def absorbed(self) -> tuple[Node, ...]:
        return self.view.parts

    def apply(self, values, size_of):
        (value,) = values
        shape = dims(self.node)
        if shape is None or value.channel_dim != 1 or len(shape) < 2 or shape[1] is None:
            raise NotExact("the filled tensor's shape is unknown")
        axis = self.view.dim - 2
        if axis < 0:
            raise NotExact("the fill overwrites a slice along the batch or channel dimension")
        per_channel = _constant_per_channel(self.view.value, shape, self.view.dim, self.view.start, self.view.end)
        return value.fill(axis, self.view.start, self.view.end, shape[self.view.dim], per_channel,
                          size_of).with_rule(self.rule)


@dataclass(frozen=True, eq=False)
class LayoutOp(AffineOp):
    """A reshape, permute or mean: moved onto the sources of a value whose maps only mix channels."""

    view: LayoutView | Mean

    def apply(self, values, size_of):
        (value,) = values
        result = value.relayout(self.view)
        if value.is_bare_source:
            # nothing to carry through; a tensor read fresh takes its layout from the op that reads it
            raise NothingToFold(f"{self.node.name} rearranges a tensor with nothing folded into it")
        return _with_rule(result, value, self.rule)


class NothingToFold(NotExact):
    """An op that only passes folded values on met a tensor with nothing folded into it (not worth reporting)."""


@dataclass(frozen=True, eq=False)
class IdentityOp(AffineOp):
    """An inference-time identity (dropout in eval, clone, ...): the value passes through, the op goes."""

    def apply(self, values, size_of):
        return values[0].with_rule(self.rule)


def affine_op(node: Node) -> Match[AffineOp]:
    """Classify ``node`` (see the module docstring): the op view `fxrep.ops.view_of` finds, turned into
    the `AffineOp` its builder below makes (or the reason it is not affine)."""
    if node.op not in ("call_function", "call_module", "call_method") or _changes_dtype(node):
        return Match.none()
    view = view_of(node, _AFFINE_VIEWS)
    if view is None:
        return Match.none()
    return _BUILDERS[type(view)](node, view)


def _conv_op(node: Node, conv: Conv) -> Match[AffineOp]:
    conv_map = attempt(_conv_map_allowing_padding_modes, conv)
    if not conv_map:
        return conv_map
    return Match.ok(ConvOp(node, (conv.input,), "compose_convs", conv_map.value, conv))


def _batchnorm_op(node: Node, bn: BatchNorm) -> Match[AffineOp]:
    affine = attempt(bn.affine)
    if not affine:
        return affine
    if bn.call is not node and len(bn.call.users) != 1:
        return Match.fail(f"{node.name}'s batch-norm call has other outputs in use")
    scale, shift = affine.value
    return Match.ok(BatchNormOp(node, (bn.input,), "fold_batchnorm", scale, shift, bn))


def _linear_op(node: Node, linear: Linear) -> Match[AffineOp]:
    linear_map = attempt(linear.linear_map)
    if not linear_map:
        return linear_map
    return Match.ok(LinearLayerOp(node, (linear.input,), "compose_linears", linear_map.value))


def _pad_op(node: Node, pad: Pad) -> Match[AffineOp]:
    if pad.mode != "constant":
        return Match.ok(ModePadOp(node, (pad.input,), "read_through_padding", pad.pads, pad.mode))
    return Match.ok(PadOp(node, (pad.input,), "fold_pad", pad.pads, pad.value))


def _cat_op(node: Node, cat: Cat) -> Match[AffineOp]:
    if cat.dim == 0:
        return Match.fail(f"{node.name} concatenates along the batch dimension")
    return Match.ok(CatOp(node, cat.inputs, "fold_concat", cat.dim, rank(node)))


def _fill_op(node: Node, fill: BorderFill) -> Match[AffineOp]:
    if any(len(part.users) != 1 for part in fill.parts):
        return Match.fail(f"{node.name}'s fill value is also used elsewhere")
    return Match.ok(FillOp(node, (fill.base,), "fold_border_fill", fill))


def _layout_op(node: Node, layout: LayoutView | Mean) -> Match[AffineOp]:
    return Match.ok(LayoutOp(node, (layout.input,), "see_through_layout", layout))


_BUILDERS = {
    Conv: _conv_op,
    BatchNorm: _batchnorm_op,
    Linear: _linear_op,
    Arithmetic: lambda node, view: _arithmetic_op(view),
    Pad: _pad_op,
    AvgPool: lambda node, pool: Match.ok(AvgPoolOp(node, (pool.input,), "fold_avgpool", pool)),
    Cat: _cat_op,
    BorderFill: _fill_op,
    NoOp: lambda node, no_op: Match.ok(IdentityOp(node, (no_op.input,), "drop_identity")),
    LayoutView: _layout_op,
    Mean: _layout_op,
    AdaptiveAvgPool: lambda node, pool: Match.ok(AdaptivePoolOp(node, (pool.input,), "fold_avgpool", pool)),
}
_AFFINE_VIEWS = tuple(_BUILDERS)
"""The views of affine ops, in `fxrep.ops.VIEWS` precedence order (a node two views recognise is the first's)."""


def _arithmetic_op(view: Arithmetic) -> Match[AffineOp]:
    node = view.node
    if view.op == "neg":
        if not isinstance(view.lhs, Node) or tensor_constant(view.lhs) is not None:
            return Match.none()
        return Match.ok(PointwiseOp(node, (view.lhs,), "fold_scale", torch.tensor(-1.0), None, None))
    lhs_constant, rhs_constant = tensor_constant(view.lhs), tensor_constant(view.rhs)
    lhs_tensor = isinstance(view.lhs, Node) and lhs_constant is None
    rhs_tensor = isinstance(view.rhs, Node) and rhs_constant is None
    alpha = float(view.alpha)
    if view.op in ("add", "sub"):
        sign = 1.0 if view.op == "add" else -1.0
        if lhs_tensor and rhs_tensor:
            return Match.ok(SumOp(node, (view.lhs, view.rhs), "merge_branches", sign * alpha))
        if lhs_tensor and rhs_constant is not None:
            return Match.ok(PointwiseOp(node, (view.lhs,), "fold_shift", None, sign * alpha * rhs_constant,
                                        rhs_constant))
        if rhs_tensor and lhs_constant is not None:
            return Match.ok(PointwiseOp(node, (view.rhs,), "fold_shift", torch.tensor(sign * alpha), lhs_constant,
                                        lhs_constant))
        return Match.none()
    if view.op == "mul":
        if lhs_tensor and rhs_constant is not None:
            return Match.ok(PointwiseOp(node, (view.lhs,), "fold_scale", rhs_constant, None, rhs_constant))
        if rhs_tensor and lhs_constant is not None:
            return Match.ok(PointwiseOp(node, (view.rhs,), "fold_scale", lhs_constant, None, lhs_constant))
        return Match.none()
    if view.op == "div" and lhs_tensor and rhs_constant is not None:
        if bool((rhs_constant == 0).any()):
            return Match.fail(f"{node.name} divides by zero")
        return Match.ok(PointwiseOp(node, (view.lhs,), "fold_scale", 1.0 / rhs_constant.to(torch.float64), None,
                                    rhs_constant))
    return Match.none()


def _conv_map_allowing_padding_modes(conv: Conv) -> ConvMap:
    if conv.padding_mode != "zeros" and conv.module is not None and not conv.transposed:
        return replace(conv, padding_mode="zeros").conv_map()
    return conv.conv_map()


def _special_padding_source(value: AffineValue, view: Conv) -> AffineValue:
    """The identity on ``view.input`` padded with the module's padding mode (reflect, ...)."""
    if len(value.terms) != 1 or value.ring is not None or bool(value.bias.ne(0).any()):
        raise NotExact(f"{view.node.name} pads a computed tensor with mode {view.padding_mode!r}")
    source, conv = value.terms[0]
    if source.padding_mode != "zeros" or not conv.is_identity:
        raise NotExact(f"{view.node.name} pads a computed tensor with mode {view.padding_mode!r}")
    reader = str(view.node.target) if view.node.op == "call_module" else view.node.name
    special = replace(source, padding_mode=view.padding_mode, padding=view.padding, reader=reader)
    return AffineValue.of_source(special, value.channels, value.nd, value.channel_dim)


def _with_rule(result: AffineValue, before: AffineValue, rule: str) -> AffineValue:
    """Count ``rule`` only when the op really folded into an earlier op (not applied to a bare source)."""
    return result if before.is_bare_source else result.with_rule(rule)


def _size_along(value: torch.Tensor, index: int, rank: int) -> int:
    """``value``'s size along dim ``index`` of a rank-``rank`` tensor it broadcasts to (1 if it lacks the dim)."""
    offset = index - (rank - value.dim())
    return 1 if offset < 0 else value.shape[offset]


def _layout_from_meta(node: Node) -> TensorLayout:
    shape = dims(node)
    if shape is None or len(shape) < 2:
        return None, None, 1
    return shape[1], len(shape) - 2, 1


def _changes_dtype(node: Node) -> bool:
    out = dtype_of(node)
    inputs = [dtype_of(n) for n in node.all_input_nodes if n.op != "get_attr"]
    return out is not None and any(d is not None and d != out for d in inputs)


def _per_channel(constant: torch.Tensor) -> torch.Tensor:
    """A broadcastable constant as a 0-d tensor or one number per channel, shape (C,)."""
    constant = constant.to(torch.float64)
    return constant.reshape(()) if constant.numel() == 1 else constant.reshape(-1)


def _check_per_channel(constant: torch.Tensor, value: AffineValue) -> None:
    """Raise unless ``constant`` broadcasts as one number per channel (or one number)."""
    shape = tuple(constant.shape)
    if constant.numel() == 1:
        return
    if value.channel_dim == -1:
        if all(d == 1 for d in shape[:-1]) and shape[-1] == value.channels:
            return
    else:
        rank_ = value.nd + 2
        aligned = (1,) * (rank_ - len(shape)) + shape if len(shape) <= rank_ else None
        if aligned is not None and aligned[1] == value.channels and all(
                d == 1 for i, d in enumerate(aligned) if i != 1):
            return
    raise NotExact(f"the constant of shape {shape} is not one number per channel")


def _constant_per_channel(value: torch.Tensor, shape, dim: int, start: int, end: int) -> torch.Tensor:
    """The fill value as one number per channel (dim 1), or raise when it varies otherwise.

    A dynamic dim (None in ``shape``, such as the batch) is checked at size 1: the value must broadcast
    along it, so it cannot vary there.
    """
    if any(d is None and _size_along(value, i, len(shape)) != 1 for i, d in enumerate(shape)):
        raise NotExact("the fill value varies along a dynamic dimension")
    slice_shape = [1 if d is None else d for d in shape]
    slice_shape[dim] = end - start
    try:
        full = value.to(torch.float64).expand(slice_shape)
    except RuntimeError as error:
        raise NotExact(f"the fill value of shape {tuple(value.shape)} does not broadcast") from error
    per_channel = full.transpose(0, 1).reshape(shape[1], -1)
    if not bool((per_channel == per_channel[:, :1]).all()):
        raise NotExact("the fill value varies within a channel")
    return per_channel[:, 0].clone()
