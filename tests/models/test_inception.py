from __future__ import annotations

import torch
from torch import nn

from fxrep.models import InceptionBlock, inception_small

from ._checks import (
    assert_deterministic,
    assert_export_matches,
    assert_symbolic_trace_matches,
    count_modules,
    randomized_eval,
)


def test_shape_and_structure() -> None:
    block = InceptionBlock(16, 8, 6, 10, 4, 5, 3).eval()
    out = block(torch.randn(2, 16, 9, 9))
    assert out.shape == (2, 8 + 10 + 5 + 3, 9, 9)
    assert count_modules(block, nn.Conv2d) == 6
    assert block.branch3[1].conv.kernel_size == (3, 3)  # torchvision's 3x3 in the "5x5" branch
    assert all(bn.eps == 1e-3 for bn in block.modules() if isinstance(bn, nn.BatchNorm2d))


def test_three_1x1_convs_read_the_input() -> None:
    graph = torch.fx.symbolic_trace(InceptionBlock(16, 8, 6, 10, 4, 5, 3)).graph
    (x,) = [node for node in graph.nodes if node.op == "placeholder"]
    readers = sorted(node.target for node in x.users if node.op == "call_module")
    assert readers == ["branch1.conv", "branch2.0.conv", "branch3.0.conv", "branch4.0"]


def test_determinism_trace_and_export() -> None:
    x = torch.randn(1, 16, 8, 8)
    build = lambda: InceptionBlock(16, 8, 6, 10, 4, 5, 3)  # noqa: E731
    assert_deterministic(build, x)
    block = randomized_eval(build())
    assert_symbolic_trace_matches(block, x)
    program = assert_export_matches(block, x)
    # torchvision's F.relu(inplace=True) is captured as the in-place ATen op.
    assert any(node.target == torch.ops.aten.relu_.default for node in program.graph.nodes)


def test_small_net() -> None:
    x = torch.randn(1, 3, 32, 32)
    model = randomized_eval(inception_small())
    assert model(x).shape == (1, 10)
    assert_symbolic_trace_matches(model, x)
    assert_export_matches(model, x)
