"""Shared pieces of the cost tests: a counting fake timer, and a small captured block."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn

from fxrep.capture import capture
from fxrep.cost import OpSignature, TimingEntry
from fxrep.models import RepVGGBlock, randomize_


class CountingTimer:
    """A fake `fxrep.cost.measured.Timer`: runs the op once (so it must be buildable), counts the calls and
    answers a deterministic made-up time that differs per op (the number of output elements, in ns)."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, run: Callable[[], object], device: torch.device) -> TimingEntry:
        self.calls += 1
        out = run()
        return TimingEntry.from_samples([out.numel() * 1e-9, out.numel() * 1.1e-9], 1, "fake")


@pytest.fixture
def counting_timer() -> CountingTimer:
    return CountingTimer()


def small_block(level: str = "export") -> torch.fx.GraphModule:
    """A RepVGG block (3x3 + 1x1 + identity BN, ReLU) on 8 channels, 10x10, captured at ``level``."""
    model = randomize_(RepVGGBlock(8, 8), 0).eval()
    return capture(model, (torch.randn(2, 8, 10, 10),), method=level).graph_module


def conv_signature(**changes: object) -> OpSignature:
    from fxrep.cost import ConvSignature

    values = dict(in_channels=8, out_channels=16, kernel=(3, 3), stride=(1, 1), padding=((1, 1), (1, 1)),
                  dilation=(1, 1), groups=1, in_size=(10, 10), batch=2, itemsize=4)
    values.update(changes)
    return ConvSignature(**values)


@pytest.fixture
def block() -> nn.Module:
    return randomize_(RepVGGBlock(8, 8), 0).eval()
