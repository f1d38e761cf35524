"""FastViT's RepMixer token mixer (Vasu et al., ICCV 2023), following apple/ml-fastvit `models/fastvit.py`.

    RepMixer(x) = x + layer_scale * (mixer(x) - norm(x))

`mixer` is a depthwise MobileOneBlock without activation (BN skip + depthwise 1x1 scale branch +
one depthwise kxk conv+BN) and `norm` a MobileOneBlock reduced to its BN skip; `layer_scale` is a
learnable (dim, 1, 1) tensor. Everything is linear and depthwise, so at inference the whole mixer,
residual included, collapses into ONE depthwise kxk conv with bias (the official `reparameterize`:
`W = I + layer_scale * (W_mixer - W_norm)`, `b = layer_scale * (b_mixer - b_norm)`).

`RepMixerBlock` is FastViT's stage block: RepMixer, then a layer-scaled residual ConvFFN
(depthwise 7x7 conv+BN, 1x1, GELU, 1x1). `RepCPE` is FastViT's conditional positional encoding
`x + dwconv(x)` (a depthwise 7x7 conv with bias). `FastViTStage` is a stage as fxrep sees it in real
FastViTs: an optional RepCPE, then RepMixerBlocks; the RepMixer output feeds both the block's
residual and its ConvFFN, so it is a value with two readers. Dropout and drop-path (0 at
inference) are left out.

`fastvit_reparameterize` is the official HAND-WRITTEN conversion (`reparameterize_model`: each
MobileOneBlock, RepMixer and RepCPE `reparameterize`). As in the official code, it leaves the ConvFFN's
conv + BatchNorm as they are.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from fxrep.models.mobileone import MobileOneBlock

__all__ = ["ConvFFN", "FastViTStage", "RepCPE", "RepMixer", "RepMixerBlock", "fastvit_reparameterize"]


class RepMixer(nn.Module):
    """`x + layer_scale * (mixer(x) - norm(x))`, with depthwise MobileOne mixer and BN-only norm."""

    def __init__(
        self,
        dim: int,
        kernel_size: int = 3,
        use_layer_scale: bool = True,
        layer_scale_init_value: float = 1e-5,
    ) -> None:
        super().__init__()
        self.dim = dim
        self.kernel_size = kernel_size
        self.norm = MobileOneBlock(
            dim,
            dim,
            kernel_size,
            padding=kernel_size // 2,
            groups=dim,
            num_conv_branches=0,
            use_scale_branch=False,
            use_act=False,
        )
        self.mixer = MobileOneBlock(
            dim, dim, kernel_size, padding=kernel_size // 2, groups=dim, num_conv_branches=1, use_act=False
        )
        self.use_layer_scale = use_layer_scale
        if use_layer_scale:
            self.layer_scale = nn.Parameter(layer_scale_init_value * torch.ones((dim, 1, 1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if hasattr(self, "reparam_conv"):
            return self.reparam_conv(x)
        if self.use_layer_scale:
            return x + self.layer_scale * (self.mixer(x) - self.norm(x))
        return x + self.mixer(x) - self.norm(x)

    def reparameterize(self) -> None:
        """Official `RepMixer.reparameterize`: ``W = I + ls * (W_mixer - W_norm)``, ``b = ls * (b_mixer - b_norm)``."""
        if hasattr(self, "reparam_conv"):
            return
        self.mixer.reparameterize()
        self.norm.reparameterize()
        mixer, norm = self.mixer.reparam_conv, self.norm.reparam_conv
        identity = _depthwise_identity(self.dim, self.kernel_size).to(mixer.weight)
        with torch.no_grad():
            if self.use_layer_scale:
                weight = identity + self.layer_scale.unsqueeze(-1) * (mixer.weight - norm.weight)
                bias = torch.squeeze(self.layer_scale) * (mixer.bias - norm.bias)
            else:
                weight = identity + mixer.weight - norm.weight
                bias = mixer.bias - norm.bias
        self.reparam_conv = nn.Conv2d(self.dim, self.dim, self.kernel_size, stride=1, padding=self.kernel_size // 2,
                                      groups=self.dim, bias=True).to(weight)
        self.reparam_conv.weight.data = weight.detach()
        self.reparam_conv.bias.data = bias.detach()
        del self.mixer, self.norm
        if self.use_layer_scale:
            del self.layer_scale


class RepCPE(nn.Module):
    """FastViT's conditional positional encoding: ``x + pe(x)`` with ``pe`` a depthwise kxk conv with bias."""

    def __init__(self, dim: int, kernel_size: int = 7) -> None:
        super().__init__()
        self.dim = dim
        self.kernel_size = kernel_size
        self.pe = nn.Conv2d(dim, dim, kernel_size, 1, kernel_size // 2, bias=True, groups=dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if hasattr(self, "reparam_conv"):
            return self.reparam_conv(x)
        return self.pe(x) + x

    def reparameterize(self) -> None:
        """Official `RepCPE.reparameterize`: ``W = I + W_pe``, ``b = b_pe``."""
        if hasattr(self, "reparam_conv"):
            return
        weight = _depthwise_identity(self.dim, self.kernel_size).to(self.pe.weight) + self.pe.weight.detach()
        self.reparam_conv = nn.Conv2d(self.dim, self.dim, self.kernel_size, 1, self.kernel_size // 2, groups=self.dim,
                                      bias=True).to(weight)
        self.reparam_conv.weight.data = weight
        self.reparam_conv.bias.data = self.pe.bias.detach().clone()
        del self.pe


def _depthwise_identity(dim: int, kernel_size: int) -> torch.Tensor:
    """The (dim, 1, k, k) kernel of the identity: 1 at the centre of each channel's kernel."""
    kernel = torch.zeros((dim, 1, kernel_size, kernel_size))
    kernel[:, 0, kernel_size // 2, kernel_size // 2] = 1
    return kernel


class ConvFFN(nn.Module):
    """FastViT's convolutional FFN: depthwise 7x7 conv + BN, 1x1 conv, GELU, 1x1 conv."""

    def __init__(self, in_ch: int, hidden_ch: int | None = None, out_ch: int | None = None) -> None:
        super().__init__()
        out_ch = out_ch or in_ch
        hidden_ch = hidden_ch or in_ch
        self.conv = nn.Sequential()
        self.conv.add_module("conv", nn.Conv2d(in_ch, out_ch, 7, padding=3, groups=in_ch, bias=False))
        self.conv.add_module("bn", nn.BatchNorm2d(out_ch))
        self.fc1 = nn.Conv2d(in_ch, hidden_ch, kernel_size=1)
        self.act = nn.GELU()
        self.fc2 = nn.Conv2d(hidden_ch, out_ch, kernel_size=1)
        for module in (self.conv.conv, self.fc1, self.fc2):
            nn.init.trunc_normal_(module.weight, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(self.conv(x))))


class RepMixerBlock(nn.Module):
    """FastViT block: `x = RepMixer(x); x = x + layer_scale * ConvFFN(x)`."""

    def __init__(
        self,
        dim: int,
        kernel_size: int = 3,
        mlp_ratio: float = 4.0,
        use_layer_scale: bool = True,
        layer_scale_init_value: float = 1e-5,
    ) -> None:
        super().__init__()
        self.token_mixer = RepMixer(
            dim, kernel_size, use_layer_scale=use_layer_scale, layer_scale_init_value=layer_scale_init_value
        )
        self.convffn = ConvFFN(dim, hidden_ch=int(dim * mlp_ratio))
        self.use_layer_scale = use_layer_scale
        if use_layer_scale:
            self.layer_scale = nn.Parameter(layer_scale_init_value * torch.ones((dim, 1, 1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.token_mixer(x)
        if self.use_layer_scale:
            return x + self.layer_scale * self.convffn(x)
        return x + self.convffn(x)


class FastViTStage(nn.Module):
    """``blocks(cpe(x))``: an optional RepCPE, then ``depth`` RepMixerBlocks of width ``dim``."""

    def __init__(self, dim: int, depth: int = 2, kernel_size: int = 3, mlp_ratio: float = 3.0,
                 use_cpe: bool = True, layer_scale_init_value: float = 1e-5) -> None:
        super().__init__()
        self.cpe = RepCPE(dim) if use_cpe else nn.Identity()
        self.blocks = nn.Sequential(*(RepMixerBlock(dim, kernel_size, mlp_ratio,
                                                    layer_scale_init_value=layer_scale_init_value)
                                      for _ in range(depth)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.cpe(x))


def fastvit_reparameterize(model: nn.Module) -> nn.Module:
    """Deep copy of ``model`` with every MobileOneBlock, RepMixer and RepCPE reparameterized (official)."""
    converted = copy.deepcopy(model)
    for module in list(converted.modules()):
        if isinstance(module, RepMixer | RepCPE):
            module.reparameterize()
    for module in list(converted.modules()):
        if isinstance(module, MobileOneBlock):
            module.reparameterize()
    return converted
