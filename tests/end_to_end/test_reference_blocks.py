"""End to end: `fxrep.optimize` on the reference training-time blocks and nets (issue acceptance)."""

from __future__ import annotations

import pytest
import torch

import fxrep
from fxrep.models import (
    ACBlock,
    DiracConv2d,
    DiverseBranchBlock,
    ExpandCK,
    ExpandCL,
    MobileOneBlock,
    RepMixer,
    repvgg_a0,
)
from tests.helpers import LEVELS, assert_equivalent, ops, randomized

X = torch.randn(2, 8, 16, 16)


@pytest.mark.parametrize("level", LEVELS)
def test_repvgg_a0_becomes_22_plain_convs(level):
    model = randomized(repvgg_a0())
    x = torch.randn(1, 3, 64, 64)
    gm = fxrep.optimize(model, x, capture_method=level)
    after = ops(gm)
    assert after["conv"] == 22 and after["batchnorm"] == 0 and after["add"] == 0
    assert gm.fxrep_report.ops_before["conv"] == 44
    assert gm.fxrep_report.verification.passed
    assert gm.fxrep_report.verification.max_rel <= 1e-5
    assert_equivalent(model, gm, x)


@pytest.mark.parametrize("level", LEVELS)
def test_acnet_block_becomes_one_3x3_conv(level):
    model = randomized(ACBlock(8, 8))
    gm = fxrep.optimize(model, X, capture_method=level)
    assert ops(gm) == {"conv": 1}
    assert gm.fxrep_report.verification.max_rel <= 1e-5


@pytest.mark.parametrize("level", LEVELS)
def test_mobileone_block_becomes_one_depthwise_3x3(level):
    model = randomized(MobileOneBlock(8, 8, 3, padding=1, groups=8, num_conv_branches=4, use_act=False))
    gm = fxrep.optimize(model, X, capture_method=level)
    assert ops(gm) == {"conv": 1}
    (weight,) = [p for n, p in gm.named_parameters() if n.endswith("weight")]
    assert tuple(weight.shape) == (8, 1, 3, 3)


@pytest.mark.parametrize("level", LEVELS)
def test_diracnet_conv_becomes_one_conv_and_nothing_else(level):
    model = randomized(DiracConv2d(8, 8, 3, padding=1))
    gm = fxrep.optimize(model, X, capture_method=level)
    assert ops(gm) == {"conv": 1}
    assert gm.fxrep_report.fired("evaluate_constant_subgraphs")["evaluate_constants"] >= 1


def test_dbb_becomes_one_3x3_conv_and_zero_padded_variant_is_refused_with_reason():
    model = randomized(DiverseBranchBlock(8, 8, 3, padding=1, use_act=False))
    gm = fxrep.optimize(model, X)
    assert ops(gm) == {"conv": 1}
    assert gm.fxrep_report.verification.max_rel <= 1e-5

    zero = randomized(DiverseBranchBlock(8, 8, 3, padding=1, pad_mode="zero", use_act=False))
    gm = fxrep.optimize(zero, X)
    assert ops(gm)["conv"] > 1
    reasons = [r.reason for r in gm.fxrep_report.refusals]
    assert any("only padding with the bias is exact" in reason for reason in reasons), reasons
    assert "only padding with the bias is exact" in str(gm.fxrep_report)


@pytest.mark.parametrize("block", [ExpandCL(8, 8, 3, padding=1), ExpandCK(8, 8, 5), ExpandCK(8, 8, 7)],
                         ids=["CL", "CK5", "CK7"])
def test_expandnet_becomes_one_conv(block):
    model = randomized(block)
    gm = fxrep.optimize(model, X)
    assert ops(gm) == {"conv": 1}
    assert gm.fxrep_report.verification.max_rel <= 1e-5


def test_repmixer_becomes_one_depthwise_conv():
    model = randomized(RepMixer(8))
    gm = fxrep.optimize(model, X)
    assert ops(gm) == {"conv": 1}
    (weight,) = [p for n, p in gm.named_parameters() if n.endswith("weight")]
    assert tuple(weight.shape) == (8, 1, 3, 3)
