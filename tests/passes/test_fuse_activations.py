"""FuseActivations: hand-written activations become one op, at both capture levels; negative cases
(an intermediate read elsewhere, a sigmoid gate of another value); idempotence; the whole pipeline."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from fxrep.passes import FuseActivations
from torch import nn

import fxrep
from tests.helpers import LEVELS, assert_equivalent, captured, ops, randomized

X = torch.randn(2, 4, 8, 8)


class Written(nn.Module):
    """Each activation spelled out, as YOLOv5, timm's hard_sigmoid, Swish ports, BERT and GPT-2 write them."""

    def __init__(self, form: str):
        super().__init__()
        self.form = form
        self.conv = nn.Conv2d(4, 4, 3, padding=1)

    def forward(self, x):
        y = self.conv(x)
        if self.form == "hardswish":
            return y * F.hardtanh(y + 3, 0.0, 6.0) / 6
        if self.form == "hardswish_clamp":
            return y * (torch.clamp(3 + y, 0, 6) / 6)
        if self.form == "x_hardsigmoid":
            return y * F.hardsigmoid(y)
        if self.form == "hardsigmoid":
            return F.relu6(y + 3.0) / 6.0
        if self.form == "silu":
            return torch.sigmoid(y) * y
        if self.form == "gelu":
            return y * 0.5 * (1.0 + torch.erf(y / math.sqrt(2.0)))
        if self.form == "swish_methods":
            return y.mul(y.sigmoid())  # timm's swish
        if self.form == "gelu_tanh_power_operator":
            return 0.5 * y * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (y + 0.044715 * y ** 3)))
        return 0.5 * y * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (y + 0.044715 * torch.pow(y, 3.0))))


FUSED = {"hardswish": "hardswish", "hardswish_clamp": "hardswish", "x_hardsigmoid": "hardswish",
         "hardsigmoid": "hardsigmoid", "silu": "silu", "swish_methods": "silu", "gelu": "gelu", "gelu_tanh": "gelu",
         "gelu_tanh_power_operator": "gelu"}


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("form", list(FUSED))
def test_a_written_activation_becomes_one_op(form, level):
    model = randomized(Written(form))
    gm = captured(model, X, level=level)
    result = FuseActivations()(gm)
    counted = ops(gm)
    fused = FUSED[form]
    assert result.modified and sum(result.counts.values()) == 1, result.counts
    assert result.counts == {f"fuse_{'gelu_tanh' if form.startswith('gelu_tanh') else fused}": 1}
    assert counted[fused] == 1 and counted["conv"] == 1, counted
    assert sum(counted.values()) == 2, counted  # the conv and the activation, nothing else
    assert_equivalent(model, gm, X)
    code = gm.code
    assert not FuseActivations()(gm).modified and gm.code == code  # idempotent


class SharedIntermediate(nn.Module):
    def forward(self, x):
        shifted = x + 3
        return x * F.relu6(shifted) / 6, shifted


class Gate(nn.Module):
    """Squeeze-and-excitation: a value times the sigmoid of another value is not a Swish."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 1)

    def forward(self, x):
        return x * torch.sigmoid(self.conv(x.mean((2, 3), keepdim=True)))


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("model", [SharedIntermediate(), Gate()], ids=["shared_intermediate", "gate"])
def test_forms_that_are_not_the_activation_are_left_alone(model, level):
    model = randomized(model)
    gm = captured(model, X, level=level)
    before = ops(gm)
    result = FuseActivations()(gm)
    assert not result.modified and ops(gm) == before
    assert result.refusals == []  # near misses are not reported


class YoloV5Block(nn.Module):
    """Conv + BN + YOLOv5's export-friendly Hardswish, twice."""

    def __init__(self):
        super().__init__()
        self.convs = nn.ModuleList([nn.Conv2d(4, 4, 3, padding=1, bias=False) for _ in range(2)])
        self.bns = nn.ModuleList([nn.BatchNorm2d(4) for _ in range(2)])

    def forward(self, x):
        for conv, bn in zip(self.convs, self.bns, strict=True):
            y = bn(conv(x))
            x = y * F.hardtanh(y + 3, 0.0, 6.0) / 6.0
        return x


def test_the_default_pipeline_fuses_before_the_affine_parts_fold_away():
    model = randomized(YoloV5Block())
    gm = fxrep.optimize(model, X)
    assert gm.fxrep_report.fired("fuse_activations") == {"fuse_hardswish": 2}
    after = gm.fxrep_report.ops_after
    assert after["conv"] == 2 and after["hardswish"] == 2 and after.get("batchnorm", 0) == 0, after
    assert after.get("mul", 0) == after.get("add", 0) == after.get("div", 0) == 0, after
    assert_equivalent(model, gm, X)
