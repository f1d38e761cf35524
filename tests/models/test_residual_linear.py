from __future__ import annotations

import torch
import torch.nn.functional as F

from fxrep.models import ResidualLinearBlock, ResidualMLP

from ._checks import (
    assert_close_scaled,
    assert_deterministic,
    assert_export_matches,
    assert_symbolic_trace_matches,
    randomized_eval,
)


def test_block_is_one_affine_map() -> None:
    block = randomized_eval(ResidualLinearBlock(6, 24))
    x = torch.randn(5, 6)
    bn = block.bn
    a = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    c = bn.bias - bn.running_mean * a
    weight = torch.eye(6) + a[:, None] * (block.linear2.weight @ block.linear1.weight)
    bias = a * (block.linear2.weight @ block.linear1.bias + block.linear2.bias) + c
    with torch.no_grad():
        out = block(x)
        assert out.shape == (5, 6)
        assert_close_scaled(out, F.linear(x, weight, bias))


def test_mlp_shape_determinism_trace_and_export() -> None:
    x = torch.randn(4, 32)
    assert_deterministic(ResidualMLP, x)
    model = randomized_eval(ResidualMLP(in_features=32, dim=16, hidden=64, num_blocks=3, num_classes=7))
    assert model(x).shape == (4, 7)
    assert len(model.blocks) == 3
    assert_symbolic_trace_matches(model, x)
    assert_export_matches(model, x)
