"""Replace hand-written hard-swish by the fused op, with a declarative pattern.

MobileNetV3-era code often spells hard-swish out: ``x * F.relu6(x + 3) / 6``, or with
``F.hardtanh(x + 3, 0, 6)`` or ``torch.clamp(x + 3, 0, 6)``, multiplied and divided in any order.
That is four to five elementwise ops where ``F.hardswish`` is one (and one fused epilogue in
TensorRT). The pattern below is written once: fxrep matches it through its op views, so the same
pattern finds every spelling above (``relu6``, ``hardtanh`` and ``clamp`` with bounds 0 and 6 are one
op to it, and products match in any order and association), in module-level graphs
(``torch.fx.symbolic_trace``) and ATen graphs (``torch.export``) alike. The replacement is a
PyTorch function too, inlined in the graph's own form: ``F.hardswish`` at module level,
``aten.hardswish`` in an exported graph.

The pass runs *before* the default pipeline: ``x / 6`` is linear, and ``collapse_linear_regions``
would otherwise fold it into the next conv, leaving ``x * relu6(x + 3)``, which is no longer
hard-swish.

Run: python examples/fuse_hardswish.py
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from fxrep.passes import default_pipeline
from torch import nn

import fxrep
from fxrep import patterns as P
from fxrep.models import randomize_


def hardswish_by_hand(x: Any) -> Any:
    """The pattern: ``x * relu6(x + 3) / 6`` (hardtanh and clamp spellings match too)."""
    return x * F.relu6(x + 3) / 6


def hardswish(x: Any) -> Any:
    """The replacement."""
    return F.hardswish(x)


@dataclass(frozen=True)
class FuseHardswish(P.PatternPass):
    """``x * relu6(x + 3) / 6`` -> ``hardswish(x)`` (see the module docstring)."""

    name: str = "fuse_hardswish"
    pattern: Any = hardswish_by_hand
    replacement: Any = hardswish


class HandWrittenHardswishNet(nn.Module):
    """Three conv-BN blocks, each followed by hard-swish spelled a different way."""

    def __init__(self, channels: int = 8) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.Conv2d(3 if i == 0 else channels, channels, 3, padding=1, bias=False),
                          nn.BatchNorm2d(channels))
            for i in range(3)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks[0](x)
        x = x * F.relu6(x + 3) / 6
        x = self.blocks[1](x)
        x = F.hardtanh(x + 3, 0.0, 6.0) * x / 6
        x = self.blocks[2](x)
        return x / 6 * torch.clamp(3 + x, 0, 6)


def build_model() -> nn.Module:
    return randomize_(HandWrittenHardswishNet(), seed=0).eval()


def main() -> None:
    torch.manual_seed(0)
    model = build_model()
    inputs = (torch.randn(2, 3, 16, 16),)
    for capture_method in ("export", "symbolic_trace"):
        gm = fxrep.optimize(model, inputs, passes=[FuseHardswish(), *default_pipeline()],
                            capture_method=capture_method)
        report = fxrep.report_of(gm)
        before = {kind: report.ops_before[kind] for kind in ("mul", "div", "add", "relu6", "hardtanh", "clamp")}
        print(f"captured with {report.capture}: fuse_hardswish fired "
              f"{report.fired('fuse_hardswish')['fuse_hardswish']} times")
        print(f"  elementwise ops before: {({k: v for k, v in before.items() if v})}")
        print(f"  hardswish ops after: {report.ops_after['hardswish']}, "
              f"all ops after: {dict(report.ops_after)}")
        error = (gm(*inputs) - model(*inputs)).abs().max().item()
        print(f"  max abs error against the original model: {error:.3g}")
    print()
    print(report)


if __name__ == "__main__":
    main()
