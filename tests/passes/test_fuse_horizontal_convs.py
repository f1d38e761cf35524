"""FuseHorizontalConvs: same-geometry convs of one input become one conv and a split."""

from __future__ import annotations

import pytest
import torch
from fxrep.passes import FoldBatchNorm, FuseHorizontalConvs
from torch import nn

from fxrep.models import InceptionBlock
from tests.helpers import LEVELS, assert_equivalent, captured, ops, randomized

X = torch.randn(2, 16, 12, 12)


@pytest.mark.parametrize("level", LEVELS)
def test_inception_1x1_reductions_fuse(level):
    model = randomized(InceptionBlock(16, 8, 8, 8, 4, 4, 4))
    gm = captured(model, X, level=level)
    FoldBatchNorm()(gm)
    convs = ops(gm)["conv"]
    result = FuseHorizontalConvs()(gm)
    assert result.counts["fuse_convs"] == 3  # the three 1x1 convs that read the block input
    assert ops(gm)["conv"] == convs - 2
    assert_equivalent(model, gm, X)


@pytest.mark.parametrize("level", LEVELS)
def test_different_geometry_is_not_fused(level):
    class Two(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Conv2d(16, 4, 1), nn.Conv2d(16, 4, 3, padding=1)

        def forward(self, x):
            return torch.relu(self.a(x)), torch.relu(self.b(x))

    gm = captured(randomized(Two()), X, level=level)
    assert not FuseHorizontalConvs()(gm).modified
