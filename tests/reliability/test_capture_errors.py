"""Capture failures say which capture was tried, where it failed and what to do."""

from __future__ import annotations

import importlib.util
import textwrap

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


USER_MODEL = textwrap.dedent("""
    import torch


    class Branchy(torch.nn.Module):
        def forward(self, x):
            if x.sum() > 0:  # the failing line
                return x * 2
            return x
""")


@pytest.mark.parametrize("folders", [("fxrep",), ("torch",), ("code", "fxrep", "torch", "models")])
def test_user_code_in_folders_named_fxrep_or_torch_keeps_its_location(tmp_path, folders):
    path = tmp_path.joinpath(*folders, "user_model.py")
    path.parent.mkdir(parents=True)
    path.write_text(USER_MODEL)
    spec = importlib.util.spec_from_file_location("user_model", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    line = USER_MODEL.splitlines().index("        if x.sum() > 0:  # the failing line") + 1

    with pytest.raises(fxrep.CaptureError) as error:
        fxrep.optimize(module.Branchy(), torch.randn(3))
    for method, reason in error.value.attempts:
        assert f"(at {path}:{line}: if x.sum() > 0:" in reason, method
