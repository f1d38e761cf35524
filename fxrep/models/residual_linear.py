"""A residual linear expansion for (N, dim) features, in the style of ExpandNet-FC (Guo et al., 2020).

    ResidualLinearBlock(x) = x + BN1d(Linear2(Linear1(x)))      Linear1: dim -> hidden, Linear2: hidden -> dim

No non-linearity inside, so at inference the block is one affine map: Linear2 o Linear1 is one
Linear, the eval BatchNorm folds into it (always exact, a Linear has no borders), and the residual
adds the identity matrix: `W = I + diag(a) W2 W1`, `b = a * (W2 b1 + b2) + c` with BN's
`a = gamma / sqrt(var + eps)`, `c = beta - mean * a`. `ResidualMLP` stacks such blocks with ReLU
between them, a small all-Linear test case for fxrep's linear rules.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["ResidualLinearBlock", "ResidualMLP"]


class ResidualLinearBlock(nn.Module):
    """`x + BN1d(Linear(hidden -> dim)(Linear(dim -> hidden)(x)))` on (N, dim) inputs."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.linear1 = nn.Linear(dim, hidden)
        self.linear2 = nn.Linear(hidden, dim)
        self.bn = nn.BatchNorm1d(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.bn(self.linear2(self.linear1(x)))


class ResidualMLP(nn.Module):
    """Linear stem + ReLU, `num_blocks` x (ResidualLinearBlock, ReLU), Linear head; (N, in_features) input."""

    def __init__(
        self,
        in_features: int = 32,
        dim: int = 64,
        hidden: int = 256,
        num_blocks: int = 2,
        num_classes: int = 10,
    ) -> None:
        super().__init__()
        self.stem = nn.Linear(in_features, dim)
        self.blocks = nn.ModuleList(ResidualLinearBlock(dim, hidden) for _ in range(num_blocks))
        self.act = nn.ReLU()
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.stem(x))
        for block in self.blocks:
            x = self.act(block(x))
        return self.head(x)
