"""Dynamic shapes: a dynamic batch stays correct at other sizes; size-dependent merges are refused."""

from __future__ import annotations

import torch
from torch import nn

import fxrep
from fxrep.models import RepVGGBlock
from tests.helpers import assert_equivalent, ops, randomized


def test_dynamic_batch_is_correct_for_other_batch_sizes():
    model = randomized(RepVGGBlock(4, 4, 3, padding=1))
    gm = fxrep.optimize(model, torch.randn(1, 4, 8, 8), dynamic_batch=True)
    assert ops(gm)["conv"] == 1
    assert "random inputs with batch + 1" in {e.inputs for e in gm.fxrep_report.verification.errors}
    for batch in (1, 3, 5):
        assert_equivalent(model, gm, torch.randn(batch, 4, 8, 8))


class EvenOnly(nn.Module):
    """2x2/stride-2 and 1x1/stride-2 branches: their output grids coincide only for even sizes."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(4, 4, 2, stride=2)
        self.b = nn.Conv2d(4, 4, 1, stride=2)

    def forward(self, x):
        return self.a(x) + self.b(x)


def test_a_merge_exact_only_for_the_traced_size_needs_a_static_size():
    model = randomized(EvenOnly())
    x = torch.randn(2, 4, 8, 8)
    static = fxrep.optimize(model, x)
    assert ops(static)["conv"] == 1
    height = torch.export.Dim("height", min=2, max=64)
    dynamic = fxrep.optimize(model, x, dynamic_shapes=({2: 2 * height},))
    assert ops(dynamic)["conv"] == 2
    assert any("input size is not static" in r.reason for r in dynamic.fxrep_report.refusals)


def test_symbolic_trace_graphs_never_use_size_dependent_merges():
    model = randomized(EvenOnly())
    gm = fxrep.optimize(model, torch.randn(2, 4, 8, 8), capture_method="symbolic_trace")
    assert ops(gm)["conv"] == 2  # the graph would run on any size, so the merge is refused
