"""Hand-written activations become the one op they compute: rules written on `fxrep.patterns`.

Models written for old exporters, ports between frameworks and copied reference code spell
activations out in elementwise ops (YOLOv5's ``x * F.hardtanh(x + 3, 0, 6) / 6``, timm's
``hard_sigmoid``, Swish as ``x * torch.sigmoid(x)``, BERT's and GPT-2's GELU formulas). Each is a
chain of 3-9 kernels where PyTorch, ONNX and TensorRT have one, and its affine parts (``x + 3``,
``/ 6``) would otherwise be folded into neighbouring convs, leaving the rest behind. Each rule is
the exact identity (in real arithmetic) between the written form and the fused op:

    hardswish(x)   = x * relu6(x + 3) / 6          = x * hardsigmoid(x)
    hardsigmoid(x) = relu6(x + 3) / 6
    silu(x)        = x * sigmoid(x)
    gelu(x)        = x * 0.5 * (1 + erf(x / sqrt(2)))
    gelu_tanh(x)   = 0.5 * x * (1 + tanh(sqrt(2 / pi) * (x + 0.044715 * x ** 3)))   (torch.pow or **)

The clamp family matches as one op (``relu6``, ``hardtanh(0, 6)``, ``clamp(0, 6)``), sums and
products in any order and association (see `fxrep.patterns`). A rule fires only where the
intermediate values have no other reader. The longer rules run first, so ``x * relu6(x + 3) / 6``
becomes one hardswish, not ``x * hardsigmoid(x)``; the verifier checks the outputs as for every pass.
Near misses are not reported as refusals: almost every product of a value and a sigmoid in a real
model is a gate (squeeze-and-excitation), not a Swish, and listing each would bury the report.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch.fx import GraphModule

from fxrep import pass_api as api


def _hardswish(x):
    return x * F.relu6(x + 3) / 6


def _x_times_hardsigmoid(x):
    return x * F.hardsigmoid(x)


def _hardsigmoid(x):
    return F.relu6(x + 3) / 6


def _silu(x):
    return x * torch.sigmoid(x)


def _gelu_erf(x):
    return x * 0.5 * (1.0 + torch.erf(x / math.sqrt(2.0)))


def _gelu_tanh(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


def _gelu_tanh_power_operator(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3.0)))


def _fused_gelu_tanh(x):
    return F.gelu(x, approximate="tanh")


def _fused_gelu(x):
    return F.gelu(x)


def _fused_hardswish(x):
    return F.hardswish(x)


def _fused_hardsigmoid(x):
    return F.hardsigmoid(x)


def _fused_silu(x):
    return F.silu(x)


def _rules() -> tuple[api.PatternPass, ...]:
    """The rules in the order they run: longer forms before the forms they contain. (Module-level
    functions, so two pipelines' rules compare equal.)"""
    return (
        api.PatternPass(name="fuse_gelu_tanh", pattern=_gelu_tanh, replacement=_fused_gelu_tanh),
        api.PatternPass(name="fuse_gelu_tanh", pattern=_gelu_tanh_power_operator, replacement=_fused_gelu_tanh),
        api.PatternPass(name="fuse_gelu", pattern=_gelu_erf, replacement=_fused_gelu),
        api.PatternPass(name="fuse_hardswish", pattern=_hardswish, replacement=_fused_hardswish),
        api.PatternPass(name="fuse_hardswish", pattern=_x_times_hardsigmoid, replacement=_fused_hardswish),
        api.PatternPass(name="fuse_hardsigmoid", pattern=_hardsigmoid, replacement=_fused_hardsigmoid),
        api.PatternPass(name="fuse_silu", pattern=_silu, replacement=_fused_silu),
    )


@dataclass(frozen=True)
class FuseActivations(api.Pass):
    """Replace hand-written activations by the fused op (see the module docstring)."""

    name: ClassVar[str] = "fuse_activations"
    rules: tuple[api.PatternPass, ...] = field(default_factory=_rules)

    def __call__(self, gm: GraphModule) -> api.PassResult:
        result = api.PassResult()
        for rule in self.rules:
            done = rule(gm)
            result.modified = result.modified or done.modified
            result.counts.update(done.counts)
            result.rewrites.extend(done.rewrites)  # near misses are not refusals here (module docstring)
        return result
