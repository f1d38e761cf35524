"""Runnable ops built from a signature alone, for timing (`runnable`).

A measured cost model times an op it has never seen in any graph: the op a plan would emit. So the
op is rebuilt from its `OpSignature` with random data of the right shapes, in the dtype and on the
device asked for, and called exactly as fxrep's emitted graphs call it:

- a conv (``nd`` 1-3): ``torch.nn.functional.conv{nd}d(x, w, b, stride, padding, dilation, groups)``
  with ``x: (batch, I, *in_size)``, ``w: (O, I / groups, *kernel)``; an asymmetric padding is a
  ``pad`` of the difference followed by the conv with the common part (as `Rewriter.conv` emits it);
- a Linear (``nd == 0``): ``linear(x, w, b)`` with ``x: (batch rows, I)`` (grouped 0-d maps are
  emitted dense, so they are timed dense);
- an average pool: ``avg_pool{nd}d(x, kernel, stride, padding, count_include_pad=True)``;
- an element-wise op over ``numel`` elements, on ``x: (1, channels, numel / channels)`` (flat when
  the channel count is unknown or does not divide ``numel``); operands beyond the first are either
  tensors of ``x``'s shape (``operands`` >= 2) or per-channel ``(channels, 1)`` vectors: add / sub /
  mul / div, ``addcmul(shift, x, scale)``, inference ``batch_norm``, a zero ``pad`` of the last axis
  by one element each side, ``neg`` and the common activations. ``"elementwise"`` is the generic
  element-wise op of the cost conveniences: a per-channel scale with one operand, an add with two.

Kinds that compute nothing worth timing or whose shape a signature cannot describe (``cat``,
``identity``, an unrecognised ``other``) raise `NotRunnable`; the measured model then answers with
its analytic estimate.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from .signatures import ConvSignature, ElementwiseSignature, OpSignature, PoolSignature

_ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "relu": torch.relu, "relu6": F.relu6, "gelu": F.gelu, "silu": F.silu, "sigmoid": torch.sigmoid,
    "tanh": torch.tanh, "hardswish": F.hardswish, "hardsigmoid": F.hardsigmoid, "leaky_relu": F.leaky_relu,
    "elu": F.elu, "mish": F.mish, "softplus": F.softplus, "hardtanh": F.hardtanh, "selu": F.selu,
    "neg": torch.neg,
}
_BINARY: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "add": torch.add, "sub": torch.sub, "mul": torch.mul, "div": torch.div,
}
_CONVS = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
_POOLS = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}
_ITEMSIZE_DTYPES = {8: torch.float64, 4: torch.float32, 2: torch.float16}


class NotRunnable(ValueError):
    """The signature describes an op that cannot be rebuilt for timing (the message says why)."""


def resolve_dtype(signature: OpSignature, default: torch.dtype | None = None) -> torch.dtype:
    """The dtype to time ``signature`` in: its own, else ``default``, else float of its ``itemsize``."""
    if signature.dtype is not None:
        dtype = getattr(torch, signature.dtype, None)
        if not isinstance(dtype, torch.dtype):
            raise NotRunnable(f"unknown dtype {signature.dtype!r} in {signature}")
        return dtype
    if default is not None:
        return default
    if signature.itemsize not in _ITEMSIZE_DTYPES:
        raise NotRunnable(f"no floating dtype of {signature.itemsize} bytes to time {signature} in")
    return _ITEMSIZE_DTYPES[signature.itemsize]


def runnable(signature: OpSignature, *, dtype: torch.dtype, device: torch.device | str,
             seed: int = 0) -> Callable[[], torch.Tensor]:
    """A zero-argument callable running the op ``signature`` describes (see the module docstring)."""
    if not (dtype.is_floating_point or dtype.is_complex):
        raise NotRunnable(f"timing needs a floating dtype, not {dtype}")
    generator = torch.Generator().manual_seed(seed)
    device = torch.device(device)

    def tensor(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=generator).to(dtype=dtype, device=device)

    if isinstance(signature, ConvSignature):
        return _conv(signature, tensor)
    if isinstance(signature, PoolSignature):
        nd = len(signature.kernel)
        if nd not in _POOLS:
            raise NotRunnable(f"no {nd}-d average pool in torch")
        x = tensor(signature.batch, signature.channels, *signature.in_size)
        pool, kernel, stride, padding = _POOLS[nd], signature.kernel, signature.stride, signature.padding
        return lambda: pool(x, kernel, stride, padding, False, True)
    if isinstance(signature, ElementwiseSignature):
        return _elementwise(signature, tensor)
    raise NotRunnable(f"not an op signature: {type(signature).__name__}")


def _conv(signature: ConvSignature, tensor: Callable[..., torch.Tensor]) -> Callable[[], torch.Tensor]:
    if signature.nd == 0:
        x = tensor(signature.batch, signature.in_channels)
        w, b = tensor(signature.out_channels, signature.in_channels), tensor(signature.out_channels)
        return lambda: F.linear(x, w, b)
    if signature.nd not in _CONVS:
        raise NotRunnable(f"no {signature.nd}-d convolution in torch")
    if signature.in_channels % signature.groups or signature.out_channels % signature.groups:
        raise NotRunnable(f"channels {signature.in_channels}->{signature.out_channels} do not divide into "
                          f"{signature.groups} groups")
    conv = _CONVS[signature.nd]
    x = tensor(signature.batch, signature.in_channels, *signature.in_size)
    w = tensor(signature.out_channels, signature.in_per_group, *signature.kernel)
    b = tensor(signature.out_channels)
    common = tuple(min(lo, hi) for lo, hi in signature.padding)
    stride, dilation, groups = signature.stride, signature.dilation, signature.groups
    if all(lo == hi for lo, hi in signature.padding):
        return lambda: conv(x, w, b, stride, common, dilation, groups)
    extra: list[int] = []
    for (lo, hi), c in reversed(list(zip(signature.padding, common, strict=True))):
        extra += [lo - c, hi - c]  # F.pad lists the last axis first
    return lambda: conv(F.pad(x, extra), w, b, stride, common, dilation, groups)


def _elementwise(signature: ElementwiseSignature,
                 tensor: Callable[..., torch.Tensor]) -> Callable[[], torch.Tensor]:
    numel, channels, kind = max(1, signature.numel), signature.channels, signature.kind
    if channels and channels > 0 and numel % channels == 0:
        shape, per_channel = (1, channels, numel // channels), (channels, 1)
    else:
        channels, shape, per_channel = 1, (numel,), (1,)
    x = tensor(*shape)
    if kind == "elementwise":
        kind = "mul" if signature.operands == 1 else "add"
    if kind in _BINARY:
        op = _BINARY[kind]
        other = tensor(*shape) if signature.operands >= 2 else tensor(*per_channel)
        if kind == "div":
            other = other.abs() + 1
        return lambda: op(x, other)
    if kind == "addcmul":
        shift, scale = tensor(*per_channel), tensor(*per_channel)
        return lambda: torch.addcmul(shift, x, scale)
    if kind == "batchnorm":
        rows = x.reshape(1, channels, -1)
        mean, weight, bias = tensor(channels), tensor(channels), tensor(channels)
        var = tensor(channels).abs() + 0.5
        return lambda: F.batch_norm(rows, mean, var, weight, bias, False, 0.1, 1e-5)
    if kind == "pad":
        inner = x.reshape(-1)[: max(1, numel - 2 * math.prod(shape[:-1]))]
        inner = inner.reshape(*shape[:-1], -1) if len(shape) > 1 else inner
        return lambda: F.pad(inner, (1, 1))
    if kind in _ACTIVATIONS:
        activation = _ACTIVATIONS[kind]
        return lambda: activation(x)
    raise NotRunnable(f"{kind!r} ops are not timed (no fixed shape to rebuild them from)")
