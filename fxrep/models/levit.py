"""A small LeViT (Graham et al., ICCV 2021), following timm's `levit.py`, with its hand-written conversion.

What it contains is what fxrep must see through on vision transformers:

- `LinearNorm`: ``Linear -> x.flatten(0, 1) -> BatchNorm1d -> reshape_as(x)``: the BatchNorm acts on the
  Linear's output channels with batch and token axes flattened together;
- `Attention`: queries, keys and values from one LinearNorm, split per head; attention logits plus a
  learned bias table indexed by a constant index buffer (``attention_biases[:, attention_bias_idxs]``);
  output projection ``Hardswish -> LinearNorm``;
- `Mlp`: ``LinearNorm -> Hardswish -> Dropout -> LinearNorm``, each block residual;
- a stem of conv + BatchNorm + Hardswish (stride 2);
- the distillation head pair: ``(head(x) + head_dist(x)) / 2`` at inference, each head a `NormLinear`
  (``BatchNorm1d -> Dropout -> Linear``, the BatchNorm *before* the Linear).

`levit_fuse` is the HAND-WRITTEN conversion as in timm (``LinearNorm.fuse``, ``NormLinear.fuse``,
``ConvNorm.fuse``): every BatchNorm folded into its Linear or conv; the two heads stay two Linears.
"""

from __future__ import annotations

import copy
import itertools

import torch
from torch import nn

__all__ = ["Attention", "LeViT", "LinearNorm", "Mlp", "NormLinear", "levit_fuse", "levit_small"]


class LinearNorm(nn.Module):
    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.linear = nn.Linear(in_features, out_features, bias=False)
        self.bn = nn.BatchNorm1d(out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.linear(x)
        return self.bn(x.flatten(0, 1)).reshape_as(x)


class NormLinear(nn.Module):
    def __init__(self, in_features: int, out_features: int, drop: float = 0.1) -> None:
        super().__init__()
        self.bn = nn.BatchNorm1d(in_features)
        self.drop = nn.Dropout(drop)
        self.linear = nn.Linear(in_features, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.drop(self.bn(x)))


class Attention(nn.Module):
    def __init__(self, dim: int, key_dim: int, num_heads: int, resolution: int) -> None:
        super().__init__()
        self.num_heads, self.key_dim = num_heads, key_dim
        self.val_dim = 2 * key_dim
        self.scale = key_dim ** -0.5
        self.qkv = LinearNorm(dim, num_heads * (2 * key_dim + self.val_dim))
        self.proj = nn.Sequential(nn.Hardswish(), LinearNorm(num_heads * self.val_dim, dim))
        points = list(itertools.product(range(resolution), range(resolution)))
        offsets: dict[tuple[int, int], int] = {}
        indices = []
        for p1 in points:
            for p2 in points:
                offset = (abs(p1[0] - p2[0]), abs(p1[1] - p2[1]))
                indices.append(offsets.setdefault(offset, len(offsets)))
        self.attention_biases = nn.Parameter(torch.zeros(num_heads, len(offsets)))
        self.register_buffer("attention_bias_idxs", torch.tensor(indices).view(len(points), len(points)),
                             persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, tokens, _ = x.shape
        q, k, v = self.qkv(x).view(batch, tokens, self.num_heads, -1).split(
            [self.key_dim, self.key_dim, self.val_dim], dim=3)
        q, k, v = q.permute(0, 2, 1, 3), k.permute(0, 2, 1, 3), v.permute(0, 2, 1, 3)
        attn = q @ k.transpose(-2, -1) * self.scale + self.attention_biases[:, self.attention_bias_idxs]
        x = (attn.softmax(dim=-1) @ v).transpose(1, 2).reshape(batch, tokens, self.num_heads * self.val_dim)
        return self.proj(x)


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int, drop: float = 0.1) -> None:
        super().__init__()
        self.ln1 = LinearNorm(dim, hidden)
        self.act = nn.Hardswish()
        self.drop = nn.Dropout(drop)
        self.ln2 = LinearNorm(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ln2(self.drop(self.act(self.ln1(x))))


class Block(nn.Module):
    def __init__(self, dim: int, key_dim: int, num_heads: int, resolution: int) -> None:
        super().__init__()
        self.attn = Attention(dim, key_dim, num_heads, resolution)
        self.mlp = Mlp(dim, 2 * dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(x)
        return x + self.mlp(x)


class ConvNorm(nn.Sequential):
    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.add_module("conv", nn.Conv2d(in_ch, out_ch, 3, 2, 1, bias=False))
        self.add_module("bn", nn.BatchNorm2d(out_ch))


class LeViT(nn.Module):
    """Stem (two stride-2 ConvNorms), ``depth`` attention blocks on the tokens, mean pool, two heads."""

    def __init__(self, image_size: int = 32, dim: int = 32, key_dim: int = 8, num_heads: int = 2,
                 depth: int = 2, num_classes: int = 10) -> None:
        super().__init__()
        self.stem = nn.Sequential(ConvNorm(3, dim // 2), nn.Hardswish(), ConvNorm(dim // 2, dim))
        resolution = image_size // 4
        self.blocks = nn.Sequential(*(Block(dim, key_dim, num_heads, resolution) for _ in range(depth)))
        self.head = NormLinear(dim, num_classes)
        self.head_dist = NormLinear(dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x).flatten(2).transpose(1, 2)
        x = self.blocks(x).mean(1)
        return (self.head(x) + self.head_dist(x)) / 2


def levit_small(num_classes: int = 10, image_size: int = 32) -> LeViT:
    return LeViT(image_size=image_size, num_classes=num_classes)


def levit_fuse(model: nn.Module) -> nn.Module:
    """Deep copy of ``model`` with every LinearNorm, NormLinear and ConvNorm fused, as timm's LeViT ``fuse``."""
    converted = copy.deepcopy(model)
    for name, module in list(converted.named_modules()):
        if isinstance(module, LinearNorm | NormLinear | ConvNorm):
            _set(converted, name, _fused(module))
    return converted


def _fused(module: nn.Module) -> nn.Module:
    with torch.no_grad():
        bn = module.bn
        scale = bn.weight / (bn.running_var + bn.eps) ** 0.5
        shift = bn.bias - bn.running_mean * scale
        if isinstance(module, LinearNorm):
            linear = nn.Linear(module.linear.in_features, module.linear.out_features)
            linear.weight.copy_(module.linear.weight * scale[:, None])
            linear.bias.copy_(shift)
            return linear
        if isinstance(module, NormLinear):
            linear = nn.Linear(module.linear.in_features, module.linear.out_features)
            linear.weight.copy_(module.linear.weight * scale[None, :])
            linear.bias.copy_(module.linear.bias + module.linear.weight @ shift)
            return linear
        conv = module.conv
        fused = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding)
        fused.weight.copy_(conv.weight * scale[:, None, None, None])
        fused.bias.copy_(shift)
        return fused


def _set(root: nn.Module, path: str, module: nn.Module) -> None:
    parent, _, name = path.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, name, module)
