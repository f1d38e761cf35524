"""Helpers shared by the tests: capture at both levels, randomised models, op counts, error checks."""

from __future__ import annotations

from collections import Counter

import torch
from torch import nn
from torch.fx import GraphModule

from fxrep.capture import capture
from fxrep.models import randomize_
from fxrep.report import count_ops

LEVELS = ("export", "symbolic_trace")
"""The two capture levels every pass is tested at: ATen graphs (torch.export) and module graphs."""


def captured(model: nn.Module, *inputs: torch.Tensor, level: str) -> GraphModule:
    """``model`` captured at ``level`` (shapes recorded in both cases)."""
    return capture(model, inputs, method=level).graph_module


def randomized(model: nn.Module, seed: int = 0) -> nn.Module:
    """``model`` with random weights and BatchNorm statistics, in eval mode."""
    return randomize_(model, seed).eval()


def ops(gm: GraphModule) -> Counter:
    return count_ops(gm)


def relative_error(expected: torch.Tensor, actual: torch.Tensor) -> float:
    """max |actual - expected| / max |expected| (the verifier's measure)."""
    scale = expected.abs().max().clamp_min(1e-30)
    return float((actual - expected).abs().max() / scale)


def assert_equivalent(model: nn.Module, gm: nn.Module, *inputs: torch.Tensor, tolerance: float = 1e-5) -> None:
    with torch.no_grad():
        expected, actual = model(*inputs), gm(*inputs)
    error = relative_error(expected, actual)
    assert error <= tolerance, f"relative error {error:.3g} > {tolerance:g}"
