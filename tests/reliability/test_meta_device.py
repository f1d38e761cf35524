"""A model or example input on the meta device (shapes, no values) gets a clear InvalidModelError, not a raw
``Tensor.item() cannot be called on meta tensors``."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import fxrep
from fxrep.models import RepVGGBlock


@pytest.fixture
def block() -> nn.Module:
    return RepVGGBlock(4, 4).eval()


@pytest.mark.parametrize("with_inputs", [True, False])
def test_a_model_on_meta_names_the_tensor_and_how_to_materialise_it(block, with_inputs):
    model = block.to("meta")
    inputs = (torch.randn(1, 4, 8, 8, device="meta"),) if with_inputs else ()
    with pytest.raises(fxrep.InvalidModelError) as error:
        fxrep.optimize(model, *inputs)
    message = str(error.value)
    first = next(name for name, _ in model.named_parameters())
    assert message.startswith(f"{first} is on the meta device")
    assert "to_empty(device='cpu')" in message and "load_state_dict" in message


def test_a_model_on_meta_is_refused_even_without_verification(block):
    with pytest.raises(fxrep.InvalidModelError, match="meta device"):
        fxrep.optimize(block.to("meta"), torch.randn(1, 4, 8, 8, device="meta"), verify=False)


class TwoInputs(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3, padding=1)

    def forward(self, pair):
        return self.conv(pair[0]) + pair[1]


def test_a_meta_example_input_is_named_where_it_sits():
    real = torch.randn(1, 4, 8, 8)
    with pytest.raises(fxrep.InvalidModelError) as error:
        fxrep.optimize(TwoInputs(), ((real, torch.randn(1, 4, 8, 8, device="meta")),))
    assert str(error.value).startswith("example_inputs[0][1] is on the meta device")
    assert "Pass real tensors of the same shape" in str(error.value)


def test_a_materialised_model_optimizes(block):
    model = block.to("meta").to_empty(device="cpu")
    for tensor in (*model.parameters(), *model.buffers()):
        tensor.data.copy_(torch.rand_like(tensor) if tensor.is_floating_point() else torch.zeros_like(tensor))
    deploy = fxrep.optimize(model, torch.randn(1, 4, 8, 8))
    assert deploy.fxrep_report.verification.passed
