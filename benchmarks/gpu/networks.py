"""The networks the GPU benchmark times, and how each is put on the device.

Two reference networks of `fxrep.models`, each with its official hand-written deploy conversion:
RepVGG-A0 (`repvgg_model_convert`) and MobileOne-S0 (`reparameterize_model`). Weights and
BatchNorm statistics are re-drawn by `fxrep.models.randomize_` (no downloads). Random branches add
up: a randomized MobileOne-S0's logits reach ~1e11, far beyond float16's range, where a trained
network stays near 1. `unit_scale_` therefore rescales each block's BatchNorm affine parameters
so that the block's output has unit standard deviation on a random batch; the structure, and so
every timing, is unchanged, and fp16 results stay finite and comparable.

On NVIDIA GPUs PyTorch runs float32 convs as TF32 by default (``torch.backends.cudnn.allow_tf32``),
10 mantissa bits, so two exact rewrites of one network differ by ~1e-3 in float32: more than
fxrep's float32 verification tolerance. Verification and the reported errors therefore run inside
`exact_convs` (TF32 off for convs); the timings keep PyTorch's default, which is what deployments
get (both settings are in the results). Dynamo does not guard on this flag, so switching it does
not recompile anything. The hand
conversion is done once in float32 on the CPU, as its authors run it, and then moved; fxrep
optimizes the training form as deployed (on the device, in the measured dtype), since that is
what a user hands it. Every module is put in channels_last memory format (`on_device`), the fast
layout for convs on NVIDIA GPUs, and so is every input.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Iterator

import torch
from torch import nn

from fxrep.models import (
    MobileOneBlock,
    RepVGGBlock,
    mobileone_s0,
    randomize_,
    reparameterize_model,
    repvgg_a0,
    repvgg_model_convert,
)

NETWORKS: dict[str, tuple[Callable[[], nn.Module], Callable[[nn.Module], nn.Module]]] = {
    "RepVGG-A0": (repvgg_a0, repvgg_model_convert),
    "MobileOne-S0": (mobileone_s0, reparameterize_model),
}
"""Network name -> (training-form factory, official hand conversion)."""

DTYPES = {"fp32": torch.float32, "fp16": torch.float16}
BLOCKS = (RepVGGBlock, MobileOneBlock)


def reference_pair(network: str, seed: int) -> tuple[nn.Module, nn.Module]:
    """(training form, hand conversion), float32 on the CPU, in eval mode, randomized with ``seed``."""
    build, convert = NETWORKS[network]
    torch.manual_seed(seed)
    model = randomize_(build(), seed).eval()
    unit_scale_(model, torch.randn(4, 3, 64, 64, generator=torch.Generator().manual_seed(seed)))
    return model, convert(model).eval()


def unit_scale_(model: nn.Module, x: torch.Tensor) -> nn.Module:
    """Scale each block's BatchNorm weights and biases so its output has unit std on ``x`` (in place).

    A block's output is ReLU of a sum of BatchNorm outputs, and ReLU is positively homogeneous:
    multiplying every BatchNorm weight and bias of the block by ``c > 0`` multiplies its output by
    ``c`` exactly. Blocks are scaled in forward order, each seeing the already scaled ones before it.
    """

    def rescale(block: nn.Module, _inputs: object, output: torch.Tensor) -> torch.Tensor:
        factor = 1.0 / max(output.std().item(), 1e-12)
        for bn in block.modules():
            if isinstance(bn, nn.BatchNorm2d):
                bn.weight.mul_(factor)
                bn.bias.mul_(factor)
        return output * factor

    hooks = [m.register_forward_hook(rescale) for m in model.modules() if isinstance(m, BLOCKS)]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for hook in hooks:
            hook.remove()
    return model


def on_device(module: nn.Module, device: str, dtype: torch.dtype) -> nn.Module:
    """A copy of ``module`` on ``device`` in ``dtype``, 4-d parameters and buffers in channels_last."""
    return copy.deepcopy(module).to(device=device, dtype=dtype, memory_format=torch.channels_last)


def example_input(batch: int, size: int, device: str, dtype: torch.dtype, seed: int) -> torch.Tensor:
    """A (batch, 3, size, size) N(0, 1) image batch on ``device`` in ``dtype``, channels_last."""
    x = torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(seed))
    return x.to(device=device, dtype=dtype).contiguous(memory_format=torch.channels_last)


def conv_weights_channels_last(module: nn.Module) -> tuple[int, int]:
    """(4-d tensors laid out channels_last, all 4-d tensors) among ``module``'s parameters and buffers.

    A 1x1 or a (C, 1, k, k) depthwise weight is laid out both ways; it counts as channels_last.
    """
    tensors = [t for t in [*module.parameters(), *module.buffers()] if t.dim() == 4]
    return sum(t.is_contiguous(memory_format=torch.channels_last) for t in tensors), len(tensors)


@contextlib.contextmanager
def exact_convs() -> Iterator[None]:
    """float32 convs in full float32 (no TF32) inside the block; the previous setting afterwards."""
    previous = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32 = previous
