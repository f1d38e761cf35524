"""The single-op set shared by cost-model fits: coverage, the cost model's view of each op, and the ops it runs."""

from __future__ import annotations

import math
from dataclasses import replace

import op_set
import pytest
import torch

from fxrep.cost import CPU, GPU, CostModel, Target


def test_full_set_covers_the_kinds_and_shapes_of_the_gpu_fit() -> None:
    specs = op_set.op_specs("full")
    categories = {s.category for s in specs}
    assert {"dense 1x1", "dense 3x3", "dense 3x3 s2", "dense 5x5", "dense 7x7", "depthwise 3x3",
            "depthwise 3x3 s2", "depthwise 7x7", "grouped 3x3 (<16/group)", "grouped 3x3 (>=16/group)",
            "avgpool 3x3", "add", "mul (per-channel scale)", "addcmul (per-channel affine)"} <= categories
    assert min(s.channels for s in specs) == 8 and max(s.channels for s in specs) == 512
    assert {s.size for s in specs} == {7, 14, 28, 56, 112}
    assert {s.batch for s in specs} == {1, 8}
    assert len({s.label for s in specs}) == len(specs)
    assert max(s.macs for s in specs) <= op_set.DEFAULT_MAX_MACS
    assert any(s.out_channels == 4 * s.channels for s in specs) and any(4 * s.out_channels == s.channels
                                                                        for s in specs if s.kind == "conv")
    for scale in ("quick", "tiny"):  # smaller grids of the same kinds
        assert {s.category for s in op_set.op_specs(scale)} >= categories - {"grouped 3x3 (>=16/group)"}
    with pytest.raises(ValueError):
        op_set.op_specs("huge")


def test_features_of_known_ops() -> None:
    dense = op_set.conv(8, 8, 3, 7, 1)
    assert op_set.features(dense, 4) == {"dense_macs": 0.0, "wino_macs": 8 * 8 * 9 * 49,
                                         "grouped_macs": 0.0, "bytes": ((8 * 49) * 2 + 8 * 8 * 9) * 4, "ops": 1.0}
    strided = op_set.conv(16, 16, 3, 14, 2, stride=2)
    assert op_set.features(strided, 2)["dense_macs"] == 16 * 16 * 9 * 7 * 7 * 2
    depthwise = op_set.conv(32, 32, 7, 14, 1, groups=32)
    values = op_set.features(depthwise, 2)
    assert values["grouped_macs"] == 32 * 49 * 14 * 14 and values["dense_macs"] == values["wino_macs"] == 0
    add = op_set.OpSpec("add", 16, 14, 8)
    assert op_set.features(add, 2) == {"dense_macs": 0.0, "wino_macs": 0.0, "grouped_macs": 0.0,
                                       "bytes": 16 * 14 * 14 * 8 * 3 * 2, "ops": 1.0}
    pool = op_set.OpSpec("avgpool", 16, 14, 1, kernel=3)
    assert op_set.features(pool, 4)["grouped_macs"] == 16 * 9 * 14 * 14  # costed as its depthwise conv


@pytest.mark.parametrize("itemsize", [2, 4])
def test_features_rebuild_the_cost_models_estimate_for_simple_targets(itemsize: int) -> None:
    """The simple model is linear in its five constants: the features recover its estimate for any of them."""
    other = Target("other", macs_per_second=3e12, grouped_macs_per_second=7e10, bytes_per_second=9e11,
                   seconds_per_op=2e-5, winograd_speedup=3.0)
    assert op_set.simple(GPU) == replace(GPU, name="gpu (simple)", source="")  # fxrep's GPU target is simple
    for spec in op_set.op_specs("tiny") + op_set.op_specs("quick"):
        values = op_set.features(spec, itemsize)
        assert all(v >= 0 for v in values.values())
        for target in (GPU, other, op_set.simple(CPU)):
            expected = op_set.estimate(spec, CostModel(target), itemsize)
            assert math.isclose(op_set.linear_estimate(values, target), expected, rel_tol=1e-9), spec.label


def test_built_ops_run_with_the_planned_shape_dtype_and_layout() -> None:
    for spec in op_set.op_specs("tiny"):
        out = op_set.build(spec, "cpu", torch.float32)()
        channels = spec.out_channels if spec.kind == "conv" else spec.channels
        assert out.shape == (spec.batch, channels, spec.out_size, spec.out_size), spec.label
        assert out.dtype == torch.float32 and out.numel() == spec.numel
    half = op_set.build(op_set.conv(8, 16, 3, 7, 2), "cpu", torch.float16)()
    assert half.dtype == torch.float16 and half.is_contiguous(memory_format=torch.channels_last)
