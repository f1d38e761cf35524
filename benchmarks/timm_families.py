"""The timm families that ship a hand-written reparameterization, built offline, as the benchmarks use them.

Every family here has a ``reparameterize`` / ``fuse`` / ``switch_to_deploy`` of its own that
`timm.utils.model.reparameterize_model` calls; that conversion is the baseline fxrep is measured against.
`build` makes the smallest variant with random weights and randomized BatchNorm statistics
(`fxrep.models.randomize_`, so a folding mistake shows), in eval mode; `hand_converted` is timm's own
conversion of a deep copy.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

from fxrep.models import randomize_


@dataclass(frozen=True)
class Family:
    family: str
    model: str
    """The smallest variant timm 1.0 registers."""


FAMILIES = (
    Family("repvgg", "repvgg_a0"),
    Family("mobileone", "mobileone_s0"),
    Family("fastvit", "fastvit_t8"),
    Family("repghostnet", "repghostnet_050"),
    Family("repvit", "repvit_m0_9"),
    Family("levit", "levit_128s"),
    Family("efficientvit_msra", "efficientvit_m0"),
    Family("ghostnetv3", "ghostnetv3_050"),
    Family("lcnetv2", "lcnetv2_small"),
    Family("shvit", "shvit_s1"),
    Family("tiny_vit", "tiny_vit_5m_224"),
    Family("iformer", "iformer_t"),
    Family("efficientvim", "efficientvim_m1"),
    Family("nextvit", "nextvit_small"),
)


def build(name: str, seed: int = 0) -> nn.Module:
    """timm model ``name`` (no pretrained weights), randomized BatchNorm statistics, eval mode."""
    import timm

    model = timm.create_model(name, pretrained=False)
    randomize_(model, seed)
    return model.eval()


def hand_converted(model: nn.Module) -> nn.Module:
    """timm's own conversion (``reparameterize_model``) of a deep copy of ``model``."""
    from timm.utils.model import reparameterize_model

    return reparameterize_model(copy.deepcopy(model)).eval()


def example_input(batch: int = 1, size: int = 224, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(seed))
