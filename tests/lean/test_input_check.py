"""The lean forward's input check: one cheap comparison, and a clear `InputShapeError` on a mismatch."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import fxrep
from fxrep.errors import InputShapeError
from fxrep.models import RepVGGBlock, randomize_


@pytest.fixture(scope="module")
def block():
    return randomize_(RepVGGBlock(4, 4), 0).eval()


def test_a_static_capture_rejects_another_spatial_size_naming_the_captured_shape(block):
    gm = fxrep.optimize(block, torch.randn(2, 4, 8, 8), dynamic_batch=False)
    assert "inputs.shape != (2, 4, 8, 8)" in gm.code and "_guards_fn" not in gm.code
    with pytest.raises(InputShapeError) as error:
        gm(torch.randn(2, 4, 9, 8))
    message = str(error.value)
    assert "inputs of shape (2, 4, 8, 8)" in message and "called with inputs of shape (2, 4, 9, 8)" in message
    assert "dynamic_shapes=" in message
    assert isinstance(error.value, ValueError) and isinstance(error.value, fxrep.FxrepError)
    assert error.value.expected == ((2, 4, 8, 8),) and error.value.got == ((2, 4, 9, 8),)


def test_a_static_capture_rejects_another_batch_and_says_dynamic_batch_would_take_it(block):
    gm = fxrep.optimize(block, torch.randn(2, 4, 8, 8), dynamic_batch=False)
    with pytest.raises(InputShapeError, match=r"dynamic_batch=True"):
        gm(torch.randn(3, 4, 8, 8))


def test_a_dynamic_batch_capture_takes_any_batch_but_checks_the_other_sizes(block):
    gm = fxrep.optimize(block, torch.randn(2, 4, 8, 8))
    assert "inputs.shape[1:] != (4, 8, 8)" in gm.code
    for batch in (1, 7):
        gm(torch.randn(batch, 4, 8, 8))
    with pytest.raises(InputShapeError, match=r"captured for inputs of shape \(batch, 4, 8, 8\)"):
        gm(torch.randn(2, 4, 8, 9))
    with pytest.raises(InputShapeError):
        gm(torch.randn(4, 8, 8))  # a missing batch dimension


class TwoInputs(nn.Module):
    def forward(self, x, y):
        return x * 2 + y.mean(1, keepdim=True).unsqueeze(-1)


def test_inputs_that_share_the_batch_must_agree():
    model = TwoInputs()
    gm = fxrep.optimize(model, (torch.randn(2, 3, 4), torch.randn(2, 5)))
    torch.testing.assert_close(gm(torch.randn(6, 3, 4), torch.randn(6, 5)).shape, torch.Size([6, 3, 4]))
    with pytest.raises(InputShapeError, match="y of shape"):
        gm(torch.randn(6, 3, 4), torch.randn(5, 5))


def test_the_bounds_of_a_dynamic_size_are_checked():
    model = TwoInputs()
    batch = torch.export.Dim("batch", min=1, max=4)
    example = (torch.randn(2, 3, 4), torch.randn(2, 5))
    gm = fxrep.optimize(model, example, dynamic_shapes=({0: batch}, {0: batch}))
    gm(torch.randn(4, 3, 4), torch.randn(4, 5))
    with pytest.raises(InputShapeError, match="batch from 1 to 4"):
        gm(torch.randn(5, 3, 4), torch.randn(5, 5))


def test_related_sizes_use_the_guard_function_and_translate_its_failure():
    class EvenHeight(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(4, 4, 2, stride=2)

        def forward(self, x):
            return self.conv(x)

    height = torch.export.Dim("height", min=2, max=64)
    gm = fxrep.optimize(EvenHeight().eval(), torch.randn(2, 4, 8, 8), dynamic_shapes=({2: 2 * height},))
    assert "self._guards_fn(x)" in gm.code
    gm(torch.randn(2, 4, 12, 8))
    with pytest.raises(InputShapeError, match="torch.export's guard") as error:
        gm(torch.randn(2, 4, 130, 8))  # height at most 2 * 64
    assert isinstance(error.value.__cause__, AssertionError)


def test_symbolic_trace_graphs_have_no_check(block):
    gm = fxrep.optimize(block, torch.randn(2, 4, 8, 8), capture_method="symbolic_trace")
    assert "fxrep_input_shape_error" not in gm.code
    gm(torch.randn(3, 4, 10, 10))
