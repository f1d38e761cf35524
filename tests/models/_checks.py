"""Shared assertions for the reference-model tests: scaled closeness, tracing and export round trips."""

from __future__ import annotations

import torch
from torch import nn

from fxrep.models import randomize_


def randomized_eval(model: nn.Module, seed: int = 0) -> nn.Module:
    """`model` with re-drawn parameters and BN statistics, in eval mode."""
    return randomize_(model, seed).eval()


def assert_close_scaled(actual: torch.Tensor, expected: torch.Tensor, tol: float = 1e-5) -> None:
    """assert_close with rtol = tol and atol = tol * max|expected| (at least tol)."""
    scale = max(expected.detach().abs().max().item(), 1.0)
    torch.testing.assert_close(actual, expected, rtol=tol, atol=tol * scale)


def max_abs_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a - b).detach().abs().max().item()


def assert_symbolic_trace_matches(model: nn.Module, *inputs: torch.Tensor) -> torch.fx.GraphModule:
    graph_module = torch.fx.symbolic_trace(model)
    with torch.no_grad():
        assert_close_scaled(graph_module(*inputs), model(*inputs))
    return graph_module


def assert_export_matches(model: nn.Module, *inputs: torch.Tensor) -> torch.export.ExportedProgram:
    program = torch.export.export(model, inputs, strict=False)
    with torch.no_grad():
        assert_close_scaled(program.module()(*inputs), model(*inputs))
    return program


def assert_deterministic(build, *inputs: torch.Tensor, seed: int = 0) -> None:
    """Two builds under the same torch.manual_seed have equal state and equal eval outputs; reruns agree."""
    torch.manual_seed(seed)
    first = build().eval()
    torch.manual_seed(seed)
    second = build().eval()
    first_state, second_state = first.state_dict(), second.state_dict()
    assert first_state.keys() == second_state.keys()
    for key in first_state:
        torch.testing.assert_close(first_state[key], second_state[key], rtol=0, atol=0)
    with torch.no_grad():
        out = first(*inputs)
        torch.testing.assert_close(first(*inputs), out, rtol=0, atol=0)
        torch.testing.assert_close(second(*inputs), out, rtol=0, atol=0)


def count_modules(model: nn.Module, kind: type | tuple[type, ...]) -> int:
    return sum(isinstance(module, kind) for module in model.modules())


def fold_bn(kernel: torch.Tensor, bn: nn.modules.batchnorm._BatchNorm) -> tuple[torch.Tensor, torch.Tensor]:
    """Eval BN after a conv: (W * a, c) with a = gamma / sqrt(var + eps), c = beta - mean * a."""
    a = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    return kernel * a.reshape(-1, *([1] * (kernel.dim() - 1))), bn.bias - bn.running_mean * a


def identity_kernel(channels: int, groups: int, kernel_size: int) -> torch.Tensor:
    """Dirac kernel (channels, channels / groups, k, k): output channel o copies input channel o."""
    input_dim = channels // groups
    kernel = torch.zeros(channels, input_dim, kernel_size, kernel_size)
    for o in range(channels):
        kernel[o, o % input_dim, kernel_size // 2, kernel_size // 2] = 1
    return kernel
