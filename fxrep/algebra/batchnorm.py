"""BatchNorm in inference mode as a per-channel affine map, and folding such a map into a neighbour.

    y = gamma * (x - mean) / sqrt(var + eps) + beta = a * x + c
    a = gamma / sqrt(var + eps),   c = beta - mean * a

A per-channel map ``a * x + c`` (a BatchNorm, a scale, a shift) folds into the parameters of the op
next to it (a conv, a transposed conv, a Linear: weight ``W``, bias ``b``):

- after the op (`fold_into_outputs`): scale the op's output channels, ``W' = a W`` along the weight
  axis that holds the output channels (``axis``: 0 for a conv or Linear, 1 for a transposed conv),
  ``b' = a b + c``. Always exact.
- before the op (`fold_into_inputs`): scale its input channels, ``W'[o, i] = W[o, i] a[i]``,
  ``b'[o] = b[o] + sum_{i,t} W[o, i, t] c[i]``. Exact for a Linear, and for a conv that reads no
  zero padding or when ``c == 0`` (the border would see ``c`` before folding and 0 after); the
  caller checks that (`fxrep.algebra.check_border`).

This is onnxscript's ``fuse_batchnorm`` (``W * scale.reshape(-1 along axis)``,
``(b - mean) * scale + beta``), generalised to groups and to folding forward. ``compose`` with a
`diagonal_map` uses the same two functions, so a BatchNorm folded by `FoldBatchNorm` and one folded
inside a linear region give the same numbers. Everything is float64; shape-only (meta) weights keep
their shape and skip the arithmetic (see `fxrep.algebra.shape_only`).
"""

from __future__ import annotations

import torch

from .errors import NotExact


def batchnorm_affine(
    running_mean: torch.Tensor,
    running_var: torch.Tensor,
    weight: torch.Tensor | None,
    bias: torch.Tensor | None,
    eps: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return ``(a, c)`` in float64 such that ``batch_norm(x) == a * x + c`` per channel."""
    mean = running_mean.detach().to(torch.float64)
    var = running_var.detach().to(torch.float64)
    denominator = var + eps
    if bool((denominator <= 0).any()):
        channel = int(torch.nonzero(denominator <= 0)[0])
        raise NotExact(f"BatchNorm channel {channel} has var + eps = {float(denominator[channel])} <= 0")
    a = torch.rsqrt(denominator)
    if weight is not None:
        a = a * weight.detach().to(torch.float64)
    c = -mean * a
    if bias is not None:
        c = c + bias.detach().to(torch.float64)
    return a, c


def fold_into_outputs(
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    scale: torch.Tensor,
    shift: torch.Tensor | None,
    *,
    axis: int = 0,
    groups: int = 1,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``a * op(x) + c`` as one op: ``(W', b')`` with the output channels of ``W`` scaled.

        W'[..., o, ...] = a[o] W[..., o, ...]      (o: output channel, on weight axis ``axis``)
        b' = a b + c                               (c without a bias; None without either)

    ``axis=0``: a conv or Linear, weight ``(O, I / g, *kernel)``: the groups do not matter.
    ``axis=1``: a transposed conv, weight ``(I, O / g, *kernel)`` with ``groups`` groups: entry
    ``W[i, j]`` feeds output channel ``g(i) * O / g + j`` (``g(i) = i // (I / g)``), so
    ``W'[i, j] = W[i, j] a[g(i) * O / g + j]``.
    """
    scale = scale.reshape(-1)
    if weight.is_meta:
        folded = weight  # shape-only: the entries are unknown anyway
    elif axis == 0:
        folded = weight * scale.reshape(-1, *([1] * (weight.dim() - 1)))
    elif axis == 1:
        folded = _scale_grouped_axis1(weight, scale, groups)
    else:
        raise ValueError(f"the output channels of a conv, transposed conv or Linear weight are on axis 0 or 1, "
                         f"not {axis}")
    folded_bias = None if bias is None else bias * scale
    if shift is not None:
        folded_bias = shift if folded_bias is None else folded_bias + shift
    return folded, folded_bias


def fold_into_inputs(
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    scale: torch.Tensor,
    shift: torch.Tensor | None,
    *,
    groups: int = 1,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``op(a * x + c)`` as one op: ``(W', b')`` with the input channels of ``W`` scaled.

    For a conv or Linear weight ``(O, I / g, *kernel)`` with ``groups`` groups, where input channel
    ``i`` of output ``o`` is ``m = g(o) * I / g + i``:

        W'[o, i, t] = W[o, i, t] a[m]
        b'[o] = b[o] + sum_{i,t} W[o, i, t] c[m]    (`input_response`; b' = b without c)

    Exact only where the op reads no zero padding, or ``c == 0`` (module docstring).
    """
    folded = weight if weight.is_meta else _scale_grouped_axis1(weight, scale, groups)
    if shift is None:
        return folded, bias
    response = input_response(weight, shift, groups)
    return folded, response if bias is None else response + bias


def _scale_grouped_axis1(weight: torch.Tensor, scale: torch.Tensor, groups: int) -> torch.Tensor:
    """``W'[r, j, ...] = W[r, j, ...] a[g(r) * J + j]`` for a weight ``(R, J, *kernel)`` in ``groups``
    groups of ``R / groups`` rows (``g(r) = r // (R / groups)``): a transposed conv's output channels,
    or a conv's input channels."""
    per_group = weight.reshape(groups, weight.shape[0] // groups, *weight.shape[1:])
    return (per_group * scale.reshape(groups, 1, -1, *([1] * (weight.dim() - 2)))).reshape(weight.shape)


def input_response(weight: torch.Tensor, value: torch.Tensor, groups: int = 1) -> torch.Tensor:
    """What a conv or Linear weight ``(O, I / g, *kernel)`` makes of a constant per-channel input ``v``.

        r[o] = sum_{i,t} W[o, i, t] v[g(o) * I / g + i]

    (without padding: a zero-padded border sees 0 instead of ``v``).
    """
    out_channels = weight.shape[0]
    per_group = weight.reshape(groups, out_channels // groups, *weight.shape[1:])
    summed = per_group.sum(dim=tuple(range(3, per_group.dim()))) if weight.dim() > 2 else per_group
    return torch.einsum("gom,gm->go", summed, value.reshape(groups, -1)).reshape(-1)
