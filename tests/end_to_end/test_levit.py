"""The LeViT-style reference net against its hand conversion: no BatchNorm and no dropout left, the two
distillation heads one Linear, exact, at both capture levels."""

from __future__ import annotations

import pytest
import torch

import fxrep
from fxrep.models import levit_fuse, levit_small
from fxrep.report import count_ops
from tests.helpers import randomized, relative_error


@pytest.mark.parametrize("method", ["export", "symbolic_trace"])
def test_levit_keeps_no_batchnorm_no_dropout_and_merges_the_heads(method):
    model = randomized(levit_small())
    x = torch.randn(2, 3, 32, 32)
    optimized = fxrep.optimize(model, x, capture_method=method)
    report = optimized.fxrep_report
    assert report.capture.startswith("torch.fx.symbolic_trace" if method == "symbolic_trace" else "torch.export")
    ops = report.ops_after
    assert ops.get("batchnorm", 0) == 0
    assert ops.get("identity", 0) == 0  # dropout in eval is gone
    hand = count_ops(torch.export.export(levit_fuse(model), (x,), strict=False).module())
    assert ops["linear"] == hand["linear"] - 1  # head + head_dist summed into one Linear
    assert ops.get("div", 0) == 0 and ops["conv"] == hand["conv"]
    with torch.no_grad():
        assert relative_error(model(x), optimized(x)) <= 1e-5
