"""BatchNorm in inference mode as a per-channel affine map.

    y = gamma * (x - mean) / sqrt(var + eps) + beta = a * x + c
    a = gamma / sqrt(var + eps),   c = beta - mean * a

Folding it into a neighbouring conv is then a composition with a diagonal map (see
`fxrep.algebra.sequential`): after a conv ``W' = W * a[:, None, ...]``, ``b' = a * b + c``; before a
conv ``W'[o, i] = W[o, i] * a[i]``, ``b'[o] = b[o] + sum_{i,t} W[o, i, t] * c[i]``, exact only when
that conv reads no zero padding or ``c == 0``.
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
