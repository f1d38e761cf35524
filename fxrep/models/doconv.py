"""DO-Conv, the depthwise over-parameterized convolution (Cao et al., 2020), following
yangyanli/DO-Conv `do_conv_pytorch_1_10.py`.

The conv kernel is the composition of a conventional kernel W, shape (out, in/groups, D_mul), and a
depthwise kernel D, shape (in, M*N, D_mul), rebuilt on every forward:

    D_total = D + d_diag          (d_diag: frozen identity, so D = 0 starts as a plain conv)
    DoW     = einsum('ims,ois->oim', D_total, W.reshape(out/groups, in, D_mul)).reshape(out, in/groups, M, N)

then `F.conv2d(x, DoW, bias, ...)`. D_mul (>= M*N, default M*N) is the depth multiplier of the
over-parameterization. For 1x1 kernels there is no D and W is used directly. At inference DoW
depends on parameters only, so it is evaluated once and the layer is a plain conv.

Kept from the official code: `d_diag` is a frozen `nn.Parameter` (requires_grad=False), not a
buffer, and the `(out/groups, in, D_mul)` reshape of W for grouped convs. Only zero padding is
implemented (the official padding_mode option is left out).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.utils import _pair

__all__ = ["DOConv2d"]


class DOConv2d(nn.Module):
    """Drop-in replacement of `nn.Conv2d` whose kernel is the einsum of W and (D + identity)."""

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        kernel_size: int | tuple[int, int],
        D_mul: int | None = None,
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] = 0,
        dilation: int | tuple[int, int] = 1,
        groups: int = 1,
        bias: bool = True,
    ) -> None:
        super().__init__()
        if in_ch % groups != 0 or out_ch % groups != 0:
            raise ValueError("in_ch and out_ch must be divisible by groups")
        self.in_channels = in_ch
        self.out_channels = out_ch
        self.kernel_size = _pair(kernel_size)
        self.stride = _pair(stride)
        self.padding = _pair(padding)
        self.dilation = _pair(dilation)
        self.groups = groups

        m, n = self.kernel_size
        self.D_mul = m * n if D_mul is None or m * n <= 1 else D_mul
        if self.D_mul < m * n:
            raise ValueError(f"D_mul must be at least kernel height * width = {m * n}")
        self.W = nn.Parameter(torch.empty(out_ch, in_ch // groups, self.D_mul))
        nn.init.kaiming_uniform_(self.W, a=math.sqrt(5))

        if m * n > 1:
            self.D = nn.Parameter(torch.zeros(in_ch, m * n, self.D_mul))
            eye = torch.eye(m * n).reshape(1, m * n, m * n)
            d_diag = eye.repeat(in_ch, 1, self.D_mul // (m * n))
            if self.D_mul % (m * n) != 0:
                d_diag = torch.cat([d_diag, torch.zeros(in_ch, m * n, self.D_mul % (m * n))], dim=2)
            self.d_diag = nn.Parameter(d_diag, requires_grad=False)

        if bias:
            self.bias = nn.Parameter(torch.empty(out_ch))
            bound = 1 / math.sqrt((in_ch // groups) * self.D_mul)
            nn.init.uniform_(self.bias, -bound, bound)
        else:
            self.register_parameter("bias", None)

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, D_mul={self.D_mul}, "
            f"stride={self.stride}, padding={self.padding}, groups={self.groups}, bias={self.bias is not None}"
        )

    def composed_weight(self) -> torch.Tensor:
        """The (out, in/groups, M, N) kernel used by the conv."""
        m, n = self.kernel_size
        shape = (self.out_channels, self.in_channels // self.groups, m, n)
        if m * n == 1:
            return torch.reshape(self.W, shape)
        d = self.D + self.d_diag
        w = torch.reshape(self.W, (self.out_channels // self.groups, self.in_channels, self.D_mul))
        return torch.reshape(torch.einsum("ims,ois->oim", d, w), shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(
            x, self.composed_weight(), self.bias, self.stride, self.padding, self.dilation, self.groups
        )
