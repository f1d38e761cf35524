"""The analytic cost model: a conv costs its MACs whatever form its weight takes, each op kind pays its own
fixed cost, the simple (GPU) form is the textbook formula, and the CPU backend rule is the one torch follows."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.profiler import ProfilerActivity, profile

from fxrep.capture import capture
from fxrep.cost import (
    CPU,
    FRESH_ALLOCATION_BYTES,
    GPU,
    TARGETS,
    ConvSignature,
    CostModel,
    ElementwiseSignature,
    PoolSignature,
)
from fxrep.cost.targets import uses_onednn


class ConstantWeight(nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(16, 32, 3, 3))

    def forward(self, x):
        return F.conv2d(x, self.weight, padding=1)


class ComputedWeight(ConstantWeight):
    """DiracNet / weight standardization: the weight is computed from parameters in forward."""

    def forward(self, x):
        return F.conv2d(x, self.weight / self.weight.norm(), padding=1)


def conv_cost(model: nn.Module, method: str) -> float:
    gm = capture(model, (torch.randn(8, 32, 64, 64),), method=method).graph_module
    convs = [n for n in gm.graph.nodes if "conv" in str(n.target)]
    assert len(convs) == 1, gm.graph
    return CostModel().node_seconds(convs[0])


@pytest.mark.parametrize("method", ["export", "symbolic_trace"])
def test_a_conv_with_a_computed_weight_costs_as_much_as_one_with_a_constant_weight(method):
    constant, computed = conv_cost(ConstantWeight(), method), conv_cost(ComputedWeight(), method)
    assert computed == pytest.approx(constant, rel=1e-9)
    macs = 8 * 16 * 64 * 64 * 32 * 9
    assert computed > macs / CostModel().target.macs_per_second  # the MACs are counted, not just the bytes


# ---------------------------------------------------------------------------------------------- the formula
ROUTES = {  # signature -> the fixed cost it must pay (see fxrep/cost/model.py)
    "onednn kxk (batch 2)": (ConvSignature(16, 16, (3, 3), (1, 1), ((1, 1),) * 2, (1, 1), 1, (8, 8), 2),
                             "seconds_per_conv"),
    "onednn 1x1 (batch 16)": (ConvSignature(16, 16, (1, 1), (1, 1), ((0, 0),) * 2, (1, 1), 1, (8, 8), 16),
                              "seconds_per_pointwise_conv"),
    "native kxk (batch 1, small)": (ConvSignature(16, 16, (3, 3), (1, 1), ((1, 1),) * 2, (1, 1), 1, (8, 8), 1),
                                    "native_seconds_per_conv"),
    "native 1x1 (batch 1)": (ConvSignature(16, 16, (1, 1), (1, 1), ((0, 0),) * 2, (1, 1), 1, (8, 8), 1),
                             "native_seconds_per_pointwise_conv"),
    "linear": (ConvSignature(16, 16, (), (), (), (), 1, (), 4), "native_seconds_per_pointwise_conv"),
    "depthwise": (ConvSignature(16, 16, (3, 3), (1, 1), ((1, 1),) * 2, (1, 1), 16, (8, 8), 1),
                  "seconds_per_grouped_conv"),
    "grouped with 16 per group (dense)": (ConvSignature(32, 32, (3, 3), (1, 1), ((1, 1),) * 2, (1, 1), 2, (8, 8), 2),
                                          "seconds_per_conv"),
    "pool": (PoolSignature(16, (3, 3), (1, 1), (1, 1), (8, 8), 1), "seconds_per_pool"),
    "add": (ElementwiseSignature("add", 1024, 2), "seconds_per_op"),
}
FIXED = ("seconds_per_conv", "seconds_per_pointwise_conv", "native_seconds_per_conv",
         "native_seconds_per_pointwise_conv", "seconds_per_grouped_conv", "seconds_per_pool", "seconds_per_op")


@pytest.mark.parametrize("route", list(ROUTES))
def test_each_op_kind_pays_its_own_fixed_cost(route):
    """Rates and bandwidths infinite, fixed costs 1, 2, 3, ...: an op's estimate is its kind's fixed cost."""
    fixed = {name: float(i + 1) for i, name in enumerate(FIXED)}
    free = replace(CPU, macs_per_second=math.inf, grouped_macs_per_second=math.inf, bytes_per_second=math.inf,
                   pointwise_macs_per_second=math.inf, native_macs_per_second=math.inf,
                   native_pointwise_macs_per_second=math.inf, im2col_bytes_per_second=math.inf,
                   grouped_seconds_per_output=0.0, pool_macs_per_second=math.inf,
                   elementwise_bytes_per_second=math.inf, **fixed)
    signature, expected = ROUTES[route]
    assert CostModel(free).seconds(signature) == fixed[expected]


def test_a_simple_target_is_the_macs_bytes_and_overhead_formula():
    """GPU keeps the simple model: MACs / rate (Winograd-discounted) + bytes / bandwidth + one fixed cost."""
    conv = ConvSignature(64, 64, (3, 3), (1, 1), ((1, 1),) * 2, (1, 1), 1, (56, 56), 1)
    macs = 64 * 64 * 9 * 56 * 56
    moved = (64 * 56 * 56 * 2 + 64 * 64 * 9) * 4
    expected = macs / GPU.winograd_speedup / GPU.macs_per_second + moved / GPU.bytes_per_second + GPU.seconds_per_op
    assert CostModel(GPU).seconds(conv) == pytest.approx(expected, rel=1e-12)
    pool = PoolSignature(64, (3, 3), (1, 1), (1, 1), (56, 56), 1)
    assert CostModel(GPU).seconds(pool) == CostModel(GPU).seconds(pool.as_depthwise_conv())


def test_outputs_over_the_mmap_threshold_pay_for_fresh_pages_and_addcmul_its_slowdown():
    model = CostModel(CPU)
    below = FRESH_ALLOCATION_BYTES // 4 - 1  # float32 elements
    at = FRESH_ALLOCATION_BYTES // 4
    step = model.seconds(ElementwiseSignature("mul", at)) - model.seconds(ElementwiseSignature("mul", below))
    assert step == pytest.approx(FRESH_ALLOCATION_BYTES / CPU.fresh_bytes_per_second, rel=1e-3)
    mul, addcmul = (model.seconds(ElementwiseSignature(kind, 1000)) - CPU.seconds_per_op for kind in ("mul", "addcmul"))
    assert addcmul == pytest.approx(mul * CPU.addcmul_slowdown)


def test_every_target_says_where_its_constants_came_from():
    for name, target in TARGETS.items():
        assert len(target.source) > 40, name
    assert "published" in GPU.source and "not measured" in GPU.source


SHAPES = [  # (batch, channels, size, kernel, groups, stride, threads)
    (1, 24, 28, 3, 1, 1, 1), (1, 32, 28, 3, 1, 1, 1), (1, 8, 7, 3, 1, 1, 1), (1, 8, 7, 5, 1, 1, 1),
    (1, 64, 56, 1, 1, 1, 1), (16, 8, 7, 1, 1, 1, 1), (2, 8, 7, 3, 1, 1, 1), (1, 8, 7, 3, 8, 1, 1),
    (1, 8, 7, 3, 1, 2, 1), (1, 64, 14, 1, 1, 1, 2), (2, 64, 14, 1, 1, 1, 2), (1, 64, 14, 1, 1, 2, 1),
]


@pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="this torch has no oneDNN")
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "b{}c{}h{}k{}g{}s{}t{}".format(*s))
def test_the_backend_rule_is_the_one_torch_follows(shape):
    """`uses_onednn` against what torch.profiler shows eager PyTorch actually runs."""
    batch, channels, size, kernel, groups, stride, n_threads = shape
    x = torch.randn(batch, channels, size, size)
    w = torch.randn(channels, channels // groups, kernel, kernel)
    previous = torch.get_num_threads()
    torch.set_num_threads(n_threads)
    try:
        with torch.inference_mode(), profile(activities=[ProfilerActivity.CPU]) as prof:
            F.conv2d(x, w, None, stride, kernel // 2, 1, groups)
    finally:
        torch.set_num_threads(previous)
    ran = {event.key for event in prof.key_averages()}
    assert ("aten::mkldnn_convolution" in ran) == uses_onednn(channels, (size, size), batch, (kernel, kernel),
                                                              (stride, stride), (1, 1), groups, n_threads)
