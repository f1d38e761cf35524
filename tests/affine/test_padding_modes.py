"""Reflect / replicate / circular padding: a branch that reads only the centre tap merges into the padded kxk
conv (exact: it never reads the border), at both capture levels; a wider zero-padded branch stays apart."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from fxrep.passes import default_pipeline
from torch import nn
from torch.fx import Graph

from fxrep.affine.value import AffineValue, Source
from fxrep.algebra import conv_map
from fxrep.pass_manager import PassManager
from tests.helpers import LEVELS, assert_equivalent, captured, ops, randomized

MODES = ["reflect", "replicate", "circular"]


@pytest.mark.parametrize("mode", MODES)
def test_a_1x1_map_on_x_merges_into_a_map_on_padded_x_and_matches_torch(mode):
    x_node = Graph().placeholder("x")
    x = torch.randn(2, 3, 7, 6, dtype=torch.float64)
    w3, w1 = torch.randn(3, 3, 3, 3, dtype=torch.float64), torch.randn(3, 3, 1, 1, dtype=torch.float64)
    padded = Source(x_node, mode, ((1, 1), (1, 1)))
    a = AffineValue.of_source(padded, 3, 2).then(conv_map(w3), lambda s: None)
    b = AffineValue.of_source(x_node, 3, 2).then(conv_map(w1), lambda s: None)
    total = a.add(b, lambda s: None)
    (term,) = total.terms
    assert term[0] == padded and term[1].kernel_size == (3, 3) and not term[1].has_padding
    expected = F.conv2d(F.pad(x, (1, 1, 1, 1), mode=mode), w3) + F.conv2d(x, w1)
    torch.testing.assert_close(term[1].apply(F.pad(x, (1, 1, 1, 1), mode=mode)), expected)


class PaddedPlusPointwise(nn.Module):
    def __init__(self, mode):
        super().__init__()
        self.a = nn.Conv2d(4, 4, 3, padding=1, padding_mode=mode)
        self.bn = nn.BatchNorm2d(4)
        self.b = nn.Conv2d(4, 4, 1)

    def forward(self, x):
        return torch.relu(self.bn(self.a(x)) + self.b(x) + x)


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("mode", MODES)
def test_padded_kxk_plus_1x1_plus_identity_is_one_pad_and_one_conv(level, mode):
    model = randomized(PaddedPlusPointwise(mode))
    x = torch.randn(2, 4, 7, 6)
    gm = captured(model, x, level=level)
    PassManager(default_pipeline()).run(gm)
    assert ops(gm)["conv"] == 1 and ops(gm)["pad"] == 1 and ops(gm).get("add", 0) == 0
    assert_equivalent(model, gm, x)


class PaddedConvPooledHead(nn.Module):
    """A 1x1 conv reading a reflect/replicate/circular-padded tensor, then global mean and a Linear head."""

    def __init__(self, mode: str):
        super().__init__()
        self.mode = mode
        self.conv = nn.Conv2d(4, 8, 1, bias=False)
        self.fc = nn.Linear(8, 3)

    def forward(self, x):
        y = self.conv(F.pad(torch.relu(x), [1, 1, 1, 1], mode=self.mode))
        return self.fc(y.mean((2, 3)))


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("mode", MODES)
def test_a_mean_after_a_mode_padded_read_is_not_moved_before_the_padding(level, mode):
    """Fuzz seeds 31035 / 31785: the mean moved onto the padded source ran before its pad (a 2-D tensor)."""
    model = randomized(PaddedConvPooledHead(mode))
    x = torch.randn(2, 4, 7, 6)
    gm = captured(model, x, level=level)
    PassManager(default_pipeline()).run(gm)
    assert_equivalent(model, gm, x)
    assert ops(gm)["pad"] == 1 and ops(gm).get("conv", 0) + ops(gm)["linear"] <= 2
