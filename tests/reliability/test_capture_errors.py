"""Capture failures say which capture was tried, where it failed and what to do."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import fxrep


class DataDependent(nn.Module):
    def forward(self, x):
        if x.sum() > 0:
            return x * 2
        return x


class Result:
    """A plain Python object holding a tensor (not a registered pytree)."""

    def __init__(self, tensor):
        self.tensor = tensor


class ObjectOutput(nn.Module):
    def forward(self, x):
        return Result(x * 2)


def test_both_methods_are_reported_when_both_fail():
    with pytest.raises(fxrep.CaptureError) as error:
        fxrep.optimize(DataDependent(), torch.randn(3))
    message = str(error.value)
    assert "torch.export (non-strict) failed" in message and "torch.fx.symbolic_trace failed" in message
    assert "test_capture_errors.py" in message  # the failing line of user code
    assert "torch.where" in message  # what to do
    assert [method for method, _ in error.value.attempts] == ["torch.export (non-strict)", "torch.fx.symbolic_trace"]


def test_non_tensor_outputs_get_a_clear_error():
    with pytest.raises(fxrep.CaptureError) as error:
        fxrep.optimize(ObjectOutput(), torch.randn(3))
    message = str(error.value)
    assert "Result" in message and "register a pytree" in message
    assert "outputs made of tensors" in message


def test_symbolic_trace_without_inputs_suggests_passing_them():
    with pytest.raises(fxrep.CaptureError, match="pass example_inputs"):
        fxrep.optimize(DataDependent())
