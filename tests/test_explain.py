"""`fxrep.explain`: every candidate with what fired and why the others did not, as text and data."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

import fxrep
from fxrep.models import RepVGGBlock
from tests.helpers import LEVELS, randomized


class MisalignedACBlock(nn.Module):
    """An ACNet block whose horizontal branch was built with reflect padding by mistake."""

    def __init__(self):
        super().__init__()
        self.square = nn.Conv2d(8, 8, 3, padding=1)
        self.hor = nn.Conv2d(8, 8, (1, 3), padding=(0, 1), padding_mode="reflect")
        self.ver = nn.Conv2d(8, 8, (3, 1), padding=(1, 0))

    def forward(self, x):
        return torch.relu(self.square(x) + self.hor(x) + self.ver(x))


@pytest.mark.parametrize("level", LEVELS)
def test_the_misaligned_branch_is_named_with_the_reason(level):
    explanation = fxrep.explain(randomized(MisalignedACBlock()), torch.randn(1, 8, 12, 12), capture_method=level)
    text = str(explanation)
    assert "hor" in text and "reflect" in text
    assert any(row.outcome == "fired" for row in explanation.rows)  # square + ver still merge
    refused = explanation.refused()
    assert refused and all(row.detail for row in refused)


def test_explanation_as_data_and_for_a_module():
    explanation = fxrep.explain(randomized(nn.Sequential(RepVGGBlock(8, 8, 3, padding=1))), torch.randn(1, 8, 8, 8))
    fired = [row for row in explanation.rows if row.outcome == "fired"]
    assert fired and "fold_batchnorm" in " ".join(row.detail for row in fired)
    assert explanation.for_module("0")
    json.dumps(explanation.to_dict())


def test_shared_conv_reason_is_explained():
    class Shared(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv3 = nn.Conv2d(8, 8, 3, padding=1)
            self.bn = nn.BatchNorm2d(8)

        def forward(self, x):
            y = self.conv3(x)
            return self.bn(y), torch.relu(y)

    explanation = fxrep.explain(randomized(Shared()), torch.randn(1, 8, 8, 8))
    assert "feeds 2 users" in str(explanation)
