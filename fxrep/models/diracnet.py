"""DiracNets (Zagoruyko & Komodakis, 2017), following szagoruyko/diracnets (`diracnet.py`, v2).

A Dirac-parameterized conv trains a kernel written as

    W_hat = diag(alpha) * delta + diag(beta) * normalize(W)

where `delta` is the Dirac (identity) kernel, `F.conv2d(x, delta, padding=k//2) == x`,
`normalize` scales each output channel's flattened kernel to unit L2 norm, and `alpha`, `beta`
are learnable per-output-channel vectors (the paper's diag(a), diag(b); the official v2 code
broadcasts one scalar, which is the special case of equal entries). The kernel is rebuilt from
the parameters on every forward, then used by `F.conv2d`. At inference W_hat depends on
parameters only, so it is evaluated once and the layer becomes one plain conv (and, with the BN
that follows in `DiracNetBlock`, one conv with bias).

The v2 block is `BN(dirac_conv(NCReLU(x)))`: NCReLU concatenates relu(x) and -relu(-x) (twice the
channels) and the Dirac kernel for 2C -> C channels is two stacked identities, so the delta part
passes x = relu(x) + min(x, 0) straight through.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["DiracConv2d", "DiracNetBlock", "NCReLU", "dirac_delta"]


def dirac_delta(in_ch: int, out_ch: int, kernel_size: int) -> torch.Tensor:
    """Kernel (out_ch, in_ch, k, k) that copies channel i % min(in, out) (official `dirac_delta`).

    When in_ch > out_ch the identity blocks are repeated along the input axis (their inputs are
    summed); when out_ch > in_ch along the output axis (the inputs are copied).
    """
    if max(in_ch, out_ch) % min(in_ch, out_ch) != 0:
        raise ValueError(f"dirac_delta needs one channel count to divide the other, got {in_ch}, {out_ch}")
    n = min(in_ch, out_ch)
    eye = nn.init.dirac_(torch.empty(n, n, kernel_size, kernel_size))
    return eye.repeat(max(out_ch // in_ch, 1), max(in_ch // out_ch, 1), 1, 1)


class DiracConv2d(nn.Conv2d):
    """Conv whose kernel is `diag(alpha) * delta + diag(beta) * normalize(weight)`; stride 1 only."""

    def __init__(
        self, in_ch: int, out_ch: int, kernel_size: int = 3, padding: int = 1, bias: bool = True
    ) -> None:
        super().__init__(in_ch, out_ch, kernel_size, stride=1, padding=padding, bias=bias)
        nn.init.normal_(self.weight, std=0.1)
        self.alpha = nn.Parameter(torch.full((out_ch,), 5.0))
        self.beta = nn.Parameter(torch.full((out_ch,), 1e-3))
        self.register_buffer("delta", dirac_delta(in_ch, out_ch, kernel_size))

    def dirac_weight(self) -> torch.Tensor:
        """The kernel actually used by the conv."""
        normalized = F.normalize(self.weight.flatten(1), dim=1).view_as(self.weight)
        return self.alpha.view(-1, 1, 1, 1) * self.delta + self.beta.view(-1, 1, 1, 1) * normalized

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.dirac_weight(), self.bias, self.stride, self.padding, self.dilation)


class NCReLU(nn.Module):
    """Concatenated ReLU of DiracNets: `cat([relu(x), min(x, 0)], dim=1)` (doubles the channels)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x.clamp(min=0), x.clamp(max=0)], dim=1)


class DiracNetBlock(nn.Module):
    """DiracNet v2 block: NCReLU, then a bias-free 3x3 DiracConv2d (2*in_ch -> out_ch), then BN."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.ncrelu = NCReLU()
        self.conv = DiracConv2d(2 * in_ch, out_ch, kernel_size=3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(self.ncrelu(x)))
