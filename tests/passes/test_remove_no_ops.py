"""RemoveNoOps: every inference no-op goes (structurally and numerically), and the copies a later view
relies on, and outputs that would alias an input, stay."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from fxrep.passes import RemoveNoOps
from torch import nn

from tests.helpers import LEVELS, captured, ops


class NoOps(nn.Module):
    def __init__(self):
        super().__init__()
        self.drop, self.drop2d, self.alpha = nn.Dropout(0.5), nn.Dropout2d(0.5), nn.AlphaDropout(0.5)
        self.identity = nn.Identity()

    def forward(self, x):
        y = torch.relu(x)
        y = self.alpha(self.drop2d(self.drop(y)))
        y = F.dropout(self.identity(y), 0.3, training=False)
        y = (y * 1 + 0) / 1 - 0
        y = y.reshape(y.shape).detach()
        return torch.sigmoid(y)


@pytest.mark.parametrize("level", LEVELS)
def test_every_inference_no_op_is_removed(level):
    model = NoOps().eval()
    x = torch.randn(2, 3, 4, 4)
    gm = captured(model, x, level=level)
    result = RemoveNoOps()(gm)
    assert result.modified
    assert dict(ops(gm)) == {"relu": 1, "sigmoid": 1}
    torch.testing.assert_close(gm(x), model(x))
    assert not RemoveNoOps()(gm).modified  # idempotent


class CopyForView(nn.Module):
    def forward(self, x):
        y = torch.relu(x).transpose(1, 2)
        return y.contiguous().view(y.shape[0], -1)  # the view needs the copy's layout


@pytest.mark.parametrize("level", LEVELS)
def test_a_copy_that_changes_the_layout_stays(level):
    model = CopyForView().eval()
    x = torch.randn(2, 3, 5)
    gm = captured(model, x, level=level)
    RemoveNoOps()(gm)
    torch.testing.assert_close(gm(x), model(x))
    assert ops(gm).get("identity", 0) == 1  # the contiguous copy


def test_returning_an_input_through_a_clone_keeps_the_clone():
    class Clone(nn.Module):
        def forward(self, x):
            return x.clone()

    gm = captured(Clone().eval(), torch.randn(2, 3), level="symbolic_trace")
    assert not RemoveNoOps()(gm).modified  # without the clone the output would be the caller's tensor


class ZeroPads(nn.Module):
    """Pads of width 0 (fuzz seeds 31035 / 31785 wrote them before a pooled head), and one that pads."""

    def forward(self, x):
        y = F.pad(torch.relu(x), [0, 0, 0, 0], mode="replicate")
        y = F.pad(y, [0, 0, 0, 0], mode="reflect") + F.pad(y, [0, 0, 0, 0], value=2.0)
        return torch.sigmoid(F.pad(y, [1, 0, 0, 0], mode="replicate"))


@pytest.mark.parametrize("level", LEVELS)
def test_a_pad_of_width_zero_in_any_mode_is_removed_and_a_real_pad_stays(level):
    model = ZeroPads().eval()
    x = torch.randn(2, 3, 4, 4)
    gm = captured(model, x, level=level)
    result = RemoveNoOps()(gm)
    assert result.counts == {"remove_pad": 3}
    assert ops(gm)["pad"] == 1
    torch.testing.assert_close(gm(x), model(x))
