"""Deterministically re-draw the parameters and BatchNorm statistics of a reference model.

A freshly built model hides folding mistakes: every BatchNorm is the identity (weight 1, bias 0,
running mean 0, running variance 1), and several re-parameterization scalars start at values that
make their branch vanish (FastViT's layer_scale 1e-5, DiracNet's beta 1e-3, DO-Conv's D = 0,
DBB's IdentityBasedConv1x1 weight 0). A compiler that forgets a BN bias or drops a branch still
matches such a model to many digits. `randomize_` redraws all of them from its own
`torch.Generator`, so the same seed gives the same model on every machine and the global RNG is
left alone.

Distributions (drawn in float32 on the CPU, then copied to the tensor's device and dtype):

- conv / linear weight: U(-sqrt(3 / fan_in), sqrt(3 / fan_in)) (unit-variance gain); bias N(0, 0.1).
- BatchNorm: weight U(0.5, 1.5), bias N(0, 0.3), running_mean N(0, 0.3), running_var U(0.5, 2.0).
- any other trainable parameter (alpha/beta, layer_scale, D, ...): p * U(0.5, 1.5) + N(0, 0.1).
- frozen parameters (requires_grad=False, e.g. DO-Conv's identity d_diag) and other buffers
  (DiracNet's delta) are constants of the architecture and are left untouched.
"""

from __future__ import annotations

import math
from typing import TypeVar

import torch
from torch import nn

ModuleT = TypeVar("ModuleT", bound=nn.Module)

_CONV_OR_LINEAR = (nn.modules.conv._ConvNd, nn.Linear)
_BATCH_NORM = nn.modules.batchnorm._BatchNorm


def _uniform(generator: torch.Generator, like: torch.Tensor, low: float, high: float) -> torch.Tensor:
    values = torch.rand(like.shape, generator=generator, dtype=torch.float32)
    return (values * (high - low) + low).to(device=like.device, dtype=like.dtype)


def _normal(generator: torch.Generator, like: torch.Tensor, std: float) -> torch.Tensor:
    values = torch.randn(like.shape, generator=generator, dtype=torch.float32)
    return (values * std).to(device=like.device, dtype=like.dtype)


def _redraw_parameter(generator: torch.Generator, module: nn.Module, name: str, param: torch.Tensor) -> None:
    if isinstance(module, _CONV_OR_LINEAR) and name == "weight":
        fan_in = max(param[0].numel(), 1)
        bound = math.sqrt(3.0 / fan_in)
        param.copy_(_uniform(generator, param, -bound, bound))
    elif isinstance(module, _CONV_OR_LINEAR) and name == "bias":
        param.copy_(_normal(generator, param, 0.1))
    elif isinstance(module, _BATCH_NORM) and name == "weight":
        param.copy_(_uniform(generator, param, 0.5, 1.5))
    elif isinstance(module, _BATCH_NORM) and name == "bias":
        param.copy_(_normal(generator, param, 0.3))
    else:
        param.copy_(param * _uniform(generator, param, 0.5, 1.5) + _normal(generator, param, 0.1))


def randomize_(model: ModuleT, seed: int) -> ModuleT:
    """Re-draw, in place and deterministically for `seed`, every parameter and BN statistic of `model`.

    Meant for freshly built reference models (tests, demos, benchmarks): it overwrites trained
    weights. Modules are visited in `named_modules()` order and shared tensors are drawn once.
    Returns `model` itself.
    """
    generator = torch.Generator(device="cpu").manual_seed(seed)
    seen: set[int] = set()
    with torch.no_grad():
        for module in model.modules():
            for name, param in module.named_parameters(recurse=False):
                if id(param) in seen or not param.requires_grad or not param.is_floating_point():
                    continue
                seen.add(id(param))
                _redraw_parameter(generator, module, name, param)
            if isinstance(module, _BATCH_NORM):
                mean, var = module.running_mean, module.running_var
                if mean is not None and id(mean) not in seen:
                    seen.add(id(mean))
                    mean.copy_(_normal(generator, mean, 0.3))
                if var is not None and id(var) not in seen:
                    seen.add(id(var))
                    var.copy_(_uniform(generator, var, 0.5, 2.0))
    return model
