"""End to end on torchvision architectures in eval mode: every BatchNorm folds, outputs stay equal."""

from __future__ import annotations

import pytest
import torch

import fxrep
from tests.helpers import assert_equivalent, ops, randomized

torchvision = pytest.importorskip("torchvision")


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2"])
def test_no_batchnorm_left_and_outputs_equal(name):
    model = randomized(getattr(torchvision.models, name)())
    x = torch.randn(1, 3, 64, 64)
    gm = fxrep.optimize(model, x)
    assert ops(gm)["batchnorm"] == 0
    assert gm.fxrep_report.verification.max_rel <= 1e-5
    assert_equivalent(model, gm, x)
