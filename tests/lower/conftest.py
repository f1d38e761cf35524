"""Models, inputs and built artifacts shared by the lowering tests.

Exports and engine builds cost seconds on a small CPU, so the ones several tests read are built
once per session.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn


class SmallNet(nn.Module):
    """Conv-BN-ReLU stem, a residual add, a concat, a strided conv, global average pool and a linear head."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU())
        self.body = nn.Conv2d(8, 8, 3, padding=1)
        self.side = nn.Conv2d(8, 8, 1)
        self.down = nn.Conv2d(16, 16, 3, stride=2, padding=1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = torch.relu(self.body(x) + x)
        x = torch.cat([x, self.side(x)], dim=1)
        x = torch.relu(self.down(x))
        return self.head(torch.flatten(self.pool(x), 1))


def make_small_net() -> SmallNet:
    """A SmallNet in eval mode whose BatchNorm has non-trivial statistics (so folding it matters)."""
    torch.manual_seed(0)
    net = SmallNet()
    with torch.no_grad():
        batchnorm = net.stem[1]
        batchnorm.running_mean.uniform_(-0.5, 0.5)
        batchnorm.running_var.uniform_(0.5, 2.0)
        batchnorm.weight.uniform_(0.5, 1.5)
        batchnorm.bias.uniform_(-0.2, 0.2)
    return net.eval()


@pytest.fixture
def small_net() -> SmallNet:
    return make_small_net()


@pytest.fixture
def small_input() -> torch.Tensor:
    return torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(1))


@pytest.fixture(scope="session")
def small_onnx(tmp_path_factory: pytest.TempPathFactory):
    """SmallNet exported to ONNX once, with its example input."""
    from fxrep.lower import export_onnx

    net = make_small_net()
    example = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    path = export_onnx(net, example, tmp_path_factory.mktemp("onnx") / "small.onnx")
    return path, net, example


@pytest.fixture(scope="session")
def small_engine(small_onnx):
    """An fp32 TensorRT-RTX engine of SmallNet, built on the CPU from the session's ONNX file."""
    pytest.importorskip("tensorrt_rtx")
    from fxrep.lower import build_engine

    path, _, example = small_onnx
    return build_engine(path, example, runtime="tensorrt_rtx")


@pytest.fixture
def conv_count():
    def count(module: nn.Module) -> int:
        return sum(isinstance(m, nn.Conv2d) for m in module.modules())

    return count
